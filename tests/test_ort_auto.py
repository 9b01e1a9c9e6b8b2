"""ORT_MODEL=auto: the first path of the CPU class's order whose gate record beside its model says passed on
this (faked) CPU class, else fast with the reason; the export writes and re-checks the records; every step
records the choice."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tinybert import registry
from tinybert.capabilities import faked
from tinybert.results import gate_record
from tinybert.runtimes.route import resolve_ort_model
from tinybert.settings import gate_record_path, model_path


def _model(tmp_path, kind: str, content: bytes = b"model") -> str:
    path = model_path(kind, str(tmp_path))
    with open(path, "wb") as out:
        out.write(content)
    return path


def _record(tmp_path, name: str, passed: bool = True) -> None:
    """A gate record for path `name` on the current (faked) CPU class, its model written first."""
    model = _model(tmp_path, registry.project_path(name).model)
    gate_record.write(name, str(tmp_path), model_file=model, runtime=registry.project_path(name).runtime,
                      gate="reduced", rule="test rule", passed=passed,
                      figures={"max_abs_diff": 0.05, "agreement": 0.995 if passed else 0.9, "accuracy_drop": 0.0},
                      checked_on="test samples", judged_on=gate_record.GENERATED)


def test_each_cpu_class_has_an_order_that_ends_with_fast():
    for entry in registry.AUTO_ORDERS:
        assert entry.paths[-1] == "fast" and entry.paths[0] == "int8" and entry.why
        assert all(registry.project_path(name).role == "project" for name in entry.paths)
        assert ("bf16" in entry.paths) == bool(entry.cpu_classes) and "bf16" not in registry.auto_order("AVX2").paths
    assert sum(1 for entry in registry.AUTO_ORDERS if not entry.cpu_classes) == 1  # one catch-all
    assert "auto" in registry.ort_models()
    with faked("amx") as caps:
        assert registry.auto_order(caps.cpu_class).paths == ("int8", "int8_static", "bf16", "fast")


def test_a_named_path_is_itself():
    choice = resolve_ort_model("int8", "/nowhere")
    assert (choice.requested, choice.path, choice.reason) == ("int8", "int8", "")
    assert choice.line() == "[INFO] ORT_MODEL=int8"


def test_auto_picks_the_first_ranked_path_that_passed_here(tmp_path):
    with faked("avx2"):
        _record(tmp_path, "int8_static")
        choice = resolve_ort_model("auto", str(tmp_path))
        assert choice.path == "int8_static"  # int8 has no record: the next in the order
        assert choice.reason == "gate passed on AVX2, agreement only, on generated ids"
        _record(tmp_path, "int8")
        choice = resolve_ort_model("auto", str(tmp_path))
        assert choice.line() == "[INFO] ORT_MODEL=auto -> int8 (gate passed on AVX2, agreement only, on generated ids)"
        assert choice.record() == {"requested": "auto", "path": "int8", "reason": "gate passed on AVX2, agreement only, on generated ids"}


def test_a_failed_gate_falls_back_with_the_reason(tmp_path):
    with faked("avx2"):
        _record(tmp_path, "int8", passed=False)
        choice = resolve_ort_model("auto", str(tmp_path))
    assert choice.path == "fast"
    assert "int8: its gate failed (same prediction as PyTorch for 90.00%" in choice.reason
    assert f"int8_static: no gate record TinyBERT_int8_static.gate.json in {tmp_path}" in choice.reason
    assert choice.line().startswith("[INFO] ORT_MODEL=auto -> fast (no faster path's gate passed here: ")


def test_a_record_from_another_cpu_class_falls_back(tmp_path):
    with faked("avx2"):
        _record(tmp_path, "int8")
    with faked("avx512_vnni"):
        choice = resolve_ort_model("auto", str(tmp_path))
    assert choice.path == "fast" and "int8: its gate was checked on AVX2, this machine's is AVX-512+VNNI" in choice.reason


def test_a_stale_or_missing_record_falls_back(tmp_path):
    with faked("avx2"):
        _record(tmp_path, "int8")
        _model(tmp_path, "int8", b"exported again")  # the model changed after its check
        assert "int8: TinyBERT_int8.gate.json is stale" in resolve_ort_model("auto", str(tmp_path)).reason
        (tmp_path / "TinyBERT_int8.onnx").unlink()
        assert "int8: no model TinyBERT_int8.onnx" in resolve_ort_model("auto", str(tmp_path)).reason
        _record(tmp_path, "int8")
        (tmp_path / "TinyBERT_int8.gate.json").write_text("{not json")
        choice = resolve_ort_model("auto", str(tmp_path))
    assert choice.path == "fast" and "int8: no gate record TinyBERT_int8.gate.json" in choice.reason


def test_bf16_needs_what_its_path_needs(tmp_path):
    with faked("amx", without=("openvino",)):
        _record(tmp_path, "bf16")
        choice = resolve_ort_model("auto", str(tmp_path))
    assert choice.path == "fast" and "bf16: openvino is not installed" in choice.reason
    if importlib.util.find_spec("openvino"):
        with faked("amx"):
            assert resolve_ort_model("auto", str(tmp_path)).path == "bf16"


def test_the_export_records_each_gate(tmp_path):
    from tinybert.export.checking import Verification, record_gate

    model = _model(tmp_path, "int8")
    check = Verification(None, (), "4 test samples", np.zeros((4, 2)), 4, labels=None)
    figures = {"max_abs_diff": 0.07, "agreement": 0.995, "accuracy_drop": 0.2}
    with faked("avx2"):
        assert record_gate("int8", model, "onnxruntime", check, figures)
        record = json.loads(open(gate_record_path("int8", str(tmp_path))).read())
        assert record["passed"] and record["cpu_class"] == "AVX2" and record["agreement"] == 0.995
        assert record["model"] == "TinyBERT_int8.onnx" and "FAKED CPU profile 'avx2'" in record["cpu"]
        figures["accuracy_drop"] = 0.5  # beyond MAX_ACCURACY_DROP
        assert not record_gate("int8", model, "onnxruntime", check, figures)
        assert resolve_ort_model("auto", str(tmp_path)).path == "fast"


def test_the_auto_export_checks_again_only_what_it_cannot_trust(tmp_path, monkeypatch):
    from tinybert.export import ExportJob
    from tinybert.prepare import gates

    checked, exported = [], []

    def fake_ensure(kind, job):
        exported.append(kind)
        return _model(tmp_path, kind)  # the same bytes as _record's: its record stays current

    monkeypatch.setattr(gates, "ensure_model", fake_ensure)
    monkeypatch.setattr(gates, "fast_verification", lambda *a: "check")
    monkeypatch.setattr(gates, "check_models", lambda paths, check, *a, runtime, records, **k: checked.append(
        (list(paths), runtime, records)))
    job = ExportJob(ckpt_dir="ckpt", out_dir=str(tmp_path))
    with faked("avx2"):
        _record(tmp_path, "int8")  # passed here: trusted
        gates.cpu_candidates(job)  # no calibration file: int8_static is not exported
    assert checked == [] and exported == ["int8"]  # one export writes the fast models; fast, the fallback, needs no check
    with faked("amx", without=("openvino",)):  # another CPU class: int8 is checked again; bf16 cannot run here
        gates.cpu_candidates(job)
    assert checked == [(["int8"], "onnxruntime", {"int8": "int8"})]


def test_the_steps_record_the_choice(tmp_path, monkeypatch, capsys):
    import tinybert.steps.inference
    import tinybert.steps.perf
    from tinybert.cli import main as cli

    calls = {}
    monkeypatch.setattr(tinybert.steps.perf, "measure", lambda *a, **k: calls.setdefault("perf", k))
    monkeypatch.setattr(tinybert.steps.inference, "run_inference", lambda *a, **k: calls.setdefault("infer", k))
    with faked("avx2"):
        _record(tmp_path, "int8")
        base = ["--batchsize", "1", "--model_dir", str(tmp_path), "--ort_model", "auto"]
        assert cli.run("perf", base) == 0 and cli.run("infer", base + ["--input", "a,b,c"]) == 0
    chosen = {"requested": "auto", "path": "int8", "reason": "gate passed on AVX2, agreement only, on generated ids"}
    assert calls["perf"]["ort_model"] == calls["infer"]["ort_model"] == chosen
    out = capsys.readouterr().out
    assert out.count("[INFO] ORT_MODEL=auto -> int8 (gate passed on AVX2, agreement only, on generated ids)") == 2
    assert f"model {tmp_path}/TinyBERT_int8.onnx (ORT_MODEL=int8)" in out


def test_predict_with_a_folder_runs_auto_s_choice(tmp_path, monkeypatch, capsys):
    import tinybert.steps.predict
    from tinybert.cli import main as cli

    ran = {}
    monkeypatch.setattr(tinybert.steps.predict, "predict", lambda sentences, **k: ran.update(k) or [])
    with faked("avx2"):
        _record(tmp_path, "int8")
        assert cli.run("predict", ["--onnx", str(tmp_path), "a fine film"]) == 0  # auto: predict.sh's default
        assert (ran["plan"].model, ran["plan"].runtime) == (f"{tmp_path}/TinyBERT_int8.onnx", "onnxruntime")
        assert "[INFO] ORT_MODEL=auto -> int8 (gate passed on AVX2, agreement only, on generated ids)" in capsys.readouterr().err
        assert cli.run("predict", ["--onnx", str(tmp_path / "TinyBERT_fast.onnx"), "a fine film"]) == 0
        assert ran["plan"].model == f"{tmp_path}/TinyBERT_fast.onnx"  # one file runs as named
        assert "is one file, run as named on onnxruntime" in capsys.readouterr().err


def test_classify_runs_and_records_auto_s_choice(tmp_path, monkeypatch, capsys):
    from tinybert.classify.pipeline import ClassifyOptions, ensure_model
    from tinybert.prepare import gates

    monkeypatch.setattr(gates, "cpu_candidates", lambda *a, **k: {})
    assert ClassifyOptions("x").ort_model == "auto"  # classify's default
    with faked("avx2"):
        _record(tmp_path, "int8")
        ready, model = ensure_model(ClassifyOptions("x", model_dir=str(tmp_path)))
    assert (ready.choice.path, model) == ("int8", f"{tmp_path}/TinyBERT_int8.onnx")
    assert "[INFO] ORT_MODEL=auto -> int8 (gate passed on AVX2, agreement only, on generated ids)" in capsys.readouterr().out


@pytest.mark.parametrize("script, expected", [("classify.sh", "auto"), ("predict.sh", "auto"), ("eval_all.sh", "auto"),
                                              ("ais_inference.sh", "fast"), ("perf.sh", "fast"), ("pth2onnx.sh", "fast")])
def test_auto_is_the_default_only_where_speed_is_the_point(script, expected):
    from tinybert.docs_tables import settings_text
    from tinybert.settings import default

    assert default("ORT_MODEL", script) == expected
    assert f'ORT_MODEL="${{ORT_MODEL:-{expected}}}"' in settings_text.shell_assignments(script)
