"""HyperparameterAdvisor: each piece of advice from its evidence, once; the arithmetic behind it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from curvecast import Curvecast
from curvecast.forecasting import AnomalyDetector, Report
from curvecast.forecasting.anomalies import Anomaly
from curvecast.history import RunHistory
from curvecast.integrations import HyperparameterAdvisor
from curvecast.integrations import advice_math as am
from tiny_models import CurveModule


def _history(**series) -> RunHistory:
    history = RunHistory()
    for name, values in series.items():
        history.extend(name.replace("__", "/"), np.arange(len(values)) * 10, values)
    return history


def _report(
    step=500, anomalies=(), horizon=1000, lr_drop_ahead=False, recorded: RunHistory | None = None, known: bool = True
) -> Report:
    """A report as the bundle makes it: the recorded series, and the LR so far read from them."""
    recorded = recorded if recorded is not None else RunHistory()
    series = {name: recorded.series(name) for name in recorded.names()}
    lrs = series["lr"].values if "lr" in series else None
    return Report(
        step=step, monitor="loss", horizon=horizon, anomalies=tuple(anomalies), lr_drop_ahead=lr_drop_ahead,
        lr=None if lrs is None else float(lrs[-1]), peak_lr=None if lrs is None else float(lrs.max()), series=series,
        lr_schedule_known=known,
    )  # fmt: skip


def _topics(advisor) -> list[str]:
    return [a.kind for a in advisor.advice]


def test_batch_far_below_the_noise_scale_gives_the_steps_trade_off_once(caplog):
    recorded = _history(gns__b_simple=[400.0, 500.0, 640.0])
    advisor = HyperparameterAdvisor(batch_size=8)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        advisor.on_report(None, None, _report(recorded=recorded))
        advisor.on_report(None, None, _report(recorded=recorded, step=600))
    assert _topics(advisor) == ["advice/batch_size"]
    message = advisor.advice[0].message
    assert "80x below" in message
    assert "S = S_min(1 + B_crit/B)" in message
    assert "81.0x" in message  # S / S_min = 1 + B_crit / B = 1 + 640 / 8
    assert sum("advice/batch_size" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(("batches", "advised"), [(32, False), (400, True)])
def test_no_batch_advice_past_the_whole_data_set(batches, advised):
    """B_simple of 1400 against a batch of 32: on 32 batches of 32 (1024 examples, a healthy tiny classifier) no batch
    reaches it and the estimate says little; on 400 batches the trade-off is told."""
    from types import SimpleNamespace

    recorded = _history(gns__b_simple=[1200.0, 1300.0, 1400.0])
    trainer = SimpleNamespace(
        num_training_batches=batches, train_dataloader=SimpleNamespace(batch_size=32), world_size=1,
        accumulate_grad_batches=1,
    )  # fmt: skip
    advisor = HyperparameterAdvisor()
    advisor.on_report(trainer, None, _report(recorded=recorded))
    assert _topics(advisor) == (["advice/batch_size"] if advised else [])


def test_batch_far_above_the_noise_scale_gives_the_data_trade_off():
    recorded = _history(gns__b_simple=[5.0, 6.0, 8.0])
    advisor = HyperparameterAdvisor(batch_size=1024)
    advisor.on_report(None, None, _report(recorded=recorded))
    assert "E = E_min(1 + B/B_crit)" in advisor.advice[0].message
    assert "129.0x" in advisor.advice[0].message  # E / E_min = 1 + B / B_crit = 1 + 1024 / 8


def test_noise_scale_must_persist_before_advice():
    recorded = _history(gns__b_simple=[400.0, 20.0, 640.0])
    advisor = HyperparameterAdvisor(batch_size=8)
    advisor.on_report(None, None, _report(recorded=recorded))
    assert advisor.advice == []


def test_spikes_alone_never_make_the_lr_suspect():
    curve = [2.0 + 8.0 / (1 + t / 20) + 0.01 * (t % 3) for t in range(1000)]
    for t in (400, 600, 800):
        curve[t] += 3.0
    detector = AnomalyDetector()
    found = [a for t, v in enumerate(curve) for a in detector.update(t, v)]
    assert [a.kind for a in found] == ["spike"] * 3
    recorded = _history(lr=[0.1] * 5)
    advisor = HyperparameterAdvisor()
    advisor.on_report(None, None, _report(recorded=recorded, step=900, anomalies=found))
    assert "advice/lr_too_high" not in _topics(advisor)


def test_only_a_confirmed_divergence_makes_the_lr_suspect():
    recorded = _history(lr=[0.3] * 5)
    advisor = HyperparameterAdvisor()
    advisor.on_report(
        None, None, _report(recorded=recorded, anomalies=[Anomaly("divergence", 450, "warning", "rising")])
    )
    assert advisor.advice == []
    advisor.on_report(
        None, None, _report(recorded=recorded, anomalies=[Anomaly("divergence", 480, "critical", "climbing")])
    )
    assert _topics(advisor) == ["advice/lr_too_high"]


def test_divergence_suggests_a_third_of_the_lr():
    recorded = _history(lr=[0.3] * 5)
    advisor = HyperparameterAdvisor()
    advisor.on_report(
        None, None, _report(recorded=recorded, anomalies=[Anomaly("divergence", 450, "critical", "climbing")])
    )
    assert advisor.advice[0].severity == "warning"
    assert "about a third, e.g. 0.1" in advisor.advice[0].message


def test_early_spikes_point_at_the_warmup():
    recorded = _history(lr=[0.0, 0.02, 0.04, 0.06, 0.1, 0.1, 0.1])
    advisor = HyperparameterAdvisor()
    advisor.on_report(
        None, None, _report(recorded=recorded, step=100, anomalies=[Anomaly("spike", 45, "warning", "spike")])
    )
    assert _topics(advisor) == ["advice/warmup"]
    assert "warmup of 40 steps" in advisor.advice[0].message
    assert "about 90 steps" in advisor.advice[0].message


def test_early_spikes_that_recovered_at_once_give_no_warmup_advice():
    advisor = HyperparameterAdvisor()
    notes = [Anomaly("spike", 27, "info", "a one-batch spike"), Anomaly("spike", 31, "info", "a one-batch spike")]
    advisor.on_report(None, None, _report(recorded=_history(lr=[0.1] * 7), step=100, anomalies=notes))
    assert _topics(advisor) == []


def test_data_loader_bound():
    recorded = _history(throughput__data_wait_fraction=[0.5, 0.4, 0.6], throughput__data_wait=[0.02, 0.03, 0.025])
    advisor = HyperparameterAdvisor()
    advisor.on_report(None, None, _report(recorded=recorded))
    assert _topics(advisor) == ["advice/data_loader"]
    assert "num_workers" in advisor.advice[0].message


def test_a_fast_step_waiting_a_fraction_of_a_millisecond_is_not_data_bound():
    """A 1 ms step of an MLP on an in-memory TensorDataset spends 0.3 ms collating its batch: 23% of the step, and
    nothing a DataLoader worker could take off it."""
    recorded = _history(throughput__data_wait_fraction=[0.23, 0.24, 0.22], throughput__data_wait=[3e-4] * 3)
    advisor = HyperparameterAdvisor()
    advisor.on_report(None, None, _report(recorded=recorded))
    assert _topics(advisor) == []


@pytest.mark.parametrize(
    ("drop_ahead", "known", "advised"), [(False, True, True), (True, True, False), (False, False, False)]
)
def test_plateau_advice_only_without_a_decay_ahead(drop_ahead, known, advised):
    # An unknown schedule (ReduceLROnPlateau) may decay the LR at any time: it was told to add a ReduceLROnPlateau.
    advisor = HyperparameterAdvisor()
    plateau = Anomaly("plateau", 700, "info", "flat")
    advisor.on_report(None, None, _report(step=700, anomalies=[plateau], lr_drop_ahead=drop_ahead, known=known))
    assert _topics(advisor) == (["advice/plateau"] if advised else [])


@pytest.mark.parametrize(("since", "advised"), [(0, False), (300, True)])
def test_no_decay_is_advised_for_a_loss_flat_since_its_first_point(since, advised):
    recorded = _history(loss=np.r_[np.linspace(1.5, 0.75, 31), np.full(40, 0.75)])  # steps 0..700, flat from 300
    advisor = HyperparameterAdvisor()
    plateau = Anomaly("plateau", 700, "info", "flat", score=700.0 - since)  # the score is the plateau's span
    advisor.on_report(None, None, _report(step=700, anomalies=[plateau], recorded=recorded))
    assert _topics(advisor) == (["advice/plateau"] if advised else [])


def test_a_run_that_never_learns_is_not_told_to_decay_its_lr(quiet_trainer_kwargs):
    # A loss flat from its first step at a constant LR: the plateau is found (a note: try a higher LR, check the
    # data), and no advice to decay the LR comes with it (it once did, at step 50 of a healthy live run).
    flat = 0.75 * np.exp(0.01 * np.random.default_rng(0).standard_normal(300))
    advisor = HyperparameterAdvisor()
    bundle = Curvecast(forecast_budget=None, advice=advisor, tensorboard=False)
    pl.Trainer(max_steps=300, callbacks=[bundle], **quiet_trainer_kwargs).fit(CurveModule(curve=flat))
    plateaus = [a for r in bundle.reports for a in r.anomalies if a.kind == "plateau"]
    assert plateaus
    assert plateaus[0].step - plateaus[0].score == 0  # flat since its first step
    assert _topics(advisor) == []


def test_a_surrogate_loss_about_zero_is_not_told_to_decay_its_lr(quiet_trainer_kwargs):
    # A policy-gradient surrogate scatters about 0 from its first step to its last: a noisy dip set the plateau's
    # reference, and the run was told a decay "brings the loss down a few percent more" (every seed of 0-5 was).
    surrogate = 0.03 * np.random.default_rng(0).standard_normal(300)
    advisor = HyperparameterAdvisor()
    bundle = Curvecast(forecast_budget=None, background=False, advice=advisor, tensorboard=False)
    pl.Trainer(max_steps=300, callbacks=[bundle], **quiet_trainer_kwargs).fit(CurveModule(curve=surrogate))
    plateaus = [a for r in bundle.reports for a in r.anomalies if a.kind == "plateau"]
    assert plateaus
    assert plateaus[0].step - plateaus[0].score > 0  # not flat since its first step: a dip set its reference
    assert _topics(advisor) == []


@pytest.mark.parametrize(("fall", "advised"), [(0.0, False), (0.02, False), (0.2, True)])
def test_decay_is_advised_only_past_the_noise_of_the_fall(fall, advised):
    noise = 0.03 * np.random.default_rng(1).standard_normal(71)
    recorded = _history(loss=np.r_[np.linspace(fall, 0.0, 31), np.zeros(40)] + noise)  # steps 0..700
    advisor = HyperparameterAdvisor()
    plateau = Anomaly("plateau", 700, "info", "flat", score=400.0)
    advisor.on_report(None, None, _report(step=700, anomalies=[plateau], recorded=recorded))
    assert _topics(advisor) == (["advice/plateau"] if advised else [])


def test_step_law_compares_lr_and_batch_for_llm_pretraining():
    model = torch.nn.Sequential(torch.nn.Embedding(1000, 64), torch.nn.Linear(64, 64), torch.nn.Linear(64, 1000))
    n = am.non_embedding_params(model)
    assert n == 64 * 64 + 64 + 64 * 1000 + 1000
    recorded = _history(lr=[1e-3] * 3)
    advisor = HyperparameterAdvisor(tokens_per_step=2**19)
    advisor.on_report(None, model, _report(recorded=recorded, horizon=10_000))
    tokens = 2**19 * 10_000
    # Step Law (Li et al. 2025), written out here rather than taken from the code under test.
    eta, batch = 1.79 * n**-0.713 * tokens**0.307, 0.58 * tokens**0.571
    message = advisor.advice[0].message
    assert "LLM pretraining only" in message
    assert f"about {eta:.3g}" in message
    assert f"{1e-3 / eta:.2f}x the optimum" in message
    assert f"({2**19 / batch:.2f}x)" in message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "Expected `batch_size` to be a positive int or None"),
        ({"planned_tokens": -1.0}, "Expected `planned_tokens` to be positive"),
        ({"batch_ratio": 1.0}, "Expected `batch_ratio` to be greater than 1"),
        ({"persistence": 0}, "Expected `persistence` to be a positive int"),
        ({"early_fraction": 1.5}, "Expected `early_fraction` to lie in"),
    ],
)
def test_advisor_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HyperparameterAdvisor(**kwargs)


def test_advice_math_rejects_non_positive_inputs():
    with pytest.raises(ValueError, match="Expected `batch` to be positive, but got 0"):
        am.steps_factor(0, 10)


class _Rollouts(torch.utils.data.IterableDataset):
    """An on-policy agent's experience source: each item is a state after a short numpy rollout (CPU work, a few
    milliseconds, far more than the step)."""

    def __iter__(self):
        rng = np.random.default_rng(0)
        while True:
            s = rng.uniform(-0.05, 0.05, 4)
            for _ in range(1000):
                s = s + 0.02 * np.tanh(s[::-1]) + 0.001 * rng.standard_normal(4)
            yield torch.tensor(s, dtype=torch.float32)


class _Agent(pl.LightningModule):
    def __init__(self, log_return: bool) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)
        self.log_return = log_return

    def training_step(self, batch, batch_idx):
        if self.log_return:
            self.log("episode_return", 20.0 + 0.1 * batch_idx)
        return (self.net(batch).squeeze(-1) - batch.sum(-1)).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(_Rollouts(), batch_size=1)


@pytest.mark.parametrize("log_return", [False, True])
def test_an_agent_whose_loader_steps_its_environment_is_not_told_to_add_workers(quiet_trainer_kwargs, log_return):
    advisor = HyperparameterAdvisor()
    bundle = Curvecast(advice=advisor, background=False, forecast_budget=None, tensorboard=False)
    pl.Trainer(max_steps=300, callbacks=[bundle], **quiet_trainer_kwargs).fit(_Agent(log_return))
    (data,) = [a for a in advisor.advice if a.kind == "advice/data_loader"]  # the wait is measured either way
    if log_return:  # workers would roll out stale copies of the policy
        assert data.severity == "info"
        assert "num_workers" not in data.message
        assert "The run logs `episode_return`, a return" in data.message
    else:
        assert data.severity == "warning"
        assert "num_workers" in data.message


class _EpochStepDecay(CurveModule):
    """A curve with a per-epoch StepLR (epochs of 100 steps): the LR falls to ``gamma`` times at epoch 5 (step 500)."""

    def __init__(self, curve, gamma: float | None) -> None:
        super().__init__(curve=curve, items=100)
        self.gamma = gamma

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr)
        if self.gamma is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 5, self.gamma)}


@pytest.mark.parametrize(("gamma", "advised"), [(0.7, False), (None, True)])
def test_plateau_advice_counts_a_step_decay_of_less_than_half_ahead(quiet_trainer_kwargs, gamma, advised):
    # An LSTM regressor with StepLR(step_size=5, gamma=0.7) per epoch was told at its plateau (steps 320-502 of 768)
    # that "the LR schedule has no decay ahead", with its 0.7x drop at step 640 still to come: only drops to half
    # or less counted as a decay ahead. Without a schedule the advice stands.
    rng = np.random.default_rng(0)
    curve = np.r_[np.linspace(1.0, 0.2, 150), np.full(550, 0.2)] * np.exp(0.01 * rng.standard_normal(700))
    advisor = HyperparameterAdvisor()
    bundle = Curvecast(forecast_budget=None, background=False, advice=advisor, tensorboard=False)
    pl.Trainer(max_steps=700, callbacks=[bundle], **quiet_trainer_kwargs).fit(_EpochStepDecay(curve, gamma))
    plateaus = [a for r in bundle.reports for a in r.anomalies if a.kind == "plateau" and a.step < 500]
    assert plateaus  # found before the drop, as the LSTM's were
    assert _topics(advisor) == (["advice/plateau"] if advised else [])
