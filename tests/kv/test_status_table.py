"""The status table's marks: removed and uninitialized nodes, and the ids of unreachable
ones (the multi-process tests check the same through ``status``)."""

from __future__ import annotations

from openraft_trio.kv._status import status_rows


def node(node_id: int, state: str, nodes: dict[int, str], voters: list[int]) -> dict[str, object]:
    return {
        "id": node_id,
        "addr": f"h:{node_id}",
        "state": state,
        "term": 1,
        "last_log_index": 5,
        "committed": 5,
        "applied": 5,
        "voters": voters,
        "nodes": nodes,
    }


MEMBERS = {1: "h:1", 2: "h:2", 3: "h:3", 4: "h:4"}


def test_rows_mark_learners_removed_uninitialized_and_unreachable_nodes() -> None:
    statuses = [
        node(1, "LEADER", MEMBERS, [1, 2]),
        node(4, "LEARNER", MEMBERS, [1, 2]),
        node(5, "FOLLOWER", {1: "h:1", 5: "h:5"}, [1, 5]),  # an old membership: removed
        node(6, "LEARNER", {}, []),  # never initialized
        {"addr": "h:2", "id": 2, "error": "connection refused"},
        {"addr": "h:9", "error": "connection refused"},  # no member has this address
    ]
    rows = {row[0]: (row[2], row[-1]) for row in status_rows(statuses)}
    assert rows == {
        "1": ("LEADER", "yes"),
        "2": ("UNREACHABLE", "-"),
        "4": ("LEARNER", "learner"),
        "5": ("FOLLOWER", "removed"),
        "6": ("UNINITIALIZED", "-"),
        "?": ("UNREACHABLE", "-"),
    }


def test_without_a_leader_each_node_is_judged_by_its_own_membership() -> None:
    statuses = [
        node(1, "FOLLOWER", {1: "h:1", 2: "h:2"}, [1]),
        node(2, "LEARNER", {1: "h:1", 2: "h:2"}, [1]),
        node(3, "LEARNER", {1: "h:1", 2: "h:2"}, [1]),  # its own membership left it out
    ]
    rows = {row[0]: row[-1] for row in status_rows(statuses)}
    assert rows == {"1": "yes", "2": "learner", "3": "removed"}
