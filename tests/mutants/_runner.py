"""Apply each mutation to a temporary copy of the repository and see which checks notice.

For every mutation in :data:`~tests.mutants.catalogue.CATALOGUE` (or those chosen with
``--only``): copy ``openraft_trio/``, ``tests/`` and ``pyproject.toml`` into a temporary
directory, apply the patch (each old text must occur exactly once, else the mutation is
STALE), prove with a canary that the copy's mutated function is what gets imported, then
run every layer there, each a subprocess with ``PYTHONPATH`` and ``cwd`` set to the copy:

* ``unit``: the tests written for the rule (``tests/engine`` for an engine rule), ``-x``;
* ``props``: the Hypothesis tests that drive the cluster or the engine step by step
  (``tests/sim/test_property_schedules.py`` and any ``tests/sim/test_*stateful*.py``), and
  for a mutant of the session code the client sessions' property tests, ``-x``;
* ``sim``: a bounded sweep of the simulator's default fault plan, stopping at the first
  failing seed;
* ``sim-m``: the same with membership churn and snapshots (``--membership``).

Every layer runs for every mutant, so the table shows them all (with
``--stop-when-caught``, as CI runs it, a mutant's layers stop once its verdict is settled,
the simulator layers before props). A mutant is *caught* when
its unit tests fail **and** at least one other layer does (two independent checks see
the rule). The harness exits non-zero if a ``safety`` mutant is not caught, a patch is
STALE, a canary fails, or a layer errors. Before the mutants, the layers run once on an
unmutated copy: a layer that fails there would make every mutant look caught.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from .catalogue import CATALOGUE, Edit, Mutation

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("openraft_trio", "tests")
COPIED_FILES = ("pyproject.toml",)
PROPERTY_TESTS = ("tests/sim/test_property_schedules.py",)
# Client sessions: random histories against a snapshot-restored replica, and any batch
# split of the wrapper's applies against one entry at a time. Run for mutants of the
# session code (and the baseline), where the cluster property tests cannot see a rule.
SESSION_CODE = "openraft_trio/sessions/"
SESSION_PROPERTY_TESTS = (
    "tests/sessions/test_table.py::test_replicas_agree_and_retries_apply_exactly_once",
    "tests/sessions/test_state_machine.py::test_any_batch_split_gives_the_same_replies_and_state",
)
STATEFUL_GLOB = "test_*stateful*.py"
LAYERS = ("unit", "props", "sim", "sim-m")
TIMEOUT = {"unit": 600.0, "props": 1200.0, "sim": 1200.0, "sim-m": 1200.0}


@attrs.frozen
class Sweep:
    """Seeds and virtual seconds of the two simulator layers, and the Hypothesis seeds of the
    pytest layers (the props layer counts as caught only if it fails under every one)."""

    seeds: str
    membership_seeds: str
    duration: float
    hypothesis_seeds: tuple[int, ...] = (0,)
    # Stop a mutant's layers once its verdict is settled (unit and one more caught), the
    # cheap simulator layers before props: CI's time, not the table's completeness.
    stop_when_caught: bool = False


FULL = Sweep(seeds="0-15", membership_seeds="1000-1011", duration=10.0)
QUICK = Sweep(seeds="0-3", membership_seeds="1000-1002", duration=10.0)


@attrs.frozen
class LayerResult:
    status: str  # "caught", "survived", "timeout" or "error"
    seconds: float
    detail: str = ""


@attrs.frozen
class MutantResult:
    mutation: Mutation
    status: str  # "ran", "stale" or "canary failed"
    layers: dict[str, LayerResult] = attrs.field(factory=dict)
    detail: str = ""

    @property
    def caught_by(self) -> list[str]:
        return [name for name, r in self.layers.items() if r.status == "caught"]

    @property
    def caught(self) -> bool:
        """The rule's own tests and at least one other layer fail."""
        by = self.caught_by
        return "unit" in by and len(by) >= 2

    @property
    def errors(self) -> list[str]:
        return [f"{n}: {r.status} {r.detail}" for n, r in self.layers.items()
                if r.status in ("error", "timeout")]

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.layers.values())


# -- patching --------------------------------------------------------------------------------


def stale_edits(mutation: Mutation, root: Path = ROOT) -> list[str]:
    """Why each edit of ``mutation`` cannot be applied to ``root`` (empty if all can)."""
    problems = []
    for edit in mutation.edits:
        path = root / edit.path
        text = path.read_text() if path.exists() else ""
        count = text.count(edit.old)
        if count != 1:
            first = edit.old.strip().splitlines()[0]
            problems.append(f"{edit.path}: {first!r} found {count} times (need exactly 1)")
    return problems


