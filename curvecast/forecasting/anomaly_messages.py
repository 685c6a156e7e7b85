"""Messages for anomalies: what happened, when, and what to try, in the words an alert shows."""

from __future__ import annotations

__all__ = [
    "divergence_confirmed",
    "divergence_drift",
    "divergence_jump",
    "instability_risk",
    "nonfinite",
    "plateau",
    "slowdown",
    "spike",
]


def nonfinite(series: str, step: int, value: float) -> str:
    return (
        f"{series} became {value} at step {step}. The run cannot recover from a non-finite value: stop, resume "
        "from the last checkpoint with finite values, and lower the LR or tighten gradient clipping "
        "(with fp16, an overflow is a common cause: try bf16)."
    )


def spike(series: str, step: int, value: float, expected: float, z: float, *, loss_like: bool) -> str:
    advice = (
        "A one-step jump usually comes from an unusual batch and recovers; if spikes recur or grow, "
        "lower the LR or tighten gradient clipping."
        if loss_like
        else "If it recurs, check the batch at that step and the LR."
    )
    return (
        f"{series} spiked to {value:.4g} at step {step}, {value / expected:.2f}x the expected {expected:.4g} "
        f"({z:.0f} robust standard deviations). {advice}"
    )


def divergence_drift(series: str, step: int, onset: int, value: float, base: float) -> str:
    return (
        f"{series} has been climbing since about step {onset}: {value:.4g} at step {step} against {base:.4g} "
        "before. If it keeps rising, resume from a checkpoint before step "
        f"{onset} with a lower LR (a third lower is a common first try) or tighter gradient clipping."
    )


def divergence_jump(series: str, step: int, value: float, best: float) -> str:
    return (
        f"{series} jumped to {value:.4g} at step {step}, {value / best:.2f}x its best ({best:.4g}). If the next "
        "values stay this high the run has diverged: lower the LR or add warmup and gradient clipping."
    )


def divergence_confirmed(series: str, step: int, since: int, value: float, best: float, ratio: float) -> str:
    return (
        f"{series} diverged: since step {since} it has stayed above {ratio:.2g}x its best ({best:.4g}); it is "
        f"{value:.4g} at step {step}. Stop, resume from a checkpoint before step {since} (about 100 steps "
        "earlier), skip the batches in between, and lower the LR by a third or more."
    )


def plateau(series: str, step: int, since: int, rtol: float, *, schedule_known: bool) -> str:
    hint = "" if schedule_known else " If the LR schedule decays later, this may be expected."
    return (
        f"{series} has not improved by {rtol:.0%} since step {since} ({step - since} steps, up to step {step}). "
        f"Try a higher LR, or check that the data and labels reach the model.{hint}"
    )


def slowdown(series: str, step: int, ratio: float, baseline: float) -> str:
    return (
        f"{series} fell to {ratio:.0%} of its baseline ({baseline:.4g}) by step {step}. Look for a slow "
        "device or node, a data loader that cannot keep up, host-device syncs, or memory pressure."
    )


def instability_risk(step: int, reasons: list[str]) -> str:
    return (
        f"Instability precursors at step {step}: {'; '.join(reasons)}. Blow-ups often follow such signs: "
        "save a checkpoint now, and consider lowering the LR or tightening gradient clipping."
    )
