"""Developer tasks: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` measures."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement

nox.options.download_python = "never"
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]

LINT_PATHS = ["openraft_trio", "tests", "benchmarks", "noxfile.py"]


# Every Python version the package supports and is tested on (its classifiers say the same).
PYTHONS = ["3.11", "3.12", "3.13"]




def _put_pyenv_pythons_on_path() -> None:
    """Let nox find each of ``PYTHONS`` that pyenv installed: pyenv's shims answer only for
    the selected versions, so a ``python3.12`` shim fails where 3.12 is installed but not
    selected. The newest installed patch release of each version goes first on ``PATH``."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = []
    for python in PYTHONS:
        releases = [
            path
            for path in versions.glob(f"{python}.*")
            if re.fullmatch(rf"{re.escape(python)}\.\d+", path.name)
        ]
        if releases:
            newest = max(releases, key=lambda path: int(path.name.rpartition(".")[2]))
            found.append(str(newest / "bin"))
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_put_pyenv_pythons_on_path()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite against the newest allowed dependencies, once per Python
    (``nox -s tests-3.12`` for one; extra arguments go to pytest)."""
    session.install("--upgrade", "-e", ".[test]")
    session.run("pytest", *session.posargs)


def oldest_constraints() -> list[str]:
    """``name==lower bound`` for each runtime and test dependency of ``pyproject.toml``:
    the oldest versions its ranges allow (each range has a ``>=`` bound)."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    pins = []
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        lower = [spec.version for spec in requirement.specifier if spec.operator in (">=", "~=")]
        if len(lower) != 1:
            raise ValueError(f"{text!r}: each dependency needs one lower bound (>= or ~=)")
        pins.append(f"{requirement.name}=={lower[0]}")
    return pins


@nox.session(python=PYTHONS[0])
def tests_oldest(session: nox.Session) -> None:
    """Run the test suite against the lowest versions the dependency ranges allow, on the
    oldest Python (extra arguments go to pytest)."""
    constraints = Path(session.create_tmp()) / "constraints-oldest.txt"
    constraints.write_text("\n".join(oldest_constraints()) + "\n")
    session.install("-c", str(constraints), "-e", ".[test]")
    session.run("pip", "freeze")
    session.run("pytest", *session.posargs)


# Keep in step with the docs line of .ci/run.
DOCS_BUILD = ["python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"]


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into docs/_build/html (warnings are errors), then
    check that every internal link and anchor in it resolves."""
    session.install("-e", ".[docs]")
    session.run(*DOCS_BUILD)
    session.run("python", "docs/check_links.py", "docs/_build/html")


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff's linter (no format check)."""
    session.install("ruff")
    session.run("ruff", "check", *LINT_PATHS, *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over the package (configured in pyproject.toml)."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy", *session.posargs)
    # The generic Raft[C, R] as users see it (tests/typing/test_generics.py runs it too).
    session.run("mypy", "tests/typing/check_generics.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks (extra arguments go to benchmarks/run_all.py)."""
    session.install(".")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


# Keep in step with PYSYNCOBJ_REQUIREMENT in benchmarks/_pysyncobj_bench.py.
PYSYNCOBJ = "pysyncobj==0.3.17"


@nox.session
def bench_peers(session: nox.Session) -> None:
    """openraft_trio against PySyncObj, measured in one run (PySyncObj is installed into
    this session only; extra arguments go to benchmarks/bench_peers.py)."""
    session.install(".", PYSYNCOBJ)
    session.run("python", "benchmarks/bench_peers.py", *session.posargs)


# The seeds `nox -s jepsen` runs, each for JEPSEN_DURATION seconds of load and faults.
JEPSEN_SEEDS = ("1", "2", "3")
JEPSEN_DURATION = "60"


@nox.session
def jepsen(session: nox.Session) -> None:
    """The fault test against real processes: 3 seeds x 60 s, stopping at the first that
    fails (extra arguments replace those and run once, e.g. ``-- --seed 7 --duration 300``)."""
    session.install(".")
    command = ["python", "-m", "openraft_trio.testing.jepsen"]
    if session.posargs:
        session.run(*command, *session.posargs)
        return
    for seed in JEPSEN_SEEDS:
        session.run(*command, "--seed", seed, "--duration", JEPSEN_DURATION)


@nox.session
def sim(session: nox.Session) -> None:
    """Run the deterministic simulator (extra arguments go to it)."""
    session.install(".")
    session.run("python", "-m", "openraft_trio.testing.sim", *session.posargs)


@nox.session
def mutants(session: nox.Session) -> None:
    """Break one protocol rule at a time in a temporary copy and report which checks notice
    (unit tests, property tests, simulator sweeps): the whole catalogue, two at a time.
    Fails if a safety mutant is not caught by its unit tests and another layer. Extra
    arguments go to ``python -m tests.mutants`` (e.g. ``-- --only ack-before-flush``)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "tests.mutants", "--jobs", "2", *session.posargs)
