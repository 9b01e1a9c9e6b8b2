"""Checkpoint loading and numerics against the original TinyBERT computation; incomplete, damaged and
untrusted checkpoints."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SPECIALS, WORDS, assert_clean_error, cli
from reference import reference_logits, write_checkpoint

from tinybert.errors import CheckpointError
from tinybert.model.modeling import load_tinybert


def _batch(vocab_size, count=6, seq_len=32, seed=1):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, seq_len + 1, size=count)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(5, vocab_size, size=(count, seq_len)) * mask
    return ids, np.zeros_like(ids), mask


def _logits(model, arrays):
    with torch.inference_mode():
        return model(*(torch.from_numpy(a) for a in arrays)).numpy()


def test_logits_match_the_original_computation(inputs):
    model = load_tinybert(str(inputs.checkpoint))
    config = json.loads((inputs.checkpoint / "config.json").read_text())
    state = torch.load(inputs.checkpoint / "pytorch_model.bin", weights_only=True)
    arrays = _batch(config["vocab_size"])
    # float32 model against a float64 oracle: the project's 1e-4 logit tolerance (the demo
    # checkpoint agrees to about 1e-6).
    np.testing.assert_allclose(_logits(model, arrays), reference_logits(state, config, *arrays), atol=1e-4, rtol=0)


def test_the_relu_head_matters(small_inputs):
    """A stock BertForSequenceClassification (no ReLU) would give other logits for the same weights."""
    model = load_tinybert(str(small_inputs.checkpoint))
    arrays = _batch(model.config.vocab_size)
    with torch.inference_mode():
        pooled = model.bert(*(torch.from_numpy(a) for a in arrays))
        without_relu = model.classifier(pooled).numpy()
    assert (pooled < 0).any()
    assert not np.allclose(_logits(model, arrays), without_relu, atol=1e-4)


def test_release_layout_variants_load_to_the_same_logits(small_inputs, tmp_path):
    """bert_config.json and LayerNorm gamma/beta names, as in older TinyBERT folders."""
    old = tmp_path / "old"
    write_checkpoint(str(old), SPECIALS + WORDS, config_name="bert_config.json", layer_norm_names=("gamma", "beta"))
    arrays = _batch(len(SPECIALS + WORDS))
    np.testing.assert_allclose(_logits(load_tinybert(str(old)), arrays),
                               _logits(load_tinybert(str(small_inputs.checkpoint)), arrays), atol=1e-6)


def test_fit_dense_is_ignored_and_present_in_fixture(small_inputs, checkpoint_copy):
    state = torch.load(checkpoint_copy / "pytorch_model.bin", weights_only=True)
    fit_dense = [name for name in state if name.startswith("fit_dense.")]
    assert "fit_dense.weight" in fit_dense
    for name in fit_dense:
        del state[name]
    torch.save(state, checkpoint_copy / "pytorch_model.bin")
    arrays = _batch(len(SPECIALS + WORDS))
    # The release checkpoint (with fit_dense) loads strictly and gives the logits of the same
    # weights without it.
    np.testing.assert_array_equal(_logits(load_tinybert(str(small_inputs.checkpoint)), arrays),
                                  _logits(load_tinybert(str(checkpoint_copy)), arrays))


def _edit_state(folder, edit):
    path = folder / "pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


@pytest.mark.parametrize("edit, fragment", [
    (lambda s: s.pop("bert.encoder.layer.1.output.dense.weight"), "missing 1 weight(s): bert.encoder.layer.1.output.dense.weight"),
    (lambda s: s.__setitem__("classifier.weight", torch.zeros(3, 48)), "classifier.weight (expected (2, 48), got (3, 48))"),
    (lambda s: s.__setitem__("bert.encoder.layer.9.output.dense.weight", torch.zeros(1)), "unexpected 1 weight(s)"),
])
def test_weights_that_do_not_fit_are_an_error(checkpoint_copy, edit, fragment):
    _edit_state(checkpoint_copy, edit)
    with pytest.raises(CheckpointError) as info:
        load_tinybert(str(checkpoint_copy))
    assert fragment in str(info.value) and "pytorch_model.bin" in str(info.value)


def test_incomplete_folders_are_an_error(checkpoint_copy, tmp_path):
    with pytest.raises(CheckpointError, match=r"nowhere: expected a TinyBERT checkpoint folder.*found no such folder"):
        load_tinybert(str(tmp_path / "nowhere"))
    os.remove(checkpoint_copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: expected the checkpoint weights"):
        load_tinybert(str(checkpoint_copy))
    os.remove(checkpoint_copy / "config.json")
    with pytest.raises(CheckpointError, match="expected config.json or bert_config.json"):
        load_tinybert(str(checkpoint_copy))


@pytest.mark.parametrize("damage, fragment", [
    (lambda raw: raw[:4000], "truncated or corrupted"),
    (lambda raw: raw[: len(raw) // 2], "truncated or corrupted"),
    (lambda raw: raw[:100] + bytes(b ^ 0xFF for b in raw[100:160]) + raw[160:], "truncated or corrupted"),
    (lambda raw: raw[:-300] + b"\xff" * 8 + raw[-292:], "truncated or corrupted"),
    (lambda raw: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "refused to load: expected a state dict"),
    (lambda raw: b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n", "Git LFS pointer"),
    (lambda raw: b"", "expected weights, got an empty file"),
], ids=["first_4000_bytes", "first_half", "flipped_bytes", "bad_tail", "random_bytes", "lfs_pointer", "empty"])
def test_damaged_weights_are_a_clear_error(checkpoint_copy, damage, fragment):
    path = checkpoint_copy / "pytorch_model.bin"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError) as info:
        load_tinybert(str(checkpoint_copy))
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)


class _CreatesMarker:
    """Unpickling this object would run `touch <marker>`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_code_running_weights(folder: Path, marker: Path, legacy: bool) -> None:
    """Weights with a pickled `os.system` call: torch's zip format, or a bare pickle (what older
    torch.save and hand-made files are). An ordinary unpickler runs it: the file is real."""
    path = folder / "pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    if legacy:
        payload = pickle.dumps({"payload": _CreatesMarker(marker), **state}, protocol=2)
        path.write_bytes(payload)
        pickle.loads(payload)
    else:
        state["classifier.bias"] = _CreatesMarker(marker)
        torch.save(state, path)
        torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy_pickle"])
