"""The one prepare step: every caller (infer, perf, predict, classify, the benchmark) gets the same model and choice
from the same settings and exports the same candidates; gates are judged on what they claim, re-checked where a
record was judged on less than the caller has, trusted where it was not."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tinybert import registry
from tinybert.capabilities import faked
from tinybert.errors import UsageError
from tinybert.results import gate_record
from tinybert.settings import gate_record_path, model_path

REPO = Path(__file__).resolve().parents[1]
CHOICE = re.compile(r"\[INFO\] ORT_MODEL=auto -> \S+ \(.*\)")


def _record(folder, name: str, judged_on: str, passed: bool = True) -> None:
    model = model_path(registry.project_path(name).model, str(folder))
    gate_record.write(name, str(folder), model_file=model, runtime=registry.project_path(name).runtime,
                      gate="reduced", rule="test rule", passed=passed,
                      figures={"max_abs_diff": 0.05, "agreement": 0.995, "accuracy_drop": 0.0},
                      checked_on="test samples", judged_on=judged_on)


# ---------------------------------------------------------------- gates judged on what they claim


def test_a_record_judged_on_less_than_the_caller_has_is_not_trusted(tmp_path):
    Path(model_path("int8", str(tmp_path))).write_bytes(b"model")
    with faked("avx2") as caps:
        model = model_path("int8", str(tmp_path))
        _record(tmp_path, "int8", gate_record.GENERATED)
        assert gate_record.status("int8", str(tmp_path), model, caps.cpu_class) == ("passed", None)
        state, why = gate_record.status("int8", str(tmp_path), model, caps.cpu_class, gate_record.DEV_SET)
        assert state == "weaker" and why == "its gate was judged on generated ids, dev set at hand"
        assert gate_record.status("int8", str(tmp_path), model, caps.cpu_class, gate_record.UNLABELLED)[0] == "weaker"
        _record(tmp_path, "int8", gate_record.DEV_SET)
        for having in gate_record.JUDGED_ON:  # the dev set proves the most: trusted by every caller
            assert gate_record.status("int8", str(tmp_path), model, caps.cpu_class, having) == ("passed", None)
        record = json.loads(Path(gate_record_path("int8", str(tmp_path))).read_text())
        del record["judged_on"]  # a record from before the field: judged on nothing known
        Path(gate_record_path("int8", str(tmp_path))).write_text(json.dumps(record))
        assert gate_record.status("int8", str(tmp_path), model, caps.cpu_class, gate_record.GENERATED)[0] == "weaker"


def test_the_inputs_at_hand_are_read_from_the_features(tmp_path, small_features):
    from tinybert.export.checking import inputs_at_hand

    assert inputs_at_hand(None) == inputs_at_hand(str(tmp_path)) == gate_record.GENERATED
    assert inputs_at_hand(str(small_features)) == gate_record.DEV_SET  # the small TSV is labelled
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    manifest = json.loads((small_features / "manifest.json").read_text())
    manifest["labels"] = None
    (unlabelled / "manifest.json").write_text(json.dumps(manifest))
    assert inputs_at_hand(str(unlabelled)) == gate_record.UNLABELLED


@pytest.mark.slow
def test_a_gate_on_generated_ids_is_checked_again_on_the_dev_set_then_trusted(tmp_path, small_inputs, small_features,
                                                                              capsys):
    from tinybert.prepare import ModelRequest, prepare

    request = ModelRequest(ort_model="auto", model_dir=str(tmp_path), ckpt_dir=str(small_inputs.checkpoint))
    record = lambda: json.loads(Path(gate_record_path("int8", str(tmp_path))).read_text())  # noqa: E731
    with faked("avx2"):
        prepare(request)  # no features: the export checks int8 on generated ids
        out = capsys.readouterr().out
        assert record()["judged_on"] == gate_record.GENERATED
        assert "ORT_MODEL=int8: gate" in out and "agreement only, 1024 generated sentences" in out
        first = prepare(ModelRequest(**{**request.__dict__, "features_dir": str(small_features)}))
        out = capsys.readouterr().out
        assert "ORT_MODEL=auto: checking int8 here (its gate was judged on generated ids, dev set at hand)" in out
        assert record()["judged_on"] == gate_record.DEV_SET and "judged on the dev set" in out
        stamp = os.path.getmtime(gate_record_path("int8", str(tmp_path)))
        again = prepare(ModelRequest(**{**request.__dict__, "features_dir": str(small_features)}))
        assert "checking int8" not in capsys.readouterr().out  # a dev-set record is reused, not redone
        assert os.path.getmtime(gate_record_path("int8", str(tmp_path))) == stamp
        assert first.plan == again.plan


# ---------------------------------------------------------------- one model for every caller


def _fake_exports(monkeypatch, exported: list):
    """Exports that write each kind's file (its whole group), recorded; gate checks that pass, recorded as run."""
    from tinybert import model_kinds
    from tinybert.export import checking
    import tinybert.export as export

    def ensure_model(kind, job):
        if kind == registry.CHECKPOINT:
            return job.ckpt_dir
        for entry in model_kinds.group(kind):
            path = model_kinds.model_path(entry.name, job.out_dir, job.batch_size)
            if not os.path.exists(path):
                exported.append((os.path.basename(job.out_dir), entry.name))
                Path(path).write_bytes(b"model " + entry.name.encode())
        return model_kinds.model_path(kind, job.out_dir, job.batch_size)

    def check_models(paths, check, *args, runtime, records, **options):
        for key, name in records.items():
            checking.record_gate(name, paths[key], runtime, check, {"max_abs_diff": 0.01, "agreement": 1.0,
                                                                    "accuracy_drop": 0.0})

    check = checking.Verification(None, (), "4 test samples", np.zeros((4, 2)), 4, labels=None)
    import tinybert.prepare
    from tinybert.prepare import gates

    for module in (export, gates, tinybert.prepare):
        monkeypatch.setattr(module, "ensure_model", ensure_model)
    monkeypatch.setattr(gates, "fast_verification", lambda *a: check)
    monkeypatch.setattr(gates, "check_models", check_models)


