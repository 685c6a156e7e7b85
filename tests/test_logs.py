"""The log readers: TensorBoard event files from several writers, CSV and JSONL tables, and picking the series."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2
from torch.utils.tensorboard import SummaryWriter

from curvecast.logreaders import LogReadError, choose_loss, choose_lr, csv_table, json_records, read_log
from curvecast.logreaders import events as events_module
from run_helpers import read_events

MNG_RUN = "mng__2024-11-06_ShortcutsTweaks__042f9e87-07e"  # 3200 steps, train and val loss, LR, a few spikes


def read_curve_csv(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The columns of a curve file from ../shared/data/curves: name -> (steps, values), empty cells dropped."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, tuple[list[int], list[float]]] = {}
    for row in rows:
        for name, cell in row.items():
            if name != "step" and cell:
                columns.setdefault(name, ([], []))[0].append(int(row["step"]))
                columns[name][1].append(float(cell))
    return {name: (np.array(steps), np.array(values)) for name, (steps, values) in columns.items()}


def write_events(log_dir: Path, columns: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write the columns as scalars with a plain SummaryWriter, in step order as a training loop would."""
    writer = SummaryWriter(str(log_dir), max_queue=10_000, flush_secs=3600)
    points = sorted(
        (int(s), tag, float(v)) for tag, (steps, values) in columns.items() for s, v in zip(steps, values, strict=True)
    )
    for step, tag, value in points:
        writer.add_scalar(tag, value, step)
    writer.close()
    return next(log_dir.glob("events.out.tfevents.*"))


def tensor_value(tag: str, value: float, dtype: int, content: bool, first: bool) -> summary_pb2.Summary.Value:
    """A scalar in tensor form, as TensorFlow 2 writes it (plugin metadata only on a tag's first event)."""
    shape = tensor_shape_pb2.TensorShapeProto()
    if content:
        numpy_type = {1: "<f4", 2: "<f8"}[dtype]
        proto = tensor_pb2.TensorProto(
            dtype=dtype, tensor_shape=shape, tensor_content=np.array(value, numpy_type).tobytes()
        )
    else:
        proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, double_val=[value])
    summary_value = summary_pb2.Summary.Value(tag=tag, tensor=proto)
    if first:
        summary_value.metadata.plugin_data.plugin_name = "scalars"
    return summary_value


@pytest.fixture
def mixed_event_dir(tmp_path: Path) -> Path:
    """One file with simple values (step 0 included), tensor scalars, text, a histogram and a multi-value event."""
    writer = SummaryWriter(str(tmp_path))
    for step in range(0, 30):
        writer.add_scalar("train/loss", 2.0 / (1 + step), step)
        writer.add_scalar("a_rather_long_tag_name/" + "x" * 140, float(step), step)  # longer than the fast path
        summary = summary_pb2.Summary(
            value=[
                tensor_value("tf2/loss", 1.0 + step, dtype=1, content=True, first=step == 0),
                tensor_value("tf2/acc", 0.5 + step / 100, dtype=2, content=False, first=step == 0),
                summary_pb2.Summary.Value(tag="multi/a", simple_value=step),
            ]
        )
        writer.file_writer.add_summary(summary, step)
    writer.add_text("notes", "not a scalar", 0)
    writer.add_histogram("weights", np.arange(10.0), 0)
    writer.close()
    return tmp_path


def test_mixed_event_file_matches_event_accumulator(mixed_event_dir: Path) -> None:
    log = read_log(mixed_event_dir)
    assert set(log.names) == {"train/loss", "a_rather_long_tag_name/" + "x" * 140, "tf2/loss", "tf2/acc", "multi/a"}
    accumulator = read_events(mixed_event_dir)
    for tag in ("train/loss", "multi/a"):
        expected = accumulator.Scalars(tag)
        np.testing.assert_array_equal(log.curves[tag].steps, [event.step for event in expected])
        np.testing.assert_allclose(log.curves[tag].values, [event.value for event in expected], rtol=1e-7)
    np.testing.assert_allclose(log.curves["tf2/loss"].values, 1.0 + np.arange(30), rtol=1e-7)
    np.testing.assert_allclose(log.curves["tf2/acc"].values, 0.5 + np.arange(30) / 100, rtol=1e-12)
    assert log.curves["train/loss"].steps[0] == 0  # the step-0 event omits its step field: parsed by protobuf


