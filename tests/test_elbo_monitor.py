"""A VAE's ELBO watched live: ``Curvecast(monitor="elbo")`` must know it is better high without ``mode="max"``."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from curvecast import Curvecast  # noqa: E402
from curvecast.integrations.actuator import Actuator  # noqa: E402
from run_helpers import tiny_trainer  # noqa: E402 - needs torch, checked above
from tiny_models import TinyRegression, loader  # noqa: E402


class LogsElbo(TinyRegression):
    """Logs the negated loss as ``elbo``, the evidence lower bound a VAE logs beside its loss: it rises as it learns."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("elbo", -loss.detach())
        return loss

    def train_dataloader(self):
        return loader(n=64, batch_size=8)


class _Reports(Actuator):
    def __init__(self) -> None:
        self.reports: list = []

    def on_report(self, trainer, pl_module, report) -> None:
        self.reports.append(report)


def test_a_monitored_elbo_is_better_high(tmp_path) -> None:
    """The name `elbo` said nothing to curvecast: the bundle took it for a loss, so its best was the untrained model's
    lowest bound and its rise was reported as a climb."""
    recorder = _Reports()
    bundle = Curvecast(monitor="elbo", background=False, tensorboard=False, forecast_every=20, actuators=[recorder])
    tiny_trainer(tmp_path, [bundle], max_steps=80, logger=False).fit(LogsElbo(lr=0.02))
    elbo = bundle.history.series("elbo").values
    assert elbo[-5:].mean() > elbo[:5].mean()  # it rose
    assert bundle.mode == "max"
    last = recorder.reports[-1]
    assert last.mode == "max"
    assert last.best == pytest.approx(elbo.max())
    assert [a for r in recorder.reports for a in r.anomalies if a.kind == "divergence" and a.series == "elbo"] == []
