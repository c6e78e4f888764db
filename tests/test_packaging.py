"""What a user installs and how: the README's quick start (and that CI runs exactly it), the
version, the sdist and wheel (built with ``build`` from the test extra), the dependency
ranges, and that trio's private API is touched in one module only."""

from __future__ import annotations

import ast
import email.parser
import importlib.util
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import openraft_trio
from openraft_trio.__main__ import build_parser

ROOT = Path(__file__).parent.parent
PACKAGE_DIR = Path(openraft_trio.__file__).parent
# The one module allowed to use trio's private API (DESIGN.md §5).
DETERMINISTIC = PACKAGE_DIR / "testing" / "deterministic.py"


def readme_quickstart() -> list[str]:
    """The commands of README.md's quick start block."""
    text = (ROOT / "README.md").read_text()
    match = re.search(
        r"^<!-- quickstart:begin -->\n```sh\n(.*?)^```\n<!-- quickstart:end -->$",
        text,
        re.MULTILINE | re.DOTALL,
    )
    assert match is not None, "README.md has no quickstart:begin/end block around a sh fence"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_readme_quickstart_is_two_commands_that_set_up_and_run_demo_and_tests() -> None:
    demo, tests = readme_quickstart()
    for command in (demo, tests):
        # Each one does its own set-up in a venv of its own making (no activated venv, and
        # a system Python under PEP 668 refuses a bare pip install).
        assert command.startswith("python3 -m venv .venv && "), command
        assert ".venv/bin/python -m pip install" in command, command
    assert demo.endswith(".venv/bin/python -m openraft_trio demo")
    assert tests.endswith(".venv/bin/python -m pytest")


def test_ci_runs_exactly_the_readme_quickstart() -> None:
    extracted = subprocess.run(
        ["bash", str(ROOT / ".ci" / "quickstart")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert extracted == readme_quickstart()
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "mapfile -t quickstart < <(.ci/quickstart)" in ci_run
    assert 'for command in "${quickstart[@]}"; do' in ci_run
    assert 'bash -euo pipefail -c "$command"' in ci_run
    # The whole suite runs once, through the README's line: any other pytest run in
    # .ci/run names what it runs.
    for line in ci_run.splitlines():
        if re.match(r"\s*python -m pytest\b", line):
            assert "tests/" in line, line


def _version_file() -> str:
    text = (PACKAGE_DIR / "_version.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match is not None
    return match.group(1)


def test_version_has_one_source() -> None:
    assert openraft_trio.__version__ == _version_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "openraft_trio/_version.py"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{openraft_trio.__version__}] - " in changelog


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"openraft_trio {openraft_trio.__version__}\n"


def test_python_m_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "openraft_trio", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert result.stdout == f"openraft_trio {openraft_trio.__version__}\n"


def _tested_pythons() -> list[str]:
    match = re.search(r"^PYTHONS = \[(.*)\]$", (ROOT / "noxfile.py").read_text(), re.MULTILINE)
    assert match is not None
    return re.findall(r'"(3\.\d+)"', match.group(1))


def test_classifiers_name_every_python_that_nox_tests() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    classified = [
        classifier.rpartition(" :: ")[2]
        for classifier in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ]
    assert classified == _tested_pythons() == ["3.11", "3.12", "3.13"]
    assert project["requires-python"] == ">=3.11"


def test_every_dependency_has_a_lower_bound_and_no_upper_bound() -> None:
    """A library's users share one environment: a range, never a pin. ``nox -s
    tests_oldest`` installs each lower bound."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+>=[0-9][0-9.]*", requirement), requirement


def _private_trio_uses(path: Path) -> list[str]:
    """Imports of a private trio module and ``trio._x`` attribute reads in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = [f"{node.value.id}.{node.attr}"]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "trio" and any(
                part.startswith("_") and not part.startswith("__") for part in parts[1:]
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_private_trio_api_is_used_in_one_module_only() -> None:
    uses = [
        use
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        if path != DETERMINISTIC
        for use in _private_trio_uses(path)
    ]
    assert uses == []
    # The check sees what it looks for.
    assert any("trio._core._run" in use for use in _private_trio_uses(DETERMINISTIC))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from it, by ``python -m build`` without network."""
    if importlib.util.find_spec("build") is None or importlib.util.find_spec("hatchling") is None:
        pytest.skip("needs `build` and `hatchling` (the test extra: pip install -e '.[test]')")
    outdir = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return sdist, wheel


def test_sdist_has_the_docs_readme_changelog_and_licenses(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    top = f"openraft_trio-{openraft_trio.__version__}"
    assert sdist.name == f"{top}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    docs = {path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert docs
    assert docs <= names
    expected = {"README.md", "CHANGELOG.md", "LICENSE", "LICENSE-MIT", "LICENSE-APACHE"}
    assert expected <= names
    assert {"pyproject.toml", "openraft_trio/py.typed", "openraft_trio/_version.py"} <= names


def test_wheel_metadata(built: tuple[Path, Path]) -> None:
    _, wheel = built
    version = openraft_trio.__version__
    info = f"openraft_trio-{version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.parser.Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    assert metadata["Version"] == version
    assert metadata["License-Expression"] == "MIT OR Apache-2.0"
    assert sorted(metadata.get_all("License-File") or []) == [
        "LICENSE",
        "LICENSE-APACHE",
        "LICENSE-MIT",
    ]
    assert {f"{info}/licenses/LICENSE", f"{info}/licenses/LICENSE-MIT"} <= names
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "openraft_trio/py.typed" in names
    classifiers = metadata.get_all("Classifier") or []
    for python in _tested_pythons():
        assert f"Programming Language :: Python :: {python}" in classifiers
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requires = metadata.get_all("Requires-Dist") or []
    for requirement in project["dependencies"]:
        assert requirement in requires
