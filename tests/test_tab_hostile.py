"""The curvecast tab over hostile event files, served by a real ``tensorboard`` process (each of its two loaders):
documents with NaN and Infinity, nesting 10,000 deep, a wrong type in each field, bytes that are not UTF-8, tensors
of the wrong dtype or shape, a 300,000-point curve. Every route answers 200 with what it could read and a bounded
body, a good run beside the bad ones is served whole, and the page draws every run without an error: in a headless
Chromium where one is installed, and in Node with a minimal DOM where Node is."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from devtools_pipe import CHROMIUM, DevTools
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from curvecast.tensorboard_plugin.summary import EVENTS_TAG, FORECAST_TAG, PLANNED_LR_TAG, json_summary
from run_helpers import TENSORBOARD_LOADERS, TensorBoardServer, rust_data_server

# A response's bound: the largest run's answer is ~400 KB at most (see curvecast.tensorboard_plugin.run_data).
MAX_BODY = 512 * 1024
END = 99  # the last observed step of each run but LONG (the server is ready when every run is served to it)
LONG_END = 19_999
SPIKE = 12_345  # in LONG's observed curve: 1000 where the rest is about 2
HUGE = 300_000  # points of LONG's forecast curve and planned LR

GOOD = "good"
NAN = "nan"
DEEP = "deep"
TYPES = "types"
RAW = "raw"
LONG = "long"
EMPTY = "unreadable"  # every curvecast document unreadable: still served, empty, with warnings
RUNS = {GOOD: END, NAN: END, DEEP: END, TYPES: END, RAW: END, LONG: LONG_END, EMPTY: END}

GOOD_FORECAST = {
    "step": 80, "monitor": "loss", "mode": "min", "horizon": 200, "last_step": 80, "interval": 0.8, "final": 2.1,
    "final_lo": 2.0, "final_hi": 2.2, "target": 1.9, "prob_target": 0.1, "step_to_target": None, "reached_at": None,
    "curve": {"steps": [80, 120, 160, 200], "mean": [2.3, 2.2, 2.15, 2.1], "lo": [2.3, 2.1, 2.05, 2.0],
              "hi": [2.3, 2.3, 2.25, 2.2]},
}  # fmt: skip
GOOD_PLANNED = {"horizon": 200, "steps": [0, 100, 150, 200], "lrs": [0.1, 0.1, 0.01, 0.01]}
GOOD_ANOMALIES = [
    {"kind": "spike", "series": "loss", "step": 30, "severity": "warning", "message": "loss spiked"},
    {"kind": "plateau", "series": "loss", "step": 70, "severity": "info", "message": "loss flat"},
]
STOP_MESSAGE = "Stopped at step 99 of 200: the target is out of reach"


# -- event files ----------------------------------------------------------------------------------------------------


def _string_tensor(payloads: list[bytes], shape: list[int] | None = None) -> tensor_pb2.TensorProto:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape or []]
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING, string_val=payloads, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims)
    )


def _curvecast_value(tag: str, tensor: tensor_pb2.TensorProto) -> summary_pb2.Summary:
    """A value tagged for the curvecast plugin, as :func:`json_summary` writes it, holding ``tensor`` as it is."""
    metadata = json_summary(tag, {}).value[0].metadata
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)])


def _raw(tag: str, text: bytes | str) -> summary_pb2.Summary:
    """A curvecast document tensor holding ``text`` unchecked (json_summary refuses what is not JSON)."""
    return _curvecast_value(tag, _string_tensor([text.encode() if isinstance(text, str) else text]))


def _scalar(tag: str, value: float) -> summary_pb2.Summary:
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])


def _alert(step: int, message: str | bytes) -> summary_pb2.Summary:
    """An ``early_stop`` alert as SummaryWriter.add_text writes the markdown of an alert."""
    head = f"**critical** · `early_stop` · step {step}\n\n".encode()
    metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
    body = message.encode() if isinstance(message, str) else message
    value = summary_pb2.Summary.Value(tag="curvecast/alerts/text_summary", metadata=metadata,
                                      tensor=_string_tensor([head + body]))  # fmt: skip
    return summary_pb2.Summary(value=[value])


class _Run:
    def __init__(self, root: Path, name: str) -> None:
        self._writer = EventFileWriter(str(root / name))

    def add(self, step: int, summary: summary_pb2.Summary) -> None:
        self._writer.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary))

    def curve(self, steps: range, value=lambda step: 2.0 + 1.0 / (step + 1)) -> None:
        for step in steps:
            self.add(step, _scalar("curvecast/loss", value(step)))

    def close(self) -> None:
        self._writer.close()


def _good(run: _Run) -> None:
    run.add(0, json_summary(PLANNED_LR_TAG, GOOD_PLANNED))
    for step in range(END + 1):
        run.add(step, _scalar("curvecast/lr", 0.1 if step < 150 else 0.01))
        if step % 20 == 0:
            run.add(step, _scalar("curvecast/forecast/final", 2.1))
            run.add(step, _scalar("curvecast/forecast/final_lo", 2.0))
            run.add(step, _scalar("curvecast/forecast/final_hi", 2.2))
    run.add(70, json_summary(EVENTS_TAG, {"anomalies": GOOD_ANOMALIES}))
    run.add(80, json_summary(FORECAST_TAG, GOOD_FORECAST))
    run.add(END, _scalar("curvecast/early_stopping/stopped", 1.0))
    run.add(END, _alert(END, STOP_MESSAGE))
    run.curve(range(END + 1))


def _nan(run: _Run) -> None:
    """NaN, Infinity and -Infinity tokens (Python's JSON reader accepts them) and a float past the range."""
    forecast = json.dumps(GOOD_FORECAST)
    replaced = (('"final": 2.1', '"final": NaN'), ('"target": 1.9', '"target": 1e999'),
                ('"mean": [2.3, 2.2,', '"mean": [2.3, Infinity,'), ('"hi": [2.3,', '"hi": [-Infinity,'))  # fmt: skip
    for good, bad in replaced:
        forecast = forecast.replace(good, bad)
    run.add(80, _raw(FORECAST_TAG, forecast))
    run.add(0, _raw(PLANNED_LR_TAG, '{"horizon": 200, "steps": [0, 100, 200], "lrs": [0.1, NaN, 0.01]}'))
    run.add(10, _raw(EVENTS_TAG, '{"anomalies": [{"kind": "spike", "step": 5, "severity": NaN, "message": "m"}]}'))
    for step in (3, 4):
        run.add(step, _scalar("curvecast/loss", float("nan") if step == 3 else float("inf")))
    run.curve(range(5, END + 1))


def _deep(run: _Run) -> None:
    """The latest forecast is nested 10,000 deep (an older one is good); the events document holds a deep field."""
    run.add(60, json_summary(FORECAST_TAG, GOOD_FORECAST))
    run.add(80, _raw(FORECAST_TAG, '{"step": ' + "[" * 10_000 + "]" * 10_000 + "}"))
    run.add(10, _raw(EVENTS_TAG, '{"anomalies": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}"))
    deep_field = "[" * 500 + "]" * 500
    run.add(0, _raw(PLANNED_LR_TAG, '{"steps": [0, 200], "lrs": [0.1, 0.01], "horizon": ' + deep_field + "}"))
    run.curve(range(END + 1))


def _types(run: _Run) -> None:
    """A wrong type in each field, and inside the arrays."""
    forecast = {
        "step": "eighty", "monitor": {"name": "loss"}, "mode": 7, "horizon": [200], "last_step": {"a": 1},
        "interval": "0.8", "final": True, "final_lo": {}, "final_hi": [2.2], "target": "1.9", "prob_target": None,
        "step_to_target": 1.5, "reached_at": False,
        "curve": {"steps": [80, "120", None, 200, 160.5, [1]], "mean": [2.3, "2.2", 2.15, {"toString": 1}, 2.0, 1.0],
                  "lo": "low", "hi": [2.3, 2.3]},
    }  # fmt: skip
    run.add(80, json_summary(FORECAST_TAG, forecast))
    run.add(0, json_summary(PLANNED_LR_TAG, {"horizon": "200", "steps": 5, "lrs": [0.1]}))
    anomalies = [1, "two", None, [3], {"step": "4"}, {"step": 5.5},
                 {"step": 40, "kind": 5, "series": [], "severity": "__proto__", "message": {"toString": 1}},
                 {"step": 50.0, "kind": "spike", "severity": "critical",
                  "message": "ok\x00\x07\u2028 \ud800 end"}]  # fmt: skip
    run.add(10, json_summary(EVENTS_TAG, {"anomalies": anomalies}))
    run.add(END, _scalar("curvecast/early_stopping/stopped", 1.0))
    run.add(END, _alert(END, b"\xff\xfe not UTF-8 " + b"x" * 100_000))
    run.curve(range(END + 1))


def _raw_tensors(run: _Run) -> None:
    """Tensors that are no documents: invalid JSON, not UTF-8, a float tensor, two strings, none, a JSON array."""
    run.add(70, _raw(FORECAST_TAG, '{"step": 70, "monitor": "loss", "final": 2.0}'))
    run.add(80, _raw(FORECAST_TAG, '{"step": 80, "final": '))  # cut short: the one of step 70 is served
    run.add(10, _raw(EVENTS_TAG, b'{"anomalies": [{"step": 5, "kind": "spike", "message": "\xff\xfe bytes"}]}'))
    scalar_shape = tensor_shape_pb2.TensorShapeProto()
    floats = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0], tensor_shape=scalar_shape)
    run.add(0, _curvecast_value(PLANNED_LR_TAG, floats))
    run.add(1, _curvecast_value(PLANNED_LR_TAG, _string_tensor([b"{}", b"{}"], [2])))
    run.add(2, _curvecast_value(PLANNED_LR_TAG, _string_tensor([], [0])))
    run.add(3, _raw(PLANNED_LR_TAG, "[1, 2, 3]"))
    run.curve(range(END + 1))


def _long(run: _Run) -> None:
    """A 20,000-step observed curve with a spike, a 300,000-point forecast curve and planned LR, 5,000 anomalies with
    long messages of characters that JSON escapes, and a 100,000-character monitor name in the mode field."""
    steps = list(range(HUGE))
    curve = [2.0 + 1.0 / (s + 1) + 1e-7 * s for s in steps]
    band = {"lo": [v - 0.1 for v in curve], "hi": [v + 0.1 for v in curve]}
    forecast = {**GOOD_FORECAST, "horizon": HUGE - 1, "last_step": 0, "mode": "m" * 100_000,
                "curve": {"steps": steps, "mean": curve, **band}}  # fmt: skip
    run.add(80, json_summary(FORECAST_TAG, forecast))
    planned = {"horizon": HUGE - 1, "steps": steps, "lrs": [0.1 / (1 + s) for s in steps]}
    run.add(0, json_summary(PLANNED_LR_TAG, planned))
    message = '\U0001f600"\\\n' * 100
    anomalies = [{"kind": "k" * 1000, "series": "s", "step": s, "severity": "warning", "message": message}
                 for s in range(5_000)]  # fmt: skip
    run.add(10, json_summary(EVENTS_TAG, {"anomalies": anomalies}))
    for step in range(0, LONG_END + 1, 7):
        run.add(step, _scalar("curvecast/lr", 0.1 / (1 + step)))
        run.add(step, _scalar("curvecast/forecast/final", 2.0 + (step % 13) / 100))
        run.add(step, _scalar("curvecast/forecast/final_lo", 1.9))
        run.add(step, _scalar("curvecast/forecast/final_hi", 2.3))
    for step in range(LONG_END - 20, LONG_END + 1):
        run.add(step, _scalar("curvecast/early_stopping/stopped", 1.0))
        run.add(step, _alert(step, "\U0001f600" * 10_000))
    run.curve(range(LONG_END + 1), lambda step: 1000.0 if step == SPIKE else 2.0 + 1.0 / (step + 1))


def _empty(run: _Run) -> None:
    run.add(80, _raw(FORECAST_TAG, "not json"))
    run.add(10, _raw(EVENTS_TAG, "[]"))
    run.curve(range(END + 1))


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tab_hostile")
    for name, write in ((GOOD, _good), (NAN, _nan), (DEEP, _deep), (TYPES, _types), (RAW, _raw_tensors),
                        (LONG, _long), (EMPTY, _empty)):  # fmt: skip
        run = _Run(root, name)
        write(run)
        run.close()
    return root


# -- a tensorboard process ------------------------------------------------------------------------------------------


# Each of TensorBoard's two loaders keeping up to 100,000 scalars a tag (so that LONG's spike reaches the plugin, which
# thins it; 0, "all", would leave the scalars plugin none to serve).
@pytest.fixture(scope="module", params=sorted(TENSORBOARD_LOADERS))
def server(request, logdir):
    if request.param == "rust" and rust_data_server() is None:
        pytest.skip("no binary of tensorboard-data-server for this platform: TensorBoard uses its Python loader")
    with TensorBoardServer(logdir, request.param, "--samples_per_plugin", "scalars=100000") as tensorboard:
        _wait_until_loaded(tensorboard.url)
        yield tensorboard.url
    assert not [line for line in tensorboard.log if "Traceback" in line], "".join(tensorboard.log[-40:])


def _wait_until_loaded(url: str) -> None:
    """Poll (60 s at most) until TensorBoard's scalars plugin serves every run's last observed step: the whole file
    is loaded then (the Rust loader reads in the background)."""
    served: dict = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        served = {}
        for run in RUNS:
            query = urllib.parse.urlencode({"run": run, "tag": "curvecast/loss"})
            status, body = _get(f"{url}/data/plugin/scalars/scalars?{query}")
            served[run] = json.loads(body)[-1][1] if status == 200 and json.loads(body) else None
        if served == RUNS:
            return
        time.sleep(0.05)
    pytest.fail(f"tensorboard did not load the runs in 60 s: expected {RUNS}, served {served}")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _run_url(server: str, run: str) -> str:
    return f"{server}/data/plugin/curvecast/run?" + urllib.parse.urlencode({"run": run})


def _run(server: str, run: str) -> dict:
    status, body = _get(_run_url(server, run))
    assert status == 200, body[:2000]
    assert len(body) < MAX_BODY
    return json.loads(body)


# -- the routes -----------------------------------------------------------------------------------------------------


def test_every_run_is_listed_and_answers_200_with_a_bounded_body(server):
    status, body = _get(f"{server}/data/plugin/curvecast/runs")
    assert status == 200
    assert json.loads(body) == sorted(RUNS)
    sizes = {}
    for run in RUNS:
        status, body = _get(_run_url(server, run))
        assert status == 200, (run, body[:2000])
        sizes[run] = len(body)
        data = json.loads(body)
        assert isinstance(data["warnings"], list)
    assert max(sizes.values()) < MAX_BODY, sizes
    print(f"\ncurvecast tab: bytes per run answer {sizes}")


def test_a_good_run_beside_bad_ones_is_served_whole(server):
    data = _run(server, GOOD)
    assert data["warnings"] == []
    assert data["monitor"] == "loss"
    assert data["observed"] == [[step, pytest.approx(2.0 + 1.0 / (step + 1))] for step in range(END + 1)]
    unwritten = dict.fromkeys(("observed", "best", "log_scale", "base", "worse_scale", "ended_at", "ended_by"))
    assert data["forecast"] == {**GOOD_FORECAST, **unwritten}
    assert data["planned_lr"] == GOOD_PLANNED
    assert data["anomalies"] == [{**a, "value": None} for a in GOOD_ANOMALIES]
    assert data["stops"] == [{"step": END, "message": STOP_MESSAGE}]
    assert [p[0] for p in data["lr"]] == list(range(END + 1))
    assert [p[0] for p in data["final_history"]["final"]] == list(range(0, END + 1, 20))
    assert data["final_history"]["final_lo"][0] == [0, pytest.approx(2.0)]


def test_nan_and_infinity_become_null_and_the_rest_is_kept(server):
    data = _run(server, NAN)
    forecast = data["forecast"]
    assert forecast["final"] is None
    assert forecast["target"] is None  # 1e999
    assert forecast["final_lo"] == 2.0
    assert forecast["horizon"] == 200
    assert forecast["curve"]["steps"] == GOOD_FORECAST["curve"]["steps"]
    assert forecast["curve"]["mean"] == [2.3, None, 2.15, 2.1]
    assert forecast["curve"]["hi"][0] is None
    assert data["planned_lr"] == {"horizon": 200, "steps": [0, 100, 200], "lrs": [0.1, None, 0.01]}
    assert data["anomalies"] == [{"step": 5, "kind": "spike", "series": "", "severity": "", "message": "m",
                                  "value": None}]  # fmt: skip
    assert [p[0] for p in data["observed"]][:2] == [5, 6]  # the non-finite scalars are left out


def test_deep_nesting_is_refused_and_an_older_document_is_served(server):
    data = _run(server, DEEP)
    assert data["forecast"]["step"] == GOOD_FORECAST["step"]  # the document of step 60, whose step field says 80
    assert data["forecast"]["curve"] == GOOD_FORECAST["curve"]
    assert any("step 80" in w and "nested" in w and "step 60" in w for w in data["warnings"]), data["warnings"]
    assert data["anomalies"] == []
    assert any("events" in w for w in data["warnings"])
    assert data["planned_lr"] == {"horizon": None, "steps": [0, 200], "lrs": [0.1, 0.01]}  # a deep field left out


def test_a_wrong_type_leaves_out_its_field_only(server):
    data = _run(server, TYPES)
    forecast = data["forecast"]
    assert data["monitor"] == "loss"
    assert forecast["step_to_target"] == 1.5
    for name in ("step", "monitor", "mode", "horizon", "last_step", "interval", "final", "final_lo", "final_hi",
                 "target", "reached_at"):  # fmt: skip
        assert forecast[name] is None, name
    curve = forecast["curve"]
    assert curve["steps"] == [80, 200]  # "120", None, 160.5 and [1] are no steps
    assert curve["mean"] == [2.3, None]
    assert curve["lo"] is None
    assert curve["hi"] is None  # two values for six steps
    assert data["planned_lr"] is None
    assert data["anomalies"] == [
        {"step": 40, "kind": "", "series": "", "severity": "__proto__", "message": "", "value": None},
        {
            "step": 50,
            "kind": "spike",
            "series": "",
            "severity": "critical",
            "message": "ok\u2028 \ufffd end",
            "value": None,
        },
    ]
    stop = data["stops"][0]
    assert stop["step"] == END
    assert stop["message"].startswith("\ufffd\ufffd not UTF-8 x")
    assert len(stop["message"]) <= 500
    text = " ".join(data["warnings"])
    assert "forecast" in text
    assert "horizon" in text
    assert "anomalies (6 without an integer step)" in text


def test_tensors_that_are_no_documents_are_skipped(server):
    data = _run(server, RAW)
    assert data["forecast"]["step"] == 70
    assert data["forecast"]["final"] == 2.0
    assert data["anomalies"] == [
        {"step": 5, "kind": "spike", "series": "", "severity": "", "message": "\ufffd\ufffd bytes", "value": None}
    ]
    assert data["planned_lr"] is None
    assert any("planned LR" in w for w in data["warnings"]), data["warnings"]
    assert data["observed"][-1][0] == END


def test_long_arrays_are_thinned_keeping_their_extremes(server):
    data = _run(server, LONG)
    observed = data["observed"]
    assert len(observed) <= 1000
    assert [observed[0][0], observed[-1][0]] == [0, LONG_END]
    assert [SPIKE, 1000.0] in observed  # the bucket's highest point stays
    assert [p[0] for p in observed] == sorted(p[0] for p in observed)
    curve = data["forecast"]["curve"]
    assert 100 <= len(curve["steps"]) <= 500
    assert len(curve["mean"]) == len(curve["lo"]) == len(curve["hi"]) == len(curve["steps"])
    assert [curve["steps"][0], curve["steps"][-1]] == [0, HUGE - 1]
    assert len(data["forecast"]["mode"]) == 16
    planned = data["planned_lr"]
    assert len(planned["steps"]) <= 500
    assert [planned["steps"][0], planned["steps"][-1]] == [0, HUGE - 1]
    anomalies = data["anomalies"]
    assert [a["step"] for a in anomalies] == list(range(4_950, 5_000))  # the 50 most recent
    assert all(len(a["message"]) <= 300 and len(a["kind"]) <= 64 for a in anomalies)
    assert len(data["stops"]) == 10
    assert data["stops"][-1]["step"] == LONG_END
    assert len(data["lr"]) <= 1000
    history = data["final_history"]
    assert len(history["final"]) <= 500
    assert {p[0] for p in history["final_lo"]} == {p[0] for p in history["final"]}  # the band at the same steps


def test_the_runs_are_compared_whatever_their_documents_hold(server):
    status, body = _get(f"{server}/data/plugin/curvecast/compare")
    assert status == 200, body[:2000]
    assert len(body) < 3 * MAX_BODY  # ten runs drawn at most, each thinned
    data = json.loads(body)
    rows = {r["run"]: r for r in data["runs"]}
    assert sorted(rows) == sorted(RUNS)
    assert rows[GOOD]["final"] == 2.1
    assert (rows[GOOD]["last_step"], rows[GOOD]["last"]) == (80, None)  # as its forecast says: no value then
    assert rows[DEEP]["step"] == GOOD_FORECAST["step"]  # the older readable document, as in the run's own view
    assert rows[NAN]["final"] is None
    assert rows[NAN]["rank"] is None  # no forecast final: ranked last
    assert rows[TYPES]["rank"] is None
    ranked = [r for r in data["runs"] if r["rank"] is not None]
    assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
    assert [r["final"] for r in ranked] == sorted(r["final"] for r in ranked)  # a loss: the lowest first
    assert ranked[0]["run"] == RAW  # its readable forecast of step 70: 2.0
    assert data["runs"][len(ranked) :] == [r for r in data["runs"] if r["rank"] is None]  # no forecast: last
    # Written before each forecast carried its spread: no chance is made up.
    assert all(r["chance_best"] is None for r in rows.values())
    assert any(DEEP in w and "nested" in w for w in data["warnings"]), data["warnings"]
    long = next(d for d in data["drawn"] if d["run"] == LONG)
    assert len(long["observed"]) <= 600
    assert [SPIKE, 1000.0] in long["observed"]  # thinned keeping its extremes
    assert len(long["curve"]["steps"]) <= 60


def test_a_run_of_unreadable_documents_is_served_with_warnings(server):
    data = _run(server, EMPTY)
    assert data["forecast"] is None
    assert data["anomalies"] == []
    assert len(data["warnings"]) == 2
    assert data["observed"][-1][0] == END


# -- the page -------------------------------------------------------------------------------------------------------

NODE = shutil.which("node")
INDEX_JS = Path(__file__).resolve().parents[1] / "curvecast" / "tensorboard_plugin" / "static" / "index.js"

# What a server of another version, or a proxy, might send: the page must draw each without an error.
_BIG = list(range(300_000))
JUNK = {
    "nothing": {},
    "array": [1, 2, 3],
    "string": "run",
    "wrong types": {"run": 5, "monitor": ["m"], "observed": "x", "forecast": "x", "final_history": 3, "lr": {},
                    "planned_lr": [], "anomalies": {}, "stops": "x", "warnings": 7},  # fmt: skip
    "bad forecast": {"run": "r", "forecast": {"step": {"toString": 1}, "horizon": None, "interval": "x",
                                              "target": {"toString": 1},
                                              "curve": {"steps": {"toString": 1}}}},  # fmt: skip
    "bad curve": {"forecast": {"horizon": 10, "target": 1, "curve": {"steps": [1, "2", None, [3]], "mean": "m",
                                                                     "lo": [1], "hi": None}}},  # fmt: skip
    "bad points": {"observed": [[1], ["a", 2], [1, None], None, 5, [1e308, -1e308], [-1e308, 1e308], [2, 3]],
                   "lr": [[0, 1e-300], [1, 1e300]], "final_history": {"final": [[1, 2]], "final_lo": "x"}},  # fmt: skip
    "bad events": {"anomalies": [None, 1, {"step": "4"}, {"step": 5, "severity": "__proto__", "kind": ["a"],
                                                          "message": {"toString": 1}}],
                   "stops": [{"step": 1e308, "message": 5}, {"message": "no step"}],
                   "warnings": [1, None, {}, "w"]},  # fmt: skip
    "huge": {"run": "huge", "observed": [[s, 2.0 + (s == 1234) * 100] for s in _BIG], "lr": [[s, 0.1] for s in _BIG],
             "forecast": {"horizon": _BIG[-1], "target": 1.0, "interval": 0.8,
                          "curve": {"steps": _BIG, "mean": _BIG, "lo": _BIG, "hi": _BIG}},
             "planned_lr": {"steps": _BIG, "lrs": _BIG},
             "final_history": {"final": [[s, 1.0] for s in _BIG], "final_lo": [[s, 0.5] for s in _BIG],
                               "final_hi": [[s, 1.5] for s in _BIG]},
             "anomalies": [{"step": s, "kind": "k", "severity": "info", "message": "m"} for s in range(0, 300_000, 3)]},
}  # fmt: skip

# A DOM as small as the page needs: setAttribute and text convert as the DOM does (String(), which can throw).
NODE_HARNESS = r"""
class El {
  constructor(tag) { this.tag = tag; this.attrs = {}; this.children = []; this.value = ''; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  append(...cs) { for (const c of cs) this.children.push(c instanceof El ? c : String(c)); }
  appendChild(c) { this.append(c); return c; }
  replaceChildren(...cs) { this.children = []; this.append(...cs); }
  set textContent(t) { this.children = [String(t)]; }
  addEventListener() {}
}
const walk = (node, out) => {
  if (!(node instanceof El)) return out;
  out.push(node);
  for (const c of node.children) walk(c, out);
  return out;
};
let failure = null;
process.on('unhandledRejection', (e) => { failure = String(e && e.stack || e); });
process.on('uncaughtException', (e) => { failure = String(e && e.stack || e); });
const payloads = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
globalThis.setInterval = () => 0;
(async () => {
  const {render} = await import(process.argv[3]);
  const report = {};
  for (const [name, body] of Object.entries(payloads)) {
    // A payload named compare:... is the comparison of the runs, the page's view when no run is named.
    const search = name.startsWith('compare:') ? '?view=compare' : '?run=' + encodeURIComponent(name);
    globalThis.window = {location: {search}};
    globalThis.document = {head: new El('head'), body: new El('body'), hidden: false,
      createElement: (t) => new El(t), createElementNS: (ns, t) => new El(t)};
    globalThis.fetch = async (url) => ({ok: true, json: async () => url.startsWith('./runs') ? Object.keys(payloads)
      : JSON.parse(body)});
    failure = null;
    try { await render(); } catch (e) { failure = String(e && e.stack || e); }
    await new Promise((r) => setTimeout(r, 0));
    const nodes = walk(document.body, []);
    const error = nodes.find((n) => n.attrs.id === 'cc-error');
    const paths = nodes.filter((n) => n.tag === 'path').map((n) => n.attrs.class);
    const longest = Math.max(0, ...nodes.filter((n) => n.tag === 'path').map((n) => n.attrs.d.split('L').length));
    report[name] = {failure, error: error ? JSON.stringify(error.children) : null, paths, longest,
      sections: nodes.filter((n) => n.tag === 'section').length};
  }
  console.log(JSON.stringify(report));
})();
"""


def _node_render(tmp_path: Path, bodies: dict[str, str]) -> dict:
    module = tmp_path / "index.mjs"
    module.write_text(INDEX_JS.read_text("utf-8"))
    harness, payloads = tmp_path / "harness.cjs", tmp_path / "payloads.json"
    harness.write_text(NODE_HARNESS)
    payloads.write_text(json.dumps(bodies))
    result = subprocess.run([NODE, str(harness), str(payloads), module.as_uri()], capture_output=True, text=True,
                            timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


# What a comparison from another server might hold: the page draws each without an error.
_ROWS = 5_000
JUNK_COMPARISONS = {
    "compare:nothing": {},
    "compare:array": [1, 2],
    "compare:wrong types": {"mode": 5, "horizons": "x", "runs": {"a": 1}, "drawn": "x", "warnings": 3},
    "compare:bad rows": {"runs": [None, 1, {"run": 7}, {"run": "r", "rank": "1", "final": {"toString": 1},
                                                      "chance_best": [0.5], "interval": "x"}],
                         "drawn": [None, {"run": "r", "observed": "x", "curve": {"steps": 3}, "target": "1"}]},
    "compare:huge": {"mode": "max", "horizons": _BIG[:1000],
                     "runs": [{"run": f"run {i}", "rank": i + 1, "final": 1.0 + i, "chance_best": 1 / (i + 1)}
                              for i in range(_ROWS)],
                     "drawn": [{"run": f"run {i}", "observed": [[s, 1.0 + s] for s in _BIG], "target": 1.0,
                                "curve": {"steps": _BIG, "mean": _BIG, "lo": _BIG, "hi": _BIG}} for i in range(3)]},
}  # fmt: skip


@pytest.mark.skipif(NODE is None, reason="Node is not installed: the page is not run outside a browser")
def test_the_page_draws_malformed_comparisons_without_an_error(tmp_path):
    report = _node_render(tmp_path, {name: json.dumps(body) for name, body in JUNK_COMPARISONS.items()})
    for name, outcome in report.items():
        assert (outcome["failure"], outcome["error"], outcome["sections"]) == (None, None, 1), name
    huge = report["compare:huge"]
    assert {"cc-cmp-observed", "cc-cmp-forecast", "cc-cmp-band"} <= set(huge["paths"])
    assert huge["longest"] <= 2000 * 2 + 1


@pytest.mark.skipif(NODE is None, reason="Node is not installed: the page is not run outside a browser")
def test_the_page_draws_malformed_data_without_an_error(tmp_path):
    report = _node_render(tmp_path, {name: json.dumps(body) for name, body in JUNK.items()})
    for name, outcome in report.items():
        assert outcome["failure"] is None, (name, outcome["failure"])
        assert outcome["error"] is None, (name, outcome["error"])
        assert outcome["sections"] == 1, name
    huge = report["huge"]
    assert {"cc-observed", "cc-forecast", "cc-band", "cc-final", "cc-lr", "cc-lr-planned"} <= set(huge["paths"])
    assert huge["longest"] <= 2000 * 2 + 1  # the band: both edges of a thinned curve


@pytest.mark.skipif(NODE is None, reason="Node is not installed: the page is not run outside a browser")
def test_the_page_draws_every_served_run_without_an_error(server, tmp_path):
    bodies = {run: _get(_run_url(server, run))[1].decode("utf-8") for run in RUNS}
    report = _node_render(tmp_path, bodies)
    for run, outcome in report.items():
        assert (outcome["failure"], outcome["error"], outcome["sections"]) == (None, None, 1), run
    assert {"cc-observed", "cc-forecast", "cc-band"} <= set(report[GOOD]["paths"])
    assert {"cc-observed", "cc-forecast", "cc-band"} <= set(report[LONG]["paths"])


# -- in a browser ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium): page not drawn")
def test_the_page_draws_every_hostile_run_in_a_browser_without_a_page_error(server, tmp_path):
    browser = DevTools(tmp_path / "chromium-profile")
    try:
        drawn = {}
        for run in RUNS:
            page = f"{server}/data/plugin_entry.html?" + urllib.parse.urlencode({"name": "curvecast", "run": run})
            browser.events.clear()
            browser.call("Page.navigate", {"url": page}, session=True)
            state = None
            for _ in range(300):  # until the run's section is drawn, 30 s at most
                state = browser.evaluate(
                    "(() => { const s = document.querySelector('#cc-view section');"
                    " return s && {run: s.getAttribute('data-run'), error: !!document.getElementById('cc-error'),"
                    " paths: [...document.querySelectorAll('path')].map((p) => p.getAttribute('class'))}; })()"
                )
                if state and state["run"] == run:
                    break
                browser.wait(0.1)
            browser.wait(0.5)  # anything thrown after the drawing
            thrown = [e["params"] for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
            assert thrown == [], (run, thrown)
            assert state, run
            assert state["run"] == run, (run, state)
            assert not state["error"], run
            drawn[run] = set(state["paths"])
        assert {"cc-observed", "cc-forecast", "cc-band", "cc-final", "cc-lr", "cc-lr-planned"} <= drawn[GOOD]
        assert {"cc-observed", "cc-forecast"} <= drawn[LONG]

        # The runs compared (the page's view when no run is named), every one of them in the ranking.
        browser.events.clear()
        page = f"{server}/data/plugin_entry.html?" + urllib.parse.urlencode({"name": "curvecast"})
        browser.call("Page.navigate", {"url": page}, session=True)
        rows = None
        for _ in range(300):
            rows = browser.evaluate(
                "(() => document.getElementById('cc-compare') &&"
                " [...document.querySelectorAll('tr.cc-rank-row')].map((r) => r.getAttribute('data-run')))()"
            )
            if rows:
                break
            browser.wait(0.1)
        browser.wait(0.5)
        thrown = [e["params"] for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
        assert thrown == [], thrown
        assert sorted(rows or []) == sorted(RUNS)
    finally:
        browser.close()
