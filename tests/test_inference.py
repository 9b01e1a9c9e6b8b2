"""The infer step on the generated checkpoint: a static ONNX model gives the PyTorch backend's outputs
in the card's batches, and the model, batch size and feature files are checked before anything runs.
(Through test/ais_inference.sh on the real data: test_pipeline.py; interrupted runs: test_faults.py.)"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import SMALL_COUNT, assert_clean_error, cli, input_arg, input_dirs

from tinybert.errors import ModelFileError
from tinybert.steps.inference import run_inference
from tinybert.results.resultdir import read_logits


def _stems(count):
    return [f"input{i}" for i in range(count)]


def test_static_model_gives_the_pytorch_outputs(small_features, small_onnx_bs4, small_result, tmp_path):
    report = run_inference(str(small_onnx_bs4), input_dirs(small_features), str(tmp_path), 4,
                           output_dirname="static", progress=False)
    assert report.num_samples == SMALL_COUNT and len(report.compute_ms) == -(-SMALL_COUNT // 4)
    expected = read_logits(str(small_result), _stems(SMALL_COUNT))
    assert abs(read_logits(report.result_dir, _stems(SMALL_COUNT)) - expected).max() <= 1e-4
    args = json.loads((tmp_path / "static_summary.json").read_text())["args"]
    assert args["bucketing"] is None and args["tokens_processed"] == 40 * 64  # the last batch filled to 4
    assert args["features"]["num_samples"] == SMALL_COUNT and args["batchsize"] == 4


def test_model_and_batch_size_must_agree(small_features, small_onnx_bs4, tmp_path):
    with pytest.raises(ModelFileError, match=r"TinyBERT_sim_bs4.onnx: the model has a fixed batch size of 4, "
                                             r"expected 1 \(export it with test/pth2onnx.sh 1\)"):
        run_inference(str(small_onnx_bs4), input_dirs(small_features), str(tmp_path / "result"), 1, progress=False)
    assert not (tmp_path / "result").exists()


@pytest.mark.slow
def test_model_and_batch_size_must_agree_via_the_cli(small_features, small_onnx_bs4, tmp_path):
    proc = cli("infer", "--model", small_onnx_bs4, "--input", input_arg(small_features), "--batchsize", 1,
               cwd=tmp_path)
    assert_clean_error(proc, "fixed batch size of 4, expected 1")
    assert not (tmp_path / "result").exists()


def test_inference_refuses_features_that_changed(small_features, small_onnx_bs4, tmp_path):
    shutil.copytree(small_features, tmp_path / "bert_bin")
    os.remove(tmp_path / "bert_bin" / "segment_ids" / "input2.bin")
    proc = cli("infer", "--model", small_onnx_bs4, "--input",
               "bert_bin/input_ids,bert_bin/segment_ids,bert_bin/input_mask", "--batchsize", 4, cwd=tmp_path)
    assert_clean_error(proc, "segment_ids", "input2.bin")
    assert not (tmp_path / "result").exists() or not os.listdir(tmp_path / "result")