def test_fast_path_and_protobuf_agree(mixed_event_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = read_log(mixed_event_dir)
    nothing = (np.zeros(0, np.int64), [], np.zeros(0, np.int64), np.zeros(0))
    monkeypatch.setattr(
        events_module, "decode_simple_scalars", lambda data, starts, lengths: (np.zeros(len(starts), bool), *nothing)
    )
    slow = read_log(mixed_event_dir)
    assert fast.names == slow.names
    for name in fast.names:
        np.testing.assert_array_equal(fast.curves[name].steps, slow.curves[name].steps)
        np.testing.assert_array_equal(fast.curves[name].values, slow.curves[name].values)


def test_real_curve_round_trips_through_an_event_file(curves_dir: Path, tmp_path: Path) -> None:
    columns = read_curve_csv(curves_dir / f"{MNG_RUN}.csv")
    write_events(tmp_path, columns)
    log = read_log(tmp_path)
    assert log.kind == "tensorboard"
    assert set(log.names) == {"train_loss", "val_loss", "lr"}
    for name, (steps, values) in columns.items():
        np.testing.assert_array_equal(log.curves[name].steps, steps)
        np.testing.assert_allclose(log.curves[name].values, values.astype(np.float32), rtol=1e-7)
    loss = choose_loss(log)
    assert loss.name == "train_loss"
    assert choose_lr(log, loss).name == "lr"


def test_resumed_run_keeps_the_last_write_of_a_step(tmp_path: Path) -> None:
    first = SummaryWriter(str(tmp_path), filename_suffix=".a")
    for step in range(10):
        first.add_scalar("loss", 10.0 - step, step)
    first.close()
    second = SummaryWriter(str(tmp_path), filename_suffix=".b")  # resumed from step 5: steps 5..9 are written again
    for step in range(5, 12):
        second.add_scalar("loss", 100.0 + step, step)
    second.close()
    curve = read_log(tmp_path).curves["loss"]
    np.testing.assert_array_equal(curve.steps, np.arange(12))
    np.testing.assert_array_equal(curve.values[:5], 10.0 - np.arange(5))
    np.testing.assert_array_equal(curve.values[5:], 100.0 + np.arange(5, 12))


def test_truncated_event_file(tmp_path: Path) -> None:
    file = write_events(tmp_path, {"loss": (np.arange(50), np.linspace(2, 1, 50))})
    file.write_bytes(file.read_bytes()[:-7])
    with pytest.raises(LogReadError, match=r"truncated"):
        read_log(tmp_path)


def test_event_file_of_garbage(tmp_path: Path) -> None:
    file = tmp_path / "events.out.tfevents.123.host"
    file.write_bytes(b"this is not a TFRecord file at all, just text" * 3)
    with pytest.raises(LogReadError, match=r"truncated or not an event file"):
        read_log(file)


def test_missing_path_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(LogReadError, match=r"Expected a log directory or file, but .*nowhere does not exist"):
        read_log(tmp_path / "nowhere")
    with pytest.raises(LogReadError, match=r"Expected TensorBoard event files, a metrics.csv or a .jsonl log"):
        read_log(tmp_path)


def test_lightning_style_sparse_csv_keeps_logged_nan(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,step,train_loss_step,val_loss,train_loss_epoch,lr-SGD\n"
        "0,0,2.0,,,0.1\n"
        "0,1,1.5,,,0.1\n"
        "0,1,,1.8,,\n"
        "0,1,,,1.75,\n"
        "1,2,nan,,,0.05\n"
        "1,3,1.0,,,0.05\n"
    )
    log = read_log(tmp_path)  # a directory holding one metrics.csv
    assert log.kind == "csv"
    loss = log.curves["train_loss_step"]
    np.testing.assert_array_equal(loss.steps, [0, 1, 2, 3])
    assert math.isnan(loss.values[2])  # a logged NaN is kept; empty cells are simply absent
    np.testing.assert_array_equal(log.curves["val_loss"].steps, [1])
    assert choose_loss(log).name == "train_loss_step"
    assert choose_lr(log, loss).name == "lr-SGD"


@pytest.mark.parametrize("none", ["N/A", "NA", "null", "None", "-"])
def test_a_cell_saying_no_value_is_missing_and_keeps_its_column(tmp_path: Path, none: str) -> None:
    # In the first rows (which decide the numeric columns) and far past them (read block by block).
    rows = [f"{i},{1 / (i + 1)},{2 / (i + 1)}" for i in range(400)]
    rows[3] = f"3,{none},0.5"
    rows[350] = f"350,0.01,{none}"
    path = tmp_path / "table.csv"
    path.write_text("step,train_loss,val_loss\n" + "\n".join(rows) + "\n")
    log = read_log(path)
    assert choose_loss(log).name == "train_loss"
    assert 3 not in log.curves["train_loss"].steps
    assert len(log.curves["train_loss"]) == len(log.curves["val_loss"]) == 399
    assert 350 not in log.curves["val_loss"].steps


def test_quoted_csv_with_text_column_and_float_steps(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text('"Wall time","Step","Value","run"\n"1.5","0.0","3.0","a"\n"2.5","10.0","2.0","a"\n')
    log = read_log(path)
    assert choose_loss(log).name == "Value"  # the one value column of a TensorBoard export (after Wall time)
    np.testing.assert_array_equal(log.curves["Value"].steps, [0, 10])


def test_csv_errors(tmp_path: Path) -> None:
    no_step = tmp_path / "a.csv"
    no_step.write_text("time,loss\n1,2\n")
    with pytest.raises(LogReadError, match=r"Expected a step column .* but the columns are time, loss"):
        read_log(no_step)
    bad_cell = tmp_path / "b.csv"
    bad_cell.write_text("step,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(300)) + "301,oops\n")
    with pytest.raises(LogReadError, match=r"Expected a number in column 2 of line 302 .* but got 'oops'"):
        read_log(bad_cell)


def test_jsonl_wide_and_long(tmp_path: Path) -> None:
    wide = tmp_path / "wide.jsonl"
    wide.write_text("\n".join(json.dumps({"step": i, "loss": 1 / (i + 1), "lr": 0.1, "note": "x"}) for i in range(5)))
    log = read_log(wide)
    assert log.names == ["loss", "lr"]
    assert choose_loss(log).name == "loss"
    long = tmp_path / "long.jsonl"
    long.write_text(
        "\n".join(json.dumps({"step": i, "tag": tag, "value": i * 1.0}) for i in range(4) for tag in ("val", "other"))
    )
    assert set(read_log(long).names) == {"val", "other"}
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"step": 1, "loss": 2}\n{"step": 2, "loss": \n')
    with pytest.raises(LogReadError, match=r"Expected a JSON object on line 2 of .*broken.jsonl"):
        read_log(broken)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["val_loss", "train_loss_epoch", "train_loss_step", "epoch"], "train_loss_step"),
        (["Loss/val", "Loss/train", "Accuracy/train"], "Loss/train"),
        (["curvecast/forecast/loss", "loss", "lr"], "loss"),
        (["eval/loss", "train/loss"], "train/loss"),
    ],
)
def test_choose_loss_ranking(tmp_path: Path, names: list[str], expected: str) -> None:
    write_events(tmp_path, {name: (np.arange(5), np.ones(5)) for name in names})
    assert choose_loss(read_log(tmp_path)).name == expected


