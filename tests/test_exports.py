"""The public surface, checked the way trio checks its own (``trio/_tests/test_exports.py``).

A public module is ``openraft_trio`` or any of its modules whose dotted name has no part
starting with ``_``. In each:

* every public name is exported: listed in ``__all__``, or (in a module without one) either
  defined there or re-exported with ``from ._x import Name as Name``;
* every exported class and function has a docstring, and is named in the docs
  (``docs/*.md``);
* every public function and method (of an exported class, defined by this package) has
  complete annotations that resolve (``typing.get_type_hints``);
* every exported class is ``@typing.final`` unless users are meant to subclass or implement
  it: Protocols, exceptions (as in trio: a family may grow, and a transport may raise a
  subclass of ``Unreachable`` with its own detail) and the short list ``OPEN_CLASSES``.

Names are imported from the public modules only: private modules may move.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
import pkgutil
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import attrs
import pytest

import openraft_trio
import openraft_trio.testing.linearizability
import openraft_trio.testing.storage_suite
from openraft_trio.kv import KvStateMachine
from openraft_trio.objects import ReplicatedObject
from openraft_trio.storage import MemLogStore, OsFileSystem

DOCS_DIR = Path(__file__).parent.parent / "docs"


def public_module_names() -> list[str]:
    names = ["openraft_trio"]
    for info in pkgutil.walk_packages(openraft_trio.__path__, "openraft_trio."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


PUBLIC_MODULES = public_module_names()

# Classes users are meant to subclass (besides Protocols and exceptions), and why.
OPEN_CLASSES: dict[type, str] = {
    # The conformance suites: subclass as ``Test...`` to get one pytest test per check.
    openraft_trio.testing.storage_suite.LogStoreSuite: "subclassed to run the suite",
    openraft_trio.testing.storage_suite.StateMachineSuite: "subclassed to run the suite",
    # Its constructor returns a private subclass when the inner machine builds snapshots
    # aside (one more method, get_snapshot_builder).
    openraft_trio.sessions.SessionStateMachine: "has a private subclass",
    # A linearizability model is a subclass (docs/linearizability.md).
    openraft_trio.testing.linearizability.Model: "the base of every model",
    # Fault injection builds on the shipped implementations: stores that break one rule
    # (the storage suite's own tests), a file system that records what it is asked to do,
    # a state machine that is slow or forgets.
    MemLogStore: "the base of deliberately broken stores in tests",
    OsFileSystem: "wrapped by recording or faulty file systems",
    KvStateMachine: "extended by slow or faulty state machines in tests",
    # A replicated object is declared as a subclass (docs/replicated-objects.md).
    ReplicatedObject: "the base of every replicated object",
}


def exported_names(module: types.ModuleType) -> list[str]:
    """What ``module`` exports: ``__all__``, else what it defines or re-exports as itself."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names += [a.name for a in node.names if a.asname == a.name]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [name for name in names if not name.startswith("_")]


def exports() -> Iterator[tuple[str, str, Any]]:
    """``(module name, name, value)`` of every export of every public module."""
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in exported_names(module):
            yield module_name, name, getattr(module, name)


def exported_classes() -> dict[type, str]:
    """Every exported class (once, by the first module exporting it) -> ``module.Name``."""
    classes: dict[type, str] = {}
    for module_name, name, value in exports():
        if isinstance(value, type) and value.__module__.startswith("openraft_trio"):
            classes.setdefault(value, f"{module_name}.{name}")
    return classes


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_exported(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = set(exported_names(module))
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{module_name}.__all__ names what it does not have"
    if hasattr(module, "__all__"):
        return
    # Without __all__, every public-looking name must be exported on purpose.
    leaked = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name not in exported
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # from __future__
    ]
    assert leaked == [], f"{module_name}: import these privately or export them"


def test_exports_are_documented() -> None:
    no_docstring = [
        f"{module_name}.{name}"
        for module_name, name, value in exports()
        if (inspect.isclass(value) or inspect.isfunction(value))
        and not (vars(value).get("__doc__") if inspect.isclass(value) else value.__doc__)
    ]
    assert no_docstring == []


