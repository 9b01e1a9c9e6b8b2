"""The real GLUE corpora beside the checkout (../shared/data/SST-2): the unlabelled test.tsv (1,821
sentences) through the model card's steps to a GLUE predictions file, on the run's one export of the fast
models (the card's static bs64 model pads every sentence to 64 tokens). Skipped, saying why, when ../shared is
absent (a clean clone elsewhere)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SHARED, SHARED_CHECKPOINT, copy_models, fast_models_of, run_script
from reference import reference_features, reference_logits

from tinybert.data.dataset import read_sst2_tsv

TEST_TSV = SHARED / "data" / "SST-2" / "test.tsv"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (TEST_TSV.is_file() and (SHARED_CHECKPOINT / "pytorch_model.bin").is_file()),
                       reason=f"needs the GLUE SST-2 test.tsv and the demo checkpoint under {SHARED}"),
]


def test_unlabelled_glue_test_set_to_a_predictions_file(inputs, tmp_path, tmp_path_factory):
    copy_models(fast_models_of(inputs, tmp_path_factory), tmp_path)
    env = {"DATA_FILE": str(TEST_TSV), "CKPT_DIR": str(SHARED_CHECKPOINT), "BIN_DIR": "./bert_bin_test",
           "ORT_MODEL": "fast", "BACKEND": "onnxruntime", "OUTPUT_DIRNAME": "glue_test"}
    # The fast models are the run's one export (pth2onnx.sh's own is tests/test_pipeline.py's).
    for script, args in (("preprocess_data.sh", ()), ("ais_inference.sh", (64,)), ("postprocess_data.sh", ("glue_test",))):
        proc = run_script(script, *args, cwd=tmp_path, env=env)
        assert proc.returncode == 0, f"{script}: {proc.stdout}{proc.stderr}"
    assert "1821 predictions written to ./result/glue_test_predictions.tsv" in proc.stdout
    assert "accuracy" not in proc.stdout

    dataset = read_sst2_tsv(str(TEST_TSV))
    lines = (tmp_path / "result" / "glue_test_predictions.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index\tprediction"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == len(dataset) == 1821
    assert [r[0] for r in rows] == dataset.ids  # the index column of test.tsv, in its order
    predictions = np.array([int(r[1]) for r in rows])
    assert set(predictions.tolist()) <= {0, 1} and 0 < predictions.mean() < 1

    # the first 64 against the original TinyBERT computation (independent tokenizer and forward pass)
    arrays = reference_features(dataset.sentences[:64], str(SHARED_CHECKPOINT / "vocab.txt"), 64)
    state = torch.load(SHARED_CHECKPOINT / "pytorch_model.bin", weights_only=True)
    config = json.loads((SHARED_CHECKPOINT / "config.json").read_text())
    assert predictions[:64].tolist() == reference_logits(state, config, *arrays).argmax(axis=1).tolist()
