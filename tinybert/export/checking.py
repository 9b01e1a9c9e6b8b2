"""What every export shares: the checkpoint and the samples it is checked on, and one rule for
checking the written models against PyTorch eager and removing them when they fail."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from tinybert.errors import ExportError, UsageError, expect
from tinybert.data.features import MANIFEST_NAME
from tinybert.fileio import atomic_path
from tinybert.runtimes.runner import CARD_BATCHES, model_logits
from tinybert.results.gate_record import DEV_SET, GENERATED, UNLABELLED
from tinybert.settings import CALIB_SAMPLES, CALIB_SEED, FAST_VERIFY_BATCH, FAST_VERIFY_SAMPLES, MIN_OPSET, OPSET, SEQ_LEN


@dataclass(frozen=True)
class Calibration:
    """What static int8 calibrates on: a seeded sample of a training TSV (CALIB_FILE, CALIB_SAMPLES, CALIB_SEED)."""

    file: str
    samples: int = CALIB_SAMPLES
    seed: int = CALIB_SEED
    min_agreement: float | None = None  # the export check's bar (None: MIN_AGREEMENT)


@dataclass(frozen=True)
class ExportJob:
    """What every exporter of a model kind (model_kinds.ModelKind.exporter) is given."""

    ckpt_dir: str  # the checkpoint folder the model is made from
    out_dir: str
    batch_size: int | None = None  # for the card's per-batch-size models
    features_dir: str | None = None  # real features to check it on (else generated ids)
    calibration: Calibration | None = None
    opset: int = OPSET
    seq_len: int = SEQ_LEN


def write_model(path: str, write, note: str):
    """Write one model file atomically, `write(temporary_path)`, then print `note`; returns what
    `write` returned."""
    with atomic_path(path) as tmp:
        result = write(tmp)
    print(f"[INFO] {note}")
    return result


def load_checked_model(model_dir: str, opset: int, seq_len: int):
    """The PyTorch backend of the checkpoint, after checking the export options fit it."""
    from tinybert.runtimes import open_runtime

    expect(opset >= MIN_OPSET, UsageError, f"expected ONNX opset >= {MIN_OPSET} (erf GELU, ATC support), got {opset}")
    torch_backend = open_runtime("pytorch", model_dir)
    max_positions = torch_backend.model.config.max_position_embeddings
    expect(seq_len <= max_positions, UsageError, f"expected seq_len <= {max_positions} (max positions), got {seq_len}")
    return torch_backend


def stale(paths, weights: str) -> bool:
    """Whether any of `paths` is missing or older than the checkpoint's `weights` (then it is exported again)."""
    if not os.path.isfile(weights):
        return not all(os.path.isfile(path) for path in paths)
    newest_weights = os.path.getmtime(weights)
    return not all(os.path.isfile(path) and os.path.getmtime(path) >= newest_weights for path in paths)


@dataclass
class Verification:
    """What an export is checked on: PyTorch eager's logits on real (or synthetic) samples."""

    torch_backend: object
    arrays: tuple
    description: str
    reference: np.ndarray
    batch_size: int
    labels: np.ndarray | None = None  # the labels of the first len(labels) samples, each sample once
    judged_on: str = GENERATED  # gate_record's name for what these samples can prove: DEV_SET, UNLABELLED, GENERATED

    def accuracy_drop(self, logits: np.ndarray) -> float | None:
        """Points of accuracy `logits` lose against PyTorch eager's on the labelled samples (None: no labels)."""
        if self.labels is None or not len(self.labels):
            return None
        rows = len(self.labels)
        right = lambda values: 100.0 * float((values[:rows].argmax(1) == self.labels).mean())  # noqa: E731
        return right(self.reference) - right(logits)


