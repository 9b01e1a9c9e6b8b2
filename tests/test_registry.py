"""The registry is the one place that says what a backend or CPU path is: the docs show its tables,
and every entry points at things that exist."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

from tinybert import registry
from tinybert.docs_tables.registry_text import TABLES
from tinybert.model_kinds import MODEL_KINDS
from tinybert.settings import default


# the docs file that shows each generated table
TABLE_FILES = {"auto": "docs/cpu-paths.md", "backends": "docs/cpu-paths.md", "paths": "docs/cpu-paths.md", "runtimes": "docs/architecture.md"}


def test_every_registry_table_has_a_docs_file():
    assert set(TABLE_FILES) == set(TABLES)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_docs_have_the_generated_registry_tables(table):
    name = TABLE_FILES[table]
    text = (REPO / name).read_text(encoding="utf-8")
    found = re.search(rf"<!-- registry-{table}:start -->\n(.*?)<!-- registry-{table}:end -->", text, re.S)
    assert found, f"{name}: expected the {table} table between registry-{table} markers"
    printed = subprocess.run([sys.executable, "-m", "tinybert", "registry", table], cwd=REPO, capture_output=True,
                             check=True).stdout.decode("utf-8")
    assert found.group(1) == printed, f"{name} is out of date: paste `python -m tinybert registry {table}`"


def _init_parameters(runtime) -> set:
    """What the runtime's class takes (its module read, not imported: some need packages absent here)."""
    import ast

    tree = ast.parse((REPO / f"{runtime.module.replace('.', '/')}.py").read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    names, cls = set(), classes[runtime.cls]
    while cls is not None:
        for node in cls.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                names |= {a.arg for a in node.args.args + node.args.kwonlyargs}
        bases = [b.id for b in cls.bases if isinstance(b, ast.Name)]
        cls = classes.get(bases[0]) if bases else None
    return names


def test_every_entry_points_at_what_exists():
    from tinybert.bench.rows import rows
    from tinybert.capabilities import current, faked
    from tinybert.runtimes.needs import CALIBRATION, resolve

    runtimes = {r.name for r in registry.RUNTIMES}
    for runtime in registry.RUNTIMES:
        assert (REPO / f"{runtime.module.replace('.', '/')}.py").is_file(), runtime.name
        for check in runtime.checks:
            assert callable(resolve(check.judge)), check
        for chain in runtime.chains:
            assert callable(resolve(chain.build)), chain
    for path in rows():
        assert path.runtime in runtimes, path.row
        assert path.model == registry.CHECKPOINT or path.model in {k.name for k in MODEL_KINDS}, path.row
        assert path.batching in ("tight", "gears", "off"), path.row
        for need in set(path.all_needs) - {CALIBRATION}:  # a calibration file is the run's input, not the machine's
            with faked(kernels={"torchao_int8": None}):  # a known need, whatever this CPU's int8 kernel does
                assert "unknown need" not in (current().unmet(need) or ""), (path.row, need)
        options = dict(path.options)
        assert not set(options) - _init_parameters(registry.runtime(path.runtime)), path.row
        assert path.role != "variant" or registry.project_path(path.variant_of), path.row
    assert len({p.row for p in rows()}) == len(rows())
    assert len({p.name for p in rows()}) == len(rows())
    from tinybert.capabilities.packages import install_hint, known_names

    assert all(install_hint(name) for name in known_names())  # every name TINYBERT_WITHOUT takes says what to install
    assert default("ORT_MODEL") in registry.ort_models()
    assert [b.name for b in registry.BACKENDS][-2:] == ["onnxruntime", "onnxruntime-gpu"]  # the auto fallback last


def test_the_gates_follow_the_roles_and_precisions():
    from tinybert.bench.rows import rows

    gates = {p.row: p.gate for p in rows()}
    assert gates["A"] is None and gates["OV"] is None  # the baseline and peers are not gated
    assert gates["C"] == gates["B"] == "exact" and gates["D"] == gates["S"] == gates["Bf"] == "reduced"


def test_a_path_opens_on_its_runtime_with_its_options(monkeypatch):
    from tinybert import runtimes
    from tinybert.bench.rows import row
    from tinybert.runtimes import route as backends

    opened = []
    monkeypatch.setattr(runtimes, "open_runtime", lambda name, model, **options: opened.append((name, model, options)))
    backends.open_path("fast", "m", threads=2, requests=4)
    backends.open_path(row("C1"), "m", threads=2, requests=4)  # the variant fixes one request
    backends.open_path(row("OVt"), "m", threads=2, requests=4)  # a peer: OpenVINO's hint decides, not REQUESTS
    backends.open_path("static", "m", batch_size=8)
    backends.open_path(row("A"), "m", ckpt_dir="ckpt", requests=3)  # PyTorch takes no requests
    backends.open_path("V8", "m", threads=2)  # a project path on OpenVINO: REQUESTS' default, as the steps pass it
    assert opened == [("onnxruntime", "m/TinyBERT_fast.onnx", {"threads": 2, "requests": 4}),
                      ("onnxruntime", "m/TinyBERT_fast.onnx", {"threads": 2, "requests": 1}),
                      ("openvino", "m/TinyBERT_fast.onnx", {"threads": 2, "hint": "THROUGHPUT"}),
                      ("onnxruntime", "m/TinyBERT_sim_bs8.onnx", {"threads": None, "requests": "auto"}),
                      ("pytorch", "ckpt", {"threads": None}),
                      ("openvino", "m/TinyBERT_ov_int8.xml", {"threads": 2, "requests": "auto"})]


@pytest.mark.parametrize("calibration, calibration_file, expected", [
    ("ignored", None, None),  # runtimes.route: the model is exported already
    ("named", None, "no calibration file (CALIB_FILE)"),  # the benchmark: its export comes later
    ("named", "{missing}", None),
    ("present", None, "no calibration file (CALIB_FILE: none given)"),  # ORT_MODEL=auto's export reads it now
    ("present", "{missing}", "no calibration file (CALIB_FILE: {missing})"),
    ("present", "{existing}", None),
])
def test_the_calibration_need_is_judged_as_asked(tmp_path, calibration, calibration_file, expected):
    existing = tmp_path / "train.tsv"
    existing.write_text("sentence\tlabel\n", encoding="utf-8")
    files = {"missing": str(tmp_path / "absent.tsv"), "existing": str(existing)}
    given = calibration_file.format(**files) if calibration_file else None
    from tinybert.runtimes.needs import unmet_needs

    reasons = list(unmet_needs(registry.run_path("int8_static"), calibration, given))
    assert reasons == ([expected.format(**files)] if expected else [])


def test_unmet_needs_come_in_their_order_each_checked_when_asked(monkeypatch):
    from tinybert.bench.rows import row
    from tinybert.capabilities import Capabilities, faked
    from tinybert.runtimes.needs import unmet_needs

    path = row("OV8")
    assert path.all_needs == ("openvino", "nncf", "calibration")
    with faked(without=("openvino", "nncf")):
        reasons = list(unmet_needs(path, "named"))
    assert [r.split(" ", 1)[0] for r in reasons] == ["openvino", "nncf", "no"]
    checked = []
    monkeypatch.setattr(Capabilities, "unmet", lambda self, need: checked.append(need) or f"{need} missing")
    reasons = unmet_needs(path, "present")
    assert next(reasons) == "openvino missing" and checked == ["openvino"]  # lazily: torchao's check runs a layer


def test_an_unknown_calibration_judgement_is_refused():
    from tinybert.errors import UsageError
    from tinybert.runtimes.needs import unmet_needs

    with pytest.raises(UsageError, match="expected calibration ignored, named or present, got 'given'"):
        unmet_needs(registry.run_path("int8_static"), "given")


def test_eval_all_names_every_ort_model_value():
    header = "".join(line for line in (REPO / "test" / "eval_all.sh").read_text().splitlines(keepends=True)
                     if line.startswith("#"))
    named = {value for value in registry.ort_models() if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", header)}
    assert named == set(registry.ort_models())
