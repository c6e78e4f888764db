"""Inspect trio's live task tree by task name (DESIGN.md §3 names)."""

from __future__ import annotations

import trio


def live_task_names() -> list[str]:
    names: list[str] = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        names.append(task.name)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return names


def our_tasks(prefix: str = "openraft_trio.") -> list[str]:
    return sorted(n for n in live_task_names() if n.startswith(prefix))


def live_tasks_by_name(prefix: str = "openraft_trio.") -> dict[str, list[trio.lowlevel.Task]]:
    out: dict[str, list[trio.lowlevel.Task]] = {}
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task.name.startswith(prefix):
            out.setdefault(task.name, []).append(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return out


def node_task_names(node_id: int, prefix: str = "openraft_trio.") -> list[str]:
    """Names of the tasks in the subtree of ``Cluster``'s task running node ``node_id``
    (found by the ``node_id`` argument of its ``_run_node`` coroutine)."""
    stack = [trio.lowlevel.current_root_task()]
    roots = []
    while stack:
        task = stack.pop()
        frame = getattr(task.coro, "cr_frame", None)
        if (
            task.name.endswith("Cluster._run_node")
            and frame is not None
            and frame.f_locals.get("node_id") == node_id
        ):
            roots.append(task)
            continue
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    assert len(roots) == 1, f"{len(roots)} tasks run node {node_id}"
    names: list[str] = []
    stack = roots
    while stack:
        task = stack.pop()
        names.append(task.name)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return sorted(n for n in names if n.startswith(prefix))
