"""The code's shape, kept: the layering of its folders (import-linter's contracts in .importlinter), no
import cycle, and no default spelled outside the settings table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "tinybert"
MODULES = sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_layers_hold(monkeypatch, capsys):
    """Lower folders never import upper ones (function-level imports included): .importlinter's contracts."""
    from importlinter import cli

    monkeypatch.chdir(REPO)
    code = cli.lint_imports(config_filename=str(REPO / ".importlinter"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_every_folder_is_a_layer():
    """Each folder of the package is named in the layers contract, so none sits outside the layering."""
    text = (REPO / ".importlinter").read_text()
    layered = {name.strip() for line in text.split("layers =", 1)[1].splitlines() for name in line.split("|")}
    folders = {f"tinybert.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    modules = {f"tinybert.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert folders | modules <= layered, sorted((folders | modules) - layered)


def _imports(path: Path, names: set[str]) -> set[str]:
    """The package modules `path` imports anywhere in it (function-level imports included)."""
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[:len(base) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
            found |= {c for c in [target] + [f"{target}.{a.name}" for a in node.names] if c in names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in names}
    return found - {module}


def test_no_import_cycle():
    names = {_name(p) for p in MODULES}
    graph = {_name(p): _imports(p, names) for p in MODULES}
    state: dict[str, str] = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != "open", "import cycle: " + " -> ".join(trail + [node, nxt])
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


# Parameters that carry a setting: their defaults must be the settings table's, never a literal.
SETTING_PARAMETERS = {"repeats", "loop", "warmup", "seq_len", "opset", "batch_sizes", "output_root",
                      "calibration_samples", "calibration_seed", "tolerance", "bucket_edges", "outfmt"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_setting_default_is_spelled_outside_the_table(path):
    if path.name in ("settings.py", "settings_text.py"):
        return
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs
            defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
            defaults += node.args.kw_defaults
            for arg, value in zip(args, defaults):
                literal = isinstance(value, ast.Constant) and value.value is not None
                assert not (arg.arg in SETTING_PARAMETERS and literal), \
                    f"{path.name}: {node.name}({arg.arg}={value.value!r}) spells a default of the settings table"
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):  # dataclass fields
            literal = isinstance(node.value, ast.Constant) and node.value.value is not None
            assert not (node.target.id in SETTING_PARAMETERS and literal), \
                f"{path.name}: field {node.target.id} = {node.value.value!r} spells a default of the settings table"


def test_ci_runs_the_readme_test_command():
    """The README promises that CI runs its test command: the two stay one command."""
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    full = [line.split("&& ", 1)[1] for line in readme.splitlines()
            if line.startswith(". .venv/bin/activate && python -m pytest") and "not slow" not in line]
    assert len(ci) == 1 and len(full) == 2 and set(full) == {ci[0].strip()}
