"""Export: the card's static ONNX pair of a checkpoint and its interface, and models that fail their
numerical check against PyTorch are removed. (The fast models and the export through
test/pth2onnx.sh on the real checkpoint: test_pipeline.py.)"""

from __future__ import annotations

import onnx
import pytest
from conftest import assert_clean_error, cli


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_static_export_has_the_card_interface(small_onnx_bs4):
    """TinyBERT_bs4.onnx and its simplified copy: opset 11, three int64 [4, 64] inputs, float [4, 2] out."""
    assert small_onnx_bs4.name == "TinyBERT_sim_bs4.onnx"
    for path in (small_onnx_bs4.parent / "TinyBERT_bs4.onnx", small_onnx_bs4):
        model = onnx.load(path)
        assert model.opset_import[0].version == 11
        assert [(i.name, i.type.tensor_type.elem_type, _dims(i)) for i in model.graph.input] == [
            (n, onnx.TensorProto.INT64, [4, 64]) for n in ("input_ids", "segment_ids", "input_mask")]
        assert [(o.name, o.type.tensor_type.elem_type, _dims(o)) for o in model.graph.output] == [
            ("output", onnx.TensorProto.FLOAT, [4, 2])]


@pytest.mark.slow
@pytest.mark.parametrize("step, names", [
    ("export-fast", ["TinyBERT_dynamic.onnx", "TinyBERT_sim_dynamic.onnx", "TinyBERT_fast.onnx",
                     "TinyBERT_int8.onnx"]),
    ("export", ["TinyBERT_bs2.onnx", "TinyBERT_sim_bs2.onnx"])])
def test_models_that_fail_their_check_are_removed(small_inputs, tmp_path, step, names):
    """A negative tolerance fails every check: nothing may be left that looks like a good model."""
    extra = ["--batch_size", 2] if step == "export" else []
    proc = cli(step, "--model_dir", small_inputs.checkpoint, "--output_dir", tmp_path, "--tolerance", "-1",
               *extra, cwd=tmp_path)
    assert_clean_error(proc, "logits differ from PyTorch", "expected at most -1e+00", "removed")
    assert not [n for n in names if (tmp_path / n).exists()]
