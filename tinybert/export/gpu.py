"""The GPU paths' gates: they run the checkpoint itself, so nothing is exported, but each reduced precision is
checked against PyTorch eager as an export is, and its outcome recorded for this GPU (GPU_MODEL=auto reads it)."""

from __future__ import annotations

from tinybert.settings import OPSET, SEQ_LEN


def ensure_gpu_gates(ckpt_dir: str, model_dir: str, features_dir: str | None = None, device: int | None = None,
                     seq_len: int = SEQ_LEN) -> dict:
    """Check each GPU path GPU_MODEL=auto may choose (route.gpu_auto_candidates) whose record in `model_dir` is missing,
    stale or from another GPU; returns path -> its record's state afterwards ("passed", "failed", "unmet", ...)."""
    from tinybert.capabilities import gpu
    from tinybert.export.checking import compare, fast_verification, record_gate
    from tinybert.model.modeling import weights_path
    from tinybert.registry import gpu_path
    from tinybert.runtimes.needs import unmet_needs
    from tinybert.results import gate_record
    from tinybert.runtimes.route import gpu_auto_candidates, open_path
    from tinybert.runtimes.runner import model_logits

    name = gpu(device or 0).name
    weights = weights_path(ckpt_dir)
    check, states = None, {}
    for candidate in gpu_auto_candidates(model_dir, weights, name)[0]:  # the fallback (fp32) needs no record
        unmet = next(unmet_needs(gpu_path(candidate)), None)
        if unmet:
            print(f"[INFO] GPU_MODEL=auto: {candidate} not checked here: {unmet}")
            states[candidate] = "unmet"
            continue
        state, why = gate_record.status(candidate, model_dir, weights, name)
        if state in ("missing", "stale", "other_cpu"):
            print(f"[INFO] GPU_MODEL=auto: checking {candidate} on {name} ({why})")
            check = check or fast_verification(ckpt_dir, OPSET, seq_len, features_dir)
            runtime = open_path(candidate, model_dir, ckpt_dir=ckpt_dir, device=device)
            logits = model_logits(runtime, check.arrays, check.batch_size, "tight")
            figures = compare(logits, check, f"{candidate} on {name}", "tight")
            record_gate(candidate, weights, runtime.name, check, figures, record_dir=model_dir, device=name)
            state, _ = gate_record.status(candidate, model_dir, weights, name)
        states[candidate] = state
    return states
