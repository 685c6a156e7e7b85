"""`curvecast analyze` on hostile input: each case ends in one line on stderr and a non-zero exit, or is read sensibly.

The inputs are built in ``tmp_path``: FIFOs, symlinks to devices and to system files, deep or huge JSON, huge cells and
lines, odd steps, binary and non-UTF-8 bytes, truncated event files. A FIFO that were opened would hang the test, so
those tests carry a timeout; nothing here sleeps or needs the network.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from curvecast.cli import main
from curvecast.logreaders import LogReadError, files, read_log
from curvecast.offline.analyze import EXIT_INPUT
from curvecast.offline.plot import as_plain_text

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PASSWD = Path("/etc/passwd")
DEV_ZERO = Path("/dev/zero")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
needs_dev_zero = pytest.mark.skipif(not DEV_ZERO.exists(), reason="no /dev/zero")
needs_passwd = pytest.mark.skipif(not PASSWD.is_file(), reason="no /etc/passwd")


def analyze_error(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """Run `curvecast analyze ARGV --no-plot`, expecting an input error: one line on stderr, exit status 1."""
    status = main(["analyze", *map(str, argv), "--no-plot"])
    err = capsys.readouterr().err
    assert status == EXIT_INPUT, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("curvecast analyze: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths passed to ``os.open`` while the test runs (the readers open every log file through it)."""
    paths: list[str] = []
    real_open = os.open

    def spy(path, *args, **kwargs):
        paths.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    return paths


def write_csv(path: Path, steps: list, values: list | None = None, header: str = "step,loss") -> Path:
    values = values if values is not None else [2.0 / (1 + i) for i in range(len(steps))]
    path.write_text(header + "\n" + "".join(f"{s},{v}\n" for s, v in zip(steps, values, strict=True)))
    return path


def good_rows(count: int = 40) -> str:
    return "".join(json.dumps({"step": i, "loss": 2.0 / (1 + i)}) + "\n" for i in range(count))


def event_bytes(step: int, tag: str, value: float) -> bytes:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return event_pb2.Event(wall_time=1.0, step=step, summary=summary).SerializeToString()


