"""The readable status table of a cluster (``python -m openraft_trio status``)."""

from __future__ import annotations

from typing import Any

COLUMNS = ("ID", "ADDR", "ROLE", "TERM", "LAST LOG", "COMMIT", "APPLIED", "LAG", "VOTER")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def status_rows(statuses: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per node. ``LAG`` is how many entries the node has applied fewer than the
    leader's last log index (the leader's own lag included)."""
    leader_last: int | None = None
    for s in statuses:
        if s.get("state") == "LEADER":
            leader_last = s.get("last_log_index")
    voters: set[int] = set()
    for s in statuses:
        if s.get("state") == "LEADER":
            voters = set(s.get("voters", []))
    rows: list[tuple[str, ...]] = []
    for s in sorted(statuses, key=lambda x: (x.get("id") is None, x.get("id") or 0, x["addr"])):
        if "error" in s:
            rows.append(("?", s["addr"], "UNREACHABLE", "-", "-", "-", "-", "-", "-"))
            continue
        applied = s.get("applied")
        lag = None if leader_last is None else leader_last - (applied or 0)
        is_voter = s["id"] in voters if voters else s["id"] in s.get("voters", [])
        rows.append(
            (
                str(s["id"]),
                s["addr"],
                s["state"],
                _cell(s.get("term")),
                _cell(s.get("last_log_index")),
                _cell(s.get("committed")),
                _cell(applied),
                _cell(lag),
                "yes" if is_voter else "learner",
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
