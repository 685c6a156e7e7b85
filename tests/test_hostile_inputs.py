"""Hostile inputs at the edges that meet users: the `curvecast demo` arguments, a TensorBoardLogger subclass, and
markdown in what a run names (its metric names and messages) reaching TensorBoard's Text tab."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl

from curvecast import Curvecast
from curvecast.cli import main
from curvecast.integrations import Alert, publish_alert
from run_helpers import read_events, texts, tiny_trainer
from tiny_models import FLAVOURS, loader

# --- `curvecast demo` arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", ["-5", "0", "1.5", "many"])
def test_demo_steps_must_be_a_positive_integer(steps, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--steps", steps, "--logdir", str(tmp_path)])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"curvecast demo: error: argument --steps: Expected a positive integer, but got '{steps}'" in err
    assert "Traceback" not in err


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a directory")
    return path


@pytest.mark.parametrize(
    "logdir", [_a_file, lambda tmp_path: _a_file(tmp_path) / "logs"], ids=["a file", "under a file"]
)
def test_demo_log_dir_that_cannot_be_written_is_one_line_and_status_2(logdir, tmp_path, capsys):
    path = str(logdir(tmp_path))
    assert main(["demo", "--steps", "5", "--logdir", path]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # refused before any training
    assert err.startswith(f"curvecast demo: error: Cannot write the log directory {path}: ")
    assert err.count("\n") == 1
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_demo_log_dir_name_is_printed_on_one_line(tmp_path, capsys):
    blocker = _a_file(tmp_path)
    path = str(blocker / "new\nline\x1b[31m")
    assert main(["demo", "--logdir", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "\x1b" not in err
    assert "new\\nline\\x1b[31m" in err


# --- a TensorBoardLogger subclass --------------------------------------------------------------------------------


class PlLogger(pl.loggers.TensorBoardLogger):
    """A user's TensorBoardLogger subclass (pytorch_lightning)."""


class LLogger(L.loggers.TensorBoardLogger):
    """A user's TensorBoardLogger subclass (lightning.pytorch)."""


SUBCLASSES = {"pytorch_lightning": PlLogger, "lightning.pytorch": LLogger}


@pytest.mark.parametrize("flavour", list(FLAVOURS))
def test_curvecast_scalars_land_in_the_event_file_of_a_tensorboard_logger_subclass(flavour, tmp_path, recwarn):
    _, model_cls = FLAVOURS[flavour]
    logger = SUBCLASSES[flavour](str(tmp_path), name="sub")
    bundle = Curvecast(forecast_every=10, background=False, forecast_budget=None)
    trainer = tiny_trainer(tmp_path, [bundle], 40, logger=logger, flavour=importlib.import_module(flavour),
                           log_every_n_steps=1)  # fmt: skip
    trainer.fit(model_cls(), loader(n=320))
    assert not [w for w in recwarn if "get no forecasts" in str(w.message)]
    scalars = read_events(logger.log_dir).Tags()["scalars"]
    assert "curvecast/loss" in scalars, scalars
    assert [t for t in scalars if t.startswith("curvecast/forecast/")], scalars


@pytest.mark.parametrize(
    ("logger_cls", "hidden"),
    [(PlLogger, "lightning.pytorch.loggers.tensorboard"), (LLogger, "pytorch_lightning.loggers.tensorboard")],
    ids=["pytorch_lightning only", "lightning.pytorch only"],
)
def test_a_subclass_is_found_with_one_flavour_only(logger_cls, hidden, tmp_path, monkeypatch):
    logger = logger_cls(str(tmp_path), name="sub")
    monkeypatch.setitem(sys.modules, hidden, None)  # as if that flavour were not installed
    publish_alert(SimpleNamespace(loggers=[logger]), Alert("spike", 3, "warning", "loss spiked at step 3."))
    assert ["loss spiked at step 3." in text for text in texts(read_events(logger.log_dir))] == [True]


