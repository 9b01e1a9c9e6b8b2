"""The benchmark's targets and the verdicts on one run: speed targets compare rows of the same run (absolute
figures differ between machines); a row failing its accuracy gate never counts as the fastest."""

from __future__ import annotations

from tinybert import gates
from tinybert.settings import EXPORT_TOLERANCE, MAX_ACCURACY_DROP, MIN_AGREEMENT
from tinybert.registry import Role

TARGETS = {
    "C_vs_A_bs1": 3.0,  # fast fp32 over PyTorch eager at bs1 (latency-bound: less work, no padding)
    "C_vs_A_bs8plus": 2.5,  # ... at bs >= 8
    "C_roofline": 0.75,  # fraction of its engine's fp32 matrix-multiply rate the fast path reaches
    "D_vs_A_bs8plus": 6.0,  # int8 over PyTorch eager at bs >= 8
    "best_vs_peer_bs1": 1.5,  # the fastest gated project row over the fastest peer row, bs1
    "best_vs_peer_bs8plus": 1.5,  # ... at bs >= 8
    "C_vs_peer_fp32": 1.0,  # the project's fp32 path over the fastest peer fp32 row, every batch size
    "int8_roofline_bs8plus": 0.60,  # the fastest int8 row's fraction of its engine's int8 rate, bs >= 8
    "larger_batch_not_slower": 1.0,  # a project row at a larger bs over its best at smaller ones, beyond the spread
    "gpu_best_vs_peer": 1.0,  # the fastest gated GPU path over the fastest PyTorch GPU peer, every batch size
    "gpu_best_vs_eager_bs1_64": 5.0,  # ... over PyTorch eager fp32 on the GPU (GA), bs 1 to 64
}
PROJECT_ROLES = (Role.PROJECT, Role.VARIANT)
GPU_EAGER_MAX_BS = 64  # where the eager-fp32 target applies: beyond it eager fp32 is GEMM-bound too


def _check(name: str, value: float, target: float, met: bool | None = None, cause: str = "") -> dict:
    """A verdict; `cause` says what the run measured behind a miss (shown for misses only)."""
    met = bool(value >= target) if met is None else bool(met)
    return {"check": name, "value": value, "target": target, "met": met, "cause": "" if met else cause}


def _roofline_share(r: dict) -> str:
    fraction = r.get("roofline_fraction")
    where = f"{100 * fraction:.0f}% of the {r.get('precision', 'fp32')} roofline" if fraction is not None else "no roofline"
    return f"{r['row']} at {where}"


def _versus(ours: dict, theirs: dict) -> str:
    """What a speed ratio comes from: how well each row uses the matrix-multiply rate of its precision."""
    return f"{_roofline_share(ours)} ({ours['achieved_gflops']:.0f} G/s), {_roofline_share(theirs)} " \
           f"({theirs['achieved_gflops']:.0f} G/s)" if "achieved_gflops" in ours and "achieved_gflops" in theirs else ""


def _outside_gemms(r: dict) -> str:
    return (f"at its chain's rate ({r['own_recipe']}) its matrix multiplies take {100 * r['own_fraction']:.0f}% of "
            "its pass; the rest is outside them (element-wise kernels, quantize/dequantize, attention, calls: "
            "docs/cpu-paths.md, int8 fusion)")


def evaluate_targets(results: list[dict]) -> list[dict]:
    """Each target and gate, with its measured value and whether it was met."""
    by = {(r["row"], r["batch_size"]): r for r in results}
    sizes = sorted({bs for _, bs in by})
    checks = []
    for bs in sizes:
        rows = {row: r for (row, b), r in by.items() if b == bs}
        checks += _fp32_checks(bs, rows) + _gate_checks(bs, rows) + _peer_checks(bs, list(rows.values()))
        checks += _gpu_checks(bs, rows)
    return checks + _batch_size_checks(results, sizes)


def _baseline(rows: dict) -> dict | None:
    return next((r for r in rows.values() if r.get("role") == Role.BASELINE), None)


