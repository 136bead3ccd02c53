"""One CLI: the same list syntax everywhere, help on every option, ``report`` re-rendering every report
type without duplicating records, a quiet exit on a closed pipe, and skipped frames that name videos.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfsbench.cli.common import _ListAction
from mfsbench.cli.main import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]

#: Every list option of the CLI, with two items to give it.
LIST_OPTIONS = [
    ("flops", "--models", "models", ("test_frame_only", "test_mobilefaceswap")),
    ("device", "--models", "models", ("test_frame_only", "test_mobilefaceswap")),
    ("device", "--backends", "backends", ("torch-eager", "onnxruntime")),
    ("device", "--precision", "precision", ("fp32", "int8")),
    ("quality", "--models", "models", ("identity_oracle", "target_copy")),
    ("quality", "--methods", "methods", ("Deepfakes", "FaceShifter")),
]


def command_parser(name: str) -> argparse.ArgumentParser:
    """The subparser of ``name`` with its options, as ``mfsbench NAME`` builds it."""
    parser = build_parser(name)
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(argv[0]).parse_args(list(argv))


# ------------------------------------------------------------------------------ one list syntax


@pytest.mark.parametrize(("command", "flag", "dest", "items"), LIST_OPTIONS)
def test_every_list_option_takes_commas_spaces_and_repeats(command: str, flag: str, dest: str,
                                                           items: tuple[str, str]) -> None:
    a, b = items
    spaces = getattr(parse(command, flag, a, b), dest)
    commas = getattr(parse(command, flag, f"{a},{b}"), dest)
    comma_space = getattr(parse(command, flag, f"{a},", b), dest)  # `--models a, b` in a shell
    repeated = getattr(parse(command, flag, a, flag, b), dest)
    mixed = getattr(parse(command, flag, f"{a},{b}", a), dest)  # a duplicate is dropped
    assert spaces == commas == comma_space == repeated == mixed == [a, b]


@pytest.mark.parametrize(("command", "flag", "dest", "items"), LIST_OPTIONS)
@pytest.mark.parametrize("bad", ["a,,b", "a,", ",a", ""])
def test_an_empty_list_item_is_one_line_and_exit_2(run_cli, command: str, flag: str, *, dest: str,
                                                   items: tuple[str, str], bad: str) -> None:
    result = run_cli(command, flag, bad)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "empty item" in lines[0] and flag in lines[0], result.err
    assert lines[0].startswith(f"mfsbench {command}: error:")


#: Multi-value options that take file paths (a path may hold a comma): space-separated only.
PATH_LISTS = {("quality", "merge"), ("export", "calibration")}


def test_every_list_option_of_every_command_uses_the_one_helper() -> None:
    """No command may grow its own list syntax again: every multi-value option is the shared one."""
    found = set()
    for name in COMMANDS:
        for action in command_parser(name)._actions:
            if action.option_strings and action.nargs in ("*", "+") and (name, action.dest) not in PATH_LISTS:
                assert isinstance(action, _ListAction), f"mfsbench {name} {action.option_strings[0]}"
                found.add((name, action.option_strings[0]))
    assert found >= {(c, f) for c, f, _d, _i in LIST_OPTIONS}


def test_list_defaults_are_not_shared_between_parses() -> None:
    first = parse("quality", "--models", "target_copy")
    second = parse("quality")
    assert first.models == ["target_copy"] and second.models == []


def test_methods_none_still_means_no_method() -> None:
    assert parse("quality", "--methods", "none").methods == ["none"]
    assert parse("quality").methods is None


# ------------------------------------------------------------------------------ help on every option


def test_every_option_of_every_command_has_help() -> None:
    missing = []
    parsers = [("", build_parser())] + [(f" {name}", command_parser(name)) for name in COMMANDS]
    for name, parser in parsers:
        for action in parser._actions:
            if not action.option_strings:
                continue
            text = action.help
            if text is None or text == argparse.SUPPRESS or not str(text).strip():
                missing.append(f"mfsbench{name} {action.option_strings[-1]}")
    assert not missing, "options without help: " + ", ".join(missing)


# ------------------------------------------------------------------------------ a closed pipe


def test_a_reader_that_closes_the_pipe_gets_no_traceback() -> None:
    """``mfsbench models | head -1``: the reader is gone before the first write (a closed pipe, so the
    write fails for certain however small the output); exit 141 (128 + SIGPIPE), nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "mfsbench.cli", "models"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120, check=False)
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141