def copy_repo(dest: Path, root: Path = ROOT) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPIED:
        shutil.copytree(root / name, dest / name, ignore=ignore)
    for name in COPIED_FILES:
        shutil.copy2(root / name, dest / name)


def apply_edits(mutation: Mutation, copy: Path) -> None:
    for edit in mutation.edits:
        path = copy / edit.path
        text = path.read_text()
        assert text.count(edit.old) == 1, edit
        path.write_text(text.replace(edit.old, edit.new))


def module_of(edit: Edit) -> str:
    return edit.path.removesuffix(".py").replace("/", ".")


CANARY = """
import importlib, inspect, json, pathlib, sys
copy, checks = pathlib.Path(sys.argv[1]).resolve(), json.loads(sys.argv[2])
for module_name, function, new in checks:
    module = importlib.import_module(module_name)
    where = pathlib.Path(module.__file__).resolve()
    if copy not in where.parents:
        sys.exit(f"{module_name} was imported from {where}, not from the copy {copy}")
    obj = module
    for part in function.split("."):
        obj = getattr(obj, part)
    if new not in inspect.getsource(obj):
        sys.exit(f"{module_name}.{function} does not hold the mutated text")
"""


def subprocess_env(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    return env


def run_canary(mutation: Mutation, copy: Path) -> str:
    """Empty if the copy imports the mutated functions; otherwise why not."""
    checks = [[module_of(e), e.function, e.new] for e in mutation.edits]
    proc = subprocess.run(
        [sys.executable, "-c", CANARY, str(copy), json.dumps(checks)],
        cwd=copy, env=subprocess_env(copy), capture_output=True, text=True, timeout=120,
    )
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


# -- layers ----------------------------------------------------------------------------------


def property_tests(copy: Path, mutation: Mutation | None = None) -> list[str]:
    wanted = PROPERTY_TESTS
    if mutation is None or any(e.path.startswith(SESSION_CODE) for e in mutation.edits):
        wanted += SESSION_PROPERTY_TESTS
    found = [p for p in wanted if (copy / p.partition("::")[0]).exists()]
    found += sorted(str(p.relative_to(copy)) for p in (copy / "tests").rglob(STATEFUL_GLOB))
    return found


def layer_command(
    layer: str, mutation: Mutation | None, copy: Path, sweep: Sweep, hypothesis_seed: int = 0
) -> list[str]:
    pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
              f"--hypothesis-seed={hypothesis_seed}"]
    sim = [sys.executable, "-m", "tests.mutants._sim_layer", "--duration", f"{sweep.duration:g}"]
    if layer == "unit":
        return [*pytest, *(mutation.unit if mutation is not None else ("tests/engine",))]
    if layer == "props":
        return [*pytest, *property_tests(copy, mutation)]
    if layer == "sim":
        return [*sim, "--seeds", sweep.seeds]
    return [*sim, "--seeds", sweep.membership_seeds, "--membership"]


