"""A REINFORCE agent under curvecast, logging no return: its surrogate loss, ``-(reward - baseline) * log pi(a)``,
falls through zero and wobbles about it as the baseline tracks the rewards. The climbing warnings measured rises by
their ratio to a level near 0: "loss has been climbing since about step 479: 0.0328 at step 489 (median of the last 7
points) against -0.1416 before", a median of 7 back from a burst of negative batches to the greedy ones near 0, 2.6
times the loss's own point-to-point scatter. Near zero a rise must now stand ``CLEAR_SCATTERS`` scatters clear.

Once its policy turns sharp the surrogate sits within 0.002 of 0 save an exploring batch every 5-30 steps, 0.1-0.3
above or below it, and each batch above was a spike warning ("loss spiked to 0.1531 at step 510, up from the expected
(-0.0005314)"): 6-49 a run over seeds 0-11 of 2,000 steps. Those batches are the loss's own noise: a spike as large
as the departures it made before is now a note (``excursions.py``).

The environment is a contextual bandit written here (no gym): 4 contexts, 2 arms of Bernoulli rewards."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
nn = torch.nn

from run_helpers import AnomalyRecorder  # noqa: E402 - needs torch, checked above

CONTEXTS, ARMS = 4, 2


class Reinforce(L.LightningModule):
    """REINFORCE with a running-mean baseline (from 0, so the first losses are positive) on a contextual bandit whose
    arms pay 1 with probability 0.35-0.65; each step plays a batch of 16 contexts."""

    def __init__(self, seed: int, batch: int = 16, lr: float = 3e-3) -> None:
        super().__init__()
        self.rng = torch.Generator().manual_seed(seed)
        self.pay = 0.35 + 0.3 * torch.rand(CONTEXTS, ARMS, generator=self.rng)
        self.policy = nn.Sequential(nn.Linear(CONTEXTS, 32), nn.Tanh(), nn.Linear(32, ARMS))
        self.batch, self.lr, self.baseline = batch, lr, 0.0

    def training_step(self, batch, batch_idx):
        context = torch.randint(0, CONTEXTS, (self.batch,), generator=self.rng)
        pi = torch.distributions.Categorical(logits=self.policy(nn.functional.one_hot(context, CONTEXTS).float()))
        arm = pi.sample()
        reward = (torch.rand(self.batch, generator=self.rng) < self.pay[context, arm]).float()
        advantage = reward - self.baseline
        self.baseline = 0.98 * self.baseline + 0.02 * reward.mean().item()
        return -(advantage * pi.log_prob(arm)).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(10_000, 1)), batch_size=1)


def fit(seed: int, steps: int, trainer_kwargs: dict) -> tuple[np.ndarray, list]:
    """The loss and every anomaly reported of ``steps`` steps of ``Reinforce(seed)`` under ``Curvecast()``."""
    from curvecast import Curvecast

    L.seed_everything(seed, verbose=False)
    recorder = AnomalyRecorder()
    bundle = Curvecast(background=False, tensorboard=False, actuators=[recorder])
    trainer = L.Trainer(max_steps=steps, callbacks=[bundle], **trainer_kwargs)
    trainer.fit(Reinforce(seed))
    assert trainer.global_step == steps
    return bundle.history.series("loss").values, recorder.anomalies


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 6])
def test_a_policy_gradient_loss_wobbling_about_zero_is_not_warned_of_a_climb(seed: int, quiet_trainer_kwargs) -> None:
    """Seeds 0-11 of 600 steps: 5 climbing warnings in 4 seeds (e.g. "0.0328 at step 489 (median of the last 7
    points) against -0.1416 before" in seed 6, two in seed 1), none now."""
    losses, anomalies = fit(seed, 600, quiet_trainer_kwargs)
    assert np.median(losses[:20]) > 0.2  # it fell through zero ...
    assert losses.min() < -0.2
    assert abs(np.median(losses[-200:])) < 0.01  # ... and wobbles about it, no return logged
    assert [(a.kind, a.step, a.message) for a in anomalies if a.severity != "info"] == []


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 3])
def test_a_sharp_policys_exploring_batches_are_noted_not_warned_as_spikes(seed: int, quiet_trainer_kwargs) -> None:
    """700 steps: 6 and 9 spike warnings before (seeds 0 and 3, from step 476), none now; the batches above 0 are
    still noted."""
    losses, anomalies = fit(seed, 700, quiet_trainer_kwargs)
    late = losses[-200:]
    assert abs(np.median(late)) < 0.005  # sharp: the greedy arm's batches ...
    assert np.mean(np.abs(late) < 0.01) > 0.8
    assert np.sum(late > 0.08) >= 3  # ... and the exploring ones
    assert [(a.kind, a.step, a.message) for a in anomalies if a.severity != "info"] == []
    assert len([a for a in anomalies if a.kind == "spike" and a.series == "loss"]) >= 5
