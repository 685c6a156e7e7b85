"""curvecast's console lines go through the progress bar's own writer: each on a line of its own, the bar kept below."""

from __future__ import annotations

import io
import logging

from tqdm import tqdm

from curvecast.failsafe import BarSafeHandler


def _last_state(line: str) -> str:
    """A console line as it ends up on screen: what follows the last carriage return."""
    return line.rsplit("\r", 1)[-1]


def _line_beside_a_bar(handler: logging.Handler, stream: io.StringIO) -> list[str]:
    bar = tqdm(total=10, file=stream, ascii=True, dynamic_ncols=False, ncols=60, mininterval=0)
    bar.update(3)
    record = logging.LogRecord("curvecast", logging.INFO, __file__, 1, "curvecast step 300/1000: loss 2.41", (), None)
    handler.emit(record)
    bar.update(1)
    bar.close()
    return [_last_state(line) for line in stream.getvalue().split("\n")]


def test_a_forecast_line_gets_a_line_of_its_own_and_the_bar_goes_on_below():
    stream = io.StringIO()
    lines = _line_beside_a_bar(BarSafeHandler(stream), stream)
    assert "curvecast step 300/1000: loss 2.41" in lines  # the whole line, not glued to the bar's last column
    after = lines[lines.index("curvecast step 300/1000: loss 2.41") + 1 :]
    assert any("4/10" in line for line in after)  # the bar is drawn again below the line, and goes on


def test_a_plain_handler_would_glue_the_line_to_the_bar():
    stream = io.StringIO()
    lines = _line_beside_a_bar(logging.StreamHandler(stream), stream)
    assert "curvecast step 300/1000: loss 2.41" not in lines
