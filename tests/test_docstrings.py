"""Every public method and property of an exported class has a docstring.

The public surface is the one ``tests/test_exports.py`` defines (``exported_classes()``).
For each exported class, the members checked are the public ones (no leading ``_``)
defined on the class itself or on one of its bases from this package: functions,
properties, classmethods and staticmethods. Members inherited from builtins, ``attrs``,
``typing`` or ``Protocol`` machinery are not this package's to document, and enum members
and constants are values, not methods.

The rule: a member needs a non-empty docstring of its own, except that an override of a
method a base class from this package documents (typically a Protocol's method, whose
contract the implementation follows) may inherit that docstring, as ``inspect.getdoc``
and Sphinx autodoc do.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from tests.test_exports import exported_classes

PACKAGE = "openraft_trio"


def own_package(cls: type) -> bool:
    return cls.__module__.split(".")[0] == PACKAGE


def function_of(member: Any) -> Any:
    """The function behind a method, property, classmethod or staticmethod; else None."""
    if isinstance(member, staticmethod | classmethod):
        member = member.__func__
    elif isinstance(member, property):
        member = member.fget
    if inspect.isfunction(member) and member.__module__.split(".")[0] == PACKAGE:
        return member
    return None


def public_members(cls: type) -> Iterator[tuple[str, type, Any]]:
    """``(name, defining class, function)`` of each public member ``cls`` gets from here."""
    seen: set[str] = set()
    for owner in cls.__mro__:
        if not own_package(owner):
            continue
        for name, member in vars(owner).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            function = function_of(member)
            if function is not None:
                yield name, owner, function


def documented_by_base(cls: type, owner: type, name: str) -> bool:
    """A base of ``owner`` from this package documents ``name`` (a Protocol's contract)."""
    for base in cls.__mro__[cls.__mro__.index(owner) + 1 :]:
        if own_package(base) and name in vars(base):
            function = function_of(vars(base)[name])
            if function is not None and (function.__doc__ or "").strip():
                return True
    return False


def undocumented() -> list[str]:
    missing = set()
    for cls, where in exported_classes().items():
        for name, owner, function in public_members(cls):
            if (function.__doc__ or "").strip():
                continue
            if documented_by_base(cls, owner, name):
                continue
            missing.add(f"{owner.__module__}.{owner.__qualname__}.{name} (via {where})")
    return sorted(missing)


def test_public_methods_and_properties_have_docstrings() -> None:
    assert undocumented() == []


def test_the_walk_sees_methods_properties_and_protocol_contracts() -> None:
    import openraft_trio
    from openraft_trio.storage import FileSystem, OsFileSystem

    raft = {name for name, _owner, _function in public_members(openraft_trio.Raft)}
    assert {"wait", "metrics_watch", "is_initialized"} <= raft  # a method, properties
    membership = {name for name, _owner, _fn in public_members(openraft_trio.Membership)}
    assert {"voter_ids", "is_voter"} <= membership
    # OsFileSystem implements the FileSystem Protocol without subclassing it, so it needs
    # docstrings of its own; a subclass of a documented Protocol method would not.
    assert not documented_by_base(OsFileSystem, OsFileSystem, "exists")

    class Subclass(FileSystem):
        def listdir(self, path: str) -> list[str]:
            return []

    assert documented_by_base(Subclass, Subclass, "listdir")
