"""A run another callback stops before its planned end (Lightning's EarlyStopping, a module setting
``trainer.should_stop``): curvecast's last line and the tab's last document say where it ended and why, with the
value it reached, and no forecast to the step it will not reach, nor any stop or "steps saved" of curvecast's."""

from __future__ import annotations

import logging

from pytorch_lightning.callbacks import EarlyStopping

from curvecast import Curvecast
from curvecast.tensorboard_plugin import documents
from curvecast.tensorboard_plugin.summary import FORECAST_TAG, decode
from run_helpers import read_events, tiny_trainer
from tiny_models import CurveModule, StopsAt, TinyRegression, loader

BATCHES = 20  # an epoch of loader(n=160)
EPOCHS = 40


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("curvecast")]


def test_early_stopping_of_lightning_ends_the_run_with_where_and_why_not_a_forecast_to_max_epochs(tmp_path, caplog):
    # No validation improves by 1e9: EarlyStopping stops after its third (patience 2), at the end of epoch 2.
    early = EarlyStopping(monitor="val_loss", patience=2, min_delta=1e9)
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle, early], -1, max_epochs=EPOCHS, log_every_n_steps=5)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(TinyRegression(lr=0.02), loader(n=160), loader(n=16))
    planned, ended = EPOCHS * BATCHES, trainer.global_step - 1
    assert early.stopped_epoch == 2
    assert ended == 3 * BATCHES - 1  # the last step taken, far short of the planned 800
    assert bundle.stop is None  # not curvecast's stop

    forecasts = [r for r in bundle.reports if r.forecast is not None and r.forecast.ok]
    assert forecasts  # the run was forecast while it trained
    last = bundle.reports[-1]
    assert last.is_last
    assert last.forecast is None  # no forecast of step 800, which the run never reaches
    assert last.ended_by.startswith("EarlyStopping at epoch 2 (")
    assert "val_loss did not improve in the last 2 records" in last.ended_by

    messages = _messages(caplog)
    line = messages[-1]
    assert line.startswith(
        f"curvecast: the run ended at step {ended} of {planned}, stopped before its planned end by EarlyStopping"
    )
    assert f"; loss {last.observed:.4g} (best {last.best:.4g})" in line
    assert f"at step {planned}" not in line
    assert not any("steps saved" in m for m in messages)

    events = read_events(trainer.logger.log_dir)
    document = decode(events.Tensors(FORECAST_TAG)[-1].tensor_proto.string_val[0])
    tab = documents.forecast(document, dropped := [])  # as the curvecast tab reads it
    assert not dropped
    assert (tab["ended_at"], tab["horizon"], tab["ended_by"]) == (ended, planned, last.ended_by)
    assert tab["curve"]["steps"] == []  # nothing to draw past the end
    assert tab["final"] == tab["observed"] == document["observed"]  # the value reached, not a forecast
    assert tab["final_lo"] is None and tab["final_hi"] is None  # noqa: PT018 - one fact: no interval
    # The forecast scalars (the Margin chart's "final") stop at the last forecast made while the run trained.
    assert events.Scalars("curvecast/forecast/final")[-1].step == forecasts[-1].step < ended


def test_a_stop_of_the_users_own_ends_the_run_stopped_before_its_planned_end(tmp_path, caplog):
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None, target=2.2, gradient_noise=False)
    trainer = tiny_trainer(tmp_path, [bundle, StopsAt(120)], 400, log_every_n_steps=1)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(CurveModule(400))
    assert trainer.global_step == 120
    line = _messages(caplog)[-1]
    assert line.startswith("curvecast: the run ended at step 119 of 400, stopped before its planned end by a callback")
    assert "; target 2.2: not reached" in line  # the loss floor is 2.0: not there by step 119
    assert bundle.reports[-1].forecast is None


def test_a_stop_at_the_last_step_is_the_planned_end(tmp_path, caplog):
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None, gradient_noise=False)
    trainer = tiny_trainer(tmp_path, [bundle, StopsAt(100)], 100, log_every_n_steps=1)
    with caplog.at_level(logging.INFO, logger="curvecast"):
        trainer.fit(CurveModule(100))
    assert not any("the run ended" in m for m in _messages(caplog))
    assert bundle.reports[-1].ended_by is None