def test_unknown_tag_lists_the_series(tmp_path: Path) -> None:
    write_events(tmp_path, {"train/loss": (np.arange(5), np.ones(5)), "lr": (np.arange(5), np.ones(5))})
    with pytest.raises(LogReadError, match=r"Expected `--tag` to be one of .* but got 'nope'. The series are: "):
        choose_loss(read_log(tmp_path), "nope")


def test_several_runs_need_a_choice(tmp_path: Path) -> None:
    for run in ("version_0", "version_1"):
        write_events(tmp_path / run, {"train_loss": (np.arange(5), np.ones(5))})
    log = read_log(tmp_path)
    assert log.names == ["version_0/train_loss", "version_1/train_loss"]
    with pytest.raises(LogReadError, match=r"equally likely the loss; pass one run's directory, or pick"):
        choose_loss(log)
    assert choose_loss(log, "version_1/train_loss").run == "version_1"


def test_sub_run_overlay_does_not_hide_the_main_run(tmp_path: Path) -> None:
    write_events(tmp_path, {"train/loss": (np.arange(5), np.ones(5))})
    write_events(tmp_path / "forecast", {"train/loss": (np.arange(5), np.zeros(5))})
    log = read_log(tmp_path)
    assert choose_loss(log).name == "train/loss"
    assert "forecast/train/loss" in log.names


def test_directory_with_several_tables_asks_for_one(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.csv").write_text("step,loss\n0,1\n")
    with pytest.raises(LogReadError, match=r"Expected one log under .* but found 2: a/metrics.csv, b/metrics.csv"):
        read_log(tmp_path)


def test_tab_separated_table(tmp_path: Path) -> None:
    path = tmp_path / "run.tsv"
    path.write_text("global_step\ttrain loss\n0\t2.5\n5\t\n10\t1.5\n")
    curve = choose_loss(read_log(path))
    assert curve.name == "train loss"
    np.testing.assert_array_equal(curve.steps, [0, 10])


def test_tables_read_in_small_blocks_agree_with_one_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block boundaries fall inside numbers, strings and multi-byte characters: nothing may change."""
    rows = [{"step": i, "loss": 1 / (i + 1), "note": "é😀" * (i % 3), "flags": [True, None, -1e-5]} for i in range(40)]
    texts = {"a.json": json.dumps(rows, ensure_ascii=False), "b.jsonl": "\n".join(json.dumps(row) for row in rows)}
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("step,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(40)))
    whole = {name: read_log(tmp_path / name).curves["loss"] for name in [*texts, csv_path.name]}
    monkeypatch.setattr(json_records, "_JSON_BLOCK_BYTES", 3)
    monkeypatch.setattr(csv_table, "_CSV_BLOCK_BYTES", 5)
    for name, expected in whole.items():
        curve = read_log(tmp_path / name).curves["loss"]
        np.testing.assert_array_equal(curve.steps, expected.steps)
        np.testing.assert_array_equal(curve.values, expected.values)
        np.testing.assert_array_equal(curve.steps, np.arange(40))


@pytest.mark.parametrize("block", [1, 7, 100])
def test_event_file_read_in_small_blocks_agrees(
    mixed_event_dir: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Records cut by the end of a block (and ones longer than a block: the histogram) are carried into the next."""
    whole = read_log(mixed_event_dir)
    monkeypatch.setattr(events_module, "_BLOCK_BYTES", block)
    pieces = read_log(mixed_event_dir)
    assert pieces.names == whole.names
    for name in whole.names:
        np.testing.assert_array_equal(pieces.curves[name].steps, whole.curves[name].steps)
        np.testing.assert_array_equal(pieces.curves[name].values, whole.curves[name].values)
