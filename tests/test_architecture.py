"""The package's layers, read from its source with ``ast``: dependencies run one way, with no import cycle.

    front ends (cli/, web/) -> api, batch -> runner, estimate -> methods/ -> options, plan -> core/, io/ -> errors

Every import of an impasto module counts, wherever it is written (module level, inside a function, under
``TYPE_CHECKING``); imports of impasto modules inside functions are refused outright, as they used to hide
cycles. A new module must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "impasto"

#: Layer of each module, by the longest matching name prefix; a module may import only its layer or lower ones.
LAYERS = {
    "impasto.errors": 0,
    "impasto.version": 0,
    "impasto.startup": 0,
    "impasto.core": 1,
    "impasto.io": 1,
    "impasto.options": 2,
    "impasto.plan": 2,
    "impasto.presets": 2,
    "impasto.schema": 2,
    "impasto.methods": 3,
    "impasto.runner": 4,
    "impasto.estimate": 4,
    "impasto.training": 4,
    "impasto.api": 5,
    "impasto.batch": 5,
    "impasto.video": 5,
    "impasto.cluster": 5,
    "impasto.cli": 6,
    "impasto.web": 6,
    "impasto.__main__": 7,
    "impasto": 7,  # the package itself re-exports the API
}
#: Front ends call the API: these lower layers are out of their reach (they may use io, options, plan, errors).
FRONT_ENDS = ("impasto.cli", "impasto.web")
OFF_LIMITS_FOR_FRONT_ENDS = (
    "impasto.methods",
    "impasto.runner",
    "impasto.estimate",
    "impasto.training",
    "impasto.core",
)
ALLOWED_FOR_FRONT_ENDS = ("impasto.core.progress",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported impasto module, line, inside a function) for every import in a module."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "impasto":
                        found.append((_nearest(alias.name, known), child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = _package_of(name, path).split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != "impasto":
                    continue
                for alias in child.names:  # "from pkg import submodule" imports the submodule
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in known else _nearest(target, known), child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


def _nearest(name: str, known: set[str]) -> str:
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def layer(name: str) -> int:
    match = max((prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")), key=len)
    return LAYERS[match]


def graph() -> dict[str, list[tuple[str, int, bool]]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_module_has_a_layer():
    for name in modules():
        assert any(name == p or name.startswith(p + ".") for p in LAYERS if p != "impasto") or name == "impasto", name


def test_no_import_runs_upward():
    upward = [
        f"{src} (layer {layer(src)}) imports {dst} (layer {layer(dst)}) at line {line}"
        for src, edges in graph().items()
        for dst, line, _ in edges
        if layer(dst) > layer(src)
    ]
    assert not upward, "\n".join(upward)


def test_core_does_not_import_io_and_front_ends_call_the_api():
    bad = []
    for src, edges in graph().items():
        for dst, line, _ in edges:
            if src.startswith("impasto.core") and dst.startswith("impasto.io"):
                bad.append(f"{src} imports {dst} at line {line}: core takes tensors and numbers, not files")
            if src.startswith(FRONT_ENDS) and dst.startswith(OFF_LIMITS_FOR_FRONT_ENDS):
                if not dst.startswith(ALLOWED_FOR_FRONT_ENDS):
                    bad.append(f"{src} imports {dst} at line {line}: front ends go through impasto.api")
    assert not bad, "\n".join(bad)


#: The one way between the two front ends: ``impasto serve`` (a command) starts the web app, so it reads the server's
#: settings and checks its job store before uvicorn imports the app by name.
CLI_TO_WEB = {"impasto.cli.serve": ("impasto.web.config", "impasto.web.jobs")}


def test_the_web_does_not_import_the_command_line():
    """The web app reads its options from the schema (impasto.schema), not from the command line's parser."""
    bad = [f"{src} imports {dst} at line {line}" for src, edges in graph().items() if src.startswith("impasto.web")
           for dst, line, _ in edges if dst.startswith("impasto.cli")]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_the_command_line_does_not_import_the_web():
    bad = [f"{src} imports {dst} at line {line}" for src, edges in graph().items() if src.startswith("impasto.cli")
           for dst, line, _ in edges if dst.startswith("impasto.web") and dst not in CLI_TO_WEB.get(src, ())
           ]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_no_impasto_import_is_hidden_inside_a_function():
    hidden = [f"{src} imports {dst} at line {line}" for src, edges in graph().items() for dst, line, inner in edges
              if inner]  # fmt: skip
    assert not hidden, "\n".join(hidden)


def test_no_import_cycle():
    edges = {src: {dst for dst, _, _ in out if dst != src} for src, out in graph().items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_checker_sees_cycles_and_upward_imports(tmp_path):
    """The checks above would fail on a planted cycle and a planted upward import (a check that cannot fail
    proves nothing)."""
    pkg = tmp_path / "impasto"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from . import b\n")
    (pkg / "core" / "b.py").write_text("def f():\n    from ..api import run\n\nfrom .a import x\n")
    (pkg / "api.py").write_text("")
    global PACKAGE
    saved, PACKAGE = PACKAGE, pkg
    try:
        g = graph()
        assert ("impasto.api", 2, True) in g["impasto.core.b"]
        assert ("impasto.core.a", 4, False) in g["impasto.core.b"]
        with pytest.raises(AssertionError, match="imports impasto.api"):
            test_no_import_runs_upward()
        with pytest.raises(pytest.fail.Exception, match="import cycle: impasto.core.a -> impasto.core.b"):
            test_no_import_cycle()
        with pytest.raises(AssertionError, match="at line 2"):
            test_no_impasto_import_is_hidden_inside_a_function()
        (pkg / "web").mkdir()
        (pkg / "cli").mkdir()
        (pkg / "web" / "__init__.py").write_text("")
        (pkg / "cli" / "__init__.py").write_text("from ..web import app\n")
        (pkg / "web" / "app.py").write_text("from ..cli import stylize\n")
        (pkg / "cli" / "stylize.py").write_text("")
        with pytest.raises(AssertionError, match="impasto.web.app imports impasto.cli.stylize at line 1"):
            test_the_web_does_not_import_the_command_line()
        with pytest.raises(AssertionError, match="impasto.cli imports impasto.web.app at line 1"):
            test_the_command_line_does_not_import_the_web()
    finally:
        PACKAGE = saved


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def method_name_comparisons(package: Path) -> list[str]:
    """Every comparison of a ``method`` (an attribute or a name) with string constants: a method's knowledge
    belongs in its module's spec (``impasto.methods.base.MethodSpec``), not in tests of its name elsewhere."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            named = any(isinstance(s, ast.Attribute) and s.attr == "method" or isinstance(s, ast.Name)
                        and s.id == "method" for s in sides)  # fmt: skip
            strings = any(_is_str(s) or isinstance(s, (ast.Tuple, ast.List, ast.Set)) and any(map(_is_str, s.elts))
                          for s in sides)  # fmt: skip
            if named and strings:
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}")
    return found


def test_no_method_name_is_compared():
    assert not method_name_comparisons(PACKAGE), "\n".join(method_name_comparisons(PACKAGE))


def test_the_method_name_check_sees_comparisons(tmp_path):
    pkg = tmp_path / "impasto"
    pkg.mkdir()
    (pkg / "a.py").write_text('def f(o, m):\n    a = o.method == "fast"\n    b = method not in ("photo", "gatys")\n'
                              '    return m["name"] == o.method\n')
    assert method_name_comparisons(pkg) == ["impasto/a.py:2", "impasto/a.py:3"]
