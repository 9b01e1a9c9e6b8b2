"""The benchmark's targets, in one table, and the verdicts on one run's figures.

Speed targets compare rows measured side by side in the same run (absolute figures differ
between machines); the reduced-precision bounds are the project's accuracy gate.
"""

from __future__ import annotations

from .settings import MAX_ACCURACY_DROP, MIN_AGREEMENT

TARGETS = {
    "C_vs_A_bs1": 3.0,  # fast fp32 over PyTorch eager at bs1 (latency-bound: fusion and no padding)
    "C_vs_A_bs8plus": 2.5,  # ... at bs >= 8
    "C_roofline": 0.75,  # fraction of the measured fp32 matrix-multiply rate the fast path reaches
    "D_vs_A_bs8plus": 6.0,  # int8 over PyTorch eager at bs >= 8
}


def evaluate_targets(results: list[dict]) -> list[dict]:
    """Each target and reduced-precision bound, with its measured value and whether it was met."""
    by = {(r["row"], r["batch_size"]): r for r in results}
    checks = []

    def check(name, value, target, ok=None):
        checks.append({"check": name, "value": value, "target": target,
                       "met": bool(value >= target) if ok is None else bool(ok)})

    for (row, bs), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        a = by.get(("A", bs))
        if row == "C" and a:
            target = TARGETS["C_vs_A_bs1"] if bs == 1 else TARGETS["C_vs_A_bs8plus"] if bs >= 8 else None
            if target:
                check(f"C/A speed-up at bs{bs}", r["sentences_per_s"] / a["sentences_per_s"], target)
            check(f"C agreement with A at bs{bs}", r["agreement_with_A"], 1.0)
            check(f"C max abs logit diff to A at bs{bs} (<= 1e-4)", r["max_abs_diff_to_A"], 1e-4,
                  ok=r["max_abs_diff_to_A"] <= 1e-4)
            check(f"C roofline fraction at bs{bs}", r["roofline_fraction"], TARGETS["C_roofline"])
        if row == "D" and a:
            if bs >= 8:
                check(f"D/A speed-up at bs{bs}", r["sentences_per_s"] / a["sentences_per_s"], TARGETS["D_vs_A_bs8plus"])
            c = by.get(("C", bs))
            if c and "accuracy" in r:
                drop = c["accuracy"] - r["accuracy"]
                check(f"D accuracy drop vs C at bs{bs} (<= {MAX_ACCURACY_DROP} pt)", drop,
                      MAX_ACCURACY_DROP, ok=drop <= MAX_ACCURACY_DROP)
            check(f"D agreement with A at bs{bs}", r["agreement_with_A"], MIN_AGREEMENT)
    return checks
