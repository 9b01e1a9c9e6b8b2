"""Static int8 calibration on generated data: seeded sample, cache, record, refusals, gate."""

from __future__ import annotations

import json

import pytest
from conftest import assert_clean_error, cli, copy_models, make_small_tsv

from tinybert.export.calibrated import calibration_sample


def test_sample_is_seeded_and_in_file_order(tmp_path):
    tsv = make_small_tsv(tmp_path / "train.tsv", 40, seed=3)
    first, record = calibration_sample(str(tsv), 10, seed=5)
    again, same = calibration_sample(str(tsv), 10, seed=5)
    other, different = calibration_sample(str(tsv), 10, seed=6)
    assert first == again and record == same and record["rows_sha256"] != different["rows_sha256"]
    assert record["samples"] == 10 and record["file_sentences"] == 40
    assert calibration_sample(str(tsv), 1000, seed=5)[1]["samples"] == 40  # capped at the file


@pytest.mark.slow
def test_calibrate_cache_and_record(small_inputs, small_fast_models, tmp_path):
    train = make_small_tsv(tmp_path / "train.tsv", 60, seed=11)
    copy_models(small_fast_models, tmp_path / "m")  # the fast model it quantizes, exported once for the run
    args = ["export-int8-static", "--model_dir", small_inputs.checkpoint, "--output_dir", tmp_path / "m",
            "--calibration_file", train, "--calibration_samples", 20, "--features_dir", tmp_path / "none",
            # A random generated checkpoint has near-tied logits: the 99 % gate is for the real one.
            "--min_agreement", 0.5]
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    model = tmp_path / "m" / "TinyBERT_int8_static.onnx"
    record = json.loads((tmp_path / "m" / "TinyBERT_int8_static.calibration.json").read_text())
    assert record["samples"] == 20 and record["calibration_file"] == "train.tsv" and record["seed"] == 0
    # The record holds the figures of the check that ran: the same model on the same samples agrees alike.
    from tinybert.runtimes import open_runtime
    from tinybert.export.checking import verification
    from tinybert.runtimes.runner import model_logits

    check = verification(str(small_inputs.checkpoint), 11, 64, None, record["check"]["samples"], 32)
    ours = model_logits(open_runtime("onnxruntime", str(model)), check.arrays, 32, "tight")
    assert record["check"]["on"] == check.description
    assert record["check"]["agreement"] == pytest.approx(float((ours.argmax(1) == check.reference.argmax(1)).mean()))
    assert record["check"]["max_abs_diff"] == pytest.approx(float(abs(ours - check.reference).max()), rel=1e-5)
    import onnx

    ops = {node.op_type for node in onnx.load(str(model)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # activations quantized with fixed scales
    mtime = model.stat().st_mtime_ns
    cached = cli(*args, cwd=tmp_path, check=True)
    assert "up to date" in cached.stdout and model.stat().st_mtime_ns == mtime
    changed = cli(*args, "--calibration_seed", 1, cwd=tmp_path, check=True)
    assert "up to date" not in changed.stdout and model.stat().st_mtime_ns != mtime


def test_calibrating_on_the_evaluation_set_is_refused(small_inputs, tmp_path):
    bins = tmp_path / "bert_bin"
    cli("preprocess", "--input_file", small_inputs.tsv, "--vocab_file", small_inputs.checkpoint / "vocab.txt",
        "--output_dir", bins, "--no_progress", check=True)
    proc = cli("export-int8-static", "--model_dir", small_inputs.checkpoint, "--output_dir", tmp_path / "m",
               "--calibration_file", small_inputs.tsv, "--features_dir", bins, cwd=tmp_path)
    assert_clean_error(proc, "expected a calibration file other than the evaluation set")
    assert not (tmp_path / "m" / "TinyBERT_int8_static.onnx").exists()


def test_missing_calibration_file(small_inputs, tmp_path):
    proc = cli("export-int8-static", "--model_dir", small_inputs.checkpoint, "--output_dir", tmp_path,
               "--calibration_file", tmp_path / "train.tsv", cwd=tmp_path)
    assert_clean_error(proc, "train.tsv: expected a calibration TSV")


@pytest.mark.slow
def test_a_model_below_the_agreement_gate_is_removed(small_inputs, small_fast_models, tmp_path, monkeypatch):
    from tinybert.export import calibrated
    from tinybert.errors import ExportError

    copy_models(small_fast_models, tmp_path)
    train = make_small_tsv(tmp_path / "train.tsv", 30, seed=2)
    monkeypatch.setattr(calibrated, "MIN_AGREEMENT", 1.01)  # no model can agree on more than all samples
    with pytest.raises(ExportError, match="expected at least 101%"):
        calibrated.export_static_int8(str(small_inputs.checkpoint), str(train), str(tmp_path), samples=10)
    assert not (tmp_path / "TinyBERT_int8_static.onnx").exists()
    assert not (tmp_path / "TinyBERT_int8_static.calibration.json").exists()


@pytest.mark.slow
def test_the_openvino_int8_model_is_checked_and_removed_when_it_fails(small_inputs, small_fast_models, tmp_path,
                                                                     monkeypatch, capsys):
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    from tinybert.errors import ExportError
    from tinybert.export import Calibration, calibrated
    from tinybert.export import openvino as ov_export

    copy_models(small_fast_models, tmp_path)
    train = make_small_tsv(tmp_path / "train.tsv", 30, seed=2)
    xml, weights = tmp_path / "TinyBERT_ov_int8.xml", tmp_path / "TinyBERT_ov_int8.bin"
    monkeypatch.setattr(calibrated, "MIN_AGREEMENT", 1.01)  # no model can agree on more than all samples
    with pytest.raises(ExportError, match="TinyBERT_ov_int8.xml: same prediction as PyTorch .* expected at least 101%"):
        ov_export.export_openvino_int8(str(small_inputs.checkpoint), Calibration(str(train), samples=10), str(tmp_path))
    assert not xml.exists() and not weights.exists()
    capsys.readouterr()
    # A random generated checkpoint has near-tied logits: the 99 % gate is for the real one.
    kept = ov_export.export_openvino_int8(str(small_inputs.checkpoint),
                                          Calibration(str(train), samples=10, min_agreement=0.5), str(tmp_path))
    assert kept == str(xml) and xml.exists() and weights.exists()
    assert "TinyBERT_ov_int8.xml vs PyTorch on " in capsys.readouterr().out
