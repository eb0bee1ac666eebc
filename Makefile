# `make demo` and `make test` set everything up themselves (venv + pinned requirements) on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.impasto-installed
DEMO_OUT ?= out/chelsea-starry_night.png

.PHONY: setup demo test lint bench clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_gatys.py

clean:
	rm -rf $(VENV) out .pytest_cache
