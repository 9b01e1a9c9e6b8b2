"""Static int8: activation ranges calibrated ahead of time on a seeded sample of a training file (never the
evaluation set); its calibration record beside the model is the cache key of the export."""

from __future__ import annotations

import hashlib
import os

import numpy as np


from tinybert.data.dataset import file_sha256, read_sst2_tsv
from tinybert.errors import ExportError, UsageError, expect
from tinybert.data.features import MANIFEST_NAME, encode_sentences, read_manifest
from tinybert.fileio import os_errors_as, read_json, write_json_atomic
from tinybert.model.modeling import vocab_path
from tinybert.runtimes.runner import plan_batches, real_lengths
from tinybert.model_kinds import CALIBRATION_RECORD_FILE
from tinybert.settings import CALIB_BATCH, CALIB_SAMPLES, CALIB_SEED, MIN_AGREEMENT, OPSET, SEQ_LEN, model_path
from tinybert.export.checking import ExportJob, check_models, fast_verification, write_model
from tinybert.export.fast import export_fast_models
from tinybert.export.graphs import quantize_static_int8

METHOD = "onnxruntime quantize_static, QDQ, MatMul only, weights int8 per channel, activations uint8 MinMax"


def calibration_sample(calibration_file: str, samples: int, seed: int) -> tuple[list[str], dict]:
    """`samples` sentences drawn without replacement (numpy default_rng(seed)), in file order, and
    what identifies them."""
    expect(samples > 0, UsageError, f"expected a positive number of calibration samples, got {samples}")
    dataset = read_sst2_tsv(calibration_file)
    count = min(samples, len(dataset))
    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), size=count, replace=False))
    sentences = [dataset.sentences[i] for i in rows]
    record = {"calibration_file": os.path.basename(calibration_file), "calibration_sha256": dataset.sha256,
              "file_sentences": len(dataset), "samples": int(count), "seed": int(seed),
              "rows_sha256": hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest(),
              "sampling": "numpy.random.default_rng(seed).choice(rows, samples, replace=False), sorted"}
    return sentences, record


def calibration_batches(sentences: list[str], vocab_file: str, seq_len: int, batch_size: int = CALIB_BATCH):
    """The sample as the model sees it at inference: length-bucketed batches trimmed to their longest."""
    arrays = encode_sentences(sentences, vocab_file, seq_len).batch(slice(None))
    batches = plan_batches(real_lengths(arrays[2], "calibration sample"), batch_size)
    names = ("input_ids", "segment_ids", "input_mask")
    return [{n: np.ascontiguousarray(a[b.indices, :b.length]) for n, a in zip(names, arrays)} for b in batches]


def agreement_bar(min_agreement: float | None) -> float:
    """The agreement with PyTorch a calibrated int8 model's check asks for: MIN_AGREEMENT unless told otherwise."""
    return MIN_AGREEMENT if min_agreement is None else min_agreement


def _refuse_evaluation_set(calibration_sha256: str, features_dir: str | None) -> None:
    if features_dir and os.path.isfile(os.path.join(features_dir, MANIFEST_NAME)):
        evaluated = read_manifest(features_dir).get("source", {})
        expect(evaluated.get("sha256") != calibration_sha256, UsageError,
               f"expected a calibration file other than the evaluation set, got the file {features_dir} was made "
               f"from ({os.path.basename(evaluated.get('path', '?'))}): calibrate on training data (CALIB_FILE)")


def export_static_int8(model_dir: str, calibration_file: str, out_dir: str = ".", samples: int = CALIB_SAMPLES,
                       seed: int = CALIB_SEED, opset: int = OPSET, seq_len: int = SEQ_LEN,
                       features_dir: str | None = None, force: bool = False, min_agreement: float | None = None) -> dict:
    """Write (or keep, when its record matches) the calibrated static int8 model; returns the record."""
    expect(os.path.isfile(calibration_file), UsageError,
           f"{calibration_file}: expected a calibration TSV (CALIB_FILE, e.g. SST-2 train.tsv), found no such file")
    target, record_path = model_path("int8_static", out_dir), os.path.join(out_dir, CALIBRATION_RECORD_FILE)
    fp32 = model_path("fast", out_dir)
    sentences, record = calibration_sample(calibration_file, samples, seed)
    _refuse_evaluation_set(record["calibration_sha256"], features_dir)
    export_fast_models(model_dir, out_dir, opset, seq_len, features_dir)  # kept when newer than the weights
    record.update(source_model=os.path.basename(fp32), source_model_sha256=file_sha256(fp32), seq_len=seq_len,
                  batch_size=CALIB_BATCH, method=METHOD)
    if not force and os.path.isfile(target) and os.path.isfile(record_path):
        cached = read_json(record_path, ExportError, "the calibration record")
        if {k: cached.get(k) for k in record} == record:
            print(f"[INFO] {target} is up to date (same calibration inputs, {record_path}); not recalibrated")
            return cached
    check = fast_verification(model_dir, opset, seq_len, features_dir)
    batches = calibration_batches(sentences, vocab_path(model_dir), seq_len)
    with os_errors_as(ExportError, f"write ONNX files to {out_dir}"):
        write_model(target, lambda tmp: quantize_static_int8(fp32, tmp, batches),
                    f"static int8 calibrated on {record['samples']} sentences of {record['calibration_file']} "
                    f"(seed {seed}) -> {target}")
    report = check_models({"int8_static": target}, check, "tight", tolerance=float("inf"), gated=(),
                          remove_on_failure=(target, record_path),
                          min_agreement=agreement_bar(min_agreement), records={"int8_static": "int8_static"})
    record["check"] = {"on": check.description, "samples": len(check.reference),
                       "max_abs_diff": report["max_abs_diff"]["int8_static"],
                       "agreement": report["agreement"]["int8_static"]}
    with os_errors_as(ExportError, f"write {record_path}"):
        write_json_atomic(record_path, record)
    print(f"[INFO] calibration inputs recorded in {record_path}")
    return record


def write_static_int8(job: ExportJob) -> None:
    """The int8_static kind's exporter: kept while its calibration record matches the inputs, else calibrated anew."""
    calibration = job.calibration
    expect(calibration is not None, UsageError, "expected a calibration file (CALIB_FILE) for the int8_static model, "
                                                "got none")
    export_static_int8(job.ckpt_dir, calibration.file, job.out_dir, samples=calibration.samples,
                       seed=calibration.seed, opset=job.opset, seq_len=job.seq_len, features_dir=job.features_dir,
                       min_agreement=calibration.min_agreement)
