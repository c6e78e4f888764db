"""The package's layers, read from its imports (``ast``, every import statement, also those
inside functions and under ``TYPE_CHECKING``):

* product code does not import test or benchmark code: nothing outside
  ``openraft_trio/testing/`` imports ``openraft_trio.testing`` or a benchmark module;
* the runtime (``openraft_trio/_core/``) is typed against the storage Protocols and does not
  reach for the concrete stores (``storage._file``, ``_mem``, ``_fs``) or the codec.

An import of a name through a facade (``from ..storage import MemLogStore``) counts as an
import of the module that defines it.
"""

from __future__ import annotations

import ast
import importlib
import types
from collections.abc import Iterator
from pathlib import Path

import openraft_trio

PACKAGE_DIR = Path(openraft_trio.__file__).parent
BENCHMARKS_DIR = Path(__file__).parent.parent / "benchmarks"
BENCHMARK_MODULES = {"benchmarks"} | {p.stem for p in BENCHMARKS_DIR.glob("*.py")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(base: str, name: str) -> str:
    """The module ``from base import name`` takes ``name`` from (its defining module for a
    class or function re-exported by a facade)."""
    candidate = f"{base}.{name}"
    try:
        return importlib.import_module(candidate).__name__
    except ImportError:
        pass
    try:
        value = getattr(importlib.import_module(base), name)
    except (ImportError, AttributeError):
        return base
    if isinstance(value, types.ModuleType):
        return value.__name__
    return getattr(value, "__module__", None) or base


def imports_of(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, absolute."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            if base.startswith("openraft_trio"):
                for alias in node.names:
                    yield resolve(base, alias.name)


def product_modules(under: str = "") -> list[Path]:
    return sorted((PACKAGE_DIR / under).rglob("*.py"))


def is_within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_imports_are_resolved() -> None:
    # The walk really sees relative imports, facades included.
    cluster_imports = set(imports_of(PACKAGE_DIR / "testing" / "_cluster.py"))
    assert "openraft_trio.storage._mem" in cluster_imports  # ``from ..storage import MemLogStore``


def test_product_does_not_import_tests_or_benchmarks() -> None:
    offenders = []
    for path in product_modules():
        here = module_name(path)
        if is_within(here, "openraft_trio.testing"):
            continue
        for target in imports_of(path):
            top = target.split(".")[0]
            if (
                is_within(target, "openraft_trio.testing")
                or top in BENCHMARK_MODULES
                or top == "tests"
            ):
                offenders.append(f"{here} imports {target}")
    assert offenders == []


CORE_MUST_NOT_IMPORT = (
    "openraft_trio.storage._file",
    "openraft_trio.storage._mem",
    "openraft_trio.storage._fs",
    "openraft_trio.codec",
)


def test_core_does_not_import_concrete_storage_or_the_codec() -> None:
    offenders = []
    for path in product_modules("_core"):
        for target in imports_of(path):
            if any(is_within(target, banned) for banned in CORE_MUST_NOT_IMPORT):
                offenders.append(f"{module_name(path)} imports {target}")
    assert offenders == []