def test_other_loggers_are_not_taken_for_tensorboard(tmp_path):
    csv = pl.loggers.CSVLogger(str(tmp_path))
    publish_alert(SimpleNamespace(loggers=[csv]), Alert("spike", 3, "warning", "loss spiked at step 3."))
    assert not list(tmp_path.rglob("events.out.tfevents.*"))  # no TensorBoard logger: no event file
    tb = PlLogger(str(tmp_path), name="tb")
    publish_alert(SimpleNamespace(loggers=[csv, tb]), Alert("spike", 4, "warning", "loss spiked at step 4."))
    assert ["loss spiked at step 4." in text for text in texts(read_events(tb.log_dir))] == [True]


# --- markdown from the run in the alerts ---------------------------------------------------------------------


def markdown_to_safe_html(markdown: str) -> str:
    """TensorBoard's own rendering of a text summary (its Text tab's markdown, then its HTML sanitizer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its vendored sanitizer warns on import
        from tensorboard.plugin_util import markdown_to_safe_html as render

        return render(markdown)


HOSTILE = [
    "val/![x](http://e.com/x.png) spiked at step 7.",
    "[click](javascript:alert(1)) and [ref][r]\n\n[r]: http://e.com",
    "<img src=x onerror=alert(1)> <http://e.com> <a@e.com>",
    "*em* _u_ **b** __b__ `code` ```\nfence\n``` \\",
    "loss\n# heading\n- item\n+ item\n* item\n1. one\n2) two\n> quote\n---\n***",
    "a | b\n--|--\nc | d",
    "{x} ![y][r] !\\[z\\]",
]


@pytest.mark.parametrize("message", HOSTILE)
def test_markdown_in_a_message_renders_as_text(message):
    html = markdown_to_safe_html(Alert("spike", 7, "warning", message).markdown())
    for tag in ("<img", "<a ", "<a>", "<h1", "<ul", "<ol", "<li", "<blockquote", "<table", "<em", "<hr", "<pre"):
        assert tag not in html, (tag, html)
    # The bold severity and the code-quoted kind are the alert's own formatting: they still render.
    assert html.startswith("<p><strong>warning</strong> · <code>spike</code> · step 7</p>")
    assert html.count("<strong>") == 1
    assert html.count("<code>") == 1


def test_markdown_string_escapes_what_markdown_would_read():
    text = Alert("spike", 7, "warning", "val/![x](http://e.com/x.png) *a* _b_ `c` {d} e|f \\ <g> & 1. 2").markdown()
    body = text.split("\n\n", 1)[1]
    assert body == r"val/\!\[x\](http://e.com/x.png) \*a\* \_b\_ \`c\` \{d\} e\|f \\ &lt;g&gt; &amp; 1. 2"
    # Block syntax only counts at the start of a line: escaped there, left alone inside one.
    lines = Alert("x", 1, "info", "a - b + c # d\n- e\n  + f\n# g\n12. h\n3) i").markdown().split("\n\n", 1)[1]
    assert lines == "a - b + c # d\n\\- e\n  \\+ f\n\\# g\n12\\. h\n3\\) i"


@pytest.mark.parametrize(
    "message", ["loss became nan at step 5.", "val/acc_top-1 (ema) spiked 2.5x above 0.91 | step 7 of 1,000!"]
)
def test_the_rendered_text_reads_as_the_message(message):
    html = markdown_to_safe_html(Alert("spike", 7, "warning", message).markdown())
    body = html.split("</p>\n<p>", 1)[1].removesuffix("</p>")
    assert body == message


def test_a_kind_cannot_leave_its_code_span():
    alert = Alert("spike\n\n![x](http://e.com/x.png)`", 7, "warning", "m")
    html = markdown_to_safe_html(alert.markdown())
    assert "<img" not in html
    assert html.startswith("<p><strong>warning</strong> · <code>spike ![x](http://e.com/x.png)'</code> · step 7")


def test_the_escaped_markdown_reaches_the_event_file(tmp_path):
    logger = pl.loggers.TensorBoardLogger(str(tmp_path), name="tb")
    publish_alert(SimpleNamespace(loggers=[logger]), Alert("spike", 3, "warning", "x/![i](http://e.com/i.png)"))
    [written] = texts(read_events(logger.log_dir))
    assert "<img" not in markdown_to_safe_html(written)