def _fp32_checks(bs: int, rows: dict) -> list[dict]:
    """The default path C against PyTorch eager, and D's speed-up."""
    a, c, d, out = _baseline(rows), rows.get("C"), rows.get("D"), []
    if c and a:
        target = TARGETS["C_vs_A_bs1"] if bs == 1 else TARGETS["C_vs_A_bs8plus"] if bs >= 8 else None
        if target:
            out.append(_check(f"C/A speed-up at bs{bs}", c["sentences_per_s"] / a["sentences_per_s"], target,
                              cause=_versus(c, a)))
        if c.get("own_fraction") is not None:
            out.append(_check(f"C at bs{bs}: fraction of its engine's fp32 matrix-multiply rate ({c['own_recipe']})",
                              c["own_fraction"], TARGETS["C_roofline"], cause=_outside_gemms(c)))
    if d and a and bs >= 8:
        out.append(_check(f"D/A speed-up at bs{bs}", d["sentences_per_s"] / a["sentences_per_s"],
                          TARGETS["D_vs_A_bs8plus"], cause=_versus(d, a)))
    return out


def _gate_checks(bs: int, rows: dict) -> list[dict]:
    """Every gated row's gate, part by part; a GPU row's accuracy against the GPU's fp32 path where it ran."""
    out = []
    for key, r in rows.items():
        reference = fp32_path(rows, r)
        if r.get("gate") == "exact":
            out.append(_check(f"{key} max abs logit diff to A at bs{bs} (<= {EXPORT_TOLERANCE:g})",
                              r["max_abs_diff_to_A"], EXPORT_TOLERANCE, gates.exact(r["max_abs_diff_to_A"]),
                              cause="its logits are not PyTorch's: a wrong export or runtime option"))
        elif r.get("gate") == "reduced":
            drop = gates.accuracy_drop(r, reference)
            if drop is not None:
                out.append(_check(f"{key} accuracy drop vs {reference['row']} at bs{bs} (<= {MAX_ACCURACY_DROP} pt)", drop,
                                  MAX_ACCURACY_DROP, drop <= MAX_ACCURACY_DROP, cause=_disagreement(r)))
            out.append(_check(f"{key} agreement with A at bs{bs}", r["agreement_with_A"], MIN_AGREEMENT,
                              gates.reduced(r["agreement_with_A"]), cause=_disagreement(r)))
    return out


def _peer_checks(bs: int, rows: list[dict]) -> list[dict]:
    """The fastest gated CPU project row against the fastest peer; C against the fastest fp32 peer;
    the fastest gated int8 row against the int8 roofline."""
    by_key = {r["row"]: r for r in rows}
    peers = [r for r in rows if r.get("role") == Role.PEER]
    ours = gated_project_rows(rows, by_key.get("C"))
    out = []
    if peers and ours:
        best, peer = max(ours, key=_speed), max(peers, key=_speed)
        target = TARGETS["best_vs_peer_bs1"] if bs < 8 else TARGETS["best_vs_peer_bs8plus"]
        out.append(_check(f"fastest gated project row ({best['row']}) / fastest peer ({peer['row']}) at bs{bs}",
                          best["sentences_per_s"] / peer["sentences_per_s"], target, cause=_versus(best, peer)))
    fp32_peers = [r for r in peers if r.get("precision", "fp32") == "fp32"]
    if "C" in by_key and fp32_peers:
        peer = max(fp32_peers, key=_speed)
        out.append(_check(f"C (project fp32) / fastest fp32 peer ({peer['row']}) at bs{bs}",
                          by_key["C"]["sentences_per_s"] / peer["sentences_per_s"], TARGETS["C_vs_peer_fp32"],
                          cause=_versus(by_key["C"], peer)))
    int8 = [r for r in ours if r.get("precision") == "int8" and r.get("own_fraction") is not None]
    if int8 and bs >= 8:
        best = max(int8, key=_speed)
        out.append(_check(f"fastest int8 row ({best['row']}) at bs{bs}: fraction of its engine's int8 "
                          f"matrix-multiply rate ({best['own_recipe']})", best["own_fraction"],
                          TARGETS["int8_roofline_bs8plus"], cause=_outside_gemms(best)))
    return out