def test_head_of_a_long_listing_exits_quietly() -> None:
    """The shell pipeline itself, with enough output (the JSON listing, many times) to outlast the pipe."""
    script = ("from mfsbench.cli import main as m\nreal = m.main\n"
              "def main(argv=None):\n"
              "    for _ in range(2000):\n        code = real(['models', '--format', 'json'])\n"
              "    return code\n"
              "m.main = main\nm.console_entry()\n")
    pipeline = f'"{sys.executable}" -c "$0" | head -1; echo "${{PIPESTATUS[0]}}" >&2'
    done = subprocess.run(["bash", "-c", pipeline, script], capture_output=True, text=True, cwd=REPO,
                          timeout=300, check=False)
    assert done.stdout == "[\n"
    assert done.stderr.strip() == "141", done.stderr


# ------------------------------------------------------------------------------ quality reports

FP, EVALSET = "fp0123456789abcdef", "evalset-a"


def quality_cache(path: Path) -> Path:
    """A finished quality cache in the layout the runner writes: one row, frames skipped three ways.

    Pair 000_003 loses one frame to a missing face; the target videos of pairs 001_002 and 004_005
    are unreadable, so both items are skipped whole (4 planned frames each).
    """
    from mfsbench.quality.store import FrameResult, QualityStore

    with QualityStore(path) as store, store.transaction():
        store.put_meta(f"run:{FP}:{EVALSET}", {"protocol_id": "ffpp_v1", "evaluators": {}, "pairs": 3})
        store.put_row(FP, "target_copy", EVALSET, 0, {"label": "target copy", "kind": "copy",
                                                       "model": "target_copy", "mode": None})
        store.put_item(FP, "target_copy", EVALSET, target="000", source="003", status="ok", reason=None,
                       results=[FrameResult(3, "ok", None, True, 0.5, 1.0),
                                FrameResult(5, "skipped", "no face in frame 5")], timings={})
        for target, source in (("001", "002"), ("004", "005")):
            store.put_item(FP, "target_copy", EVALSET, target=target, source=source, status="skipped",
                           reason=f"target video unusable: /ffpp/{target}.mp4: moov atom not found",
                           results=[], timings={}, planned=4)
    return path


def skipped_section(markdown: str) -> list[str]:
    return [line for line in markdown.split("## Frames skipped, by reason")[1].splitlines()
            if line.startswith("| `")]


def test_frames_skipped_names_the_videos(tmp_path: Path) -> None:
    from mfsbench.quality.store import QualityStore
    from mfsbench.report.table2 import collect, render_markdown

    with QualityStore(quality_cache(tmp_path / "quality_cache.sqlite")) as store:
        header, rows = collect(store, FP, EVALSET)
    lines = skipped_section(render_markdown(header, rows))
    unusable = [line for line in lines if "moov atom" in line]
    no_face = [line for line in lines if "no face" in line]
    assert len(unusable) == 1 and len(no_face) == 1, lines  # one cause, grouped over both videos
    assert "| 8 |" in unusable[0] and "001_002, 004_005" in unusable[0]
    assert "/ffpp/<target>.mp4" in unusable[0] and "/ffpp/N.mp4" not in unusable[0]
    assert "| 1 |" in no_face[0] and "000_003" in no_face[0] and "frame(s) N" in no_face[0]


