"""The Engine alone: CPU time per client write on a 3-voter leader, no I/O, no Trio.

One write is the inputs a leader's Engine sees for it: ``client_write``, the flush of its
own log, two followers' progress, and the apply. It measures what the protocol logic costs
per write, apart from the runtime. To compare two checkouts, run it in both (noisy machine:
look at the medians of several repeats)::

    PYTHONPATH=/path/to/old python benchmarks/bench_engine.py
    PYTHONPATH=/path/to/new python benchmarks/bench_engine.py
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from openraft_trio._config import Config
from openraft_trio._engine import INIT_LOG_ID, Engine, IOId
from openraft_trio._engine.commands import SendVote
from openraft_trio._messages import VoteResponse
from openraft_trio._types import Membership, Node, Normal, StoredMembership


def _leader() -> Engine:
    engine = Engine(1, Config().validate(), random.Random(0))
    membership = Membership(configs=[{1, 2, 3}], nodes={i: Node(f"n{i}") for i in (1, 2, 3)})
    engine.startup(
        vote=None,
        log_ids=[INIT_LOG_ID],
        purged=None,
        committed=INIT_LOG_ID,
        last_applied=INIT_LOG_ID,
        applied_membership=StoredMembership(INIT_LOG_ID, membership),
        log_memberships=[],
        now=1000.0,
    )
    engine.tick(engine.election_deadline)
    for _ in range(2):  # the pre-vote round, then the real one: node 2 grants both
        command = engine.take_output()[-1]
        assert isinstance(command, SendVote)
        request = command.req
        engine.handle_vote_resp(2, request, VoteResponse(request.vote, True, None))
    assert engine.is_leader
    engine.take_output()
    return engine


def _run(writes: int) -> float:
    """Seconds per write over ``writes`` writes."""
    engine = _leader()
    leader = engine.leader
    assert leader is not None
    start = time.perf_counter()
    for i in range(writes):
        [log_id] = engine.client_write([Normal(i)])
        engine.on_io_flushed(IOId(engine.vote, log_id))
        for target in (2, 3):
            epoch = leader.progress[target].epoch
            engine.handle_replication_progress(target, engine.vote, epoch, log_id, engine.now)
        engine.on_applied(log_id)
        engine.take_output()
    return (time.perf_counter() - start) / writes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/engine.json"))
    args = parser.parse_args(argv)
    runs_us = [_run(args.writes) * 1e6 for _ in range(args.repeats)]
    result = {
        "benchmark": "engine",
        "writes": args.writes,
        "us_per_write": runs_us,
        "median_us_per_write": statistics.median(runs_us),
    }
    print(f"engine: {result['median_us_per_write']:.2f} us per write (median of "
          f"{args.repeats}: {', '.join(f'{r:.2f}' for r in runs_us)})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
