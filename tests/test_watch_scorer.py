"""The detectors score off the training thread, one step behind, and find what inline scoring finds."""

from __future__ import annotations

import threading

import numpy as np
import pytorch_lightning as pl
from test_stop_at_decision import Diverging

from curvecast import Actuator, Curvecast
from curvecast.callbacks.gradient_noise_scale import GradientNoiseScale
from curvecast.callbacks.measures import gns_cadence
from curvecast.callbacks.measures.gns_cadence import MAX_NORM_SPACING
from curvecast.integrations import StopReason
from curvecast.live.stability_watch import StabilityWatch
from curvecast.live.watch_scorer import WatchScorer
from curvecast.series import GRAD_NORM
from tiny_models import CurveModule


class Anomalies(Actuator):
    def __init__(self) -> None:
        self.found = []  # (anomaly kind, its step, the run's step when it was reported)

    def on_report(self, trainer, pl_module, report):
        self.found += [(a.kind, a.step, report.run_step) for a in report.anomalies]


def test_a_spike_keeps_its_step_and_is_reported_one_step_after_inline_scoring(quiet_trainer_kwargs, monkeypatch):
    threads = set()
    feed = StabilityWatch.feed

    def watched_feed(self, name, step, value):
        threads.add(threading.current_thread().name)
        feed(self, name, step, value)

    monkeypatch.setattr(StabilityWatch, "feed", watched_feed)
    rng = np.random.default_rng(0)
    steps = np.arange(200)
    curve = (2.0 + 3.0 * (1 + steps / 20) ** -0.5) * np.exp(0.01 * rng.standard_normal(200))
    curve[150] *= 3.0
    seen = {}
    for background in (False, True):
        threads.clear()
        journal = Anomalies()
        bundle = Curvecast(forecast_budget=None, forecast_every=50, background=background, actuators=[journal])
        pl.Trainer(max_steps=200, callbacks=[bundle], **quiet_trainer_kwargs).fit(CurveModule(curve=curve))
        seen[background] = ([(k, s, r) for k, s, r in journal.found if k == "spike"], set(threads))
    (inline, inline_threads), (behind, behind_threads) = seen[False], seen[True]
    assert [(k, s) for k, s, _ in inline] == [(k, s) for k, s, _ in behind] == [("spike", 150)]
    assert behind[0][2] == inline[0][2] + 1  # found as the flush of step 151 was scored, during the next step
    assert inline_threads == {threading.main_thread().name}
    assert behind_threads == {"curvecast-watch"}


def test_a_divergence_stops_one_step_after_inline_scoring_would(quiet_trainer_kwargs):
    stops = {}
    for background in (False, True):
        bundle = Curvecast(forecast_every=100, background=background, forecast_budget=None, early_stopping=True)
        trainer = pl.Trainer(max_steps=600, log_every_n_steps=50, callbacks=[bundle], **quiet_trainer_kwargs)
        trainer.fit(Diverging())
        assert bundle.stop is not None
        assert bundle.stop.reason is StopReason.DIVERGENCE
        assert trainer.global_step == bundle.stop.step + 1  # the stop takes effect at the step it was decided
        stops[background] = bundle.stop.step
    assert stops[True] == stops[False] + 1


def test_a_read_of_the_watch_waits_for_the_batch_in_flight():
    release = threading.Event()
    watch = StabilityWatch(pair_grad_norm=False)  # each loss scored as it comes
    feed = watch.feed

    def slow_feed(name, step, value):
        release.wait()
        feed(name, step, value)

    watch.feed = slow_feed
    scorer = WatchScorer(watch, background=True)
    for step in range(20):
        scorer.feed("loss", step, 1.0 / (step + 1))
    scorer.hand_over()
    release.set()
    assert scorer.watch.instability.loss.n == 20  # settled: the whole batch, not the part scored so far
    scorer.feed("loss", 20, 0.04)
    scorer.close()  # what was not handed over is scored too
    assert watch.instability.loss.n == 21


def test_unread_says_when_points_were_scored_since_the_last_read():
    """The bundle looks at the detectors only when `unread`: after a hand-over, an inline point or a `score_now` with
    points, never between them."""
    scorer = WatchScorer(StabilityWatch(pair_grad_norm=False), background=True)
    assert not scorer.unread
    scorer.feed("loss", 0, 1.0)
    assert not scorer.unread  # taken, not yet handed over
    scorer.hand_over()
    assert scorer.unread
    assert scorer.read().instability.loss.n == 1
    assert not scorer.unread
    scorer.hand_over()  # nothing new to hand over
    scorer.score_now()
    assert not scorer.unread
    scorer.feed("loss", 1, 0.9)
    scorer.score_now()
    assert scorer.unread
    scorer.close()
    inline = WatchScorer(StabilityWatch(pair_grad_norm=False), background=False)
    inline.feed("loss", 0, 1.0)
    assert inline.unread
    assert inline.read().instability.loss.n == 1
    assert not inline.unread


def test_a_loss_is_scored_with_its_batch_when_its_step_has_no_gradient_norm(quiet_trainer_kwargs, monkeypatch):
    # Every pass over the gradients too costly: the norm is measured 128 steps apart, and the losses between are not
    # held back for it (they once waited for the next norm, and a NaN was reported tens of steps late).
    monkeypatch.setattr(gns_cadence, "NORM_SHARE", 1e-12)
    rng = np.random.default_rng(0)
    steps = np.arange(300)
    curve = (2.0 + 3.0 * (1 + steps / 20) ** -0.5) * np.exp(0.01 * rng.standard_normal(300))
    curve[170] = np.nan
    for background in (False, True):
        journal = Anomalies()
        bundle = Curvecast(forecast_budget=None, forecast_every=50, background=background, actuators=[journal])
        pl.Trainer(max_steps=300, callbacks=[bundle], **quiet_trainer_kwargs).fit(CurveModule(curve=curve))
        norm_steps = bundle.history.series(GRAD_NORM).steps
        assert np.diff(norm_steps)[-1] == MAX_NORM_SPACING  # spaced by their cost
        nonfinite = [(s, r) for k, s, r in journal.found if k == "nonfinite"]
        assert nonfinite[0][0] == 170  # at its own step
        assert nonfinite[0][1] <= 175 + background  # found with the flush of step 175 (background: one step on)


def test_the_losses_of_the_last_steps_are_scored_with_their_norms(quiet_trainer_kwargs):
    # 300 steps, the losses' moves every 8: the last 4 steps' losses and norms reach the host together at the last
    # step (the norms once came first, were scored alone, and the losses after them were taken for a replay).
    rng = np.random.default_rng(0)
    steps = np.arange(300)
    curve = (2.0 + 3.0 * (1 + steps / 20) ** -0.5) * np.exp(0.01 * rng.standard_normal(300))
    curve[298] = np.nan
    journal = Anomalies()
    gns = GradientNoiseScale(norm_every_n_steps=1, log_metrics=False)
    bundle = Curvecast(forecast_budget=None, gradient_noise=gns, actuators=[journal])
    pl.Trainer(max_steps=300, callbacks=[bundle], **quiet_trainer_kwargs).fit(CurveModule(curve=curve))
    assert [s for k, s, _ in journal.found if k == "nonfinite"] == [298]
    assert bundle.history.series("loss").steps[-1] == 299
