"""The accuracy gates, once: exact (fp32: PyTorch eager's logits within EXPORT_TOLERANCE) and reduced (int8,
bf16: MIN_AGREEMENT of its predictions, accuracy at most MAX_ACCURACY_DROP points below the fp32 path)."""

from __future__ import annotations

from tinybert.settings import EXPORT_TOLERANCE, MAX_ACCURACY_DROP, MIN_AGREEMENT


def exact(max_abs_diff: float, tolerance: float = EXPORT_TOLERANCE) -> bool:
    return max_abs_diff <= tolerance


def reduced(agreement: float, accuracy_drop: float | None = None, min_agreement: float = MIN_AGREEMENT) -> bool:
    return agreement >= min_agreement and (accuracy_drop is None or accuracy_drop <= MAX_ACCURACY_DROP)


def accuracy_drop(figures: dict, fp32_figures: dict | None) -> float | None:
    """Points of accuracy lost against the fp32 path, where both were scored."""
    if fp32_figures is None or "accuracy" not in figures or "accuracy" not in fp32_figures:
        return None
    return fp32_figures["accuracy"] - figures["accuracy"]


def passes(gate: str | None, figures: dict, fp32_figures: dict | None = None) -> bool:
    """Whether a benchmark row (`max_abs_diff_to_A`, `agreement_with_A`, `accuracy`) passes its path's gate."""
    if gate is None:
        return True
    if gate == "exact":
        return exact(figures["max_abs_diff_to_A"])
    return reduced(figures["agreement_with_A"], accuracy_drop(figures, fp32_figures))
