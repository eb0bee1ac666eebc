# `make demo` and `make test` set everything up themselves (venv + pinned requirements) on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.impasto-installed
DEMO_OUT ?= out/chelsea-starry_night.png

DEV_STAMP := $(VENV)/.impasto-dev-installed
DOCS_STAMP := $(VENV)/.impasto-docs-installed
# Tests copied into mutants/ still find ../shared (test images, seed documents) through this.
SHARED ?= $(abspath ..)/shared
PORT ?= 8000
DATA ?= $(HOME)/.local/share/impasto/serve

.PHONY: setup demo test docs lint bench check-quality coverage mutation clean serve browser

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p $(dir $(DEMO_OUT))
	$(BIN)/impasto examples/chelsea.png examples/starry_night.jpg -o $(DEMO_OUT) --plot $(basename $(DEMO_OUT))-plot.png
	@echo "Result: $(DEMO_OUT)  (figure: $(basename $(DEMO_OUT))-plot.png)"

test: $(STAMP) browser docs
	$(BIN)/python -m pytest -q

# The documentation site (mkdocs.yml, pages in docs/) built into site/ with warnings as errors: a broken link, a
# missing page or a docstring the API reference cannot render fails the build (and so `make test`).
docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict -q

$(DOCS_STAMP): $(STAMP) requirements-docs.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-docs.lock
	touch $(DOCS_STAMP)

# The web app's browser test drives Debian's Chromium (Playwright never downloads a browser here): installed when
# missing; where it cannot be (no root, no package source) the test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "make: installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || echo "make: chromium could not be installed; the browser test will be skipped"; }

# The web app on http://127.0.0.1:$(PORT)/ (jobs and results kept in $(DATA)); Ctrl-C stops it.
serve: $(STAMP)
	@echo "impasto: starting the web app; open http://127.0.0.1:$(PORT)/ when it says it is serving"
	$(BIN)/impasto serve --port $(PORT) --data $(DATA)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.lock
	touch $(DEV_STAMP)

# Line and branch coverage of the package (terminal report; HTML in htmlcov/).
coverage: $(DEV_STAMP)
	$(BIN)/coverage erase
	$(BIN)/python -m pytest -q --cov=impasto --cov-branch --cov-report=term-missing:skip-covered --cov-report=html

# Mutation testing of the modules listed in pyproject.toml [tool.mutmut] (slow: not in CI), then the summary.
# Each mutant runs the tests that cover it, fastest first, leaving out those mutmut timed over MUTATION_MAX_TEST_S
# seconds (traced); MUTATION_MAX_TEST_S=inf runs them all. Results accumulate in mutants/ (make clean resets them).
# MUTATION_SAMPLE=0.15 checks a random 15% of each module's mutants not checked yet (needs mutants/ from an earlier
# run, which may have been interrupted once it printed "Running mutation testing").
MUTATION_MAX_TEST_S ?= 60
MUTATION_SAMPLE ?=
mutation: $(DEV_STAMP)
ifdef MUTATION_SAMPLE
	@test -d mutants || { echo "make mutation MUTATION_SAMPLE=...: run make mutation first (mutants/ is missing)"; exit 2; }
	IMPASTO_SHARED=$(SHARED) IMPASTO_MUTATION_MAX_TEST_SECONDS=$(MUTATION_MAX_TEST_S) $(BIN)/mutmut run \
	  --max-children 2 $$($(BIN)/python benchmarks/mutation_report.py --sample $(MUTATION_SAMPLE)) > /dev/null || true
else
	IMPASTO_SHARED=$(SHARED) IMPASTO_MUTATION_MAX_TEST_SECONDS=$(MUTATION_MAX_TEST_S) \
	  $(BIN)/mutmut run --max-children 2 > /dev/null || true
endif
	$(BIN)/python benchmarks/mutation_report.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_gatys.py

# The convergence matrix (every optimization mode x 256 and 512 px x two image pairs; about an hour on 2 cores):
# each run must end well below its start, never climb far above it, and give a picture that is not flat. Pictures
# and a contact sheet in out/quality/; the table in docs/quality.md. Run it before calling a change to a method done.
check-quality: $(STAMP)
	IMPASTO_SHARED_IMAGES=$(SHARED)/images $(BIN)/python benchmarks/check_quality.py --table docs/quality.md

clean:
	rm -rf $(VENV) out site .pytest_cache mutants htmlcov .coverage
