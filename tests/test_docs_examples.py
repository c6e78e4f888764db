"""Every ```python example in ``docs/*.md`` and ``README.md`` runs, as written.

Each fenced block whose info string is exactly ``python`` is extracted (not copied) and
executed in a fresh interpreter, in a temporary working directory, with a time limit, and
must exit with status 0. A block that defines pytest tests (a top-level ``test_*``
function or ``Test*`` class) is run by pytest with pytest-trio's ``trio_mode``, as the
docs tell readers to. The test id is ``file:line`` of the opening fence, so a failure
names the block. A fragment that cannot run on its own belongs in a ```text block.

A block whose first line is a file-name comment (``# counter.py``) is a module the reader
saves under that name: it runs like any block, and it is also written beside every other
block, so a later block (on any page: the tutorials build on each other) can import it.
"""

from __future__ import annotations

import ast
import os
import re
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
        where = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        return f"{where}:{self.line}"

    @property
    def module_name(self) -> str | None:
        """``counter.py`` for a block that starts with ``# counter.py``, else None."""
        match = re.fullmatch(r"# ([A-Za-z_]\w*\.py)", self.code.split("\n", 1)[0].strip())
        return match.group(1) if match else None

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


def modules_of(examples: list[Example]) -> dict[str, str]:
    """The named blocks, by file name (one block per name)."""
    modules: dict[str, str] = {}
    for example in examples:
        name = example.module_name
        if name is not None:
            assert name not in modules, f"{example.id}: a second block named {name}"
            modules[name] = example.code
    return modules


MODULES = modules_of(EXAMPLES)


def run_example(
    example: Example,
    directory: Path,
    time_limit: float = TIME_LIMIT,
    modules: dict[str, str] = MODULES,
) -> None:
    """Run ``example`` in ``directory`` (with the named blocks ``modules`` beside it); fail
    the calling test with its output if it fails."""
    for module_name, code in modules.items():
        (directory / module_name).write_text(code, encoding="utf-8")
    name = example.module_name or (
        "test_example.py" if example.is_pytest_module else "example.py")
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


def test_named_blocks_are_modules_for_the_others(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\n# helper.py\nVALUE = 42\n```\n\n"
        "```python\nfrom helper import VALUE\nassert VALUE == 42\n```\n",
        encoding="utf-8",
    )
    helper, user = extract_examples(page)
    assert (helper.module_name, user.module_name) == ("helper.py", None)
    modules = modules_of([helper, user])
    for example in (helper, user):
        directory = tmp_path / str(example.line)
        directory.mkdir()
        run_example(example, directory, modules=modules)
    broken = Example(page, 9, "from helper import VALUE\nassert VALUE == 41\n")
    with pytest.raises(pytest.fail.Exception, match="AssertionError"):
        run_example(broken, tmp_path / "1", modules=modules)


def test_a_broken_example_fails(tmp_path: Path) -> None:
    broken = Example(REPO / "docs" / "guide.md", 1, "import trio\nraise SystemExit(3)\n")
    with pytest.raises(pytest.fail.Exception, match=r"docs/guide.md:1 exited with status 3"):
        run_example(broken, tmp_path)


def test_a_failing_pytest_example_fails(tmp_path: Path) -> None:
    failing = Example(REPO / "docs" / "guide.md", 1, "async def test_x():\n    assert False\n")
    assert failing.is_pytest_module
    with pytest.raises(pytest.fail.Exception, match="exited with status 1"):
        run_example(failing, tmp_path)

