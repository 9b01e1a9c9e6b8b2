"""The package's modules (or the test files) as docs/architecture.md's (docs/testing.md's) table, one row per
file with its docstring's first sentence, so the docs follow the code when modules move."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
FOLDERS = {"package": PACKAGE, "tests": PACKAGE.parent / "tests"}
# a sentence ends at . ! or ? followed by a space and a capital or code (so "e.g. 310P3" does not end one)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(])")


def first_sentence(path: Path) -> str:
    """The first sentence of the module docstring's first paragraph, on one line ("" without one)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split())
    sentence = SENTENCE_END.split(paragraph, 1)[0]
    return sentence[:-1] + "." if sentence.endswith(":") else sentence


def _files(which: str) -> list[Path]:
    root = FOLDERS[which]
    if which == "package":
        return sorted(root.rglob("*.py"), key=lambda p: (len(p.relative_to(root).parts) > 1, str(p.relative_to(root))))
    return sorted(root.glob("*.py"))


def markdown(which: str = "package") -> str:
    """One row per file that has a docstring: its path (from the repository root) and first sentence."""
    root = FOLDERS[which]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not here (the tests folder exists in a checkout only)")
    lines = ["| 文件 | 说明（模块文档字符串的第一句） |", "| ---- | ---- |"]
    for path in _files(which):
        text = first_sentence(path)
        if text:
            name = path.relative_to(root.parent).as_posix()
            lines.append(f"| `{name}` | {text.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"