def verification(model_dir: str, opset: int, seq_len: int, features_dir: str | None, count: int,
                 batch_size: int, at_most_features: bool = False) -> Verification:
    """The checkpoint (after checking the export options fit it), `count` samples (no more than the
    features hold when `at_most_features`) and PyTorch eager's logits on them, in batches of `batch_size`."""
    torch_backend = load_checked_model(model_dir, opset, seq_len)
    if at_most_features and features_dir and os.path.isfile(os.path.join(features_dir, MANIFEST_NAME)):
        from tinybert.data.features import read_manifest

        count = min(count, read_manifest(features_dir)["num_samples"])
    arrays, description, labels = verification_inputs(features_dir, count, seq_len,
                                                      torch_backend.model.config.vocab_size)
    return Verification(torch_backend, arrays, description, model_logits(torch_backend, arrays, batch_size), batch_size,
                        labels, inputs_at_hand(features_dir))


def fast_verification(model_dir: str, opset: int, seq_len: int, features_dir: str | None) -> Verification:
    """What every model made from the fast export is checked on: one sample and batch size for all of them."""
    return verification(model_dir, opset, seq_len, features_dir, count=FAST_VERIFY_SAMPLES,
                        batch_size=FAST_VERIFY_BATCH, at_most_features=True)


SYNTHETIC = "generated sentences (no features found)"


def inputs_at_hand(features_dir: str | None) -> str:
    """What a gate checked on `features_dir` is judged on (gate_record.JUDGED_ON): the dev set where the features
    carry labels, unlabelled sentences where they do not, generated ids where there are none."""
    if not (features_dir and os.path.isfile(os.path.join(features_dir, MANIFEST_NAME))):
        return GENERATED
    from tinybert.data.features import read_manifest

    labels = read_manifest(features_dir).get("labels")
    return DEV_SET if labels and all(label in (0, 1) for label in labels) else UNLABELLED


