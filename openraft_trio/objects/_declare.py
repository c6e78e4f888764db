"""Declaring a replicated object: the base class and the method markers.

A subclass of :class:`ReplicatedObject` becomes an attrs class (``attrs.define(slots=False)``)
whose fields are the replicated state. Its methods marked :func:`replicated` are commands
(they go through the log); those marked :func:`query` are read-only (they run on one
replica after a linearizable read). The class keeps a table of its marked methods,
:class:`MethodTable`, built once when the class is defined.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, Literal, TypeVar, final, overload

import attrs

F = TypeVar("F", bound=Callable[..., Any])

_MARK: Final = "__openraft_trio_object_method__"
# Where the log position lives in an object's __dict__ (not attrs fields: not the user's state).
_LOG_TIME: Final = "_openraft_trio_log_time"
_LOG_INDEX: Final = "_openraft_trio_log_index"


@final
@attrs.frozen
class MethodSpec:
    """What a marker says of a method: its replicated ``name``, ``version`` and ``kind``."""

    name: str
    version: int
    kind: Literal["replicated", "query"]


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"a method name must be a public identifier, got {name!r}")


def _mark(function: Any, spec: MethodSpec) -> None:
    if not callable(function):
        raise TypeError(f"@{spec.kind} marks a method, got {function!r}")
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise TypeError(
            f"@{spec.kind} method {spec.name!r} must be a plain (synchronous) method: "
            "it runs inside apply, which must not wait"
        )
    _check_name(spec.name)
    setattr(function, _MARK, spec)


@overload
def replicated(function: F, /) -> F: ...
@overload
def replicated(*, name: str | None = None, version: int = 1) -> Callable[[F], F]: ...
def replicated(
    function: F | None = None, /, *, name: str | None = None, version: int = 1
) -> F | Callable[[F], F]:
    """Mark a method of a :class:`ReplicatedObject` as a command.

    Called through a handle, a command becomes a log entry
    (:class:`~openraft_trio.objects.Call`) and runs on every replica when the entry is
    applied; its return value is the reply. It must be deterministic: no clocks, no
    randomness, no I/O (use ``self.log_time`` and ``self.log_index``). Called directly on
    an instance it simply runs.

    Args:
        function: the method (when used as ``@replicated`` without arguments).
        name: the replicated name (default: the Python name). Old code kept for replay
            under another Python name declares the name it implements:
            ``@replicated(name="add", version=1) def add_v1(...)``.
        version: the code version from which this implementation is used (default 1). An
            entry applies with the implementation of the highest version at or below the
            object's active version (see :meth:`ObjectHandle.upgrade`).

    Raises:
        TypeError: not a synchronous function, or ``version`` is not an int.
        ValueError: ``version`` is below 1, or ``name`` is not a public identifier.
    """
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"version must be an int, got {version!r}")
    if version < 1:
        raise ValueError(f"version must be at least 1, got {version}")
    if name is not None:
        _check_name(name)

    def mark(method: F) -> F:
        _mark(method, MethodSpec(name or method.__name__, version, "replicated"))
        return method

    return mark if function is None else mark(function)


def query(function: F, /) -> F:
    """Mark a method of a :class:`ReplicatedObject` as a read-only query.

    Called through a handle, it runs on the handle's node after
    ``raft.ensure_linearizable``, so it sees every command acknowledged before the call. It
    must not change the state (nothing replicates what it changes). Queries are not
    versioned: each node runs its own code.

    Raises:
        TypeError: not a synchronous function.
    """
    _mark(function, MethodSpec(function.__name__, 0, "query"))
    return function


@final
class MethodTable:
    """The marked methods of a :class:`ReplicatedObject` class, by replicated name.

    Attributes:
        commands: name -> version -> function, for :func:`replicated` methods.
        queries: name -> function, for :func:`query` methods.
        max_version: the highest command version this code has (at least 1).
    """

    def __init__(
        self,
        commands: Mapping[str, Mapping[int, Callable[..., Any]]],
        queries: Mapping[str, Callable[..., Any]],
    ) -> None:
        self.commands = {
            name: dict(sorted(versions.items())) for name, versions in commands.items()
        }
        self.queries = dict(queries)
        self.max_version = max(
            (v for versions in self.commands.values() for v in versions), default=1
        )
        self._signatures: dict[Callable[..., Any], inspect.Signature] = {}
        self._resolved: dict[tuple[str, int], Callable[..., Any] | None] = {}

    def resolve(self, name: str, version: int) -> Callable[..., Any] | None:
        """The implementation of command ``name`` at code version ``version``: the one with
        the highest version at or below it, or None."""
        key = (name, version)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        found = None
        for declared, function in self.commands.get(name, {}).items():
            if declared <= version:
                found = function
        if len(self._resolved) < 4096:  # names come from clients: bound the cache
            self._resolved[key] = found
        return found

    def signature(self, function: Callable[..., Any]) -> inspect.Signature:
        """``inspect.signature(function)``, cached."""
        signature = self._signatures.get(function)
        if signature is None:
            signature = self._signatures[function] = inspect.signature(function)
        return signature


def _collect(cls: type) -> MethodTable:
    """The marked methods of ``cls`` and its bases (a subclass's Python name wins)."""
    by_python_name: dict[str, tuple[MethodSpec, Callable[..., Any]]] = {}
    for klass in reversed(cls.__mro__):
        for python_name, value in vars(klass).items():
            spec = getattr(value, _MARK, None)
            if isinstance(spec, MethodSpec):
                by_python_name[python_name] = (spec, value)
            else:
                by_python_name.pop(python_name, None)
    commands: dict[str, dict[int, Callable[..., Any]]] = {}
    queries: dict[str, Callable[..., Any]] = {}
    for spec, function in by_python_name.values():
        if spec.kind == "query":
            if spec.name in queries:  # pragma: no cover - one Python name holds one function
                raise TypeError(f"{cls.__qualname__}: two queries named {spec.name!r}")
            queries[spec.name] = function
            continue
        versions = commands.setdefault(spec.name, {})
        if spec.version in versions:
            raise TypeError(
                f"{cls.__qualname__}: two implementations of {spec.name!r} version "
                f"{spec.version} ({versions[spec.version].__name__} and {function.__name__})"
            )
        versions[spec.version] = function
    both = sorted(commands.keys() & queries.keys())
    if both:
        raise TypeError(f"{cls.__qualname__}: {both} are both @replicated and @query")
    return MethodTable(commands, queries)


def _copy_mutable_defaults(cls: type) -> None:
    """Give each instance its own copy of a mutable default (``items: list[int] = []``)."""
    for name in inspect.get_annotations(cls):
        default = cls.__dict__.get(name)
        if isinstance(default, list | dict | set | bytearray):
            setattr(cls, name, attrs.field(factory=functools.partial(copy.deepcopy, default)))


class ReplicatedObject:
    """The base of a replicated object: typed fields hold the state, marked methods act.

    A subclass is made an attrs class (``attrs.define(slots=False)``; do not decorate it
    again): its annotated fields are the replicated state, each with a default so that
    ``Cls()`` is the initial state (a mutable default, ``= {}``, is copied per instance). Field values must be structurable by
    :data:`openraft_trio.codec.converter` and CBOR-encodable: they make the snapshots.
    Methods marked :func:`replicated` are commands, methods marked :func:`query` are
    read-only; see ``docs/replicated-objects.md``.

    Example::

        class Counter(ReplicatedObject):
            value: int = 0

            @replicated
            def add(self, n: int = 1) -> int:
                self.value += n
                return self.value

            @query
            def get(self) -> int:
                return self.value

    Raises:
        TypeError: at class definition, when two implementations share a name and version,
            or a name is both a command and a query.
    """

    object_methods: ClassVar[MethodTable] = MethodTable({}, {})
    """The class's marked methods (built when the class is defined)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _copy_mutable_defaults(cls)
        attrs.define(cls, slots=False)
        cls.object_methods = _collect(cls)

    @property
    def log_time(self) -> float:
        """The log time: the largest ``now`` stamped into the commands applied so far
        (monotone, the same on every replica at the same index; 0.0 before any)."""
        value: float = self.__dict__.get(_LOG_TIME, 0.0)
        return value

    @property
    def log_index(self) -> int:
        """The index of the entry being applied (inside a command), else of the last
        applied entry (0 before any); strictly increasing: usable as a fencing token."""
        value: int = self.__dict__.get(_LOG_INDEX, 0)
        return value


def set_log_position(obj: ReplicatedObject, log_time: float, log_index: int) -> None:
    """Set what ``obj.log_time`` and ``obj.log_index`` return (the state machine's job)."""
    obj.__dict__[_LOG_TIME] = log_time
    obj.__dict__[_LOG_INDEX] = log_index
