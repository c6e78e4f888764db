"""Log events (``openraft_trio.observability.EVENTS``): each one a log record with its stable
name in ``record.event`` and its fields in ``extra``, emitted by an in-process cluster as
the things they name happen."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
import trio

import openraft_trio as raft
from openraft_trio.kv import Set
from openraft_trio.observability import EVENTS
from openraft_trio.testing import open_cluster


def events(caplog: pytest.LogCaptureFixture, name: str, **match: Any) -> list[dict[str, Any]]:
    """The fields of every ``name`` event captured whose fields include ``match``."""
    assert name in EVENTS
    found = []
    for record in caplog.records:
        if getattr(record, "event", None) != name:
            continue
        fields = {field: getattr(record, field) for field in EVENTS[name].fields}
        assert record.name == EVENTS[name].logger
        if all(fields[k] == v for k, v in match.items()):
            found.append(fields)
    return found


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="openraft_trio")
    return caplog


async def test_an_election_logs_started_won_and_the_new_leader(autojump_clock, captured):
    async with open_cluster(3, seed=3) as c:
        lid = await c.wait_for_leader(5)
        (started,) = events(captured, "election.started", node_id=lid)
        assert started == {"node_id": lid, "term": 1}
        (won,) = events(captured, "election.won", node_id=lid)
        assert won["term"] == 1
        assert lid in won["votes"]
        assert len(won["votes"]) >= 2
        assert set(won["votes"]) <= {1, 2, 3}
        assert won["duration"] >= 0
        assert events(captured, "role.changed", node_id=lid, role="LEADER") == [
            {"node_id": lid, "term": 1, "role": "LEADER", "previous_role": "CANDIDATE"}
        ]
        for nid in c.node_ids:
            assert events(captured, "term.changed", node_id=nid, term=1, previous_term=0)
        await c.nodes[lid].client_write(Set("k", 1))
        await c.wait_applied(2)
        for nid in c.node_ids:
            assert events(captured, "leader.changed", node_id=nid, leader=lid, term=1)
        # Every event carries exactly its catalogue's fields (checked by events()).
        assert events(captured, "election.lost") == []


async def test_an_isolated_leader_steps_down_and_the_others_elect_a_new_one(
    autojump_clock, captured
):
    async with open_cluster(3, seed=5) as c:
        old = await c.wait_for_leader(5)
        captured.clear()
        c.router.isolate(old)
        # Check-quorum: the isolated leader steps down on its own, in its term.
        await c.nodes[old].wait(5).metrics(
            lambda m: m.state == raft.ServerState.FOLLOWER, "old leader stepped down"
        )
        assert events(captured, "role.changed", node_id=old, role="FOLLOWER") == [
            {"node_id": old, "term": 1, "role": "FOLLOWER", "previous_role": "LEADER"}
        ]
        assert events(captured, "leader.changed", node_id=old, leader=None, previous_leader=old)
        new = None
        with trio.fail_after(10):
            while new is None or new == old:
                await trio.sleep(0.05)
                new = c.leader_id()
        (won,) = events(captured, "election.won", node_id=new)
        term = won["term"]
        assert term >= 2
        others = [n for n in c.node_ids if n != old]
        for nid in others:
            assert events(captured, "term.changed", node_id=nid, term=term)
        # Healed, the old leader learns the new term and leader.
        c.router.heal()
        await c.nodes[old].wait(10).current_leader(new)
        assert events(captured, "term.changed", node_id=old, term=term, previous_term=1)
        assert events(captured, "leader.changed", node_id=old, leader=new, previous_leader=None)


async def test_membership_changes_are_logged_with_voters_and_learners(autojump_clock, captured):
    async with open_cluster(3, seed=7) as c:
        lid = await c.wait_for_leader(5)
        await c.start(4)
        resp = await c.nodes[lid].add_learner(4, raft.Node("node-4"))
        (learner,) = events(captured, "membership.changed", node_id=lid, learners=[4])
        assert learner == {
            "node_id": lid,
            "term": 1,
            "log_index": resp.log_id.index,
            "voters": [[1, 2, 3]],
            "learners": [4],
            "joint": False,
        }
        await c.nodes[lid].change_membership({1, 2, 4})
        changes = [e for e in events(captured, "membership.changed", node_id=lid)]
        assert [(e["voters"], e["learners"], e["joint"]) for e in changes[-2:]] == [
            ([[1, 2, 3], [1, 2, 4]], [], True),
            ([[1, 2, 4]], [], False),  # removed, not retained as a learner
        ]
        # Followers log the same changes, as the entries reach them.
        await c.wait_applied(changes[-1]["log_index"], nodes=[4])
        assert events(captured, "membership.changed", node_id=4, voters=[[1, 2, 4]])


async def test_snapshots_purges_and_a_stalled_follower_are_logged(autojump_clock, captured):
    config = raft.Config(cluster_name="t", snapshot_policy=20, max_in_snapshot_log_to_keep=0)
    async with open_cluster(3, seed=11, config=config) as c:
        lid = await c.wait_for_leader(5)
        follower = min(n for n in c.node_ids if n != lid)
        c.router.isolate(follower)
        for i in range(45):
            await c.nodes[lid].client_write(Set(f"k{i}", i))
        built = events(captured, "snapshot.built", node_id=lid)
        assert built
        assert set(built[0]) == {"node_id", "index", "term", "size"}
        assert built[0]["term"] == 1
        assert built[0]["size"] > 0
        purged = events(captured, "log.purged", node_id=lid)
        assert [p["upto"] for p in purged] == [b["index"] for b in built]
        await trio.sleep(2)  # virtual time: requests to the follower time out meanwhile
        (stalled,) = events(captured, "replication.stalled", node_id=lid, target=follower)
        assert stalled["term"] == 1
        assert stalled["error_type"] in ("RPCTimeout", "Unreachable", "NetworkError")
        assert events(captured, "replication.resumed") == []

        c.router.heal()
        last = built[-1]["index"]
        await c.nodes[follower].wait(10).snapshot_index_at_least(last)
        (installed,) = events(captured, "snapshot.installed", node_id=follower)
        assert installed["index"] >= last
        assert installed["leader"] == lid
        assert installed["size"] > 0
        assert events(captured, "log.purged", node_id=follower, upto=installed["index"])
        await c.wait_applied(c.nodes[lid].metrics.last_log_index)
        (resumed,) = events(captured, "replication.resumed", node_id=lid, target=follower)
        assert resumed["term"] == 1
        assert resumed["stalled_for"] > 0
        assert resumed["failures"] >= 1


async def test_a_deposed_leaders_uncommitted_entries_are_truncated_and_logged(
    autojump_clock, captured
):
    async with open_cluster(3, seed=13) as c:
        old = await c.wait_for_leader(5)
        c.router.isolate(old)
        async with trio.open_nursery() as nursery:
            # Appended on the isolated leader only: never committed.
            async def doomed_write() -> None:
                with contextlib.suppress(raft.ForwardToLeader):
                    await c.nodes[old].client_write(Set("lost", 1))

            nursery.start_soon(doomed_write)
            other = min(n for n in c.node_ids if n != old)
            m = await c.nodes[other].wait(10).metrics(
                lambda m: m.current_leader not in (None, old), "a new leader"
            )
        new = m.current_leader
        assert new is not None
        await c.nodes[new].client_write(Set("kept", 1))
        c.router.heal()
        await c.nodes[old].wait(10).current_leader(new)
        await c.wait_applied(c.nodes[new].metrics.last_log_index)
        (truncated,) = events(captured, "log.truncated", node_id=old)
        assert truncated["after"] == 1  # the first leader's blank entry stays
        assert truncated["leader"] == new