def summary_line(layer: str, output: str) -> str:
    """The line of a layer's output that says what failed."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if layer.startswith("sim"):
        return next((ln for ln in lines if ln.startswith("seed ")), lines[-1] if lines else "")
    failed = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return failed[0] if failed else (lines[-1] if lines else "")


def run_layer(layer: str, mutation: Mutation | None, copy: Path, sweep: Sweep) -> LayerResult:
    """One layer; the props layer once per Hypothesis seed of the sweep. A mutant counts as
    caught only if every seed catches it (a property that finds a bug by luck is not a
    check); the unmutated baseline fails if any seed fails."""
    if layer != "props" or len(sweep.hypothesis_seeds) == 1:
        return _run_layer_once(layer, mutation, copy, sweep, sweep.hypothesis_seeds[0])
    runs = {s: _run_layer_once(layer, mutation, copy, sweep, s) for s in sweep.hypothesis_seeds}
    seconds = sum(r.seconds for r in runs.values())
    worst_first = ("error", "timeout", "survived") if mutation else ("error", "timeout", "caught")
    for status in worst_first:
        seeds = [s for s, r in runs.items() if r.status == status]
        if seeds:
            return LayerResult(status, seconds, f"{status} under hypothesis seed(s) "
                               f"{','.join(map(str, seeds))}: {runs[seeds[0]].detail}")
    first = runs[sweep.hypothesis_seeds[0]]
    return LayerResult("caught" if mutation else "survived", seconds, first.detail)


def _run_layer_once(
    layer: str, mutation: Mutation | None, copy: Path, sweep: Sweep, hypothesis_seed: int
) -> LayerResult:
    command = layer_command(layer, mutation, copy, sweep, hypothesis_seed)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            command, cwd=copy, env=subprocess_env(copy), capture_output=True, text=True,
            timeout=TIMEOUT[layer],
        )
    except subprocess.TimeoutExpired:
        return LayerResult("timeout", time.monotonic() - start, f"over {TIMEOUT[layer]:g}s")
    seconds = time.monotonic() - start
    detail = summary_line(layer, proc.stdout + proc.stderr)
    if proc.returncode == 0:
        return LayerResult("survived", seconds, detail)
    if proc.returncode == 1:
        return LayerResult("caught", seconds, detail)
    return LayerResult("error", seconds, f"exit {proc.returncode}: {detail}")


def run_mutant(mutation: Mutation, sweep: Sweep, source: Path, keep: bool = False) -> MutantResult:
    """Copy ``source``, apply ``mutation``, check the canary, run every layer."""
    stale = stale_edits(mutation, source)
    if stale:
        return MutantResult(mutation, "stale", detail="; ".join(stale))
    tmp = Path(tempfile.mkdtemp(prefix=f"mutant-{mutation.name}-"))
    try:
        copy_repo(tmp, source)
        apply_edits(mutation, tmp)
        problem = run_canary(mutation, tmp)
        if problem:
            return MutantResult(mutation, "canary failed", detail=problem)
        layers: dict[str, LayerResult] = {}
        order = ("unit", "sim", "sim-m", "props") if sweep.stop_when_caught else LAYERS
        for layer in order:
            layers[layer] = run_layer(layer, mutation, tmp, sweep)
            if sweep.stop_when_caught and MutantResult(mutation, "ran", layers).caught:
                break
        return MutantResult(mutation, "ran", {n: layers[n] for n in LAYERS if n in layers})
    finally:
        if keep:
            print(f"kept {mutation.name}'s copy in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_baseline(sweep: Sweep, source: Path) -> dict[str, LayerResult]:
    """Every layer on an unmutated copy (the engine tests as the unit layer)."""
    tmp = Path(tempfile.mkdtemp(prefix="mutant-baseline-"))
    try:
        copy_repo(tmp, source)
        return {layer: run_layer(layer, None, tmp, sweep) for layer in LAYERS}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- reporting -------------------------------------------------------------------------------

MARK = {"caught": "caught", "survived": "-", "timeout": "TIMEOUT", "error": "ERROR"}


def verdict(result: MutantResult) -> str:
    if result.status != "ran":
        return result.status.upper()
    if result.errors:
        return "ERROR"
    return "caught" if result.caught else "SURVIVED"


def format_table(results: Sequence[MutantResult]) -> str:
    width = max([len(r.mutation.name) for r in results] + [6])
    head = f"{'mutant':<{width}}  {'kind':<8}" + "".join(f"  {n:<7}" for n in LAYERS)
    lines = [head + "  verdict   time", "-" * (len(head) + 16)]
    for r in results:
        cells = "".join(
            f"  {MARK[r.layers[n].status] if n in r.layers else '':<7}" for n in LAYERS
        )
        lines.append(
            f"{r.mutation.name:<{width}}  {r.mutation.kind:<8}{cells}  {verdict(r):<8}  "
            f"{r.seconds:5.0f}s"
        )
    return "\n".join(lines)


def format_details(results: Sequence[MutantResult]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r.mutation.name} ({r.mutation.kind}, {r.mutation.origin}): "
                     f"{r.mutation.description}")
        if r.status != "ran":
            lines.append(f"    {r.status.upper()}: {r.detail}")
        for name, layer in r.layers.items():
            lines.append(f"    {name:<6} {layer.status:<8} {layer.seconds:6.1f}s  {layer.detail[:150]}")
    return "\n".join(lines)


def to_json(results: Sequence[MutantResult], sweep: Sweep, wall: float) -> dict[str, Any]:
    return {
        "sweep": attrs.asdict(sweep),
        "wall_seconds": round(wall, 1),
        "mutants": [
            {
                "name": r.mutation.name,
                "kind": r.mutation.kind,
                "origin": r.mutation.origin,
                "description": r.mutation.description,
                "status": r.status,
                "verdict": verdict(r),
                "detail": r.detail,
                "layers": {n: attrs.asdict(x) for n, x in r.layers.items()},
            }
            for r in results
        ],
    }


def failures(results: Sequence[MutantResult]) -> list[str]:
    """Why the run fails: safety mutants not caught, stale patches, canaries, layer errors."""
    out = []
    for r in results:
        v = verdict(r)
        if v in ("STALE", "CANARY FAILED", "ERROR"):
            out.append(f"{r.mutation.name}: {v} {r.detail or '; '.join(r.errors)}")
        elif v == "SURVIVED" and r.mutation.kind == "safety":
            by = ", ".join(r.caught_by) or "no layer"
            out.append(f"{r.mutation.name}: safety mutant caught only by {by}")
    return out


# -- command line ----------------------------------------------------------------------------


def select(only: Sequence[str], quick: bool) -> list[Mutation]:
    known = {m.name: m for m in CATALOGUE}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise SystemExit(f"unknown mutant(s): {', '.join(unknown)}; see --list")
    if only:
        return [known[n] for n in only]
    return [m for m in CATALOGUE if m.quick or not quick]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.mutants",
        description="Break one protocol rule at a time in a temporary copy of the repository "
        "and report which checks notice (unit tests, property tests, simulator sweeps).",
    )
    p.add_argument("--quick", action="store_true",
                   help="the CI subset: mutants marked quick, fewer simulator seeds")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this mutant (repeatable)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    p.add_argument("--jobs", "-j", type=int, default=1, help="mutants run in parallel")
    p.add_argument("--list", action="store_true", help="list the catalogue and exit")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip running the layers on an unmutated copy first")
    p.add_argument("--keep", action="store_true", help="keep each mutant's copy (for debugging)")
    p.add_argument("--stop-when-caught", action="store_true",
                   help="stop a mutant's layers once its unit tests and one other layer have "
                   "caught it (the simulator layers first; a blank cell was not run)")
    p.add_argument("--hypothesis-seeds", type=_seeds, default=(0,), metavar="N,N,...",
                   help="run the props layer under each of these Hypothesis seeds; it counts "
                   "as caught only if every one catches the mutant (default 0)")
    return p


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None


def _print(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = _print) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for m in CATALOGUE:
            out(f"{m.name:<36} {m.kind:<9} {'quick ' if m.quick else ''}{m.description}")
        return 0
    mutations = select(args.only, args.quick)
    sweep = attrs.evolve(
        QUICK if args.quick else FULL,
        hypothesis_seeds=args.hypothesis_seeds,
        stop_when_caught=args.stop_when_caught,
    )
    start = time.monotonic()
    out(f"{len(mutations)} mutants; sim seeds {sweep.seeds}, membership seeds "
        f"{sweep.membership_seeds}, {sweep.duration:g}s each; {args.jobs} job(s)")
    # Every copy is taken from this snapshot: edits made while the run goes on do not leak
    # into it half-way.
    source = Path(tempfile.mkdtemp(prefix="mutants-source-"))
    try:
        copy_repo(source)
        return _run(args, mutations, sweep, source, start, out)
    finally:
        shutil.rmtree(source, ignore_errors=True)


def _run(
    args: argparse.Namespace,
    mutations: Sequence[Mutation],
    sweep: Sweep,
    source: Path,
    start: float,
    out: Callable[[str], None],
) -> int:
    if not args.no_baseline:
        baseline = run_baseline(sweep, source)
        bad = {n: r for n, r in baseline.items() if r.status != "survived"}
        out("baseline: " + ", ".join(f"{n} {r.status} {r.seconds:.0f}s" for n, r in baseline.items()))
        if bad:
            for n, r in bad.items():
                out(f"baseline {n} is not clean on the unmutated code: {r.detail}")
            out("mutants: 0 caught, 0 survived (the layers fail without any mutation)")
            return 2
    results: dict[str, MutantResult] = {}
    lock = threading.Lock()

    def one(m: Mutation) -> None:
        r = run_mutant(m, sweep, source, keep=args.keep)
        with lock:
            results[m.name] = r
            out(f"[{len(results)}/{len(mutations)}] {m.name}: {verdict(r)} "
                f"(by {', '.join(r.caught_by) or 'none'}; {r.seconds:.0f}s)")

    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for f in [pool.submit(one, m) for m in mutations]:
            f.result()
    ordered = [results[m.name] for m in mutations]
    wall = time.monotonic() - start
    out("")
    out(format_table(ordered))
    out("")
    out(format_details(ordered))
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(ordered, sweep, wall), indent=2) + "\n")
        out(f"wrote {args.json}")
    problems = failures(ordered)
    for p in problems:
        out(f"FAIL {p}")
    caught = sum(r.caught for r in ordered)
    out(f"wall time {wall:.0f}s")
    out(f"mutants: {caught} caught, {len(ordered) - caught} survived")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