def quality_out(tmp_path: Path) -> Path:
    """An OUT folder as ``mfsbench quality`` leaves it: the cache, Table 2 and the records."""
    from mfsbench.cli.quality import _render
    from mfsbench.quality.store import QualityStore

    out = tmp_path / "reports"
    with QualityStore(quality_cache(out / "quality_cache.sqlite")) as store:
        assert _render(store, out, FP, EVALSET, stem="table2_quality") == 0
    return out


def record_lines(out: Path) -> list[str]:
    return (out / "records.jsonl").read_text(encoding="utf-8").splitlines()


def test_a_quality_rerender_appends_no_duplicate_records(tmp_path: Path) -> None:
    """``quality`` over a finished cache (or a repeated ``--merge``) renders the same table again: the
    records it would append are already in the store. A changed table is recorded."""
    from mfsbench.cli.quality import _render
    from mfsbench.quality.store import FrameResult, QualityStore

    out = quality_out(tmp_path)
    first = record_lines(out)
    assert len(first) == 1 and '"target_copy"' in first[0]
    with QualityStore(out / "quality_cache.sqlite") as store:
        _render(store, out, FP, EVALSET, stem="table2_quality")
        _render(store, out, FP, EVALSET, stem="table2_quality")
        assert record_lines(out) == first
        store.put_item(FP, "target_copy", EVALSET, target="006", source="007", status="ok", reason=None,
                       results=[FrameResult(1, "ok", None, True, 0.4, 2.0)], timings={})
        _render(store, out, FP, EVALSET, stem="table2_quality")
    assert len(record_lines(out)) == 2  # one more pair evaluated: a new figure, a new record


def test_report_rerenders_quality_from_its_cache_and_never_appends(run_cli, tmp_path: Path) -> None:
    out = quality_out(tmp_path)
    table = (out / "table2_quality.md").read_text(encoding="utf-8")
    (out / "table2_quality.md").unlink()
    (out / "table2_quality.csv").unlink()
    before = record_lines(out)
    for _ in range(2):
        result = run_cli("report", "--out", str(out))
        assert result.code == 0, result.err
        assert f"wrote {out / 'table2_quality.md'}" in result.out
        assert record_lines(out) == before
    assert (out / "table2_quality.md").read_text(encoding="utf-8") == table
    assert (out / "table2_quality.csv").is_file()


def test_report_names_a_quality_run_it_cannot_rerender(run_cli, tmp_path: Path) -> None:
    out = quality_out(tmp_path)
    moved = tmp_path / "elsewhere.sqlite"
    (out / "quality_cache.sqlite").rename(moved)
    (out / "table2_quality.md").unlink()
    result = run_cli("report", "--out", str(out))
    assert result.code == 0, result.err
    warnings = [line for line in result.out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and FP[:12] in warnings[0] and "not from records alone" in warnings[0]
    assert not (out / "table2_quality.md").exists()
    given = run_cli("report", "--out", str(out), "--cache", str(moved))
    assert given.code == 0 and "warning" not in given.out, given.out
    assert (out / "table2_quality.md").is_file()
    missing = run_cli("report", "--out", str(out), "--cache", str(tmp_path / "nope.sqlite"))
    assert missing.code == 2 and len(missing.err.strip().splitlines()) == 1


def test_report_rerenders_table1_and_device_reports_without_appending(run_cli, tmp_path: Path) -> None:
    """The other report types, from records alone: Table 1 and the desktop device report."""
    from mfsbench.records import Record, append_records, stamp

    out = tmp_path / "reports"
    assert run_cli("flops", "--models", "test_frame_only", "--out", str(out)).code == 0
    device = Record("device", "test_frame_only", stage="frame", mode="video", metrics={"p50_ms": 3.0},
                    info={"backend": "onnxruntime", "precision": "fp32"})
    append_records(out / "records.jsonl", stamp([device], "r1"))
    for path in out.glob("*.md"):
        path.unlink()
    before = record_lines(out)
    for _ in range(2):
        result = run_cli("report", "--out", str(out))
        assert result.code == 0, result.err
        assert record_lines(out) == before
    assert (out / "table1_complexity.md").is_file() and (out / "device_desktop.md").is_file()