def write_events(path: Path, points: list[tuple[int, str, float]]) -> Path:
    """An event file of simple scalars, written with tensorboard's writer (no torch needed)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    with path.open("wb") as handle:
        writer = RecordWriter(handle)
        writer.write(event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())
        for step, tag, value in points:
            writer.write(event_bytes(step, tag, value))
    return path


# -- what a path points at -----------------------------------------------------------------------------------------


@needs_fifo
@pytest.mark.timeout(20)
def test_fifo_in_a_log_directory_is_skipped_without_opening_it(tmp_path: Path, capsys, opened: list[str]) -> None:
    os.mkfifo(tmp_path / "metrics.csv")  # opening it for reading would block until a writer comes
    message = analyze_error(capsys, tmp_path)
    assert f"a .jsonl log under {tmp_path}, but found none; skipped, as not regular files: metrics.csv" in message
    assert str(tmp_path / "metrics.csv") not in opened


@needs_fifo
@pytest.mark.timeout(20)
def test_fifo_named_as_the_log_is_refused_without_opening_it(tmp_path: Path, capsys, opened: list[str]) -> None:
    fifo = tmp_path / "run.jsonl"
    os.mkfifo(fifo)
    message = analyze_error(capsys, fifo)
    assert str(fifo) not in opened
    assert message.endswith(
        f"Expected a regular file, but {fifo} is a FIFO (named pipe): curvecast reads only regular files"
    )


@needs_fifo
@pytest.mark.timeout(20)
def test_fifo_beside_event_files_is_skipped(tmp_path: Path) -> None:
    write_events(tmp_path / "events.out.tfevents.1.a", [(step, "loss", 1.0 / (1 + step)) for step in range(1, 9)])
    os.mkfifo(tmp_path / "events.out.tfevents.2.b")
    log = read_log(tmp_path)
    assert log.files == (tmp_path / "events.out.tfevents.1.a",)
    assert len(log.curves["loss"]) == 8


@needs_dev_zero
@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", ["metrics.csv", "events.out.tfevents.1.host"])
def test_symlink_to_dev_zero_in_a_log_directory_is_skipped(tmp_path: Path, capsys, name: str) -> None:
    (tmp_path / name).symlink_to(DEV_ZERO)  # read to its end, it would fill memory
    message = analyze_error(capsys, tmp_path)
    assert message.endswith(f"but found none; skipped, as not regular files: {name}")


@needs_dev_zero
@pytest.mark.timeout(20)
def test_dev_zero_named_as_the_log_is_refused(tmp_path: Path, capsys) -> None:
    link = tmp_path / "run.csv"
    link.symlink_to(DEV_ZERO)
    assert analyze_error(capsys, link).endswith(f"but {link} is a character device: curvecast reads only regular files")
    assert analyze_error(capsys, DEV_ZERO).endswith(
        "but /dev/zero is a character device: curvecast reads only regular files"
    )


@needs_passwd
@pytest.mark.parametrize("name", ["metrics.csv", "run.jsonl"])
def test_symlink_to_a_system_file_in_a_log_directory_is_not_quoted(tmp_path: Path, capsys, name: str) -> None:
    (tmp_path / name).symlink_to(PASSWD)
    message = analyze_error(capsys, tmp_path)
    assert str(tmp_path / name) in message
    first_line = PASSWD.read_text().splitlines()[0]
    for piece in [first_line, *first_line.split(":")]:
        assert len(piece) < 3 or piece not in message.split(str(tmp_path))[-1]
    if name == "metrics.csv":
        assert message.endswith(f"but none of its {first_line.count(',') + 1} columns is one")
    else:
        assert message.endswith(f"Expected a JSON object on line 1 of {tmp_path / name}, but got: Expecting value")


def test_named_file_gets_a_short_escaped_snippet(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.csv"  # the bad cell comes after the rows that decide which columns hold numbers
    rows = "".join(f"{i},{1 / (i + 1)}\n" for i in range(300))
    path.write_text(f"step,loss\n{rows}300,\x1b[2J{'A' * 500}\n")
    message = analyze_error(capsys, path)
    assert message.endswith(f"Expected a number in column 2 of line 302 of {path}, but got '\\x1b[2J{'A' * 36}'...")
    assert "\x1b" not in message


def test_symlink_to_a_regular_log_is_still_followed(tmp_path: Path, opened: list[str]) -> None:
    real = write_csv(tmp_path / "elsewhere.csv", list(range(10)))
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").symlink_to(real)
    assert len(read_log(run).curves["loss"]) == 10
    assert str(run / "metrics.csv") in opened  # the spy the FIFO tests rely on does see the readers' opens


@pytest.mark.timeout(20)
def test_symlinked_directories_are_not_followed(tmp_path: Path, capsys) -> None:
    (tmp_path / "metrics.csv").symlink_to("/")  # followed, this walked the whole file system
    (tmp_path / "loop").symlink_to(tmp_path)
    message = analyze_error(capsys, tmp_path)
    assert message.endswith(
        f"a .jsonl log under {tmp_path}, but found none; skipped, as not regular files: metrics.csv"
    )


def test_dangling_symlink_named_as_the_log(tmp_path: Path, capsys) -> None:
    link = tmp_path / "run.csv"
    link.symlink_to(tmp_path / "nowhere.csv")
    assert analyze_error(capsys, link).endswith(f"Expected a log file, but {link} is a symlink to nothing")


def test_directory_search_is_bounded(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_WALK_ENTRIES", 10)
    for index in range(11):
        (tmp_path / f"checkpoint_{index}.pt").write_bytes(b"")
    message = analyze_error(capsys, tmp_path)
    assert message.endswith(f"but {tmp_path} holds more than 10 files and directories: pass the directory of the run")


# -- bounded reads -------------------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_line_longer_than_the_limit(tmp_path: Path, capsys, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    pad = "x" * (files.MAX_LINE_BYTES + 10)
    first = '{"step": 0, "loss": 1}' if suffix == ".jsonl" else "step,loss,note"
    path.write_text(
        f'{first}\n{{"step": 1, "loss": 1, "note": "{pad}"}}\n' if suffix == ".jsonl" else f"{first}\n1,2,{pad}\n"
    )
    message = analyze_error(capsys, path)
    assert message.endswith(
        f"Expected lines of at most 1.0 MiB in {path}, but line 2 is longer: the file is not a log of metrics"
    )


@pytest.mark.timeout(20)
def test_json_array_record_longer_than_the_limit(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps([{"step": 0, "loss": 1.0}, {"step": 1, "loss": 1.0, "note": "x" * (2 << 20)}]))
    message = analyze_error(capsys, path)
    assert message.endswith(
        f"Expected JSON records of at most 1,048,576 bytes in {path}, but the one on line 1 is longer: "
        "the file is not a log of metrics"
    )


def test_json_array_on_one_line_is_not_a_long_line(tmp_path: Path) -> None:
    path = tmp_path / "export.json"  # pandas' to_json(orient="records"): one line, longer than a line may be
    rows = [{"step": i, "loss": 2.0 / (1 + i), "note": "n" * 100} for i in range(12_000)]
    path.write_text(json.dumps(rows))
    assert path.stat().st_size > files.MAX_LINE_BYTES
    np.testing.assert_array_equal(read_log(path).curves["loss"].steps, np.arange(12_000))


@pytest.mark.parametrize("kind", ["csv", "tensorboard"])
def test_log_larger_than_the_limit(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    if kind == "csv":
        path = write_csv(tmp_path / "run.csv", list(range(200)))
    else:
        write_events(tmp_path / "events.out.tfevents.1.a", [(step, "loss", 1.0) for step in range(1, 60)])
        write_events(tmp_path / "events.out.tfevents.2.b", [(step, "loss", 1.0) for step in range(60, 120)])
        path = tmp_path
    monkeypatch.setattr(files, "MAX_LOG_BYTES", 2000)
    message = analyze_error(capsys, path)
    assert f"Expected a log of at most 2000 B, but {path} holds " in message
    assert message.endswith("pass one run's file or directory")


# -- JSON ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_deeply_nested_json(tmp_path: Path, capsys, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    nested = '{"step": 3, "loss": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(good_rows(3) + nested + "\n" if suffix == ".jsonl" else f"[\n{nested}\n]")
    message = analyze_error(capsys, path)
    if suffix == ".jsonl":
        assert message.endswith(f"Expected a JSON object on line 4 of {path}, but it is nested too deeply to parse")
    else:
        assert message.endswith(f"Expected a JSON record on line 2 of {path}, but it is nested too deeply")


def test_huge_json_integer_value_is_a_logged_overflow(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"  # Python's int() refuses more than 4300 digits; as a float it is inf
    path.write_text(good_rows(10) + '{"step": 10, "loss": ' + "9" * 5000 + "}\n")
    loss = read_log(path).curves["loss"]
    assert loss.steps[-1] == 10
    assert math.isinf(loss.values[-1])


def test_huge_json_integer_step(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text(good_rows(10) + '{"step": ' + "9" * 5000 + ', "loss": 1}\n')
    message = analyze_error(capsys, path)
    assert message.endswith(
        f"Expected whole-number steps of at most 2**53 in {path}, but the step on line 11 is not one: inf"
    )


# -- CSV -----------------------------------------------------------------------------------------------------------


def test_csv_cell_over_the_csv_module_limit(tmp_path: Path, capsys) -> None:
    path = tmp_path / "export.csv"  # quoted: read by the csv module, whose cells stop at 128 KiB
    path.write_text('"step","loss","note"\n"0","2.0","a"\n"1","1.0","' + "x" * (200 << 10) + '"\n')
    message = analyze_error(capsys, path)
    assert message.endswith(f"Cannot parse line 3 of {path} as CSV: field larger than field limit (131072)")


def test_csv_with_only_a_header(tmp_path: Path, capsys) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n\n")
    assert analyze_error(capsys, path).endswith(f"Expected data rows in {path}, but it holds only the header")


def test_csv_without_a_numeric_column(tmp_path: Path, capsys) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step,note\n1,a\n2,b\n")
    assert analyze_error(capsys, path).endswith(
        f"Expected a column of numbers besides the step in {path}, but found none"
    )


def test_csv_columns_named_alike_or_unnamed_stay_apart(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"  # merged by name, the second `loss` column overwrote the first without a word
    path.write_text("step,loss,loss,\n" + "".join(f"{i},{2 / (1 + i)},7,{i}\n" for i in range(10)))
    curves = read_log(path).curves
    assert sorted(curves) == ["column 4", "loss", "loss (column 3)"]
    np.testing.assert_allclose(curves["loss"].values, 2 / (1 + np.arange(10)))
    np.testing.assert_array_equal(curves["loss (column 3)"].values, np.full(10, 7.0))


# -- steps ---------------------------------------------------------------------------------------------------------


def test_negative_steps(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "run.csv", list(range(-20, 20)))
    message = analyze_error(capsys, path)
    assert message.endswith(
        f"Expected the steps of `loss` in {path} to be at least 0, but the first is -20: "
        "the forecaster counts steps from 0"
    )


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "2.5", "1e30"])
def test_csv_step_that_is_not_a_whole_number(tmp_path: Path, capsys, bad: str) -> None:
    path = write_csv(tmp_path / "run.csv", [*range(20), bad])
    message = analyze_error(capsys, path)
    assert message.endswith(
        f"Expected whole-number steps of at most 2**53 in {path}, but the step on line 22 is not one: {float(bad):g}"
    )


def test_jsonl_step_that_is_infinite(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text(good_rows(20) + '{"step": Infinity, "loss": 1.0}\n')
    message = analyze_error(capsys, path)
    assert message.endswith("but the step on line 21 is not one: inf")


def test_jsonl_record_with_a_nan_step_is_not_a_point(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text(good_rows(5) + '{"step": NaN, "loss": 1.0}\n{"loss": 7.0}\n')
    np.testing.assert_array_equal(read_log(path).curves["loss"].steps, np.arange(5))


def test_bad_step_in_a_discovered_file_is_not_quoted(tmp_path: Path, capsys) -> None:
    write_csv(tmp_path / "metrics.csv", [*range(20), "1e30"])
    message = analyze_error(capsys, tmp_path)
    assert message.endswith(f"in {tmp_path / 'metrics.csv'}, but the step on line 22 is not one")


def test_duplicated_steps_keep_the_last_value(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "run.csv", [0, 1, 2, 1, 2, 3], [9.0, 8.0, 7.0, 6.0, 5.0, 4.0])
    loss = read_log(path).curves["loss"]
    np.testing.assert_array_equal(loss.steps, [0, 1, 2, 3])
    np.testing.assert_array_equal(loss.values, [9.0, 6.0, 5.0, 4.0])


# -- bytes that are not a log --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run.csv", "Expected a header row in {path}, but its first line is empty"),
        ("run.jsonl", "Expected JSON records in {path}, but found none"),
        ("run.json", "Expected JSON records in {path}, but found none"),
        ("run.log", "Expected scalar values in {path}, but its 1 event file(s) hold none"),
    ],
)
def test_empty_file(tmp_path: Path, capsys, name: str, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert analyze_error(capsys, path).endswith(expected.format(path=path))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run.csv", "Expected text in {path}, but line 1 holds a NUL byte: the file is binary"),
        ("run.jsonl", "Expected text in {path}, but line 1 holds a NUL byte: the file is binary"),
        ("run.bin", "the event file is truncated or not an event file"),
    ],
)
def test_binary_garbage(tmp_path: Path, capsys, name: str, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00\x01\xff\xfe" + bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    message = analyze_error(capsys, path)
    assert message.endswith(expected.format(path=path))
    assert str(path) in message


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_non_utf8_bytes(tmp_path: Path, capsys, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    text = {
        ".csv": "step,l\xf4ss\n0,1\n",
        ".jsonl": '{"step": 0, "l\xf4ss": 1}\n',
        ".json": '[{"step": 0, "l\xf4ss": 1}]',
    }
    path.write_bytes(text[suffix].encode("latin-1"))
    message = analyze_error(capsys, path)
    if suffix == ".json":
        assert message.endswith(f"Expected UTF-8 text in {path}, but near line 1 it is not")
    else:
        column = text[suffix].index("\xf4") + 1
        assert message.endswith(
            f"Expected UTF-8 text in {path}, but line 1 holds the byte 0xf4 at column {column}: save the log as UTF-8"
        )


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_lines_ending_in_a_carriage_return_alone(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"  # classic Mac OS line ends: the file read as one line was an unparsable row
    rows = ["step,loss", *(f"{i},{2 / (1 + i)}" for i in range(8))]
    if suffix == ".jsonl":
        rows = [json.dumps({"step": i, "loss": 2 / (1 + i)}) for i in range(8)]
    path.write_bytes("\r".join(rows).encode() + b"\r")
    loss = read_log(path).curves["loss"]
    np.testing.assert_array_equal(loss.steps, np.arange(8))
    np.testing.assert_allclose(loss.values, 2 / (1 + np.arange(8)))


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    path = write_csv(tmp_path / "run.csv", list(range(40)))
    read_end, write_end = os.pipe()
    os.close(read_end)  # `curvecast analyze run.csv | head -1`, once head has exited
    with open(write_end, "w", buffering=1) as closed_pipe:
        monkeypatch.setattr("sys.stdout", closed_pipe)
        status = main(["analyze", str(path), "--no-plot"])
        print("flushed at exit", file=closed_pipe)  # the descriptor now leads nowhere instead of to the pipe
    assert status == 141
    assert capsys.readouterr().err == ""


def test_truncated_event_file(tmp_path: Path, capsys) -> None:
    path = write_events(tmp_path / "events.out.tfevents.1.host", [(step, "loss", 1.0) for step in range(1, 30)])
    whole = path.read_bytes()
    last_event = len(event_bytes(29, "loss", 1.0))
    last_record = len(whole) - (12 + last_event + 4)  # length and its CRC, the event, its CRC
    path.write_bytes(whole[:-5])  # the version record and 28 scalars are whole; the last one is cut
    message = analyze_error(capsys, tmp_path)
    assert message.endswith(
        f"Expected a record of {last_event} bytes at byte {last_record} of {path}, but the file has only "
        f"{last_event + 4 - 5} bytes left (29 records read): the event file is truncated or not an event file"
    )
    path.write_bytes(whole[: last_record + 5])  # cut inside the length header
    assert analyze_error(capsys, tmp_path).endswith(
        f"Expected a complete record header at byte {last_record} of {path}, but the file ends there (29 records "
        "read): the event file is truncated"
    )


def test_event_file_claiming_a_huge_record(tmp_path: Path, capsys) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    path.write_bytes(struct.pack("<Q", 2**62) + b"\x00" * 20)  # would be read whole if the length were trusted
    message = analyze_error(capsys, path)
    assert message.endswith(
        f"Expected a record of {2**62} bytes at byte 0 of {path}, but the file has only 16 bytes left "
        "(0 records read): the event file is truncated or not an event file"
    )


@pytest.mark.parametrize("content", [b"\x00\x00\x80", b"\x00" * 5, b"\x00" * 8])
def test_tensor_scalar_whose_bytes_are_not_one_float_is_skipped(tmp_path: Path, content: bytes) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    path = write_events(tmp_path / "events.out.tfevents.1.host", [(step, "loss", 1.0 / step) for step in range(1, 9)])
    damaged = tensor_pb2.TensorProto(dtype=1, tensor_content=content)  # DT_FLOAT: 4 bytes make one value
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss", tensor=damaged)])
    with path.open("ab") as handle:
        RecordWriter(handle).write(event_pb2.Event(wall_time=1.0, step=9, summary=summary).SerializeToString())
    loss = read_log(path).curves["loss"]
    np.testing.assert_array_equal(loss.steps, np.arange(1, 9))


def test_directory_without_logs(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not a log")
    (tmp_path / "ckpt").mkdir()
    message = analyze_error(capsys, tmp_path)
    assert message.endswith(
        f"Expected TensorBoard event files, a metrics.csv or a .jsonl log under {tmp_path}, but found none"
    )


# -- what reaches the terminal and the plot ------------------------------------------------------------------------


def test_series_names_in_an_error_stay_on_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps({"step": i, "lo\nss": 1.0, "\x1b[31mred": 2.0}) + "\n" for i in range(5)))
    message = analyze_error(capsys, path, "--tag", "nope")
    assert message.endswith("but got 'nope'. The series are: lo\\nss, \\x1b[31mred")


@pytest.mark.parametrize("name", [r"$\frac{a}{$loss", "$x^$loss", "_loss$"])
def test_series_name_with_dollars_is_plotted_as_text(tmp_path: Path, capsys, name: str) -> None:
    path = write_csv(tmp_path / "run.csv", list(range(40)), header=f"step,{name}")
    plot = tmp_path / "plot.png"
    assert main(["analyze", str(path), "--plot", str(plot)]) == 0, capsys.readouterr().err
    assert plot.read_bytes().startswith(PNG_SIGNATURE)


def test_horizon_past_the_range_of_a_c_long_is_plotted(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "run.csv", list(range(40)))
    plot = tmp_path / "plot.png"
    assert main(["analyze", str(path), "--horizon", str(10**30), "--plot", str(plot)]) == 0, capsys.readouterr().err
    assert plot.read_bytes().startswith(PNG_SIGNATURE)


def test_as_plain_text_escapes_mathtext_and_keeps_underscored_labels() -> None:
    assert as_plain_text("$x^$loss") == r"\$x^\$loss"
    assert as_plain_text("_hidden") == " _hidden"
    cut = as_plain_text("/very/long/" + "d" * 300 + "/version_0")
    assert len(cut) == 99
    assert cut.endswith("/version_0")


@needs_fifo
@pytest.mark.timeout(20)
def test_plot_path_that_is_a_fifo(tmp_path: Path, capsys) -> None:
    path = write_csv(tmp_path / "run.csv", list(range(40)))
    plot = tmp_path / "plot.png"
    os.mkfifo(plot)
    assert main(["analyze", str(path), "--plot", str(plot)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err == f"curvecast analyze: error: Cannot write the plot to {plot}: it is a FIFO, whose open would wait\n"


# -- memory --------------------------------------------------------------------------------------------------------


def _peak_bytes_reading(path: Path) -> int:
    tracemalloc.start()
    try:
        read_log(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_reading_a_large_log_takes_at_most_three_times_its_size(tmp_path: Path, suffix: str) -> None:
    rows = 300_000 if suffix == ".csv" else 100_000  # tracemalloc slows the JSON parser's dicts down several times
    steps = np.arange(rows)
    loss, lr = 2.0 * (1 + steps / 1000) ** -0.3, 1e-3 * np.cos(steps / rows) ** 2
    path = tmp_path / f"big{suffix}"
    if suffix == ".csv":
        np.savetxt(
            path, np.column_stack([steps, loss, lr]), delimiter=",", header="step,loss,lr", comments="", fmt="%.10g"
        )
    else:
        path.write_text(
            "".join(
                f'{{"step": {s}, "loss": {v:.10g}, "lr": {r:.10g}}}\n' for s, v, r in zip(steps, loss, lr, strict=True)
            )
        )
    # Holding the whole text, its lines and an object per row took 9-10 times the file.
    assert _peak_bytes_reading(path) <= 3 * path.stat().st_size


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", ["nested json", "negative steps", "fifo", "dev zero"])
def test_library_raises_the_documented_error(tmp_path: Path, case: str) -> None:
    """``analyze()`` itself, not only the command, turns each case into ``LogReadError``."""
    from curvecast.offline.analyze import analyze

    path = tmp_path / "run.jsonl"
    if case == "nested json":
        path.write_text('{"step": 1, "loss": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    elif case == "negative steps":
        path = write_csv(tmp_path / "run.csv", list(range(-5, 10)))
    elif case == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        os.mkfifo(tmp_path / "metrics.csv")
        path = tmp_path
    elif DEV_ZERO.exists():
        (tmp_path / "events.out.tfevents.1.h").symlink_to(DEV_ZERO)
        path = tmp_path
    else:
        pytest.skip("no /dev/zero")
    with pytest.raises(LogReadError, match=rf"^Expected .*{tmp_path}"):
        analyze(path)
