"""Readable timelines of a simulation trace: a text view and a self-contained HTML/SVG page.

Pure functions: trace events in (``(t, kind, *fields)`` tuples, see ``_trace.py``), a string
out. Only ``state`` and ``fault`` events (and ``phase`` markers) are used; ``msg`` events
are ignored.

A node's state at time ``t`` is its last ``state`` event at or before ``t``; between a
``crash`` fault of the node and its ``restart`` the node is *down*.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

#: One character per role in the text timeline.
ROLE_CHARS = {"Leader": "L", "Candidate": "C", "Follower": "F", "Learner": "l"}
DOWN = "down"
UNKNOWN = "unknown"
#: When a node held several roles within one column, the column shows the most telling one.
_PRIORITY = {"Leader": 5, "Candidate": 4, DOWN: 3, "Follower": 2, "Learner": 1}
#: One character per fault kind in the text timeline (several in one column: ``*``).
FAULT_CHARS = {
    "partition": "P",
    "one-way": "O",
    "bridge": "B",
    "isolate": "I",
    "heal": "H",
    "crash": "X",
    "restart": "R",
}
PHASE_CHAR = "#"


@attrs.frozen
class Segment:
    """A node held ``role`` (or was down) with ``term`` and ``commit`` over ``[start, end)``."""

    node: int
    start: float
    end: float
    role: str
    term: int | None
    commit: int | None


@attrs.frozen
class Mark:
    """A fault or phase event at ``time``: ``kind`` (e.g. ``crash``) and a readable text."""

    time: float
    kind: str
    text: str
    is_phase: bool = False


@attrs.frozen
class Timeline:
    start: float
    end: float
    segments: dict[int, tuple[Segment, ...]]
    marks: tuple[Mark, ...]

    @property
    def nodes(self) -> list[int]:
        return sorted(self.segments)


def _fmt_group(x: Any) -> str:
    if isinstance(x, list | tuple):
        return "{" + ",".join(str(v) for v in x) + "}"
    return str(x)


def describe_fault(kind: str, fields: Sequence[Any]) -> str:
    """A readable description of a ``fault`` event's kind and details."""
    f = list(fields)
    if kind == "partition" and len(f) == 2:
        return f"partition {_fmt_group(f[0])} | {_fmt_group(f[1])}"
    if kind == "one-way" and len(f) == 2:
        return f"one-way block {f[0]} -> {f[1]}"
    if kind == "bridge" and len(f) == 3:
        return f"bridge {_fmt_group(f[0])} | {_fmt_group(f[1])} via {f[2]}"
    if kind == "isolate" and len(f) == 1:
        return f"isolate node {f[0]}"
    if kind in ("crash", "restart") and len(f) == 1:
        return f"{kind} node {f[0]}"
    if kind == "heal":
        return "heal the network"
    return " ".join([kind, *(_fmt_group(x) for x in f)])


