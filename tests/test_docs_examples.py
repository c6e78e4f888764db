"""Every ```python example in ``docs/*.md`` and ``README.md`` runs, as written.

Each fenced block whose info string is exactly ``python`` is extracted (not copied) and
executed in a fresh interpreter, in a temporary working directory, with a time limit, and
must exit with status 0. A block that defines pytest tests (a top-level ``test_*``
function or ``Test*`` class) is run by pytest with pytest-trio's ``trio_mode``, as the
docs tell readers to. The test id is ``file:line`` of the opening fence, so a failure
names the block. A fragment that cannot run on its own belongs in a ```text block.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parent.parent
DOC_FILES = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
# Generous: a block normally takes a second or two (the ones with processes ~10 s), but
# the CI machine is shared and may be loaded.
TIME_LIMIT = 180.0


@attrs.frozen
class Example:
    """One ```python block: where it starts (the fence's line) and its code."""

    path: Path
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def is_pytest_module(self) -> bool:
        tree = ast.parse(self.code)
        return any(
            (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"))
            or (isinstance(node, ast.ClassDef) and node.name.startswith("Test"))
            for node in tree.body
        )


def extract_examples(path: Path) -> list[Example]:
    """The ```python blocks of a Markdown file (indented ones too, e.g. inside a list)."""
    examples = []
    lines = path.read_text(encoding="utf-8").splitlines()
    fence_start: int | None = None
    fence = ""
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if fence_start is None:
            if stripped.startswith("```"):
                fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
                info = stripped[len(fence):].strip()
                fence_start = number if info == "python" else -number
        elif stripped == fence:
            if fence_start > 0:
                code = textwrap.dedent("\n".join(lines[fence_start : number - 1]))
                examples.append(Example(path, fence_start, code + "\n"))
            fence_start = None
    assert fence_start is None, f"{path}: a fence opened at line {abs(fence_start)} never closes"
    return examples


EXAMPLES = [example for path in DOC_FILES for example in extract_examples(path)]


def run_example(example: Example, directory: Path, time_limit: float = TIME_LIMIT) -> None:
    """Run ``example`` in ``directory``; fail the calling test with its output if it fails."""
    name = "test_example.py" if example.is_pytest_module else "example.py"
    (directory / name).write_text(example.code, encoding="utf-8")
    if example.is_pytest_module:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "-o", "trio_mode=true", name]
    else:
        command = [sys.executable, name]
    # The checkout under test, whether or not it is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    try:
        done = subprocess.run(
            command, cwd=directory, env=env, capture_output=True, text=True,
            timeout=time_limit, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.id}: still running after {time_limit:g} s\n{exc.stdout}{exc.stderr}")
    if done.returncode != 0:
        pytest.fail(
            f"{example.id} exited with status {done.returncode}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
        )


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_example_runs(example: Example, tmp_path: Path) -> None:
    run_example(example, tmp_path)


def test_examples_are_found() -> None:
    # The README's embedding example and the tutorial are there (a parser that silently
    # finds nothing would pass every test above).
    ids = {example.id.split(":")[0] for example in EXAMPLES}
    assert {"README.md", "docs/tutorial-cluster.md", "docs/guide.md"} <= ids
    assert len(EXAMPLES) >= 30


def test_extraction_takes_only_python_blocks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```python\nprint(1)\n```\n\n```text\nnot code\n```\n\n"
        "* a list item:\n\n  ```python\n  if True:\n      print(2)\n  ```\n\n"
        "````md\n```python\nprint('quoted, not run')\n```\n````\n",
        encoding="utf-8",
    )
    examples = extract_examples(page)
    assert [(e.line, e.code) for e in examples] == [
        (3, "print(1)\n"),
        (13, "if True:\n    print(2)\n"),
    ]


def test_a_broken_example_fails(tmp_path: Path) -> None:
    broken = Example(REPO / "docs" / "guide.md", 1, "import trio\nraise SystemExit(3)\n")
    with pytest.raises(pytest.fail.Exception, match=r"docs/guide.md:1 exited with status 3"):
        run_example(broken, tmp_path)


def test_a_failing_pytest_example_fails(tmp_path: Path) -> None:
    failing = Example(REPO / "docs" / "guide.md", 1, "async def test_x():\n    assert False\n")
    assert failing.is_pytest_module
    with pytest.raises(pytest.fail.Exception, match="exited with status 1"):
        run_example(failing, tmp_path)

