"""The gates auto decides by: each candidate path's model exported, its gate checked where its record is missing,
stale, from another CPU class (GPU) or judged on weaker inputs than the caller has, and the outcome recorded."""

from __future__ import annotations

from tinybert.errors import ModelFileError
from tinybert.export import ExportJob, ensure_model
from tinybert.export.checking import check_models, compare, fast_verification, inputs_at_hand, record_gate
from tinybert.results import gate_record
from tinybert.runtimes.needs import unmet_needs

RECHECK = ("missing", "stale", "other_cpu", "weaker")  # the record states a gate is checked again in


def cpu_candidates(job: ExportJob) -> dict:
    """ORT_MODEL=auto: every path of this CPU class's order whose needs are met, exported, its gate checked where
    its record cannot be trusted (the fallback, last, needs none); path -> its record's state."""
    from tinybert.capabilities import current
    from tinybert.model_kinds import kind as model_kind, model_path
    from tinybert.registry import auto_order, project_path

    cpu_class, having = current().cpu_class, inputs_at_hand(job.features_dir)
    check, written, states = None, {}, {}
    order = auto_order(cpu_class).paths
    for name in order:
        path = project_path(name)
        unmet = next(unmet_needs(path, calibration="present",
                                 calibration_file=job.calibration.file if job.calibration else None), None)
        if unmet:
            print(f"[INFO] ORT_MODEL=auto: {name} not exported here: {unmet}")
            states[name] = "unmet"
            continue
        group = model_kind(path.model).group or path.model  # one export writes a whole group
        if group not in written:
            try:
                written[group] = ensure_model(path.model, job)
            except ModelFileError as exc:  # no checkpoint to export it from: auto passes it over
                written[group] = exc
        if isinstance(written[group], ModelFileError):
            print(f"[INFO] ORT_MODEL=auto: {name} not exported here: {written[group]}")
            states[name] = "missing"
            continue
        model = model_path(path.model, job.out_dir)
        state, why = gate_record.status(name, job.out_dir, model, cpu_class, having)
        if name != order[-1] and state in RECHECK:
            print(f"[INFO] ORT_MODEL=auto: checking {name} here ({why})")
            check = check or fast_verification(job.ckpt_dir, job.opset, job.seq_len, job.features_dir)
            check_models({name: model}, check, "tight", tolerance=float("inf"), gated=(), remove_on_failure=(),
                         runtime=path.runtime, records={name: name})
            state, _ = gate_record.status(name, job.out_dir, model, cpu_class, having)
        states[name] = state
    return states


def gpu_candidates(job: ExportJob, device: int | None) -> dict:
    """GPU_MODEL=auto: each GPU path auto may choose (route.gpu_auto_candidates) checked on this GPU where its
    record cannot be trusted; path -> its record's state afterwards ("passed", "failed", "unmet", ...)."""
    from tinybert.capabilities import gpu
    from tinybert.model.modeling import weights_path
    from tinybert.registry import gpu_path
    from tinybert.runtimes.route import gpu_auto_candidates, open_path
    from tinybert.runtimes.runner import model_logits

    name, having = gpu(device or 0).name, inputs_at_hand(job.features_dir)
    weights = weights_path(job.ckpt_dir)
    check, states = None, {}
    for candidate in gpu_auto_candidates(job.out_dir, weights, name)[0]:  # the fallback (fp32) needs no record
        unmet = next(unmet_needs(gpu_path(candidate), device=device or 0), None)
        if unmet:
            print(f"[INFO] GPU_MODEL=auto: {candidate} not checked here: {unmet}")
            states[candidate] = "unmet"
            continue
        state, why = gate_record.status(candidate, job.out_dir, weights, name, having)
        if state in RECHECK:
            print(f"[INFO] GPU_MODEL=auto: checking {candidate} on {name} ({why})")
            check = check or fast_verification(job.ckpt_dir, job.opset, job.seq_len, job.features_dir)
            runtime = open_path(candidate, job.out_dir, ckpt_dir=job.ckpt_dir, device=device)
            logits = model_logits(runtime, check.arrays, check.batch_size, "tight")
            figures = compare(logits, check, f"{candidate} on {name}", "tight")
            record_gate(candidate, weights, runtime.name, check, figures, record_dir=job.out_dir, device=name)
            state, _ = gate_record.status(candidate, job.out_dir, weights, name, having)
        states[candidate] = state
    return states
