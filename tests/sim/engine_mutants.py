"""Single-rule mutants of the Engine, and a runner showing the stateful test finds each.

Each :class:`Mutant` replaces one line of one engine function (matched exactly, after
stripping indentation; it must occur once in its file). The runner copies the package to a
temporary directory, applies one mutant there — the worktree is never touched — and runs
:class:`~tests.sim.test_engine_stateful.EngineMachine` with the CI profile in a fresh
interpreter that imports the mutated copy, then replays the mutant's known schedule
(``SCHEDULES`` in the test module). It reports, per mutant: whether the search caught it,
the length of the shrunk counterexample (rule steps), the time to the first failure, the
total time (search and shrinking), the first line of the failure, and the replay's
verdict::

    python -m tests.sim.engine_mutants              # every mutant
    python -m tests.sim.engine_mutants lease_always_valid
    python -m tests.sim.engine_mutants --list

``tests/sim/test_engine_stateful.py::test_every_mutant_line_is_in_the_engine`` keeps the
list in step with the source.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]


@attrs.frozen
class Mutant:
    name: str
    path: str  # relative to the repository root
    function: str
    old: str  # the line as in the source, without its indentation
    new: str
    rule: str  # the rule it breaks

    def apply(self, source: str) -> str:
        """``source`` with the mutant's line replaced (indentation kept).

        Raises:
            ValueError: the line does not occur exactly once.
        """
        lines = source.splitlines(keepends=True)
        hits = [k for k, line in enumerate(lines) if line.strip() == self.old]
        if len(hits) != 1:
            raise ValueError(f"{self.name}: {self.old!r} occurs {len(hits)} times in {self.path}")
        k = hits[0]
        indent = lines[k][: len(lines[k]) - len(lines[k].lstrip())]
        lines[k] = indent + self.new + "\n"
        return "".join(lines)


E = "openraft_trio/_engine/"
MUTANTS = [
    Mutant(
        "stickiness_off", E + "vote_handler.py", "VoteHandler.handle_vote_req",
        "if self.lease_valid_for_followers() and not req.leader_transfer and not regrant:",
        "if False:",
        "leader stickiness: refuse (pre-)votes within the lease",
    ),
    Mutant(
        "lease_always_valid", E + "leader_handler.py", "LeaderHandler.lease_valid",
        "return self.now < self.quorum_ack_time() + c.lease - c.lease_clock_drift",
        "return True",
        "LEASE_READ only while a quorum acked within lease - drift",
    ),
    Mutant(
        "read_index_without_round", E + "leader_handler.py", "LeaderHandler._resolve_reads",
        "elif acked_round >= r.read_round:",
        "elif True:",
        "READ_INDEX waits for a quorum round sent after the read",
    ),
    Mutant(
        "second_vote_in_term", E + "vote_handler.py", "VoteHandler.handle_vote_req",
        "if not req.vote >= self.vote:",
        "if req.vote.term < self.vote.term:",
        "one vote per term (votes are a partial order)",
    ),
    Mutant(
        "joint_quorum_last_config_only", E + "leader_handler.py", "LeaderHandler._quorum_value",
        "for config in self.membership.membership.configs:",
        "for config in self.membership.membership.configs[-1:]:",
        "joint consensus: a majority of each voter set",
    ),
    Mutant(
        "transfer_keeps_lease", E + "leader_handler.py", "LeaderHandler.transfer_leader",
        "leader.lease_given_up = True",
        "leader.lease_given_up = False",
        "a transferring leader gives up its lease (issue 11)",
    ),
    Mutant(
        "elect_ignores_lease", E + "vote_handler.py", "VoteHandler.elect",
        "if not self.is_voter or self.leader is not None or self.lease_valid_for_followers():",
        "if not self.is_voter or self.leader is not None:",
        "no campaign inside the node's own lease (issue 11)",
    ),
    Mutant(
        "no_startup_lease", E + "engine.py", "Engine.startup",
        "self.leader_seen_time = self.now",
        "pass",
        "a restarted node assumes a live leader for one lease (issue 11)",
    ),
    Mutant(
        "follower_lease_halved", E + "base.py", "EngineBase.lease_valid_for_followers",
        "return t is not None and self.now < t + self.config.lease",
        "return t is not None and self.now < t + self.config.lease / 2",
        "followers use the same lease as the leader",
    ),
    Mutant(
        "check_quorum_never_steps_down", E + "leader_handler.py", "LeaderHandler.check_quorum",
        "self.step_down(None)",
        "pass",
        "check-quorum: a leader without a quorum's acks within the lease steps down",
    ),
    Mutant(
        "lease_from_receipt", E + "leader_handler.py", "LeaderHandler.handle_heartbeat_ack",
        "self._record_ack(target, send_time, force_reads=True)",
        "self._record_ack(target, self.now, force_reads=True)",
        "the lease counts from the heartbeat's send time",
    ),
    Mutant(
        "follower_acks_before_flush", E + "following_handler.py",
        "FollowingHandler.handle_append_entries",
        "io = IOId(self.vote, matching)",
        "io = IOId(self.vote, None)",
        "a follower acknowledges (and commits) only flushed entries",
    ),
    Mutant(
        "snapshot_membership_not_adopted", E + "snapshot_handler.py",
        "SnapshotHandler.on_snapshot_installed",
        "self.membership.committed = meta.last_membership",
        "pass",
        "an installed snapshot's membership becomes the committed one",
    ),
]

# Run in the child interpreter: sys.argv[1] is the mutated copy to import first.
_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import openraft_trio
assert openraft_trio.__file__.startswith(sys.argv[1]), openraft_trio.__file__
from hypothesis.stateful import run_state_machine_as_test
from tests.sim import test_engine_stateful as t

first = []
class Probe(t.EngineMachine):
    def _fail(self, message):
        first.append(time.perf_counter())
        super()._fail(message)

start = time.perf_counter()
result = {"caught": False}
try:
    run_state_machine_as_test(Probe, settings=t.PROFILE)
except BaseException as e:
    notes = "\n".join(getattr(e, "__notes__", []))
    steps = [
        line for line in notes.splitlines()
        if line.startswith("state.") and line.split("(")[0][6:] in t.RULE_NAMES
    ]
    result = {
        "caught": True,
        "steps": len(steps),
        "error": (str(e).splitlines() or [type(e).__name__])[0][:160],
        "type": type(e).__name__,
        "example": steps,
    }
end = time.perf_counter()
result["total_s"] = round(end - start, 2)
result["first_s"] = round(first[0] - start, 2) if first else None
schedule = t.SCHEDULES.get(sys.argv[2])
if schedule is not None:
    started = time.perf_counter()
    try:
        t.replay(schedule)
        result["replay"] = "passed (not caught)"
    except AssertionError as e:
        result["replay"] = f"caught in {len(schedule)} steps: {str(e).splitlines()[0][:100]}"
    result["replay_ms"] = round((time.perf_counter() - started) * 1000, 1)
print(json.dumps(result))
"""


def run_mutant(mutant: Mutant) -> dict[str, object]:
    """Run the stateful test against ``mutant`` (in a copy of the package)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "openraft_trio"
        shutil.copytree(ROOT / "openraft_trio", copy, ignore=shutil.ignore_patterns("__pycache__"))
        target = Path(tmp) / mutant.path
        target.write_text(mutant.apply(target.read_text()))
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, tmp, mutant.name],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            return {"caught": None, "error": proc.stderr[-2000:],
                    "total_s": round(time.perf_counter() - started, 2)}
        result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result


def main(argv: list[str]) -> int:
    if "--list" in argv:
        for m in MUTANTS:
            print(f"{m.name}: {m.path} {m.function}: {m.old!r} -> {m.new!r}")
        return 0
    chosen = [m for m in MUTANTS if not argv or m.name in argv]
    missed = 0
    for m in chosen:
        r = run_mutant(m)
        missed += not r.get("caught")
        print(f"{m.name}: {json.dumps(r)}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
