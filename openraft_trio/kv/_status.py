"""The readable status table of a cluster (``python -m openraft_trio status``)."""

from __future__ import annotations

from typing import Any

COLUMNS = ("ID", "ADDR", "ROLE", "TERM", "LAST LOG", "COMMIT", "APPLIED", "LAG", "VOTER")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def status_rows(statuses: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per node. ``LAG`` is how many entries the node has applied fewer than the
    leader's last log index (the leader's own lag included).

    ``VOTER`` is the node's place in the leader's membership (the node's own, when no
    leader answered): ``yes``, ``learner``, or ``removed`` (a running node the membership
    no longer lists). A node that was never initialized (no membership at all) has the
    role ``UNINITIALIZED``. An unreachable node's id comes from the membership the others
    report (``?`` if none lists its address)."""
    leader_last: int | None = None
    leader_nodes: set[int] | None = None
    voters: set[int] = set()
    for s in statuses:
        if s.get("state") == "LEADER":
            leader_last = s.get("last_log_index")
            voters = set(s.get("voters", []))
            leader_nodes = {int(k) for k in s.get("nodes", {})}
    rows: list[tuple[str, ...]] = []
    for s in sorted(statuses, key=lambda x: (x.get("id") is None, x.get("id") or 0, x["addr"])):
        if "error" in s:
            ident = _cell(s.get("id")) if s.get("id") is not None else "?"
            rows.append((ident, s["addr"], "UNREACHABLE", "-", "-", "-", "-", "-", "-"))
            continue
        applied = s.get("applied")
        lag = None if leader_last is None else leader_last - (applied or 0)
        own_nodes = {int(k) for k in s.get("nodes", {})}
        role = s["state"]
        if leader_nodes is not None and s["id"] in leader_nodes:
            member = "yes" if s["id"] in voters else "learner"
        elif not own_nodes:
            role, member, lag = "UNINITIALIZED", "-", None
        elif leader_nodes is not None or s["id"] not in own_nodes:
            member = "removed"
        else:
            member = "yes" if s["id"] in s.get("voters", []) else "learner"
        rows.append(
            (
                str(s["id"]),
                s["addr"],
                role,
                _cell(s.get("term")),
                _cell(s.get("last_log_index")),
                _cell(s.get("committed")),
                _cell(applied),
                _cell(lag),
                member,
            )
        )
    return rows


def format_status_table(statuses: list[dict[str, Any]]) -> str:
    """The table as text, columns aligned."""
    rows = [COLUMNS, *status_rows(statuses)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
