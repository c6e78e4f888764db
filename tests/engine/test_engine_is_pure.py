"""The Engine is sans-I/O: nothing under ``openraft_trio/_engine`` may import trio."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import openraft_trio

ENGINE_DIR = pathlib.Path(openraft_trio.__file__).parent / "_engine"


def _trio_imports(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "trio"]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == "trio"
        ):
            found.append(node.module)
    return found


def test_engine_sources_do_not_import_trio() -> None:
    files = sorted(ENGINE_DIR.rglob("*.py"))
    assert files, ENGINE_DIR
    offenders = {str(p.relative_to(ENGINE_DIR)): m for p in files if (m := _trio_imports(p))}
    assert offenders == {}


def test_importing_the_engine_does_not_load_trio() -> None:
    # Import the engine modules by path so the package's own __init__ (which re-exports the
    # trio-based runtime) is not what is being measured.
    code = (
        "import sys, importlib.util, types, pathlib\n"
        f"root = pathlib.Path({str(ENGINE_DIR.parent)!r})\n"
        "pkg = types.ModuleType('openraft_trio'); pkg.__path__ = [str(root)]\n"
        "sys.modules['openraft_trio'] = pkg\n"
        "import openraft_trio._engine, openraft_trio._engine.engine\n"
        "import random\n"
        "from openraft_trio._config import Config\n"
        "openraft_trio._engine.Engine(1, Config(), random.Random(0))\n"
        "assert 'trio' not in sys.modules, sorted(m for m in sys.modules if 'trio' in m)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