def _steps(folder: Path, ckpt: Path, capsys, monkeypatch) -> dict:
    """The same settings (ORT_MODEL=auto, this model folder) through infer, perf, predict, classify and the
    benchmark's row of the path chosen: what each ran and the choice line it printed."""
    import tinybert.steps.inference
    import tinybert.steps.perf
    import tinybert.steps.predict
    from tinybert.bench.benchmark import BenchmarkRun, Models
    from tinybert.classify.pipeline import ClassifyOptions, ensure_model
    from tinybert.cli import main as cli

    ran = {}
    monkeypatch.setattr(tinybert.steps.inference, "run_inference", lambda model, *a, **k: ran.setdefault("infer", model))
    monkeypatch.setattr(tinybert.steps.perf, "measure", lambda model, *a, **k: ran.setdefault("perf", model))
    monkeypatch.setattr(tinybert.steps.predict, "predict", lambda s, **k: ran.setdefault("predict", k["plan"].model) and [])
    settings = ["--model_dir", str(folder), "--ort_model", "auto", "--ckpt_dir", str(ckpt)]
    lines = {}
    assert cli.run("infer", settings + ["--batchsize", "8", "--input", "a,b,c"]) == 0
    lines["infer"] = capsys.readouterr().out
    assert cli.run("perf", settings + ["--batchsize", "8"]) == 0
    lines["perf"] = capsys.readouterr().out
    assert cli.run("predict", ["--onnx", str(folder), "--ort_model", "auto", "a fine film"]) == 0
    lines["predict"] = capsys.readouterr().err
    ready, ran["classify"] = ensure_model(ClassifyOptions("x", model_dir=str(folder), ckpt_dir=str(ckpt),
                                                          ort_model="auto"))
    lines["classify"] = capsys.readouterr().out
    models = Models(BenchmarkRun(str(ckpt), "dev.tsv"), str(folder), None, threads=1)
    ran["benchmark"] = models.ready(registry.project_path(ready.plan.path), 8).model
    return {"ran": ran, "choice": {step: CHOICE.findall(text) for step, text in lines.items()}}


def test_every_step_prepares_the_same_model_with_the_same_choice(tmp_path, monkeypatch, capsys, small_inputs):
    exported = []
    _fake_exports(monkeypatch, exported)
    folder = tmp_path / "models"
    folder.mkdir()
    with faked("avx2"):
        seen = _steps(folder, small_inputs.checkpoint, capsys, monkeypatch)
    assert len(set(seen["ran"].values())) == 1, seen["ran"]  # one model file for all five
    assert seen["ran"]["infer"] == str(folder / "TinyBERT_int8.onnx")  # auto's first, its gate passed here
    choices = {step: lines for step, lines in seen["choice"].items() if step != "benchmark"}
    assert all(len(lines) == 1 for lines in choices.values()) and len({lines[0] for lines in choices.values()}) == 1
    # Nothing was exported: the first step exported the candidates, the others found them current.
    assert sorted(kind for _, kind in exported) == ["dynamic", "fast", "int8", "sim_dynamic"]


