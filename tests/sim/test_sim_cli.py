"""The simulator's command line (``python -m openraft_trio.testing.sim``) and its timelines."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from openraft_trio.testing.sim import SimResult, Violation, _cli, run_simulation
from openraft_trio.testing.sim._cli import Progress, RunSpec, SeedSummary, main, parse_seeds
from openraft_trio.testing.sim._timeline import build_timeline, render_html, render_text

REPO = Path(__file__).resolve().parents[2]


# -- seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "seeds"),
    [
        ("0-3", [0, 1, 2, 3]),
        ("7", [7]),
        ("5-5", [5]),
        ("1,3-4,3", [1, 3, 4]),
        (" 10 - 12 , 2 ", [2, 10, 11, 12]),
    ],
)
def test_parse_seeds(spec: str, seeds: list[int]) -> None:
    assert parse_seeds(spec) == seeds


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("3-1", "1 < 3"),
        ("a", "bad seed item 'a'"),
        ("1,,2", "bad seed item ''"),
        ("-1", "bad seed item '-1'"),
        ("1-2-3", "bad seed item"),
        ("0-99999999", "too many seeds"),
    ],
)
def test_parse_seeds_rejects(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_seeds(spec)


def test_bad_seeds_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--seeds", "x-y"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--seeds" in err
    assert "bad seed item 'x-y'" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--seeds", "0", "--replay", "1"],
        ["--seeds", "0", "--trace", "x.jsonl"],
        ["--nodes", "0"],
        ["--duration", "-1"],
        ["--jobs", "0"],
    ],
)
def test_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


# -- runs -------------------------------------------------------------------------------------


def test_run_prints_progress_summary_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "s.json"
    assert main(["--seeds", "0-1", "--duration", "2", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "[2/2] 100.0%  ok=2 fail=0" in out
    assert "\r" not in out  # not a terminal: plain lines
    assert "Simulation summary" in out
    assert re.search(r"seeds run\s+2\n", out)
    assert re.search(r"failures\s+0\n", out)
    assert "linearizability    ok=2" in out
    for stat in ("commits", "elections", "faults injected", "messages"):
        assert stat in out
    assert "All 2 seeds passed." in out
    doc = json.loads(out_json.read_text())
    assert [r["seed"] for r in doc["results"]] == [0, 1]
    assert all(r["ok"] and r["linearizability"] == "ok" for r in doc["results"])
    assert doc["failures"] == 0


def test_failing_seed_shows_violations_and_replay_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = run_simulation

    def broken(seed: int, **kwargs: Any) -> SimResult:
        result = real(seed, **kwargs)
        if seed != 1:
            return result
        bad = tuple(
            Violation(seed, 0.5 + i, "election safety", f"two leaders #{i}") for i in range(5)
        )
        return attrs.evolve(result, violations=bad)

    monkeypatch.setattr(_cli, "run_simulation", broken)
    assert main(["--seeds", "0-2", "--duration", "1", "--nodes", "3", "-q"]) == 1
    out = capsys.readouterr().out
    assert "[" not in out.split("Simulation summary")[0]  # --quiet: no progress
    assert "3 seeds, 1 failed" in out
    assert "1 failing seed:" in out
    assert "seed 1: 5 violations" in out
    assert "[seed 1 t=0.500000s] election safety: two leaders #0" in out
    assert "two leaders #3" not in out
    assert "... and 2 more" in out
    cmd = (
        "python -m openraft_trio.testing.sim --replay 1 --nodes 3 --duration 1 --trace sim-1.jsonl"
    )
    assert f"replay: {cmd}\n" in out
    assert real(1, nodes=3, duration=1.0).replay_command(3, 1.0) == cmd


def test_replay_command_carries_non_default_options() -> None:
    spec = RunSpec(nodes=3, duration=2.5, clients=2, faults=False)
    assert spec.extra_args() == " --clients 2 --no-faults"
    assert RunSpec().extra_args() == ""


def test_simulator_crash_is_a_failing_seed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(seed: int, **kwargs: Any) -> SimResult:
        raise RuntimeError("kaput")

    monkeypatch.setattr(_cli, "run_simulation", boom)
    assert main(["--seeds", "4", "--duration", "1"]) == 1
    out = capsys.readouterr().out
    assert "simulator error: RuntimeError: kaput" in out
    assert "replay: python -m openraft_trio.testing.sim --replay 4 --nodes 5 --duration 1" in out


def test_replay_writes_trace_text_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_json = tmp_path / "run.json"
    assert main(["--seeds", "3", "--duration", "2", "--json", str(run_json), "-q"]) == 0
    run_hash = json.loads(run_json.read_text())["results"][0]["trace_hash"]
    capsys.readouterr()

    trace = tmp_path / "sub" / "out.jsonl"
    assert main(["--replay", "3", "--duration", "2", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    # Same seed, same run: the replay (which keeps its trace) has the run's hash.
    assert f"trace hash         {run_hash}" in out
    assert "No violations." in out
    assert "node 1 role" in out  # the text timeline
    lines = trace.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert events[0]["t"] == 0.0
    assert {"state", "msg"} <= {e["kind"] for e in events}
    assert f"trace events       {len(events):,}" in out  # the CLI groups thousands
    txt = tmp_path / "sub" / "out.timeline.txt"
    page = tmp_path / "sub" / "out.html"
    for p in (trace, txt, page):
        assert f"wrote {p}" in out
    assert "node 5 role" in txt.read_text()
    html = page.read_text()
    assert "<svg" in html
    assert run_hash in html
    assert "<script" not in html
    assert "src=" not in html
    assert "<link" not in html


def test_replay_timeline_option_overrides_html_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "page.html"
    argv = ["--replay", "0", "--duration", "1", "--nodes", "3", "--no-faults", "-q"]
    assert main([*argv, "--timeline", str(page)]) == 0
    assert "<svg" in page.read_text()
    out = capsys.readouterr().out
    assert "faults off" in out
    assert "node 1 role" not in out  # --quiet: no text timeline on stdout


def test_jobs_give_the_same_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    argv = ["--seeds", "5,6", "--duration", "1", "--nodes", "3", "-q"]
    assert main([*argv, "--json", str(a)]) == 0
    assert main([*argv, "--jobs", "2", "--json", str(b)]) == 0

    def hashes(p: Path) -> list[tuple[int, str]]:
        return [(r["seed"], r["trace_hash"]) for r in json.loads(p.read_text())["results"]]

    assert hashes(a) == hashes(b)


def test_module_runs_as_a_subprocess() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "openraft_trio.testing.sim", "--seeds", "0-1", "--duration", "1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "Simulation summary" in res.stdout
    assert "All 2 seeds passed." in res.stdout


# -- progress ---------------------------------------------------------------------------------


def _summary(seed: int, ok: bool = True) -> SeedSummary:
    return SeedSummary(seed, ok, "h", (), (), {}, "ok", "cmd")


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    buf = io.StringIO()
    clock = iter([0.0, 1.0, 2.0, 4.0])
    p = Progress(3, buf, tty=True, now=lambda: next(clock))
    p.update(_summary(0))
    p.update(_summary(1, ok=False))
    p.update(_summary(2))
    p.close()
    text = buf.getvalue()
    assert text.count("\r") == 3
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert "[3/3] 100.0%  ok=2 fail=1  0.8 seeds/s" in text
    assert "|####################|" in text


def test_progress_elsewhere_prints_every_5_percent() -> None:
    buf = io.StringIO()
    p = Progress(100, buf, tty=False, now=lambda: 0.0)
    for s in range(100):
        p.update(_summary(s))
    p.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 20
    assert lines[0].startswith("[  5/100]   5.0%")
    assert lines[-1].startswith("[100/100] 100.0%  ok=100 fail=0")


# -- timelines --------------------------------------------------------------------------------

EVENTS: list[tuple[Any, ...]] = [
    (0.0, "state", 1, "Follower", 0, -1),
    (0.0, "state", 2, "Follower", 0, -1),
    (1.0, "state", 1, "Candidate", 1, -1),
    (1.1, "state", 1, "Leader", 1, -1),
    (1.5, "state", 1, "Leader", 1, 0),
    (1.6, "msg", "ok", 1, 2, "AppendEntries"),
    (2.0, "fault", "crash", 2),
    (3.5, "fault", "partition", [1], [2]),
    (6.0, "fault", "restart", 2),
    (6.2, "state", 2, "Follower", 1, 0),
    (8.0, "state", 1, "Leader", 1, 7),
    (10.0, "phase", "healed"),
]


def _rows(text: str) -> dict[str, str]:
    rows = {}
    for line in text.splitlines():
        if line.startswith(("node ", "faults ")):
            rows[line[:14].strip()] = line[14:]
    return rows


def test_text_timeline_marks_roles_crashes_and_faults() -> None:
    text = render_text(EVENTS, width=10)
    rows = _rows(text)
    assert rows["node 1 role"] == "FLLLLLLLLL"  # the candidate turned leader within column 1
    assert rows["node 2 role"] == "FF....FFFF"  # down from the crash at 2.0 to the restart at 6.0
    assert rows["faults"] == "  XP  R  #"
    term_rows = [ln for ln in text.splitlines() if ln.startswith("       term")]
    commit_rows = [ln for ln in text.splitlines() if ln.startswith("       commit")]
    assert [ln.split()[-1] for ln in term_rows] == ["1", "1"]
    assert [ln.split()[-1] for ln in commit_rows] == ["7", "0"]
    assert "2.000s  X  crash node 2" in text
    assert "3.500s  P  partition {1} | {2}" in text
    assert "6.000s  R  restart node 2" in text
    assert "10.000s  #  phase healed" in text


def test_text_timeline_shows_down_node_at_the_end() -> None:
    events = [*EVENTS[:7], (4.0, "state", 1, "Leader", 1, 3)]
    rows = _rows(render_text(events, width=20))
    assert rows["node 2 role"].endswith("........")
    text = render_text(events, width=20)
    commit_rows = [ln for ln in text.splitlines() if ln.startswith("       commit")]
    assert commit_rows[1].split()[-1] == "."


def test_build_timeline_segments() -> None:
    tl = build_timeline(EVENTS)
    assert tl.nodes == [1, 2]
    assert tl.end == 10.0
    down = [s for s in tl.segments[2] if s.role == "down"]
    assert [(s.start, s.end) for s in down] == [(2.0, 6.0)]
    leader = [s for s in tl.segments[1] if s.role == "Leader"]
    assert leader[0].start == 1.1
    assert leader[-1].end == 10.0
    assert [m.kind for m in tl.marks] == ["crash", "partition", "restart", "healed"]


def test_html_timeline_is_self_contained_svg() -> None:
    page = render_html(
        EVENTS,
        title="t <1>",
        info=[("seed", "1")],
        violations=[(4.0, "election safety: a < b")],
    )
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 1
    assert "<title>t=2.000s: crash node 2</title>" in page
    assert "node 1: Leader, term 1" in page
    assert "<polyline" in page  # commit index plot
    assert "t &lt;1&gt;" in page
    assert "a &lt; b" in page
    assert "<script" not in page
    assert "src=" not in page
    assert "<link" not in page