def build_timeline(events: Iterable[Sequence[Any]], end: float | None = None) -> Timeline:
    """Per-node segments and fault/phase marks from trace events (in time order)."""
    evs = list(events)
    t_end = max((float(e[0]) for e in evs), default=0.0)
    if end is not None:
        t_end = max(t_end, end)
    current: dict[int, tuple[float, str, int | None, int | None]] = {}
    segments: dict[int, list[Segment]] = {}
    marks: list[Mark] = []

    def switch(node: int, t: float, role: str, term: int | None, commit: int | None) -> None:
        prev = current.get(node)
        if prev is not None:
            if prev[1:] == (role, term, commit):
                return
            if t > prev[0]:
                segments.setdefault(node, []).append(Segment(node, prev[0], t, *prev[1:]))
        segments.setdefault(node, [])
        current[node] = (t, role, term, commit)

    for e in evs:
        t, kind = float(e[0]), e[1]
        if kind == "state":
            node, role, term, commit = e[2], e[3], e[4], e[5]
            prev = current.get(node)
            if prev is not None and prev[1] == DOWN:
                continue  # a down node reports nothing until it restarts
            switch(node, t, DOWN if role == "Shutdown" else role, term, commit)
        elif kind == "fault":
            fkind, fields = e[2], e[3:]
            marks.append(Mark(t, fkind, describe_fault(fkind, fields)))
            if fkind == "crash" and fields:
                prev = current.get(fields[0])
                switch(fields[0], t, DOWN, None, None if prev is None else prev[3])
            elif fkind == "restart" and fields:
                # The node's next state event says what it restarted as; until then unknown.
                switch(fields[0], t, UNKNOWN, None, None)
        elif kind == "phase":
            text = " ".join(str(x) for x in e[2:])
            marks.append(Mark(t, str(e[2]) if len(e) > 2 else "phase", f"phase {text}", True))
    for node, (t0, role, term, commit) in current.items():
        if t_end > t0 or not segments[node]:
            segments[node].append(Segment(node, t0, max(t_end, t0), role, term, commit))
    start = min((s.start for segs in segments.values() for s in segs), default=0.0)
    start = min(start, min((m.time for m in marks), default=start))
    return Timeline(
        start=min(start, 0.0),
        end=t_end,
        segments={n: tuple(s) for n, s in sorted(segments.items())},
        marks=tuple(marks),
    )


def _at(segs: Sequence[Segment], t: float) -> Segment | None:
    """The segment covering time ``t`` (the last one starting at or before ``t``)."""
    found = None
    for s in segs:
        if s.start <= t:
            found = s
        else:
            break
    return found


def _role_char(role: str) -> str:
    return ROLE_CHARS.get(role, ".")


# -- text ----------------------------------------------------------------------------------


def render_text(
    events: Iterable[Sequence[Any]],
    *,
    width: int = 100,
    title: str = "",
    end: float | None = None,
) -> str:
    """A text timeline: per node a row of role characters over ``width`` time columns, with
    term and commit index rows, a faults row, and a legend of every fault with its time."""
    tl = build_timeline(events, end)
    width = max(10, width)
    span = max(tl.end - tl.start, 1e-9)
    dt = span / width
    label_w = 14
    lines: list[str] = []
    if title:
        lines.append(title)
    dec = 1 if dt >= 0.1 else 2 if dt >= 0.01 else 3
    lines.append(f"Virtual time {tl.start:g}s .. {tl.end:.3f}s in {width} columns of {dt:.3f}s.")
    lines.append(
        "role: L=leader C=candidate F=follower l=learner .=down/unknown (the most telling "
        "role held in the column); term, commit: values at the end of each 10-column group."
    )
    ticks = [c for c in range(width) if (c + 1) % 10 == 0 or c == width - 1]

    def tick_row(values: dict[int, str]) -> str:
        row = [" "] * width
        for c in ticks:
            text = values.get(c, "")[:9]
            for i, ch in enumerate(text):
                pos = c - len(text) + 1 + i
                if 0 <= pos < width:
                    row[pos] = ch
        return "".join(row).rstrip()

    lines.append(
        "time (s)".ljust(label_w)
        + tick_row({c: f"{tl.start + (c + 1) * dt:.{dec}f}" for c in ticks})
    )
    lines.append(" " * label_w + "".join("|" if c in ticks else "-" for c in range(width)))
    for node in tl.nodes:
        segs = tl.segments[node]
        row = []
        for c in range(width):
            lo, hi = tl.start + c * dt, tl.start + (c + 1) * dt
            best, prio = ".", 0
            for s in segs:
                if s.end <= lo:
                    continue
                if s.start >= hi:
                    break
                p = _PRIORITY.get(s.role, 0)
                if p > prio:
                    best, prio = _role_char(s.role), p
            row.append(best)
        terms: dict[int, str] = {}
        commits: dict[int, str] = {}
        for c in ticks:
            seg = _at(segs, min(tl.start + (c + 1) * dt, tl.end))
            up = seg is not None and seg.role in ROLE_CHARS
            terms[c] = str(seg.term) if up and seg is not None and seg.term is not None else "."
            commits[c] = (
                str(seg.commit) if up and seg is not None and seg.commit is not None else "."
            )
        lines.append(f"node {node} role".ljust(label_w) + "".join(row))
        lines.append("       term".ljust(label_w) + tick_row(terms))
        lines.append("       commit".ljust(label_w) + tick_row(commits))
    frow = [" "] * width
    for m in tl.marks:
        c = min(width - 1, max(0, int((m.time - tl.start) / dt)))
        ch = PHASE_CHAR if m.is_phase else FAULT_CHARS.get(m.kind, "?")
        frow[c] = ch if frow[c] in (" ", ch) else "*"
    lines.append("faults".ljust(label_w) + "".join(frow).rstrip())
    lines.append("")
    if tl.marks:
        keys = ", ".join(f"{v}={k}" for k, v in FAULT_CHARS.items())
        lines.append(f"Faults ({keys}, {PHASE_CHAR}=phase, *=several in one column):")
        for m in tl.marks:
            ch = PHASE_CHAR if m.is_phase else FAULT_CHARS.get(m.kind, "?")
            lines.append(f"  {m.time:10.3f}s  {ch}  {m.text}")
    else:
        lines.append("No faults.")
    return "\n".join(lines) + "\n"


