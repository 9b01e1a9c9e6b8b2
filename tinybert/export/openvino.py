"""The OpenVINO int8 peer's model of the fast export: NNCF post-training quantization (OpenVINO's documented
recipe) on the project's static int8 calibration sample, saved as IR (`TinyBERT_ov_int8.xml` and `.bin`)."""

from __future__ import annotations

import os
import shutil
import tempfile

from tinybert.errors import ExportError
from tinybert.fileio import os_errors_as
from tinybert.model.modeling import vocab_path
from tinybert.settings import OPSET, SEQ_LEN, model_path
from tinybert.errors import UsageError, expect
from tinybert.export.calibrated import agreement_bar, calibration_batches, calibration_sample
from tinybert.export.checking import Calibration, ExportJob, check_models, fast_verification, stale
from tinybert.export.fast import export_fast_models
from tinybert.export.graphs import quantize_nncf_int8


def _weights(xml: str) -> str:
    """The .bin that OpenVINO reads beside an IR's .xml."""
    return xml[:-len(".xml")] + ".bin"


def export_openvino_int8(model_dir: str, calibration: Calibration, out_dir: str = ".", opset: int = OPSET,
                         seq_len: int = SEQ_LEN, features_dir: str | None = None) -> str:
    """Write the NNCF int8 IR of the fast model; both files appear together or not at all."""
    sentences, _ = calibration_sample(calibration.file, calibration.samples, calibration.seed)
    export_fast_models(model_dir, out_dir, opset, seq_len, features_dir)  # kept when newer than the weights
    xml = model_path("ov_int8", out_dir)
    weights = _weights(xml)
    check = fast_verification(model_dir, opset, seq_len, features_dir)
    batches = calibration_batches(sentences, vocab_path(model_dir), seq_len)
    with os_errors_as(ExportError, f"write the OpenVINO model to {out_dir}"), \
            tempfile.TemporaryDirectory(prefix=".ov_int8-", dir=out_dir) as work:
        staged = os.path.join(work, os.path.basename(xml))
        quantize_nncf_int8(model_path("fast", out_dir), staged, batches)
        os.replace(_weights(staged), weights)
        shutil.move(staged, xml)
    print(f"[INFO] NNCF int8 (transformer preset) of the fast model on {len(sentences)} calibration sentences "
          f"-> {xml}")
    check_models({"ov_int8": xml}, check, "tight", tolerance=float("inf"), gated=(), remove_on_failure=(xml, weights),
                 min_agreement=agreement_bar(calibration.min_agreement), runtime="openvino",
                 records={"ov_int8": "openvino_int8"})
    return xml


def write_openvino_int8(job: ExportJob) -> None:
    """The ov_int8 kind's exporter: written when missing or older than the weights."""
    from tinybert.model.modeling import weights_path

    expect(job.calibration is not None, UsageError, "expected a calibration file (CALIB_FILE) for the ov_int8 model, "
                                                    "got none")
    if stale([model_path("ov_int8", job.out_dir)], weights_path(job.ckpt_dir)):
        export_openvino_int8(job.ckpt_dir, job.calibration, job.out_dir, opset=job.opset, seq_len=job.seq_len,
                             features_dir=job.features_dir)