def test_a_checkpoint_that_runs_code_on_load_is_refused(checkpoint_copy, tmp_path, legacy):
    marker = tmp_path / "code-ran"
    _write_code_running_weights(checkpoint_copy, marker, legacy)
    with pytest.raises(CheckpointError) as info:
        load_tinybert(str(checkpoint_copy))
    message = str(info.value)
    assert message.startswith(str(checkpoint_copy / "pytorch_model.bin"))
    assert "refused to load" in message and "posix.system" in message and "Nothing from it was executed" in message
    assert not marker.exists()


@pytest.mark.slow
def test_a_checkpoint_that_runs_code_is_refused_via_the_cli(checkpoint_copy, tmp_path):
    marker = tmp_path / "code-ran"
    _write_code_running_weights(checkpoint_copy, marker, legacy=True)
    proc = cli("predict", "--model_dir", checkpoint_copy, "a good film")
    assert_clean_error(proc, "pytorch_model.bin", "refused to load", "posix.system", "Nothing from it was executed",
                       code=2)
    assert not marker.exists()
    exported = cli("export", "--model_dir", checkpoint_copy, "--batch_size", 1, "--output_dir", tmp_path / "onnx")
    assert_clean_error(exported, "pytorch_model.bin", "refused to load", code=2)
    assert not marker.exists() and not (tmp_path / "onnx").exists()


def test_the_last_layer_at_cls_only_gives_the_same_logits(inputs):
    """The fast export's graph: the last layer computed for the [CLS] row only is the same arithmetic."""
    from tinybert.model.modeling import cls_only_last_layer

    model = load_tinybert(str(inputs.checkpoint))
    arrays = _batch(model.config.vocab_size)
    feed_forward_rows = []
    model.bert.encoder.layer[-1].intermediate.dense.register_forward_hook(
        lambda module, args, out: feed_forward_rows.append(args[0].shape[1]))
    full = _logits(model, arrays)
    with cls_only_last_layer(model):
        pruned = _logits(model, arrays)
    assert not model.bert.cls_only_last_layer  # restored on exit
    np.testing.assert_allclose(pruned, full, atol=1e-5, rtol=0)
    assert feed_forward_rows == [arrays[0].shape[1], 1]  # the last feed-forward ran on every row, then on [CLS]