def test_exports_are_named_in_the_docs() -> None:
    docs = "\n".join(path.read_text() for path in sorted(DOCS_DIR.glob("*.md")))
    unmentioned = {
        f"{module_name}.{name}"
        for module_name, name, _value in exports()
        if not re.search(rf"\b{re.escape(name)}\b", docs)
    }
    assert sorted(unmentioned) == []


def public_functions() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every exported function and every public method of an exported class."""
    for module_name, name, value in exports():
        if inspect.isfunction(value) and value.__module__.startswith("openraft_trio"):
            yield f"{module_name}.{name}", value
    for cls, where in exported_classes().items():
        for attr, member in vars(cls).items():
            if attr.startswith("_") and attr != "__init__":
                continue
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            elif isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member) and member.__module__.startswith("openraft_trio"):
                yield f"{where}.{attr}", member


def missing_annotations(fn: Callable[..., Any]) -> list[str]:
    signature = inspect.signature(fn)
    missing = [
        p.name
        for i, p in enumerate(signature.parameters.values())
        if p.annotation is inspect.Parameter.empty and not (i == 0 and p.name in ("self", "cls"))
    ]
    if signature.return_annotation is inspect.Signature.empty and fn.__name__ != "__init__":
        missing.append("return")
    return missing


def test_public_functions_are_fully_annotated() -> None:
    incomplete = {
        where: missing for where, fn in public_functions() if (missing := missing_annotations(fn))
    }
    assert incomplete == {}


def test_annotations_resolve() -> None:
    unresolved = {}
    for where, fn in public_functions():
        try:
            # In the namespace of the defining module (attrs' generated methods carry a
            # copy of it from before the class was made).
            typing.get_type_hints(fn, globalns=vars(sys.modules[fn.__module__]))
        except NameError as exc:
            unresolved[where] = str(exc)
    assert unresolved == {}


def is_final(cls: type) -> bool:
    """Marked ``@typing.final``, or not subclassable at all (an enum with members)."""
    if getattr(cls, "__final__", False):
        return True
    try:
        types.new_class("SubclassTester", (cls,))
    except TypeError:
        return True
    return False


def test_is_final_tells_final_classes() -> None:
    @typing.final
    class Closed:
        pass

    class Open:
        pass

    assert is_final(Closed)
    assert not is_final(Open)
    assert is_final(openraft_trio.ServerState)  # an enum with members


def must_be_final(cls: type) -> bool:
    return not (
        Protocol in cls.__bases__
        or issubclass(cls, BaseException)
        or cls in OPEN_CLASSES
    )


def test_classes_users_must_not_subclass_are_final() -> None:
    open_ = [
        where
        for cls, where in exported_classes().items()
        if must_be_final(cls) and not is_final(cls)
    ]
    assert open_ == []
    # The classes meant to be subclassed really can be.
    assert not any(is_final(cls) for cls in OPEN_CLASSES)


@pytest.mark.parametrize("cls", [openraft_trio.RaftMetrics, openraft_trio.ReplicationStatus])
def test_metrics_fields_have_one_line_docs(cls: type) -> None:
    # cleandoc: Python 3.13 strips a docstring's indentation at compile time, older ones not.
    doc = inspect.cleandoc(cls.__doc__ or "")
    assert "Attributes:" in doc
    attributes = doc.split("Attributes:", 1)[1]
    documented = re.findall(r"^    (\w+): \S", attributes, re.MULTILINE)
    assert documented == [field.name for field in attrs.fields(cls)]


def test_enums_and_constants_are_exported_too() -> None:
    # Not only classes and functions count: enums and constants are exports as well.
    names = {name for _module, name, _value in exports()}
    assert {"ServerState", "ReadPolicy"} <= names
    assert isinstance(openraft_trio.ServerState.LEADER, enum.Enum)
