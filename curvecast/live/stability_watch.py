"""StabilityWatch: the anomaly detectors of a live run, fed from the run's history as points arrive.

The training loss and the pre-clip gradient norm go to one :class:`InstabilityMonitor` together, one step at a time,
since a spike in both at once is the strong signal. The sensors move both series to the host at the same steps (the
losses' flush), the gradient norm of only some steps (every step on an accelerator, spaced by its cost on a CPU), so a
loss waits here for its partner only until the batch of points it came with is all in (:meth:`score_waiting`): it is
never held back for a gradient norm its step will not have. Throughput goes to a slowdown detector, and a
monitored validation metric to a detector of its own. Every update is O(1); nothing here touches the device.

When the run is watched by a score (``mode="max"``: a reward, an accuracy), or logs an RL agent's return beside the
training loss it is watched by (:meth:`StabilityWatch.loss_beside_return`), the training loss is an auxiliary
objective: an RL agent's policy-gradient surrogate or TD loss grows with its returns, so a loss that climbs while the
score improves is no divergence of the run. Its divergences, spikes and instability warnings are then notes (``info``)
saying why, never warnings or critical (a non-finite loss still is critical); the score's own detector makes those
calls: a real blow-up shows in the score.

A monitored validation metric that gets worse while the training loss holds its best is overfitting, not an unstable
run: its climb is then a note (``info``) and its confirmed divergence a warning, both saying so (the forecast-based
early stop, not the divergence stop, is the tool for it). When no training loss reaches the watch, nothing changes.
A run watched by its training loss has its first validation loss watched for the same (``OverfitWatch``, in
``forecasting.anomalies.overfit``: ``curvecast analyze`` replays a log through it).

A run that steps several optimizers by hand (:meth:`StabilityWatch.several_players`: a GAN, an actor-critic agent) has
no one loss to minimise: a discriminator's loss climbs back towards log 2 as the generator catches up. The climbs,
confirmed divergences, spikes and instability warnings of its losses (not of a score it is watched by) are notes
(``info``) saying why; a non-finite value, and a blow-up to a million times the lowest level, stay critical.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from curvecast.forecasting.anomalies import Anomaly, AnomalyDetector, InstabilityMonitor
from curvecast.forecasting.anomalies.auxiliary import as_note, beside_return_note, facts
from curvecast.forecasting.anomalies.overfit import OverfitWatch, training_loss_holds
from curvecast.forecasting.schedule import LRSchedule
from curvecast.series import GRAD_NORM, SAMPLES_PER_SEC, TRAIN_LOSS, is_validation_loss
from curvecast.state_checks import checked_mapping, checked_whole, require_keys

__all__ = ["StabilityWatch"]

# Points waiting for a partner are scored alone past this, even before their batch is all in (bounds the buffers).
_MAX_WAITING = 2_000  # beyond any sensible logging cadence
# Said of a warning on one player's loss, in place of an unstable run's advice.
_PLAYERS_NOTE = (
    " The run steps several optimizers: one player's loss rises as the others learn (a GAN's discriminator climbs back "
    "towards log 2), so this alone is no sign of an unstable run."
)
# Said of a warning on an auxiliary training loss, in place of an unstable run's advice.
_WATCHED_BY_SCORE = (
    " The run is watched by `{}`: its training loss is an auxiliary objective (an RL agent's grows with its returns), "
    "so this alone is no sign of an unstable run."
)
_OVERFITTING = (
    " The training loss is not climbing with it: this looks like overfitting, not an unstable run. More data or "
    "regularisation may help; keep the best checkpoint, or stop early on the forecast."
)


class StabilityWatch:
    """Route each recorded point to its detector; collect the anomalies they report.

    Args:
        monitor: the monitored series; when it is not the training loss it gets a detector of its own.
        mode: ``"min"`` when lower is better for ``monitor``.
        pair_grad_norm: score the loss of a step together with that step's gradient norm, when it has one.
    """

    def __init__(self, monitor: str = TRAIN_LOSS, mode: str = "min", pair_grad_norm: bool = True) -> None:
        self.instability = InstabilityMonitor()
        self.throughput = AnomalyDetector(SAMPLES_PER_SEC, mode="max", kinds=("slowdown",))
        self.monitored = None
        if monitor != TRAIN_LOSS:
            # A falling accuracy is a divergence here, not the throughput "slowdown" that mode="max" defaults to.
            kinds = (
                ("nonfinite", "spike", "divergence", "plateau")
                if mode == "min"
                else ("nonfinite", "spike", "divergence")
            )
            self.monitored = AnomalyDetector(monitor, mode=mode, kinds=kinds)
        # Watched by its training loss, the run's validation loss is where overfitting shows (see OverfitWatch).
        self.overfit = OverfitWatch() if monitor == TRAIN_LOSS else None
        self.pair_grad_norm = pair_grad_norm
        self._watched = frozenset({TRAIN_LOSS, GRAD_NORM, SAMPLES_PER_SEC, monitor})
        self.loss_is_auxiliary = monitor != TRAIN_LOSS and mode == "max"  # see the module docstring
        self._auxiliary_note = _WATCHED_BY_SCORE.format(monitor) if self.loss_is_auxiliary else ""
        self._beside_return = False  # no detector watches a return the run only logs: a blow-up stays critical
        self.players = False  # several optimizers stepped by hand (see :meth:`several_players`)
        # Each series reaches the history in increasing steps, so both queues stay sorted: pairing is a merge.
        self._loss: deque[tuple[int, float]] = deque()
        self._grad: deque[tuple[int, float]] = deque()
        self._last_paired: int | None = None
        self._alone = False  # no loss came for 2000 gradient norms: the norms are no longer held back for one
        self._found: list[Anomaly] = []

    def overfitting_on_purpose(self) -> None:
        """``Trainer(overfit_batches=...)``: the run overfits a few batches to check that the model can, and a
        validation loss that climbs meanwhile is what was asked for, not a finding to warn about."""
        self.overfit = None

    def watches(self, name: str) -> bool:
        """Whether points of ``name`` go to a detector (the other series need not be handed over at all)."""
        return name in self._watched or (self.overfit is not None and is_validation_loss(name))

    def loss_beside_return(self, name: str) -> None:
        """The run logs ``name``, an RL agent's return, beside the training loss it is watched by: that loss is an
        auxiliary objective (see the module docstring), from now on and in :meth:`auxiliary`."""
        # The note first: the scoring thread reads the flag last set here, and a note must be there when it does.
        self._auxiliary_note = beside_return_note(name, f'`Curvecast(monitor="{name}")`')
        self._beside_return = True
        self.loss_is_auxiliary = True

    def several_players(self, several: bool = True) -> None:
        """The run steps several optimizers by hand (a GAN, an actor-critic agent): see the module docstring. Told at
        each start of training, before its points."""
        self.players = several

    def epoch_started(self, step: int) -> None:
        """A training epoch starts at optimizer step ``step``: a step up of the loss there may be by design."""
        self.instability.loss.epoch_started(step)
        for other in (self.monitored, self.overfit):
            if other is not None:
                other.epoch_started(step)

    def set_schedule(self, lrs: Sequence[float] | LRSchedule | None) -> None:
        """The planned LR of every step: LR rises are not spikes, and no plateau is called before an LR drop."""
        self.instability.loss.set_schedule(lrs)
        for other in (self.monitored, self.overfit):
            if other is not None:
                other.set_schedule(lrs)

    def feed(self, name: str, step: int, value: float) -> None:
        """Take one point as the history records it (a listener of :class:`~curvecast.history.RunHistory`)."""
        if name == TRAIN_LOSS:
            self._loss.append((step, value))
        elif name == GRAD_NORM:
            self._grad.append((step, value))
        elif name == SAMPLES_PER_SEC:
            self._update(self.throughput, step, value)
            return
        elif self.monitored is not None and name == self.monitored.series:
            self._update(self.monitored, step, value)
            return
        elif self.overfit is not None and is_validation_loss(name):
            # Without a training loss there is no telling overfitting from the rest: the detector learns, nothing said.
            self._found += self.overfit.update(name, step, value, self._training_loss_holds,
                                               speak=self.instability.loss.level.n > 0)  # fmt: skip
            return
        else:
            return
        self._pair()

    def _update(self, detector: AnomalyDetector, step: int, value: float) -> None:
        if detector.last_step is not None and step <= detector.last_step:
            return  # a resumed run replaying steps the detector has already seen
        found = detector.update(step, value)
        if detector is self.monitored and found and self._training_loss_holds():
            found = [self._overfitting(a) for a in found]
        # A score the run is watched by (a reward) is its objective, not one player's loss.
        players = self.players and not (detector is self.monitored and self.loss_is_auxiliary)
        self._found += [self._one_player(a) for a in found] if players else found

    def _training_loss_holds(self) -> bool:
        """The training loss has been seen and is not climbing (``forecasting.anomalies.overfit.TRAIN_CLIMB``)."""
        return training_loss_holds(self.instability.loss.level)

    @staticmethod
    def _overfitting(anomaly: Anomaly) -> Anomaly:
        """A divergence of the monitored metric while the training loss holds is overfitting: one level down."""
        if anomaly.kind != "divergence" or anomaly.severity == "info":
            return anomaly
        severity = "warning" if anomaly.severity == "critical" else "info"
        return replace(anomaly, severity=severity, message=facts(anomaly.message) + _OVERFITTING)

    def score_waiting(self) -> None:
        """Every point of the batch handed over is in: a loss still waiting for its step's gradient norm has none
        and is scored alone. A norm waits on for its loss (the losses may move to the host less often, when the
        noise scale's cadence was set apart from the Trainer's)."""
        self._pair(settle=True)

    def _pair(self, settle: bool = False) -> None:
        loss, grad = self._loss, self._grad
        while loss or grad:
            name_is_loss = bool(loss)
            if loss and grad:
                loss_step, grad_step = loss[0][0], grad[0][0]
                step = min(loss_step, grad_step)
                # A head older than the other series' head will never get its partner: it is scored alone.
                pair = (
                    loss.popleft()[1] if loss_step == step else None,
                    grad.popleft()[1] if grad_step == step else None,
                )
            elif not self.pair_grad_norm or self._alone or (settle and loss) or len(loss) + len(grad) >= _MAX_WAITING:
                # No partner is coming for it (the step has no gradient norm, or the module returns no loss: from
                # then on the norms are scored alone, as they arrive).
                self._alone = self.pair_grad_norm and not loss
                step, value = loss.popleft() if loss else grad.popleft()
                pair = (value, None) if name_is_loss else (None, value)
            else:
                return  # wait for the rest of the batch: the other series may hold this step
            if self._last_paired is not None and step <= self._last_paired:
                continue  # a resumed run replaying steps already scored
            self._last_paired = step
            found = self.instability.update(step, loss=pair[0], grad_norm=pair[1])
            if self.loss_is_auxiliary:
                found = [self.auxiliary(a) for a in found]
            self._found += [self._one_player(a) for a in found] if self.players else found

    def auxiliary(self, anomaly: Anomaly) -> Anomaly:
        """A divergence, a spike or an instability warning of an auxiliary loss is a note saying why (see the module
        docstring): an RL objective jumps and climbs as the returns grow. Its plateau keeps its facts alone: the
        advice to raise the LR is for a loss the run minimises."""
        if anomaly.series != TRAIN_LOSS:
            return anomaly
        # A return the run only logs has no detector: a blow-up of the loss beside it stays critical.
        return as_note(anomaly, self._auxiliary_note, keep_blowups=self._beside_return)

    @staticmethod
    def _one_player(anomaly: Anomaly) -> Anomaly:
        """One player's loss of several (see the module docstring): a note saying why, but for a non-finite value and
        a blow-up; a plateau keeps its facts alone (no advice to raise the LR of one player)."""
        return anomaly if anomaly.series == GRAD_NORM else as_note(anomaly, _PLAYERS_NOTE)

    @property
    def has_news(self) -> bool:
        """Anomalies were found since the last :meth:`collect`."""
        return bool(self._found)

    def collect(self) -> list[Anomaly]:
        """The anomalies found since the last call, oldest first."""
        found, self._found = self._found, []
        return found

    def state_dict(self) -> dict[str, Any]:
        return {
            "instability": self.instability.state_dict(),
            "throughput": self.throughput.state_dict(),
            "monitored": None if self.monitored is None else self.monitored.state_dict(),
            "overfit": None if self.overfit is None else self.overfit.state_dict(),
            "last_paired": self._last_paired,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict`, every part read before any is assigned: a damaged state
        raises ``KeyError``, ``TypeError`` or ``ValueError`` naming the field, and changes nothing."""
        saved = checked_mapping("the StabilityWatch state", state)
        require_keys("the StabilityWatch state", saved, ("instability", "throughput"))
        instability = self.instability.read_state(saved["instability"])
        throughput = self.throughput.restored_parts(saved["throughput"])
        monitored = None
        if self.monitored is not None and saved.get("monitored") is not None:
            monitored = self.monitored.restored_parts(saved["monitored"])
        overfit = None
        if self.overfit is not None:  # a state saved before it, or by a run watched otherwise, has none: a fresh one
            overfit = self.overfit.restored(saved.get("overfit"))
        last_paired = saved.get("last_paired")
        if last_paired is not None:
            last_paired = checked_whole("`StabilityWatch.last_paired`", last_paired)
            # The step of the last pair scored, which the monitor has seen: a later one would hold back every pair up
            # to it as a replay.
            scored = instability["last_step"]
            if scored is None or last_paired > scored:
                raise ValueError(f"Expected `StabilityWatch.last_paired` to be at most the monitor's last step "
                                 f"({scored}), but got {last_paired}")  # fmt: skip
        self.instability.set_state(instability)
        self.throughput.level, self.throughput.checks = throughput
        if self.monitored is not None and monitored is not None:
            self.monitored.level, self.monitored.checks = monitored
        if overfit is not None:
            self.overfit = overfit
        self._last_paired = last_paired
