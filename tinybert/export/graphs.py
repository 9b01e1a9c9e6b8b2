"""The ONNX graph writers: TorchScript export, onnx-simplifier, int8 quantization."""

from __future__ import annotations

import contextlib
import warnings

from tinybert import INPUT_NAMES, OUTPUT_NAME
from tinybert.errors import ExportError, expect


def export_torchscript(model, example, path: str, opset: int, dynamic: bool) -> None:
    """The TorchScript exporter: it keeps the erf GELU and the attention pattern ATC and ONNX
    Runtime's fusions recognise."""
    import torch

    dynamic_axes = None
    if dynamic:
        dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
        dynamic_axes[OUTPUT_NAME] = {0: "batch"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(model, tuple(torch.from_numpy(a) for a in example), path,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          opset_version=opset, dynamo=False, do_constant_folding=True,
                          dynamic_axes=dynamic_axes)


def simplify(source: str, target: str) -> None:
    import onnx
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(source))
    expect(ok, ExportError, f"{source}: onnx-simplifier could not validate the simplified model")
    onnx.save(model, target)


def quantize_int8(source: str, target: str) -> None:
    """Dynamic int8: weights int8, activations quantized per batch at run time."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # its advice to run shape pre-processing does not apply here
    try:
        # Contrib ops (Attention, ...) have no ONNX shape inference; their outputs are float32.
        quantize_dynamic(source, target, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)


def quantize_int8_chain(source: str, target: str, calibration_batches) -> None:
    """Dynamic int8 as a model kind's quantizer: it calibrates nothing, so the batches go unused."""
    quantize_int8(source, target)


def quantize_static_int8(source: str, target: str, calibration_batches) -> None:
    """Static int8 (QDQ): MatMul weights int8 per output channel, activations uint8 calibrated on
    `calibration_batches` (input name -> array); converted to opset 13 first, as per-channel dequantizing needs."""
    import logging
    import os
    import tempfile

    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration_batches)

        def get_next(self):
            return next(self.batches, None)

    model = onnx.load(source)
    if model.opset_import[0].version < 13:
        model = version_converter.convert_version(model, 13)
    logging.disable(logging.WARNING)  # its advice to run shape pre-processing does not apply here
    with tempfile.TemporaryDirectory(prefix=".calibrate-", dir=os.path.dirname(os.path.abspath(target))) as work:
        upgraded = os.path.join(work, "opset13.onnx")
        onnx.save(model, upgraded)
        try:
            quantize_static(upgraded, target, Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        finally:
            logging.disable(logging.NOTSET)


def quantize_nncf_int8(source: str, target_xml: str, calibration_batches) -> None:
    """OpenVINO's documented static int8 recipe: NNCF post-training quantization with the
    transformer preset (SmoothQuant, fast bias correction), saved as OpenVINO IR."""
    from tinybert.capabilities import require

    nncf, ov = require("nncf", "OpenVINO int8"), require("openvino", "OpenVINO int8")
    model = ov.Core().read_model(source)
    batches = list(calibration_batches)
    quantized = nncf.quantize(model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(batches))
    ov.save_model(quantized, target_xml)
