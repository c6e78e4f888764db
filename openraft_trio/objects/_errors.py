"""The errors of replicated objects.

Errors about one call (:class:`UnknownMethodError`, :class:`BadArgumentsError`,
:class:`ReplicatedMethodError`, :class:`VersionNotActiveError`) are *replies*: every replica
decides them alike and applies the entry the same way, and the handle re-raises the reply
as the exception. :class:`UnknownVersionError` is not a reply: a node asked to run code it
does not have stops (it is a :class:`~openraft_trio.StorageError`) rather than diverge.
"""

from __future__ import annotations

from .._errors import InvalidRequest, RaftError, StorageError


class ObjectError(RaftError):
    """The base of the errors of replicated objects."""


class UnknownMethodError(ObjectError):
    """No command (or query) of that name exists at the version the call runs with."""


class BadArgumentsError(ObjectError):
    """The call's arguments do not fit the method's signature."""


class ReplicatedMethodError(ObjectError):
    """The method raised; the state is whatever it left (the same on every replica).

    Attributes:
        type_name: the qualified name of the exception's type, e.g. ``"ValueError"``.
        message: ``str()`` of the exception.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class VersionNotActiveError(ObjectError):
    """The call asked for a code version above the object's active version."""


class UnknownVersionError(ObjectError, StorageError):
    """This node's code lacks a version the cluster made active (an upgrade entry, or a
    snapshot, of a newer version): the node stops rather than diverge. Run the new code on
    every node before the upgrade."""


class MalformedSnapshotError(ObjectError, InvalidRequest):
    """Snapshot data that is not an object snapshot of this class and format, or that
    disagrees with its meta. Nothing was changed."""
