"""The benchmark's GPU figures as the record GPU_MODEL=auto orders its candidates by (results.gpu_speed)."""

from __future__ import annotations

from tinybert import gates
from tinybert.bench.checks import fp32_path
from tinybert.registry import Role


def write_speed_record(results: list[dict], ckpt_dir: str, record_dir: str, device: int = 0) -> str:
    """Each GPU_MODEL path's sentences/s per batch size in this run, and whether it passed its gate at every one."""
    from tinybert.capabilities import gpu
    from tinybert.model.modeling import weights_path
    from tinybert.registry import run_path
    from tinybert.results import gpu_speed

    by_bs: dict = {}
    for r in results:
        by_bs.setdefault(r["batch_size"], {})[r["row"]] = r
    speeds, gated = {}, {}
    for r in results:
        if r["role"] != Role.GPU_PROJECT:
            continue
        name = run_path(r["row"]).name
        speeds.setdefault(name, {})[r["batch_size"]] = r["sentences_per_s"]
        gated[name] = gated.get(name, True) and gates.passes(r["gate"], r, fp32_path(by_bs[r["batch_size"]], r))
    target = gpu_speed.write(record_dir, device=gpu(device).name, weights_file=weights_path(ckpt_dir), speeds=speeds,
                             gated=gated)
    print(f"[INFO] wrote the GPU speed record {target} (GPU_MODEL=auto orders its candidates by it)")
    return target
