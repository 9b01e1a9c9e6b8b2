"""The code's shape, kept: the layering of its folders (import-linter's contracts in .importlinter), no
import cycle, no default spelled outside the settings table, and no lab notes in docstrings or comments."""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
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
                      "calibration_samples", "calibration_seed", "tolerance", "bucket_edges", "outfmt", "min_seconds"}


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


# --- lab notes stay out of the code ------------------------------------------------------------------
# Docstrings, comment blocks and the settings' why-texts say why in at most two lines; dates, machines
# and measured figures belong in docs/measurements/ (one file per run), which the text may name.

LAB_NOTES = {
    "a date": re.compile(r"\b20\d\d-(0[1-9]|1[0-2])\b|\b(January|February|March|April|May|June|July|August|"
                         r"September|October|November|December) 20\d\d\b"),
    "a version checked": re.compile(r"\bchecked\b[^.;:]{0,30}?(\b20\d\d\b|\bv?\d+\.\d+)|"
                                    r"\bv?\d+\.\d+(\.\d+)?\)?,? (was |were )?checked\b", re.I),
    "a machine": re.compile(r"\bAVX2(-only)? (machine|server|VM|host|box)\b|\bEPYC\b|\bXeon\b|\bthis VM\b|"
                            r"\b(measured|timed|ran|run|benchmarked|seen|observed)\b[^.;]{0,40}\bon this machine\b|"
                            r"\bloaded (\S+ )?(machine|VM|host)\b|\bunder load\b", re.I),
    # a ratio (1.08x, not 312x1200 or 64 x 312), a percentage, a time, a rate, a memory size
    "a figure": re.compile(r"\b\d+(\.\d+)?\s?x\b(?!\s*[\d(\[])|\b\d+(\.\d+)?\s*(%|ms\b|[GT](FLOP|OP)|"
                           r"(sentences|samples|tokens)/s\b|fps\b|[KMG]iB\b)"),
}
MAX_LINES = 2
WHY_LINE = 100  # characters: a why-text is one string, shown in one table cell


def lab_notes(text: str) -> list[str]:
    """What in `text` belongs in docs/measurements/, code spans (`...`, constants and examples) aside."""
    prose = re.sub(r"`[^`\n]*`", "``", text)
    return [f"{what} ({found.group(0)!r})" for what, pattern in LAB_NOTES.items()
            for found in [pattern.search(prose)] if found]


def _docstrings(source: str):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node, clean=False)
            if text is not None:
                yield node.body[0].lineno, getattr(node, "name", "module docstring"), inspect.cleandoc(text)


def _comment_blocks(source: str):
    """Comment blocks: consecutive lines holding only a comment; a comment after code is a block of its own."""
    blocks, last = [], None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        alone = token.line.strip().startswith("#")
        if alone and last == token.start[0] - 1 and blocks and blocks[-1][2]:
            blocks[-1][1].append(token.string)
        else:
            blocks.append((token.start[0], [token.string], alone))
        last = token.start[0] if alone else None
    return [(line, "\n".join(text)) for line, text, _ in blocks]


def _problems(lines: int, text: str) -> list[str]:
    return ([f"{lines} lines, expected at most {MAX_LINES}"] if lines > MAX_LINES else []) + lab_notes(text)


def _lab_notes_of(source: str) -> list[str]:
    found = []
    for line, name, text in _docstrings(source):
        found += [f"line {line}, {name}: {p}" for p in _problems(len(text.splitlines()), text)]
    for line, text in _comment_blocks(source):
        found += [f"line {line}, comment: {p}" for p in _problems(len(text.splitlines()), text)]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_docstrings_and_comments_hold_no_lab_notes(path):
    found = _lab_notes_of(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(REPO)}: " + "; ".join(found) + " (figures go to docs/measurements/)"


def test_settings_why_texts_hold_no_lab_notes():
    from tinybert.settings import SETTINGS

    found = [f"{s.name}: {p}" for s in SETTINGS
             for p in _problems(sum(max(1, -(-len(line) // WHY_LINE)) for line in s.why.splitlines()), s.why)]
    assert not found, "; ".join(found) + " (figures go to docs/measurements/, the why-text may name the file)"


def test_the_measurements_named_exist():
    from tinybert.settings import SETTINGS

    texts = [s.why for s in SETTINGS] + [path.read_text(encoding="utf-8") for path in MODULES]
    named = {name for text in texts for name in re.findall(r"docs/measurements/[\w.-]+\.md", text)}
    assert named and not [name for name in sorted(named) if not (REPO / name).is_file()]


@pytest.mark.parametrize("text", [
    "measured 1.08x, 1.29x the speed of 16/32/48/64 gears", "512 made bs64 22 % faster", "spread 5-69 %",
    "a config patch cost about 0.2 ms a call", "fp32 529/525 sentences/s", "140 GFLOP/s", "a bf16 multiply ran 14x slower",
    "Rerun 2026-11-29", "(checked 2026-11 on a 312x1200 MatMul)", "OpenVINO 2026.4.1 checked", "on a 2-vCPU AMD EPYC",
    "an AVX2 machine", "within the spread this VM varies", "timed on this machine", "378 vs 359 MiB",
    "on a loaded 2-core machine", "2 cores under load",
])
def test_lab_notes_are_found(text):
    assert lab_notes(text), text


@pytest.mark.parametrize("text", [
    "64 positions", "opset 11", "x [M, 312] -> 312x312 -> 312x1200", "[M,312] x 312x312", "rows x padded length",
    "M = batch size x mean real length", "a percentage (`99%`)", "TinyBERT_bs{bs}.onnx", "the 16/32/48/64 gears",
    "classify on this machine, no cluster needed", "this machine's matrix-multiply rates", "each call's time in ms",
    "the model is loaded once", "checked against PyTorch eager", "docs/measurements/call-tokens-amd-2vcpu.md",
    "Ray 2.60 takes max_restarts only through its deprecated **ray_remote_args", "within EXPORT_TOLERANCE (1e-4)",
])
def test_constants_are_not_lab_notes(text):
    assert not lab_notes(text), lab_notes(text)


def test_a_lab_note_in_a_docstring_or_comment_is_found():
    source = '''"""One line.

Measured 1.36x on a 2-core machine."""
# one
# two
# three
def f():
    """Ran 14x slower (2026-11-29)."""
'''
    found = " | ".join(_lab_notes_of(source))
    assert "module docstring: 3 lines" in found and "a figure ('1.36x')" in found
    assert "comment: 3 lines" in found and "f: a figure ('14x')" in found and "f: a date" in found
