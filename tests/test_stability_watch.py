import math

import numpy as np

from curvecast.live.stability_watch import StabilityWatch
from curvecast.series import GRAD_NORM, SAMPLES_PER_SEC


def _curve(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    return (2.0 + 3.0 * (1 + steps / 20) ** -0.5) * np.exp(0.01 * rng.standard_normal(n))


def test_loss_waits_for_the_gradient_norm_of_its_step():
    watch = StabilityWatch()
    loss, grad = _curve(300), _curve(300, seed=1)
    loss[200] *= 3
    grad[199] *= 5
    for step in range(300):
        watch.feed("loss", step, loss[step])
    assert watch.collect() == []  # nothing scored yet: no gradient norm has arrived
    for step in range(300):
        watch.feed(GRAD_NORM, step, grad[step])
    found = {(a.kind, a.series, a.step) for a in watch.collect()}
    assert ("spike", "loss", 200) in found
    assert ("spike", "grad_norm", 199) in found


def test_a_series_that_never_comes_does_not_hold_the_other_forever():
    watch = StabilityWatch()
    grad = _curve(3000)
    grad[2500] = math.nan
    for step in range(3000):  # a module that returns no loss: only gradient norms arrive
        watch.feed(GRAD_NORM, step, grad[step])
        if step % 8 == 7:
            watch.score_waiting()  # a norm waits on for its loss at a hand-over: the losses may come less often
    assert watch.state_dict()["last_paired"] == 2999  # scored alone once 2000 waited: none still waiting for a loss
    assert [(a.kind, a.step) for a in watch.collect() if a.kind == "nonfinite"] == [("nonfinite", 2500)]


def test_norms_that_come_before_their_losses_wait_for_them():
    # The noise scale set to move its norms every 10 steps, the losses moving every 50.
    watch = StabilityWatch()
    loss, grad = _curve(100), _curve(100, seed=1)
    losses_in = 0
    for start in range(0, 100, 10):
        for step in range(start, start + 10):
            watch.feed(GRAD_NORM, step, grad[step])
        if start % 50 == 40:
            for step in range(losses_in, start + 10):
                watch.feed("loss", step, loss[step])
            losses_in = start + 10
        watch.score_waiting()
        assert watch.instability.n == losses_in  # a norm is scored with its loss, not before it
    assert watch.instability.grad.level.n == watch.instability.loss.level.n == 100  # each loss with its norm


def test_a_loss_without_a_gradient_norm_is_scored_with_its_batch_at_its_own_step():
    # The gradient norm of one step in 64 (a CPU spaces the pass over the gradients by its cost): the other losses
    # are not held back for norms their steps will not have.
    watch = StabilityWatch()
    loss, grad = _curve(400), _curve(400, seed=1)
    loss[301] = math.nan
    found = []
    for start in range(0, 400, 8):  # a batch: the losses and the norms of 8 steps, then the hand-over
        for step in range(start, start + 8):
            watch.feed("loss", step, loss[step])
        for step in range(start, start + 8):
            if step % 64 == 63:
                watch.feed(GRAD_NORM, step, grad[step])
        watch.score_waiting()
        found += [(a.kind, a.step, start) for a in watch.collect() if a.kind == "nonfinite"]
        assert watch.state_dict()["last_paired"] == start + 7
    assert found == [("nonfinite", 301, 296)]  # found with the batch it came in, at its own step
    assert watch.instability.grad.level.n == 400 // 64  # the norms that came were paired with their losses


def test_without_pairing_the_loss_is_scored_at_once_and_throughput_slowdowns_are_seen():
    watch = StabilityWatch(pair_grad_norm=False)
    watch.feed("loss", 0, math.inf)
    assert [a.kind for a in watch.collect()] == ["nonfinite"]
    for step in range(800):
        watch.feed(SAMPLES_PER_SEC, step, 1000.0 if step < 120 else 500.0)
    assert "slowdown" in {a.kind for a in watch.collect()}


def test_a_monitored_accuracy_that_falls_is_a_divergence_not_a_slowdown():
    watch = StabilityWatch(monitor="val_acc", mode="max", pair_grad_norm=False)
    values = np.r_[np.linspace(0.2, 0.8, 60), np.full(60, 0.1)]
    for step, value in enumerate(values):
        watch.feed("val_acc", step * 100, value)
    kinds = {a.kind for a in watch.collect()}
    assert "slowdown" not in kinds
    assert "divergence" in kinds


def test_state_round_trip_continues_where_it_left_off():
    loss, grad = _curve(400), _curve(400, seed=1)
    loss[300] *= 3
    split = 295  # close before the spike: a watch without the saved state has too little history to call it one
    whole, first, second = StabilityWatch(), StabilityWatch(), StabilityWatch()
    for step in range(400):
        whole.feed("loss", step, loss[step])
        whole.feed(GRAD_NORM, step, grad[step])
    for step in range(split):
        first.feed("loss", step, loss[step])
        first.feed(GRAD_NORM, step, grad[step])
    second.load_state_dict(first.state_dict())
    for step in range(split, 400):
        second.feed("loss", step, loss[step])
        second.feed(GRAD_NORM, step, grad[step])
    tail = [(a.kind, a.step) for a in whole.collect() if a.step >= split]
    assert ("spike", 300) in tail
    assert [(a.kind, a.step) for a in second.collect()] == tail
    assert second.state_dict() == whole.state_dict()


def _surrogate_loss(n: int = 200, seed: int = 0) -> np.ndarray:
    """A policy-gradient surrogate: it dips, then grows with the returns (0.45 -> 5), noisily."""
    steps = np.arange(n)
    trend = 0.8 - 0.35 * np.exp(-((steps - 15) ** 2) / 50.0) + 4.5 / (1 + np.exp(-(steps - 60) / 12.0))
    return trend * np.exp(0.3 * np.random.default_rng(seed).standard_normal(n))


def test_a_loss_watched_beside_a_score_is_never_critical():
    """An RL run watched by its return (mode="max"): its training loss grows with the returns; a note, no alarm."""
    watch = StabilityWatch(monitor="val_reward", mode="max", pair_grad_norm=False)
    for step, value in enumerate(_surrogate_loss()):
        watch.feed("loss", step, float(value))
    found = watch.collect()
    assert [a for a in found if a.severity == "critical"] == []
    assert [a for a in found if a.severity == "warning" and a.kind == "divergence"] == []
    assert any(a.kind == "divergence" and a.series == "loss" for a in found)  # still said, as a note


def test_a_non_finite_loss_beside_a_score_is_still_critical():
    watch = StabilityWatch(monitor="val_reward", mode="max", pair_grad_norm=False)
    for step, value in enumerate(_surrogate_loss(100)):
        watch.feed("loss", step, float(value))
    watch.feed("loss", 100, math.nan)
    assert [(a.kind, a.severity) for a in watch.collect() if a.step == 100] == [("nonfinite", "critical")]


def test_a_val_loss_that_overfits_is_not_a_confirmed_divergence():
    """The val loss climbs 1.7x from its best while the training loss keeps falling: overfitting, said as such, its
    climb a note and its confirmed divergence a warning."""
    watch = StabilityWatch(monitor="val_loss", mode="min", pair_grad_norm=False)
    train = 2.0 * np.exp(-np.arange(2000) / 400.0) + 0.05
    val = np.r_[np.linspace(0.11, 0.058, 6), np.linspace(0.06, 0.1, 14)]  # an evaluation every 100 steps
    for step in range(2000):
        watch.feed("loss", step, float(train[step]))
        if step % 100 == 99:
            watch.feed("val_loss", step, float(val[step // 100]))
    divergence = [a for a in watch.collect() if a.series == "val_loss" and a.kind == "divergence"]
    assert divergence
    assert all(a.severity != "critical" and "overfitting" in a.message for a in divergence)
    assert [a.severity for a in divergence if a.severity == "warning"] == ["warning"]  # the confirmed one, demoted
    for a in divergence:  # what happened, then the overfitting advice alone: no "lower the LR", no resume
        assert "val_loss" in a.message.split(".")[0]
        assert "LR" not in a.message, a.message
        assert "resume" not in a.message, a.message


def test_a_val_loss_that_climbs_with_the_training_loss_is_critical():
    watch = StabilityWatch(monitor="val_loss", mode="min", pair_grad_norm=False)
    train = np.r_[2.0 * np.exp(-np.arange(1000) / 150.0) + 0.05, np.geomspace(0.05, 5.0, 1000)]
    val = np.r_[np.linspace(0.11, 0.058, 10), np.geomspace(0.06, 6.0, 10)]
    for step in range(2000):
        watch.feed("loss", step, float(train[step]))
        if step % 100 == 99:
            watch.feed("val_loss", step, float(val[step // 100]))
    assert any(a.series == "val_loss" and a.severity == "critical" for a in watch.collect())


def test_an_auxiliary_loss_only_notes_its_spikes_and_instability():
    """Watched by its return, an RL run's loss jumps and climbs as the returns grow: its spikes and instability
    precursors are notes too (they were warnings: 18 of the healthy RL runs' 34 loud alarms)."""
    rng = np.random.default_rng(3)
    loss = np.abs(_surrogate_loss(400)) * np.exp(0.05 * rng.standard_normal(400))
    loss[[150, 250, 320]] *= 12.0  # batches of rare, large returns
    watch = StabilityWatch(monitor="val_reward", mode="max", pair_grad_norm=False)
    for step, value in enumerate(loss):
        watch.feed("loss", step, float(value))
    found = [a for a in watch.collect() if a.series == "loss"]
    assert any(a.kind == "spike" for a in found)  # still said
    assert [a for a in found if a.severity != "info"] == []


def _td_loss(seed: int, n: int = 1200) -> np.ndarray:
    """A DQN's TD loss: fitted to 0.07 in its first steps, then 300-fold higher as the targets grow with the returns
    (each target-network sync a jump the next steps fit); single batches swing it e-fold."""
    t = np.arange(n)
    fitted = 1.3 * np.exp(-t / 2.5) + 0.07
    scale = np.minimum(np.exp(np.clip(t - 10, 0, None) / 400 * math.log(300.0)), 300.0)
    level = np.where(t < 10, fitted, 0.07 * scale * (1.0 + 2.0 * np.exp(-(t % 10) / 3.0)))
    return level * np.exp(np.random.default_rng(seed).standard_normal(n))


def test_a_dqn_loss_watched_alone_is_not_stopped():
    """Lightning's DQN example logs nothing the watch reads but its TD loss, which climbs as the agent learns: it was
    stopped as diverged in every run."""
    for seed in range(3):
        watch = StabilityWatch(pair_grad_norm=False)
        for step, value in enumerate(_td_loss(seed)):
            watch.feed("loss", step, float(value))
        assert [a for a in watch.collect() if a.severity == "critical"] == []


def test_a_lucky_batch_just_after_the_warmup_does_not_stop_a_healthy_run():
    """Batch size 4, a 3-step warmup, and a batch at 0.0058 at step 3 where the loss falls 0.28 -> 0.09: it was the best
    the run was judged against, and the run was stopped for divergence."""
    lrs = [1e-3 * min(1.0, (s + 1) / 4) for s in range(301)]
    t = np.arange(300)
    for seed in range(5):
        loss = (0.09 + 0.19 * np.exp(-t / 80)) * np.exp(0.4 * np.random.default_rng(seed).standard_normal(300))
        loss[3] = 0.0058
        watch = StabilityWatch(pair_grad_norm=False)
        watch.set_schedule(lrs)
        for step, value in enumerate(loss):
            watch.feed("loss", step, float(value))
        assert [a for a in watch.collect() if a.severity == "critical"] == []
