"""The benchmark's targets, in one table, and the verdicts on one run's figures.

Speed targets compare rows measured side by side in the same run (absolute figures differ
between machines); the reduced-precision bounds are the project's accuracy gate. A row that fails
its gate is reported as failed and never counted as the project's fastest path.
"""

from __future__ import annotations

from .settings import EXPORT_TOLERANCE, MAX_ACCURACY_DROP, MIN_AGREEMENT

TARGETS = {
    "C_vs_A_bs1": 3.0,  # fast fp32 over PyTorch eager at bs1 (latency-bound: less work, no padding)
    "C_vs_A_bs8plus": 2.5,  # ... at bs >= 8
    "C_roofline": 0.75,  # fraction of the measured fp32 matrix-multiply rate the fast path reaches
    "D_vs_A_bs8plus": 6.0,  # int8 over PyTorch eager at bs >= 8
    "best_vs_peer_bs1": 1.0,  # the fastest gated project row over the fastest peer row, bs1
    "best_vs_peer_bs8plus": 1.15,  # ... at bs >= 8
    "C_vs_peer_fp32": 1.0,  # the project's fp32 path over the fastest peer fp32 row, every batch size
    "int8_roofline_bs8plus": 0.55,  # the fastest int8 row's fraction of the measured int8 rate, bs >= 8
}
BASELINE = "A"  # PyTorch eager: the reference every row is compared with


def gate(row: dict, fp32_path: dict | None) -> bool:
    """A row may count as a project path: fp32 within the export tolerance of PyTorch; reduced
    precision within MAX_ACCURACY_DROP points of the fp32 path and MIN_AGREEMENT with PyTorch."""
    if row.get("precision", "fp32") == "fp32":
        return row["max_abs_diff_to_A"] <= EXPORT_TOLERANCE
    accurate = fp32_path is None or "accuracy" not in row or fp32_path["accuracy"] - row["accuracy"] <= MAX_ACCURACY_DROP
    return accurate and row["agreement_with_A"] >= MIN_AGREEMENT


def evaluate_targets(results: list[dict]) -> list[dict]:
    """Each target and reduced-precision bound, with its measured value and whether it was met."""
    by = {(r["row"], r["batch_size"]): r for r in results}
    checks = []

    def check(name, value, target, ok=None):
        checks.append({"check": name, "value": value, "target": target,
                       "met": bool(value >= target) if ok is None else bool(ok)})

    for (row, bs), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        a, c = by.get((BASELINE, bs)), by.get(("C", bs))
        if row == "C" and a:
            target = TARGETS["C_vs_A_bs1"] if bs == 1 else TARGETS["C_vs_A_bs8plus"] if bs >= 8 else None
            if target:
                check(f"C/A speed-up at bs{bs}", r["sentences_per_s"] / a["sentences_per_s"], target)
            check(f"C agreement with A at bs{bs}", r["agreement_with_A"], 1.0)
            check(f"C max abs logit diff to A at bs{bs} (<= {EXPORT_TOLERANCE:g})", r["max_abs_diff_to_A"],
                  EXPORT_TOLERANCE, ok=r["max_abs_diff_to_A"] <= EXPORT_TOLERANCE)
            check(f"C roofline fraction at bs{bs}", r["roofline_fraction"], TARGETS["C_roofline"])
        if row == "D" and a and bs >= 8:
            check(f"D/A speed-up at bs{bs}", r["sentences_per_s"] / a["sentences_per_s"], TARGETS["D_vs_A_bs8plus"])
        if not r.get("peer") and r.get("precision", "fp32") != "fp32":
            if c and "accuracy" in r:
                drop = c["accuracy"] - r["accuracy"]
                check(f"{row} accuracy drop vs C at bs{bs} (<= {MAX_ACCURACY_DROP} pt)", drop, MAX_ACCURACY_DROP,
                      ok=drop <= MAX_ACCURACY_DROP)
            check(f"{row} agreement with A at bs{bs}", r["agreement_with_A"], MIN_AGREEMENT)
    for bs in sorted({bs for _, bs in by}):
        checks += _peer_checks(bs, [r for (_, b), r in by.items() if b == bs])
    return checks


def _peer_checks(bs: int, rows: list[dict]) -> list[dict]:
    """The fastest gated CPU project row against the fastest peer; C against the fastest fp32 peer;
    the fastest gated int8 row against the int8 roofline."""
    by_key = {r["row"]: r for r in rows}
    peers = [r for r in rows if r.get("peer")]
    fp32_path = by_key.get("C")
    ours = [r for r in rows if not r.get("peer") and r["row"] != BASELINE and r.get("device", "cpu") == "cpu"
            and gate(r, fp32_path)]
    out = []
    if peers and ours:
        best, peer = max(ours, key=_speed), max(peers, key=_speed)
        target = TARGETS["best_vs_peer_bs1"] if bs < 8 else TARGETS["best_vs_peer_bs8plus"]
        value = best["sentences_per_s"] / peer["sentences_per_s"]
        out.append({"check": f"fastest gated project row ({best['row']}) / fastest peer ({peer['row']}) at bs{bs}",
                    "value": value, "target": target, "met": value >= target})
    fp32_peers = [r for r in peers if r.get("precision", "fp32") == "fp32"]
    if fp32_path and fp32_peers:
        peer = max(fp32_peers, key=_speed)
        value = fp32_path["sentences_per_s"] / peer["sentences_per_s"]
        out.append({"check": f"C (project fp32) / fastest fp32 peer ({peer['row']}) at bs{bs}", "value": value,
                    "target": TARGETS["C_vs_peer_fp32"], "met": value >= TARGETS["C_vs_peer_fp32"]})
    int8 = [r for r in ours if r.get("precision") == "int8"]
    if int8 and bs >= 8:
        best = max(int8, key=_speed)
        out.append({"check": f"fastest int8 row ({best['row']}) at bs{bs}: fraction of the int8 matrix-multiply rate",
                    "value": best["roofline_fraction"], "target": TARGETS["int8_roofline_bs8plus"],
                    "met": best["roofline_fraction"] >= TARGETS["int8_roofline_bs8plus"]})
    return out


def _speed(row: dict) -> float:
    return row["sentences_per_s"]
