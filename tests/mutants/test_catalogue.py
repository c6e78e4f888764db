"""The mutation catalogue cannot rot silently: every patch applies to today's code exactly
once, lands in the function it names, and the harness's canary sees it (and fails when
the mutated code is not what runs)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import attrs
import pytest

from . import _runner
from ._runner import (
    QUICK,
    ROOT,
    LayerResult,
    Sweep,
    apply_edits,
    copy_repo,
    module_of,
    run_canary,
    select,
    stale_edits,
)
from .catalogue import CATALOGUE, Mutation

ISSUE_12_TABLE = {
    "vote-inside-lease",
    "follower-lease-halved",
    "read-index-without-quorum-round",
    "lease-always-valid",
    "check-quorum-never-steps-down",
    "lease-from-receipt",
    "ack-before-flush",
    "second-vote-in-term",
    "joint-commit-by-new-config",
    "snapshot-membership-not-adopted",
    "read-without-apply-wait",
}


def test_names_are_unique_and_cover_issue_12s_table() -> None:
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names))
    assert set(names) >= ISSUE_12_TABLE
    assert {m.kind for m in CATALOGUE} <= {"safety", "liveness", "performance"}


@pytest.mark.parametrize("mutation", CATALOGUE, ids=lambda m: m.name)
def test_each_patch_applies_once_inside_the_function_it_names(mutation: Mutation) -> None:
    assert stale_edits(mutation) == []
    for edit in mutation.edits:
        obj = importlib.import_module(module_of(edit))
        for part in edit.function.split("."):
            obj = getattr(obj, part)
        assert edit.old in inspect.getsource(obj), edit.function
        assert edit.old != edit.new
    for path in mutation.unit:
        assert (ROOT / path).exists(), path


def test_a_stale_patch_is_reported(tmp_path: Path) -> None:
    [mutation] = select(["ack-before-flush"], quick=False)
    copy_repo(tmp_path)
    target = tmp_path / mutation.edits[0].path
    target.write_text(target.read_text().replace(mutation.edits[0].old, "# rewritten\n"))
    [problem] = stale_edits(mutation, tmp_path)
    assert "found 0 times" in problem


def test_the_canary_sees_the_mutated_copy_and_only_it(tmp_path: Path) -> None:
    [mutation] = select(["commit-past-own-flush"], quick=False)
    copy_repo(tmp_path)
    assert "does not hold the mutated text" in run_canary(mutation, tmp_path)
    apply_edits(mutation, tmp_path)
    assert run_canary(mutation, tmp_path) == ""


def test_selection() -> None:
    quick = select([], quick=True)
    assert quick
    assert all(m.quick for m in quick)
    assert len(select([], quick=False)) == len(CATALOGUE)
    with pytest.raises(SystemExit, match="unknown mutant"):
        select(["no-such-rule"], quick=False)


def test_the_props_layer_is_caught_only_if_every_hypothesis_seed_catches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outcome = {0: "caught", 1: "survived", 2: "caught"}

    def once(layer: str, mutation: Any, copy: Path, sweep: Sweep, seed: int) -> LayerResult:
        return LayerResult(outcome[seed], 1.0, f"seed {seed}")

    monkeypatch.setattr(_runner, "_run_layer_once", once)
    sweep = attrs.evolve(QUICK, hypothesis_seeds=(0, 1, 2))
    [mutant] = select(["commit-past-own-flush"], quick=False)
    result = _runner.run_layer("props", mutant, tmp_path, sweep)
    assert result == LayerResult("survived", 3.0, "survived under hypothesis seed(s) 1: seed 1")
    # The unmutated baseline fails (shows "caught") if any seed fails.
    result = _runner.run_layer("props", None, tmp_path, sweep)
    assert result == LayerResult("caught", 3.0, "caught under hypothesis seed(s) 0,2: seed 0")
    outcome[1] = "caught"
    assert _runner.run_layer("props", mutant, tmp_path, sweep) == LayerResult(
        "caught", 3.0, "seed 0"
    )
    # ...and passes when every seed passes.
    outcome.update({0: "survived", 1: "survived", 2: "survived"})
    result = _runner.run_layer("props", None, tmp_path, sweep)
    assert result == LayerResult("survived", 3.0, "seed 0")
    outcome[0] = "caught"
    # Other layers run once, under the first seed.
    assert _runner.run_layer("unit", mutant, tmp_path, sweep) == LayerResult(
        "caught", 1.0, "seed 0"
    )


def test_hypothesis_seeds_option() -> None:
    assert _runner.build_parser().parse_args(["--hypothesis-seeds", "0,3"]).hypothesis_seeds == (
        0,
        3,
    )
    with pytest.raises(SystemExit):
        _runner.build_parser().parse_args(["--hypothesis-seeds", "0,x"])


def test_stop_when_caught_runs_the_simulator_layers_first_and_stops_at_the_verdict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran: list[str] = []
    status = {"unit": "caught", "sim": "survived", "sim-m": "caught", "props": "caught"}

    def layer(name: str, mutation: Any, copy: Path, sweep: Sweep) -> LayerResult:
        ran.append(name)
        return LayerResult(status[name], 1.0)

    monkeypatch.setattr(_runner, "run_layer", layer)
    monkeypatch.setattr(_runner, "stale_edits", lambda mutation, source: [])
    monkeypatch.setattr(_runner, "copy_repo", lambda dest, root: None)
    monkeypatch.setattr(_runner, "apply_edits", lambda mutation, copy: None)
    monkeypatch.setattr(_runner, "run_canary", lambda mutation, copy: "")
    [mutant] = select(["commit-past-own-flush"], quick=False)
    result = _runner.run_mutant(mutant, attrs.evolve(QUICK, stop_when_caught=True), tmp_path)
    assert ran == ["unit", "sim", "sim-m"]
    assert list(result.layers) == ["unit", "sim", "sim-m"]
    assert result.caught
    # A mutant its unit tests miss runs every layer (it cannot be caught; the table shows
    # what else sees it).
    ran.clear()
    status["unit"] = "survived"
    result = _runner.run_mutant(mutant, attrs.evolve(QUICK, stop_when_caught=True), tmp_path)
    assert ran == ["unit", "sim", "sim-m", "props"]
    assert list(result.layers) == list(_runner.LAYERS)
    assert not result.caught
    # Without the option every layer runs, in the table's order.
    ran.clear()
    status["unit"] = "caught"
    _runner.run_mutant(mutant, QUICK, tmp_path)
    assert ran == list(_runner.LAYERS)