def fp32_path(rows: dict, r: dict) -> dict | None:
    """The fp32 row a row's accuracy drop is taken against: G for a GPU row where it ran, else C."""
    return rows.get("G") or rows.get("C") if r.get("on_gpu") else rows.get("C")


def _gpu_checks(bs: int, rows: dict) -> list[dict]:
    """The fastest gated GPU path against the fastest PyTorch GPU peer, and against eager fp32 on the GPU."""
    ours = [r for r in rows.values() if r.get("role") == Role.GPU_PROJECT and
            gates.passes(r.get("gate"), r, fp32_path(rows, r))]
    peers = [r for r in rows.values() if r.get("role") == Role.GPU_PEER]
    eager = next((r for r in rows.values() if r.get("role") == Role.GPU_BASELINE), None)
    if not ours:
        return []
    best, out = max(ours, key=_speed), []
    if peers:
        peer = max(peers, key=_speed)
        out.append(_check(f"fastest gated GPU path ({best['row']}) / fastest PyTorch GPU peer ({peer['row']}) at bs{bs}",
                          best["sentences_per_s"] / peer["sentences_per_s"], TARGETS["gpu_best_vs_peer"],
                          cause=_versus(best, peer)))
    if eager and bs <= GPU_EAGER_MAX_BS:
        out.append(_check(f"fastest gated GPU path ({best['row']}) / PyTorch eager fp32 on the GPU ({eager['row']}) "
                          f"at bs{bs}", best["sentences_per_s"] / eager["sentences_per_s"],
                          TARGETS["gpu_best_vs_eager_bs1_64"], cause=_versus(best, eager)))
    return out


def gated_project_rows(rows: list[dict], fp32_path: dict | None) -> list[dict]:
    """The CPU project rows (paths and variants) that pass their gate: the candidates for 'fastest'."""
    return [r for r in rows if r.get("role") in PROJECT_ROLES and gates.passes(r.get("gate"), r, fp32_path)]


def _batch_size_checks(results: list[dict], sizes: list[int]) -> list[dict]:
    """No project path (an ORT_MODEL value) slower at a larger batch size than at a smaller one beyond the
    run's spread (its passes' min-max). The variants are comparisons (Cw, Dw), not held to it."""
    out = []
    for key in dict.fromkeys(r["row"] for r in results if r.get("role") == Role.PROJECT):
        by_bs = {r["batch_size"]: r for r in results if r["row"] == key}
        pairs = []
        for b in sizes[1:]:
            smaller = [a for a in sizes if a < b and a in by_bs]
            if b in by_bs and smaller:
                a = max(smaller, key=lambda a: by_bs[a]["sentences_per_s"])
                pairs.append((by_bs[b]["sentences_per_s"] / by_bs[a]["sentences_per_s"], b, a))
        if pairs:
            worst, at, smaller = min(pairs)
            large, small = _spread(by_bs[at]), _spread(by_bs[smaller])
            overlap = large[1] >= small[0]
            out.append(_check(f"{key}: slowest larger batch size (bs{at}) over its best smaller one (bs{smaller}), "
                              "beyond the passes' spread", worst, TARGETS["larger_batch_not_slower"],
                              met=worst >= TARGETS["larger_batch_not_slower"] or overlap,
                              cause=f"bs{at} passes {large[0]:.0f}-{large[1]:.0f} sent/s, all below bs{smaller}'s "
                                    f"{small[0]:.0f}-{small[1]:.0f}; {_roofline_share(by_bs[at])} at bs{at}, "
                                    f"{100 * (by_bs[smaller].get('roofline_fraction') or 0):.0f}% at bs{smaller}"))
    return out


def _spread(r: dict) -> tuple[float, float]:
    passes = r.get("passes_sentences_per_s") or [r["sentences_per_s"]]
    return min(passes), max(passes)


def _disagreement(r: dict) -> str:
    return f"{100 * (1 - r['agreement_with_A']):.2f}% of its predictions differ from A's (logits up to " \
           f"{r['max_abs_diff_to_A']:.2g} apart): the reduced precision changes them"


def _speed(row: dict) -> float:
    return row["sentences_per_s"]