# -- HTML / SVG ----------------------------------------------------------------------------

ROLE_COLORS = {
    "Leader": "#d62728",
    "Candidate": "#ff9f1c",
    "Follower": "#6baed6",
    "Learner": "#b8d8a8",
    DOWN: "#9e9e9e",
}
UNKNOWN_COLOR = "#e0e0e0"
FAULT_COLORS = {
    "partition": "#7b3294",
    "one-way": "#c2a5cf",
    "bridge": "#5e3c99",
    "isolate": "#e66101",
    "heal": "#1a9641",
    "crash": "#000000",
    "restart": "#0571b0",
}
NODE_COLORS = (
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)


def _nice_step(span: float, target: int = 10) -> float:
    raw = span / max(1, target)
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def render_svg(
    events: Iterable[Sequence[Any]],
    *,
    plot_width: int = 1100,
    end: float | None = None,
    marks: Sequence[tuple[float, str]] = (),
) -> str:
    """An SVG picture: per-node swimlanes coloured by role with term numbers at changes,
    a commit-index plot per node, fault markers (hover for details) and a time axis.
    ``marks`` are extra ``(time, text)`` markers, e.g. invariant violations, drawn in red."""
    tl = build_timeline(events, end)
    e = html.escape
    left, right, top = 90, 20, 30
    lane_h, lane_gap = 24, 8
    nodes = tl.nodes
    lanes_h = len(nodes) * (lane_h + lane_gap)
    chart_top = top + lanes_h + 30
    chart_h = 180
    axis_y = chart_top + chart_h
    legend_y = axis_y + 40
    height = legend_y + 30
    width = left + plot_width + right
    span = max(tl.end - tl.start, 1e-9)

    def x(t: float) -> float:
        return round(left + (t - tl.start) / span * plot_width, 2)

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
    ]
    # Swimlanes.
    for i, node in enumerate(nodes):
        y = top + i * (lane_h + lane_gap)
        out.append(
            f'<text x="{left - 8}" y="{y + lane_h / 2 + 4}" text-anchor="end">node {node}</text>'
        )
        out.append(
            f'<rect x="{left}" y="{y}" width="{plot_width}" height="{lane_h}" '
            f'fill="{UNKNOWN_COLOR}"/>'
        )
        merged: list[list[Any]] = []  # [start, end, role, term, first commit, last commit]
        for s in tl.segments[node]:
            if merged and merged[-1][2] == s.role and merged[-1][3] == s.term:
                merged[-1][1] = s.end
                merged[-1][5] = s.commit
            else:
                merged.append([s.start, s.end, s.role, s.term, s.commit, s.commit])
        last_label_x = -1e9
        last_term: int | None = None
        for start, stop, role, term, c0, c1 in merged:
            x0, x1 = x(start), x(stop)
            color = ROLE_COLORS.get(role, UNKNOWN_COLOR)
            desc = f"node {node}: {role if role != UNKNOWN else 'restarting'}"
            if term is not None:
                desc += f", term {term}"
            if c0 is not None and role != DOWN:
                desc += f", commit {c0}" if c0 == c1 else f", commit {c0}..{c1}"
            desc += f", {start:.3f}s - {stop:.3f}s"
            out.append(
                f'<rect x="{x0}" y="{y}" width="{max(x1 - x0, 0.5):.2f}" height="{lane_h}" '
                f'fill="{color}"><title>{e(desc)}</title></rect>'
            )
            if term is not None and term != last_term:
                if x0 - last_label_x >= 16:
                    out.append(
                        f'<text x="{x0 + 2}" y="{y + lane_h - 7}" font-size="10" '
                        f'fill="#111">{term}</text>'
                    )
                    last_label_x = x0
                last_term = term
    # Commit-index chart.
    max_commit = max(
        (s.commit for segs in tl.segments.values() for s in segs if s.commit is not None),
        default=0,
    )
    max_commit = max(max_commit, 1)

    def y_of(c: int) -> float:
        return round(chart_top + chart_h - (c + 1) / (max_commit + 1) * chart_h, 2)

    out.append(
        f'<text x="{left}" y="{chart_top - 6}">commit index per node</text>'
        f'<text x="{left - 8}" y="{y_of(max_commit) + 4}" text-anchor="end">{max_commit}</text>'
        f'<text x="{left - 8}" y="{axis_y}" text-anchor="end">-1</text>'
        f'<rect x="{left}" y="{chart_top}" width="{plot_width}" height="{chart_h}" '
        f'fill="none" stroke="#ccc"/>'
    )
    for i, node in enumerate(nodes):
        color = NODE_COLORS[i % len(NODE_COLORS)]
        polylines: list[list[str]] = []
        pts: list[str] = []
        for s in tl.segments[node]:
            if s.commit is None or s.role == DOWN:
                if pts:
                    polylines.append(pts)
                    pts = []
                continue
            yy = y_of(s.commit)
            pts.append(f"{x(s.start)},{yy}")
            pts.append(f"{x(s.end)},{yy}")
        if pts:
            polylines.append(pts)
        for p in polylines:
            out.append(
                f'<polyline points="{" ".join(p)}" fill="none" stroke="{color}" '
                f'stroke-width="1.5"><title>node {node} commit index</title></polyline>'
            )
    # Time axis.
    step = _nice_step(span)
    out.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_width}" y2="{axis_y}" stroke="#333"/>'
    )
    k = 0
    while tl.start + k * step <= tl.end + 1e-9:
        t = tl.start + k * step
        out.append(
            f'<line x1="{x(t)}" y1="{axis_y}" x2="{x(t)}" y2="{axis_y + 5}" stroke="#333"/>'
            f'<text x="{x(t)}" y="{axis_y + 17}" text-anchor="middle">{t:g}</text>'
        )
        k += 1
    out.append(
        f'<text x="{left + plot_width}" y="{axis_y + 30}" text-anchor="end">virtual time (s)</text>'
    )
    # Fault, phase and extra markers across everything.
    for m in tl.marks:
        color = "#444" if m.is_phase else FAULT_COLORS.get(m.kind, "#444")
        dash = ' stroke-dasharray="4 3"' if m.is_phase else ""
        out.append(
            f'<g class="fault"><title>{e(f"t={m.time:.3f}s: {m.text}")}</title>'
            f'<line x1="{x(m.time)}" y1="{top - 12}" x2="{x(m.time)}" y2="{axis_y}" '
            f'stroke="{color}" stroke-width="1.2"{dash}/>'
            f'<line x1="{x(m.time)}" y1="{top - 12}" x2="{x(m.time)}" y2="{axis_y}" '
            f'stroke="{color}" stroke-opacity="0" stroke-width="8"/>'
            f'<text x="{x(m.time)}" y="{top - 14}" text-anchor="middle" font-size="9" '
            f'fill="{color}">{e(PHASE_CHAR if m.is_phase else FAULT_CHARS.get(m.kind, "?"))}'
            "</text></g>"
        )
    for t, text in marks:
        out.append(
            f'<g class="violation"><title>{e(f"t={t:.3f}s: {text}")}</title>'
            f'<line x1="{x(t)}" y1="{top - 12}" x2="{x(t)}" y2="{axis_y}" stroke="red" '
            'stroke-width="2"/>'
            f'<line x1="{x(t)}" y1="{top - 12}" x2="{x(t)}" y2="{axis_y}" stroke="red" '
            'stroke-opacity="0" stroke-width="8"/></g>'
        )
    # Legend.
    lx = left
    for role in ("Leader", "Candidate", "Follower", "Learner", DOWN):
        out.append(
            f'<rect x="{lx}" y="{legend_y - 10}" width="12" height="12" '
            f'fill="{ROLE_COLORS[role]}"/><text x="{lx + 16}" y="{legend_y}">{e(role)}</text>'
        )
        lx += 90
    for i, node in enumerate(nodes):
        color = NODE_COLORS[i % len(NODE_COLORS)]
        out.append(
            f'<line x1="{lx}" y1="{legend_y - 4}" x2="{lx + 14}" y2="{legend_y - 4}" '
            f'stroke="{color}" stroke-width="2"/><text x="{lx + 18}" y="{legend_y}">'
            f"commit n{node}</text>"
        )
        lx += 85
    out.append("</svg>")
    return "\n".join(out)


