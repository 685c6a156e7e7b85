"""``benchmarks/results.py``: a script's results replace its own block of benchmarks/README.md and nothing else.

Every test writes to a copy in ``tmp_path``; the real file is only read.
"""

import importlib.util
import shutil
import sys
from datetime import date
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
_spec = importlib.util.spec_from_file_location("benchmark_results", BENCHMARKS / "results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)


def _blocks(text: str) -> dict[str, str]:
    """Every results block of a document, by name."""
    found = {}
    for part in text.split("<!-- results:")[1:]:
        name, _, body = part.partition(" -->")
        found[name] = body.split(f"<!-- /results:{name} -->")[0]
    return found


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    copy = tmp_path / "README.md"
    shutil.copyfile(BENCHMARKS / "README.md", copy)
    return copy


def test_every_printing_script_has_a_block_and_a_heading():
    text = (BENCHMARKS / "README.md").read_text(encoding="utf-8")
    blocks = _blocks(text)
    for script in BENCHMARKS.glob("*.py"):
        if "recorded(" in script.read_text(encoding="utf-8") and script.name != "results.py":
            assert script.stem in blocks, script.name
            assert f"\n## {script.stem}\n" in text, script.name


def test_record_replaces_only_its_block(readme: Path):
    before = readme.read_text(encoding="utf-8")
    results.record(
        "history_memory",
        "10,000 steps of one series\npoints kept 123\n",
        path=readme,
        command="python benchmarks/history_memory.py --steps 10000",
        when=date(2027, 1, 2),
        where="a test machine, 4 CPUs",
    )
    after = readme.read_text(encoding="utf-8")
    block = _blocks(after)["history_memory"]
    assert "Measured 2027-01-02 on a test machine, 4 CPUs:" in block
    assert "python benchmarks/history_memory.py --steps 10000" in block
    assert "```text\n10,000 steps of one series\npoints kept 123\n```" in block
    assert "23,554" not in block  # the figures it replaced
    # Outside the block, not a character moved.
    start, end = "<!-- results:history_memory -->", "<!-- /results:history_memory -->"
    assert before.split(start)[0] == after.split(start)[0]
    assert before.split(end)[1] == after.split(end)[1]
    assert {k: v for k, v in _blocks(after).items() if k != "history_memory"} == {
        k: v for k, v in _blocks(before).items() if k != "history_memory"
    }


def test_record_twice_keeps_one_block_and_defaults_to_today_and_this_machine(readme: Path):
    results.record("startup_cost", "first", path=readme, command="python benchmarks/startup_cost.py")
    results.record("startup_cost", "second\r\nlast state\rfinal state", path=readme, command="c")
    text = readme.read_text(encoding="utf-8")
    assert text.count("<!-- results:startup_cost -->") == 1
    block = _blocks(text)["startup_cost"]
    assert "first" not in block
    assert "second\nfinal state" in block  # a line rewritten in place keeps its last state
    assert results.machine() in block
    assert "Measured 20" in block


def test_a_new_script_gets_a_section_at_the_end(readme: Path):
    before = readme.read_text(encoding="utf-8")
    results.record("new_benchmark", "a table", path=readme, command="c", where="m")
    after = readme.read_text(encoding="utf-8")
    assert after.startswith(before.rstrip())
    assert "\n## new_benchmark\n\n<!-- results:new_benchmark -->\n" in after
    assert after.endswith("<!-- /results:new_benchmark -->\n")


def test_backticks_in_the_text_lengthen_the_fence(readme: Path):
    results.record("callback_overhead", "a ``` in the output", path=readme, command="c", where="m")
    assert "````text\na ``` in the output\n````" in readme.read_text(encoding="utf-8")


def test_bad_names_and_unclosed_blocks_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="`script` must be letters"):
        results.record("a b", "x", path=tmp_path / "unused.md")
    broken = tmp_path / "broken.md"
    broken.write_text("<!-- results:x -->\nno end\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must be closed by"):
        results.record("x", "text", path=broken, command="c", where="m")
    assert broken.read_text(encoding="utf-8") == "<!-- results:x -->\nno end\n"


def test_recorded_passes_stdout_through_and_records_what_was_printed(readme, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/history_memory.py", "--steps", "5"])
    with results.recorded("history_memory", path=readme):
        print("row 1")
        print("row 2")
    assert capsys.readouterr().out == "row 1\nrow 2\n"
    block = _blocks(readme.read_text(encoding="utf-8"))["history_memory"]
    assert "python benchmarks/history_memory.py --steps 5" in block
    assert "row 1\nrow 2" in block


def test_recorded_leaves_the_file_alone_on_no_record_or_a_failure(readme, monkeypatch):
    before = readme.read_text(encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["benchmarks/history_memory.py", "--no-record", "--steps", "5"])
    with results.recorded("history_memory", path=readme):
        assert sys.argv == ["benchmarks/history_memory.py", "--steps", "5"]  # main() never sees the flag
        print("row")
    monkeypatch.setattr(sys, "argv", ["benchmarks/history_memory.py"])
    with pytest.raises(SystemExit):
        _exits_in_recorded(readme)
    assert readme.read_text(encoding="utf-8") == before


def _exits_in_recorded(readme: Path) -> None:
    with results.recorded("history_memory", path=readme):
        print("usage: ...")
        raise SystemExit(2)
