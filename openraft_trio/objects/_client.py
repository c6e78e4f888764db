"""``ObjectClient``: call a replicated object served by ``openraft-trio serve --object``.

::

    async with open_object_client(["127.0.0.1:7001", "127.0.0.1:7002"], Counter) as counter:
        await counter.add(5)
        assert await counter.get() == 5

It rides on :class:`~openraft_trio.kv.KvClient` (the same connections, leader following
and retry rules): queries are retried after any failure; a command is a
:meth:`KvClient.write <openraft_trio.kv.KvClient.write>`: in the client's session (the
``session_write`` op wrapping ``call``), sent again with the same number after an unknown
outcome until answered, and applied exactly once.
:class:`~openraft_trio.kv.AmbiguousOutcome` remains only when the session expired, or the
client's ``timeout`` ran out, after an attempt whose outcome is unknown. With
``sessions=False`` a command is retried only when it surely was not applied.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, final

from .. import codec
from .._types import ReadPolicy
from ..kv._client import DEFAULT_CLUSTER_NAME, KvClient, open_kv_client
from ._calls import Call, unwrap_reply
from ._declare import ReplicatedObject


@final
class ObjectClient:
    """Calls a served replicated object through ``kv`` (a :class:`~openraft_trio.kv.KvClient`).

    With ``object_class`` (the class the nodes serve), ``await client.add(5)`` is sugar for
    :meth:`call` or :meth:`query`, chosen by how the method is marked.

    Args:
        kv: the connection to the cluster.
        object_class: the served class, for attribute sugar (optional).
        read_policy: how the leader confirms queries.
    """

    def __init__(
        self,
        kv: KvClient,
        object_class: type[ReplicatedObject] | None = None,
        *,
        read_policy: ReadPolicy = ReadPolicy.READ_INDEX,
    ) -> None:
        self.kv = kv
        self.object_class = object_class
        self.read_policy = read_policy

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run command ``method`` on the cluster; return its reply.

        Raises:
            UnknownMethodError, BadArgumentsError, ReplicatedMethodError,
                VersionNotActiveError: the reply was an error.
            AmbiguousOutcome: the command may or may not have been applied (see the
                module docstring).
            NoLeader: no leader answered in time (nothing was applied).
            SessionsFull: the cluster holds its most sessions (nothing was applied).
        """
        encoded = codec.encode_data(Call(method, None, tuple(args), 0.0, kwargs))
        result = await self.kv.write("call", encoded)
        return unwrap_reply(codec.decode_data(result["reply"]))

    async def query(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run query ``method`` on the leader after a linearizable read; return its reply.

        Raises:
            UnknownMethodError, BadArgumentsError, ReplicatedMethodError: the reply was an
                error.
            NoLeader: no leader answered in time.
        """
        encoded = codec.encode_data(Call(method, None, tuple(args), 0.0, kwargs))
        result = await self.kv.leader_call(
            "query", encoded, self.read_policy.value, idempotent=True
        )
        return unwrap_reply(codec.decode_data(result["reply"]))

    async def upgrade(self, version: int) -> int:
        """Make ``version`` the active code version (see ``ObjectHandle.upgrade``)."""
        result = await self.kv.leader_call("upgrade", version, idempotent=False)
        active: int = result["version"]
        return active

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        cls = self.object_class
        if cls is not None and not name.startswith("_"):
            if name in cls.object_methods.commands:
                return functools.partial(self.call, name)
            if name in cls.object_methods.queries:
                return functools.partial(self.query, name)
        raise AttributeError(f"no replicated method or query {name!r} (give object_class)")


@asynccontextmanager
async def open_object_client(
    addrs: Iterable[str],
    object_class: type[ReplicatedObject] | None = None,
    *,
    cluster_name: str = DEFAULT_CLUSTER_NAME,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
    rpc_timeout: float = 3.0,
    read_policy: ReadPolicy = ReadPolicy.READ_INDEX,
    sessions: bool = True,
) -> AsyncIterator[ObjectClient]:
    """An :class:`ObjectClient` of the cluster at ``addrs``; its session and connections
    close on exit. ``sessions=False`` calls without a session (see the module docstring)."""
    async with open_kv_client(
        addrs,
        cluster_name=cluster_name,
        ssl_context=ssl_context,
        timeout=timeout,
        rpc_timeout=rpc_timeout,
        sessions=sessions,
    ) as kv:
        yield ObjectClient(kv, object_class, read_policy=read_policy)