_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-size: 0.9em; }
.bad { color: #b00; }
code, pre { font-family: monospace; font-size: 0.9em; }
svg { border: 1px solid #ddd; }
"""


def render_html(
    events: Iterable[Sequence[Any]],
    *,
    title: str = "Simulation timeline",
    info: Sequence[tuple[str, str]] = (),
    violations: Sequence[tuple[float, str]] = (),
    end: float | None = None,
) -> str:
    """A self-contained HTML page (inline SVG and CSS, no scripts or external resources):
    ``info`` rows as a table, the violations, the SVG timeline and the list of faults."""
    evs = list(events)
    e = html.escape
    tl = build_timeline(evs, end)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    if info:
        parts.append("<table>")
        parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in info]
        parts.append("</table>")
    if violations:
        parts.append(f'<h2 class="bad">Violations ({len(violations)})</h2><ul class="bad">')
        parts += [f"<li>t={t:.6f}s: {e(text)}</li>" for t, text in violations]
        parts.append("</ul>")
    parts.append(
        "<p>Hover over a lane segment or a fault marker for details. Lanes: role over time "
        "(numbers are terms); chart: commit index per node; vertical lines: faults "
        "(dashed: phases" + (", red: violations" if violations else "") + ").</p>"
    )
    parts.append(render_svg(evs, end=end, marks=violations))
    parts.append("<h2>Faults and phases</h2>")
    if tl.marks:
        parts.append("<table><tr><th>time (s)</th><th>event</th></tr>")
        parts += [f"<tr><td>{m.time:.3f}</td><td>{e(m.text)}</td></tr>" for m in tl.marks]
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = [
    "Mark",
    "Segment",
    "Timeline",
    "build_timeline",
    "describe_fault",
    "render_html",
    "render_svg",
    "render_text",
]
