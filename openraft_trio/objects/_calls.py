"""What travels in the log for a replicated object, and how a replica runs it.

* :class:`Call` ``(method, version, args, now, kwargs)``: run command ``method``; the reply
  is its return value, or an :class:`ErrorReply`.
* :class:`Upgrade` ``(version)``: make ``version`` the active code version; the reply is
  the active version afterwards.

Both are registered with :mod:`openraft_trio.codec` (tags ``objects.Call`` and
``objects.Upgrade``); the arguments of a call travel as application data, each one
``[tag, value]`` (plain CBOR or a registered type). :func:`make_call` builds a call whose
arguments have been through the codec once already, so the leader (which applies the very
object it was given) sees the same values as a follower (which decodes them): a tuple
argument is a list on every replica.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import attrs

from .. import codec
from .._errors import InvalidRequest, short_repr, short_text
from ._declare import MethodTable, ReplicatedObject, set_log_position
from ._errors import (
    BadArgumentsError,
    ObjectError,
    ReplicatedMethodError,
    UnknownMethodError,
    UnknownVersionError,
    VersionNotActiveError,
)


@final
@attrs.frozen
class Call:
    """A call of a replicated object's method (a log entry for a command).

    Attributes:
        method: the replicated name of the method.
        version: the code version to run it with; ``None`` (usual): the active version
            when the entry is applied.
        args: positional arguments (application data: plain CBOR or registered types).
        now: the writer's clock when the call was made (seconds); feeds ``log_time``.
        kwargs: keyword arguments, by name.
    """

    method: str
    version: int | None = None
    args: tuple[Any, ...] = ()
    now: float = 0.0
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)


@final
@attrs.frozen
class Upgrade:
    """Make ``version`` the object's active code version (never lowers it).

    The reply is the active version afterwards. A node whose code lacks ``version`` stops
    with :class:`UnknownVersionError` when it applies this entry.
    """

    version: int


_REPLY_ERRORS: Final[dict[str, type[ObjectError]]] = {
    "unknown_method": UnknownMethodError,
    "bad_arguments": BadArgumentsError,
    "version_not_active": VersionNotActiveError,
}


@final
@attrs.frozen
class ErrorReply:
    """The reply of a call that failed, the same on every replica; the handle raises it.

    Attributes:
        kind: ``"unknown_method"``, ``"bad_arguments"``, ``"version_not_active"`` or
            ``"method_raised"``.
        type_name: for ``"method_raised"``, the type of what the method raised.
        message: what went wrong.
    """

    kind: str
    type_name: str
    message: str

    def to_exception(self) -> ObjectError:
        """The exception this reply stands for (:class:`ReplicatedMethodError` for
        ``"method_raised"``)."""
        error_type = _REPLY_ERRORS.get(self.kind)
        if error_type is None:
            return ReplicatedMethodError(self.type_name, self.message)
        return error_type(self.message)


def unwrap_reply(reply: Any) -> Any:
    """``reply``, unless it is an :class:`ErrorReply`: then raise its exception."""
    if isinstance(reply, ErrorReply):
        raise reply.to_exception()
    return reply


def _unstructure_call(call: Call) -> list[Any]:
    return [
        call.method,
        call.version,
        [codec.encode_data(arg) for arg in call.args],
        call.now,
        {name: codec.encode_data(value) for name, value in call.kwargs.items()},
    ]


def _structure_call(raw: Any, _cls: Any) -> Call:
    if not (isinstance(raw, list) and len(raw) == 5):
        raise codec.DecodeError(
            f"a call is [method, version, args, now, kwargs], got {short_repr(raw)}"
        )
    method, version, args, now, kwargs = raw
    if type(method) is not str:
        raise codec.DecodeError(f"a call's method must be a str, got {short_repr(method)}")
    if version is not None and type(version) is not int:
        raise codec.DecodeError(
            f"a call's version must be an int or null, got {short_repr(version)}"
        )
    if type(now) not in (int, float):
        raise codec.DecodeError(f"a call's now must be a number, got {short_repr(now)}")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise codec.DecodeError("a call's args must be a list and its kwargs a map")
    if not all(type(name) is str for name in kwargs):
        raise codec.DecodeError("a call's keyword names must be str")
    return Call(
        method,
        version,
        tuple(codec.decode_data(arg) for arg in args),
        float(now),
        {name: codec.decode_data(value) for name, value in kwargs.items()},
    )


codec.converter.register_unstructure_hook(Call, _unstructure_call)
codec.converter.register_structure_hook(Call, _structure_call)
codec.register_data_type(Call, "objects.Call")
codec.register_data_type(Upgrade, "objects.Upgrade")
codec.register_data_type(ErrorReply, "objects.ErrorReply")


def make_call(
    method: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    now: float = 0.0,
    version: int | None = None,
) -> Call:
    """A :class:`Call` whose arguments are as every replica will see them (through the
    codec once: tuples become lists, registered types are copies).

    Raises:
        InvalidRequest: an argument is neither plain CBOR nor of a registered type.
    """
    call = Call(method, version, tuple(args), float(now), dict(kwargs or {}))
    try:
        return codec.decode_payload(codec.encoded_data(call))  # type: ignore[no-any-return]
    except (*codec.ENCODE_ERRORS, codec.DecodeError) as exc:
        raise InvalidRequest(
            f"cannot encode the arguments of {method!r}: {short_text(str(exc))} "
            "(register their types with openraft_trio.codec.register_data_type)"
        ) from exc


def _run(obj: ReplicatedObject, methods: MethodTable, function: Any, call: Call) -> Any:
    try:
        return function(obj, *call.args, **call.kwargs)
    except TypeError as exc:
        # Arguments that do not fit the signature fail before the body runs; any other
        # TypeError came from the method itself. The signature tells which (off the fast
        # path: only calls that failed pay for it).
        try:
            methods.signature(function).bind(obj, *call.args, **call.kwargs)
        except TypeError as unfit:
            return ErrorReply("bad_arguments", "TypeError", f"{call.method}: {unfit}")
        return _raised(exc)
    except Exception as exc:
        return _raised(exc)


def _raised(exc: Exception) -> ErrorReply:
    return ErrorReply("method_raised", type(exc).__qualname__, short_text(str(exc)))


def apply_call(obj: ReplicatedObject, call: Call, *, active_version: int, log_index: int) -> Any:
    """Run command ``call`` on ``obj`` as the entry at ``log_index``; return its reply.

    The object's log time becomes ``max(log_time, call.now)`` and its log index
    ``log_index`` first, whatever the outcome. The implementation is the one of the call's
    version (the active one if ``None``).

    Raises:
        UnknownVersionError: the version is active but this code does not have it.
    """
    now = call.now
    log_time = obj.log_time
    if math.isfinite(now) and now > log_time:
        log_time = now
    set_log_position(obj, log_time, log_index)
    version = active_version if call.version is None else call.version
    if version > active_version:
        return ErrorReply(
            "version_not_active",
            "",
            f"{call.method}: version {version} is not active (the active version is "
            f"{active_version}; run upgrade first)",
        )
    methods = type(obj).object_methods
    if version > methods.max_version:
        raise UnknownVersionError(
            f"{type(obj).__qualname__} has code up to version {methods.max_version}, "
            f"asked to run version {version}"
        )
    function = methods.resolve(call.method, version)
    if function is None:
        return ErrorReply(
            "unknown_method",
            "",
            f"{type(obj).__qualname__} has no command {call.method!r} at version {version}",
        )
    return _run(obj, methods, function, call)


def run_query(obj: ReplicatedObject, call: Call) -> Any:
    """Run query ``call`` on ``obj`` (nothing else changes); return its reply."""
    methods = type(obj).object_methods
    function = methods.queries.get(call.method)
    if function is None:
        return ErrorReply(
            "unknown_method", "", f"{type(obj).__qualname__} has no query {call.method!r}"
        )
    return _run(obj, methods, function, call)