@pytest.mark.parametrize("step", ["infer", "perf", "predict", "classify"])
def test_with_nothing_exported_every_step_exports_the_same_candidates(step, tmp_path, monkeypatch, capsys,
                                                                      small_inputs):
    import tinybert.steps.inference
    import tinybert.steps.perf
    import tinybert.steps.predict
    from tinybert.classify.pipeline import ClassifyOptions, ensure_model
    from tinybert.cli import main as cli

    exported = []
    _fake_exports(monkeypatch, exported)
    monkeypatch.setattr(tinybert.steps.inference, "run_inference", lambda *a, **k: None)
    monkeypatch.setattr(tinybert.steps.perf, "measure", lambda *a, **k: None)
    monkeypatch.setattr(tinybert.steps.predict, "predict", lambda s, **k: [])
    calib = tmp_path / "train.tsv"
    calib.write_text("sentence\tlabel\nfine\t1\n")
    settings = ["--model_dir", str(tmp_path), "--ort_model", "auto", "--ckpt_dir", str(small_inputs.checkpoint),
                "--calibration_file", str(calib)]
    with faked("amx", without=("openvino",)):
        if step == "classify":
            ensure_model(ClassifyOptions("x", model_dir=str(tmp_path), ckpt_dir=str(small_inputs.checkpoint),
                                         ort_model="auto", calibration_file=str(calib)))
        elif step == "predict":
            assert cli.run("predict", ["--onnx", str(tmp_path), "--calibration_file", str(calib), "fine"]) == 0
        else:
            assert cli.run(step, settings + ["--batchsize", "8"] + (["--input", "a,b,c"] if step == "infer" else [])) == 0
    # AMX's order: int8 (the fast group), int8_static (calibrated), bf16 (OpenVINO, hidden here), fast.
    assert sorted(kind for _, kind in exported) == ["dynamic", "fast", "int8", "int8_static", "sim_dynamic"], step


# ---------------------------------------------------------------- the Python API, as README shows it


def _readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README.md: expected the Python API example in a ```python block"
    return blocks[0]


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, small_inputs, capsys):
    example = _readme_example()
    assert "from tinybert import Classifier" in example
    (tmp_path / "SST-2_model").symlink_to(small_inputs.checkpoint)  # the example's CKPT_DIR, the settings' default
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in printed if line.split() and line.split()[0] in ("negative", "positive")]
    assert len(rows) == 2 and all(0.5 <= float(row[1]) <= 1.0 for row in rows)  # label, then its probability
    assert (tmp_path / "TinyBERT_fast.onnx").is_file()  # exported into MODEL_DIR (".") on first use


def test_the_api_refuses_what_it_cannot_classify(small_inputs, tmp_path):
    from tinybert.api import Classifier

    with pytest.raises(UsageError, match="expected the TinyBERT checkpoint folder"):
        Classifier.open(str(tmp_path / "missing"))


@pytest.mark.slow
def test_the_api_gives_classify_s_labels_on_the_dev_set(tmp_path, tmp_path_factory, inputs):
    from conftest import copy_models, fast_models_of

    from tinybert.api import Classifier
    from tinybert.data.dataset import read_sst2_tsv

    from tinybert.classify.pipeline import ClassifyOptions, classify_corpus

    copy_models(fast_models_of(inputs, tmp_path_factory), tmp_path)  # the run's one export, not a second
    output = tmp_path / "dev.classified.tsv"
    classify_corpus(ClassifyOptions(str(inputs.tsv), output=str(output), ckpt_dir=str(inputs.checkpoint),
                                    model_dir=str(tmp_path), ort_model="fast", progress=False))
    rows = [line.split("\t") for line in output.read_text().splitlines()[1:]]
    sentences = read_sst2_tsv(str(inputs.tsv)).sentences
    with Classifier.open(str(inputs.checkpoint), model_dir=str(tmp_path), ort_model="fast",
                         backend="onnxruntime") as model:
        results = model.classify(sentences)
        with pytest.raises(UsageError, match="one string"):
            model.classify("a single string")
    assert len(results) == len(rows) == inputs.count
    labels = [str(r.index) for r in results]
    assert labels == [row[1] for row in rows]
    assert [f"{r.probabilities[1]:.4f}" for r in results] == [row[3] for row in rows]