def verification_inputs(features_dir: str | None, count: int, seq_len: int, vocab_size: int):
    """`count` real samples when the preprocess step has run (repeated when there are fewer), else
    a fixed pseudo-random set; a description of them, and the labels of the distinct real ones (or None)."""
    if features_dir and os.path.isfile(os.path.join(features_dir, MANIFEST_NAME)):
        from tinybert.data.features import load_features

        features, _ = load_features(features_dir)
        expect(features.seq_len == seq_len, ExportError,
               f"{features_dir}: features have sequence length {features.seq_len}, expected {seq_len}")
        rows = np.arange(count) % len(features)
        labels = features.labels
        if labels is not None and not np.isin(labels, (0, 1)).all():
            labels = None  # unlabelled rows (a test split): no accuracy to compare
        distinct = None if labels is None else labels[:min(count, len(features))]
        return features.batch(rows), f"{count} real samples from {features_dir}", distinct
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, seq_len + 1, size=count)
    input_mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    # Ids past the special and [unused] entries of a BERT vocabulary; any id of a small one.
    input_ids = rng.integers(min(1000, vocab_size // 2), vocab_size, size=(count, seq_len)) * input_mask
    return (input_ids, np.zeros_like(input_ids), input_mask), f"{count} {SYNTHETIC}", None


def check_models(paths: dict[str, str], check: Verification, bucket_edges: str, tolerance: float, gated,
                 remove_on_failure, min_agreement: float | None = None, runtime: str = "onnxruntime",
                 records: dict[str, str] | None = None) -> dict:
    """Compare each model's logits on `runtime` with PyTorch's; on a failed gate (`tolerance` for `gated`
    models, `min_agreement`) remove `remove_on_failure`, so no failed model looks ready, and raise ExportError."""
    from tinybert import gates
    from tinybert.runtimes import open_runtime

    report: dict = {"max_abs_diff": {}, "agreement": {}, "accuracy_drop": {}}
    for key, path in paths.items():
        logits = model_logits(open_runtime(runtime, path), check.arrays, check.batch_size, bucket_edges)
        for field, value in compare(logits, check, os.path.basename(path), bucket_edges).items():
            report[field][key] = value
    for key, name in (records or {}).items():
        record_gate(name, paths[key], runtime, check, {field: report[field][key] for field in report})
    failed = [key for key in gated if not gates.exact(report["max_abs_diff"][key], tolerance)]
    disagreeing = [key for key in paths if min_agreement is not None
                   and not gates.reduced(report["agreement"][key], min_agreement=min_agreement)]
    removed = _remove(remove_on_failure) if failed or disagreeing else []
    if disagreeing:
        worst = min(disagreeing, key=report["agreement"].get)
        raise ExportError(f"{paths[worst]}: same prediction as PyTorch for {100 * report['agreement'][worst]:.2f}% of "
                          f"{check.description}, expected at least {100 * min_agreement:.0f}% (removed it)")
    if failed:
        worst = max(failed, key=report["max_abs_diff"].get)
        raise ExportError(f"{paths[worst]}: logits differ from PyTorch by {report['max_abs_diff'][worst]:.3e}, "
                          f"expected at most {tolerance:.0e} (removed {', '.join(removed) or 'nothing'})")
    return report


def compare(logits: np.ndarray, check: Verification, what: str, bucket_edges: str) -> dict:
    """`logits` against PyTorch eager's on the check's samples: the figures every gate reads, printed."""
    diff = float(np.abs(logits - check.reference).max())
    agreement = float((logits.argmax(1) == check.reference.argmax(1)).mean())
    batching = ", length-bucketed" if bucket_edges != CARD_BATCHES else ""
    print(f"[INFO] {what} vs PyTorch on {check.description}{batching}: "
          f"max abs logit difference {diff:.3e}, same prediction for {100 * agreement:.2f}%")
    return {"max_abs_diff": diff, "agreement": agreement, "accuracy_drop": check.accuracy_drop(logits)}


def record_gate(name: str, model_file: str, runtime: str, check: Verification, figures: dict,
                record_dir: str | None = None, device: str | None = None) -> bool:
    """Judge path `name` by its registry gate on this check's `figures` (`compare`) and record the outcome in
    `record_dir` (default: beside its model), for this CPU class or GPU `device` (auto reads it); whether it passed."""
    from tinybert import gates
    from tinybert.registry import run_path
    from tinybert.results import gate_record
    from tinybert.settings import EXPORT_TOLERANCE, MAX_ACCURACY_DROP, MIN_AGREEMENT

    gate = run_path(name).gate
    diff, agreement, drop = (figures[field] for field in ("max_abs_diff", "agreement", "accuracy_drop"))
    if gate == "exact":
        passed, rule = gates.exact(diff), f"max abs logit difference to PyTorch <= {EXPORT_TOLERANCE:.0e}"
    else:
        passed = gates.reduced(agreement, drop)
        rule = f"same prediction as PyTorch for >= {100 * MIN_AGREEMENT:.0f}% of the samples" + (
            f", accuracy at most {MAX_ACCURACY_DROP} points below PyTorch's" if drop is not None else "")
    figures = {"max_abs_diff": diff, "agreement": agreement, "accuracy_drop": drop}
    target = gate_record.write(name, record_dir or os.path.dirname(model_file) or ".", model_file=model_file,
                               runtime=runtime, gate=gate, rule=rule, passed=passed, figures=figures,
                               checked_on=check.description, judged_on=check.judged_on, device=device)
    setting = "GPU_MODEL" if device else "ORT_MODEL"
    print(f"[INFO] {setting}={name}: gate {'passed' if passed else 'FAILED'} ({rule}; {judged(check)}) -> {target}")
    return passed


def judged(check: Verification) -> str:
    """What a gate line says it was judged on: the dev set, or agreement only on so many sentences."""
    if check.judged_on == DEV_SET:
        return f"judged on the dev set, {len(check.labels)} labelled sentences"
    what = "generated" if check.judged_on == GENERATED else "unlabelled"
    return f"agreement only, {len(check.reference)} {what} sentences"


def _remove(paths) -> list[str]:
    removed = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(os.path.basename(path))
    return removed
