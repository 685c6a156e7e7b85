"""A loss that is not the run's objective: its alarms become notes saying why.

An RL agent's training loss (a policy-gradient surrogate, a TD loss) grows with the returns it is trained on, and each
player's loss of a GAN rises as the other learns: a climb, a spike or an instability warning of such a loss is no sign
of an unstable run, and the advice an unstable run gets (lower the LR, resume from a checkpoint) is wrong for it. Its
plateau keeps what happened and drops the advice to raise the LR, which is for a loss the run minimises. A non-finite
value stays what it is (it is no divergence), and so, where asked, does a blow-up to ``BLOWN_UP_RATIO`` times the
lowest level: no return or opponent explains that.
"""

from __future__ import annotations

import re
from dataclasses import replace

from curvecast.forecasting.anomalies.blowup import BLOWN_UP_RATIO
from curvecast.forecasting.anomalies.event import Anomaly

__all__ = ["AUXILIARY_KINDS", "as_note", "beside_return_note", "facts"]

AUXILIARY_KINDS = ("divergence", "spike", "instability_risk")
# Where a detector's message turns from what happened to what to try ("... before. If it keeps rising, ...", "... at
# step 13131. Stop, resume ..."): the first full stop followed by a capital.
_ADVICE_STARTS = re.compile(r"\.\s+(?=[A-Z])")


def facts(message: str) -> str:
    """What a detector's message says happened, without what it says to try."""
    advice = _ADVICE_STARTS.search(message)
    return message[: advice.start() + 1] if advice else message


def as_note(anomaly: Anomaly, note: str, keep_blowups: bool = True) -> Anomaly:
    """``anomaly`` of a loss that is not the run's objective: a climb, spike or instability warning becomes a note
    (``info``) of its facts and ``note`` (a note already: the same), a plateau its facts alone; anything else, and with
    ``keep_blowups`` a critical blow-up, as it is."""
    if anomaly.kind == "plateau":
        return replace(anomaly, message=facts(anomaly.message))
    if anomaly.kind not in AUXILIARY_KINDS:
        return anomaly
    if anomaly.severity == "info":  # a detector's own note (a GAN's 1.05x spike) loses its advice to lower the LR too
        return replace(anomaly, message=facts(anomaly.message) + note)
    if keep_blowups and anomaly.severity == "critical" and not anomaly.score < BLOWN_UP_RATIO:
        return anomaly
    return replace(anomaly, severity="info", message=facts(anomaly.message) + note)


def beside_return_note(name: str, watch_it: str) -> str:
    """Said of an alarm on a loss logged beside ``name``, an RL agent's return; ``watch_it``: how to follow the
    return instead (an argument or an option)."""
    return (
        f" The run logs `{name}`, a return: an RL agent's loss grows with its returns, so this alone is no sign of an "
        f"unstable run. {watch_it} watches and forecasts the return itself."
    )
