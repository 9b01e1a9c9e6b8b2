"""The tables of modules in the docs are generated, not kept by hand: docs/architecture.md lists the package's
modules and docs/testing.md the test files, each with its docstring's first sentence (`python -m tinybert
modules`), so a module that is added, renamed or merged shows up as a failing test until they are regenerated."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

from tinybert.docs_tables import modules_text

TABLES = {"package": "docs/architecture.md", "tests": "docs/testing.md"}


@pytest.mark.parametrize("which", sorted(TABLES))
def test_the_docs_have_the_generated_module_tables(which):
    name = TABLES[which]
    text = (REPO / name).read_text(encoding="utf-8")
    found = re.search(rf"<!-- modules-{which}:start -->\n(.*?)<!-- modules-{which}:end -->", text, re.S)
    assert found, f"{name}: expected the table between modules-{which} markers"
    printed = subprocess.run([sys.executable, "-m", "tinybert", "modules", which], cwd=REPO, capture_output=True,
                             check=True).stdout.decode("utf-8")
    assert found.group(1) == printed, f"{name} is out of date: paste `python -m tinybert modules {which}`"


def test_every_module_with_a_docstring_has_a_row():
    table = modules_text.markdown("package")
    for path in sorted((REPO / "tinybert").rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        assert (f"| `{name}` |" in table) == bool(modules_text.first_sentence(path)), name
    assert "| `tinybert/settings.py` | Every default of the pipeline, once, with its reason: test/*.sh read them (`settings --shell`, `paths`), the Python steps the typed constants below; nothing else spells a default (model files: model_kinds.py). |" \
        in table


def test_first_sentence(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Reads a | b: e.g. 310P3 and\nmore. Then the rest.\n\nSecond paragraph."""\n')
    assert modules_text.first_sentence(module) == "Reads a | b: e.g. 310P3 and more."
    module.write_text('"""Faking them:\n\n- a list"""\n')
    assert modules_text.first_sentence(module) == "Faking them."
    module.write_text("x = 1\n")
    assert modules_text.first_sentence(module) == ""
