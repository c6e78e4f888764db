"""The KV service's commands: ``serve`` a node, and the client/admin commands.

Exit status: 0 success; 1 the operation failed (refused, or ``cas`` did not swap); 2 bad
arguments (a value over the cluster's size limit, :class:`~openraft_trio.PayloadTooLarge`,
too: nothing was written, and retrying cannot help); 3 the cluster (or a leader) could not
be reached; 4 the outcome of a write is unknown (:class:`~openraft_trio.kv.AmbiguousOutcome`);
5 the node could not start (its data directory belongs to another node or is in use, or the
address is taken).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import trio

from ._config import Config
from ._errors import ConfigError, PayloadTooLarge, RaftError, Unreachable
from ._types import ReadPolicy

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AMBIGUOUS = 4
EXIT_START = 5

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _addr(text: str) -> str:
    from .network.tcp import parse_addr

    try:
        parse_addr(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _addr_list(text: str) -> list[str]:
    return [_addr(part.strip()) for part in text.split(",") if part.strip()]


def int_arg(text: str, minimum: int, what: str) -> int:
    """Parse an integer argument of at least ``minimum``; ``what`` names it in errors."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} is an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{what} is >= {minimum}, got {value}")
    return value


def _node_id(text: str) -> int:
    return int_arg(text, 0, "a node id")


def _peers(text: str) -> dict[int, str]:
    peers: dict[int, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        ident, sep, addr = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected ID=HOST:PORT, got {part!r}")
        node_id = _node_id(ident.strip())
        if node_id in peers:
            raise argparse.ArgumentTypeError(f"node {node_id} is listed twice")
        peers[node_id] = _addr(addr.strip())
    if not peers:
        raise argparse.ArgumentTypeError("expected ID=HOST:PORT[,ID=HOST:PORT...]")
    return peers


def _id_list(text: str) -> list[int]:
    ids = [_node_id(p.strip()) for p in text.split(",") if p.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("expected node ids separated by commas")
    return ids


def _timeouts(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds, got {text!r}") from None
    return low, high


def _add_tls(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mutual TLS (all three or none)")
    g.add_argument("--tls-ca", metavar="FILE", help="the cluster CA certificate (PEM)")
    g.add_argument("--tls-cert", metavar="FILE", help="this process's certificate (PEM)")
    g.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")


def _tls_files(args: argparse.Namespace) -> tuple[str, str, str] | None:
    files = (args.tls_ca, args.tls_cert, args.tls_key)
    if not any(files):
        return None
    if not all(files):
        raise ConfigError("tls", "give --tls-ca, --tls-cert and --tls-key together")
    return files


def _add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cluster",
        type=_addr_list,
        default=["127.0.0.1:7001"],
        metavar="HOST:PORT[,...]",
        help="addresses of one or more nodes (default 127.0.0.1:7001)",
    )
    p.add_argument("--cluster-name", default=Config().cluster_name, help="must match the nodes'")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="give up after this many seconds (10)"
    )
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    _add_tls(p)


# -- serve ---------------------------------------------------------------------------------------


def _add_serve(commands: Commands) -> None:
    p = commands.add_parser(
        "serve",
        help="run one node of the replicated KV service",
        description=(
            "Run a node: Raft with a durable log and state machine in --data-dir, the Raft "
            "RPCs and the client API on --listen. Start every node, then run `init` once."
        ),
    )
    p.add_argument("--id", type=_node_id, required=True, help="this node's id")
    p.add_argument("--listen", type=_addr, required=True, metavar="HOST:PORT")
    p.add_argument("--data-dir", help="this node's directory (created if missing)")
    p.add_argument(
        "--mem", action="store_true", help="keep the log in memory (no --data-dir; tests)"
    )
    p.add_argument(
        "--peers",
        type=_peers,
        default={},
        metavar="ID=HOST:PORT,...",
        help="the initial members, this node included (used by `init` without --members)",
    )
    p.add_argument("--advertise", type=_addr, help="address others reach us at (default --listen)")
    p.add_argument("--cluster-name", default=Config().cluster_name)
    p.add_argument(
        "--election-timeout", type=_timeouts, metavar="MIN,MAX", help="seconds (0.15,0.30)"
    )
    p.add_argument("--heartbeat", type=float, help="heartbeat interval in seconds (0.05)")
    p.add_argument(
        "--snapshot-every",
        type=int,
        help="build a snapshot every N log entries (default: every 5000 or more, growing "
        "with the state)",
    )
    p.add_argument(
        "--keep-logs", type=int, help="log entries kept behind a snapshot when purging (1000)"
    )
    p.add_argument(
        "--allow-log-reversion",
        action="store_true",
        help="as leader, replicate again a follower that lost its log (default: halt and log)",
    )
    p.add_argument(
        "--max-entry-bytes",
        type=int,
        help=f"refuse writes whose value encodes to more bytes ({Config().max_entry_bytes})",
    )
    p.add_argument(
        "--bench-op",
        action="store_true",
        help="enable the `bench` op: write load generated in this node (benchmarks only)",
    )
    p.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default)...")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines (default) or one JSON object per line (docs/observability.md)",
    )
    p.add_argument(
        "--metrics-listen",
        type=_addr,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (needs the prometheus "
        "extra)",
    )
    _add_tls(p)
    p.set_defaults(handler=_serve)


def _serve_config(args: argparse.Namespace) -> Config:
    kw: dict[str, Any] = {"cluster_name": args.cluster_name}
    if args.election_timeout:
        kw["election_timeout_min"], kw["election_timeout_max"] = args.election_timeout
    if args.heartbeat is not None:
        kw["heartbeat_interval"] = args.heartbeat
    if args.snapshot_every is not None:
        kw["snapshot_policy"] = args.snapshot_every
    if args.keep_logs is not None:
        kw["max_in_snapshot_log_to_keep"] = args.keep_logs
    if args.allow_log_reversion:
        kw["allow_log_reversion"] = True
    if args.max_entry_bytes is not None:
        kw["max_entry_bytes"] = args.max_entry_bytes
    config = Config(**kw)
    config.validate()
    return config


def _serve(args: argparse.Namespace) -> int:
    from .kv import KvNodeOptions, serve_kv_node
    from .network.tcp import client_ssl_context, server_ssl_context

    if args.metrics_listen:
        from ._prometheus import require_prometheus_client

        try:
            require_prometheus_client()
        except ImportError as e:
            return _fail(EXIT_USAGE, f"--metrics-listen: {e}")
    _configure_logging(args.log_level.upper(), args.log_format)
    if args.mem == bool(args.data_dir):
        return _fail(EXIT_USAGE, "give exactly one of --data-dir DIR and --mem")
    try:
        config = _serve_config(args)
        tls = _tls_files(args)
    except (ConfigError, ValueError) as e:
        return _fail(EXIT_USAGE, str(e))
    options = KvNodeOptions(
        node_id=args.id,
        listen=args.listen,
        data_dir=args.data_dir,
        peers=args.peers,
        advertise=args.advertise or (args.peers.get(args.id) if args.peers else None),
        config=config,
        server_ssl=server_ssl_context(*tls) if tls else None,
        client_ssl=client_ssl_context(*tls) if tls else None,
        bench_op=args.bench_op,
        metrics_listen=args.metrics_listen,
    )

    async def main() -> None:
        # A node allocates many small, mostly acyclic objects (entries, log ids): fewer
        # young-generation collections and no rescans of the startup heap cut CPU and tail
        # latency (measured with bench_tcp: about +8% writes/s, -15% p99 at 64 in flight).
        gc.freeze()
        gc.set_threshold(20_000, 50, 1000)
        async with trio.open_nursery() as nursery:
            node = await nursery.start(serve_kv_node, options)
            print(
                f"node {args.id} of cluster {config.cluster_name!r} serving on "
                f"{node.server.addr} (data: {args.data_dir or 'in memory'})"
                + (f", metrics on http://{node.metrics_addr}/metrics" if node.metrics_addr else ""),
                flush=True,
            )
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    except (RaftError, OSError) as e:  # DataDirError, StorageError (e.g. locked), bind
        return _fail(EXIT_START, f"cannot start node {args.id}: {e}")
    except BaseExceptionGroup as group:
        leaf = _first(group)
        if not isinstance(leaf, RaftError | OSError):
            raise
        return _fail(EXIT_START, f"cannot start node {args.id}: {leaf}")
    return 0


def _configure_logging(level: str, log_format: str) -> None:
    """Log to stderr at ``level``: text lines, or (``json``) one JSON object per line."""
    handler = logging.StreamHandler()
    if log_format == "json":
        from ._events import JsonLogFormatter

        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


# -- client commands -----------------------------------------------------------------------------


def _run_client(args: argparse.Namespace, fn: Callable[[Any], Awaitable[Any]]) -> int:
    from .kv import AmbiguousOutcome, open_kv_client
    from .network.tcp import client_ssl_context

    logging.basicConfig(level=logging.ERROR)  # failures are reported once, below
    try:
        tls = _tls_files(args)
    except ConfigError as e:
        return _fail(EXIT_USAGE, str(e))

    async def main() -> int:
        async with open_kv_client(
            args.cluster,
            cluster_name=args.cluster_name,
            ssl_context=client_ssl_context(*tls) if tls else None,
            timeout=args.timeout,
            rpc_timeout=min(3.0, args.timeout),
        ) as client:
            status: int = await fn(client)
            return status

    try:
        return trio.run(main)
    except AmbiguousOutcome as e:
        return _fail(EXIT_AMBIGUOUS, f"{e}; check with `get` before retrying")
    except PayloadTooLarge as e:
        return _fail(EXIT_USAGE, f"value too large: {e}; nothing was written")
    except ConfigError as e:
        return _fail(EXIT_USAGE, str(e))
    except Unreachable as e:
        return _fail(EXIT_UNREACHABLE, f"cannot reach the cluster at {','.join(args.cluster)}: {e}")
    except RaftError as e:
        return _fail(EXIT_FAILED, str(e))


def _print(args: argparse.Namespace, value: Any, text: str | None = None) -> None:
    if args.json or text is None:
        print(json.dumps(value, sort_keys=True, default=repr))
    else:
        print(text)


def _value(args: argparse.Namespace, text: str) -> Any:
    if not args.json_values:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError("value", f"not JSON: {e}") from None


def _add_data_commands(commands: Commands) -> None:
    def values(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--json-values", action="store_true", help="parse values as JSON (default: strings)"
        )

    p = commands.add_parser("put", help="set a key")
    p.add_argument("key")
    p.add_argument("value")
    values(p)
    _add_client_options(p)

    async def put(args: argparse.Namespace, client: Any) -> int:
        prev = await client.put(args.key, _value(args, args.value))
        _print(args, {"prev": prev}, "OK")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: put(a, c)))

    p = commands.add_parser("get", help="read a key (linearizable unless --stale)")
    p.add_argument("key")
    p.add_argument("--stale", action="store_true", help="read one node's copy as it is")
    p.add_argument(
        "--lease",
        action="store_true",
        help="a linearizable read confirmed by the leader's lease (LEASE_READ), not a quorum round",
    )
    _add_client_options(p)

    async def get(args: argparse.Namespace, client: Any) -> int:
        policy = ReadPolicy.LEASE_READ if args.lease else ReadPolicy.READ_INDEX
        value = await client.get(args.key, stale=args.stale, policy=policy)
        _print(args, value, "(absent)" if value is None else str(value))
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: get(a, c)))

    p = commands.add_parser("delete", help="remove a key")
    p.add_argument("key")
    _add_client_options(p)

    async def delete(args: argparse.Namespace, client: Any) -> int:
        prev = await client.delete(args.key)
        _print(args, {"prev": prev}, "OK")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: delete(a, c)))

    p = commands.add_parser(
        "cas", help="compare-and-swap: set KEY to NEW if it equals EXPECTED (exit 1 if not)"
    )
    p.add_argument("key")
    p.add_argument("expected", help="the expected value ('null' with --json-values: absent)")
    p.add_argument("new")
    values(p)
    _add_client_options(p)

    async def cas(args: argparse.Namespace, client: Any) -> int:
        swapped, value = await client.cas(
            args.key, _value(args, args.expected), _value(args, args.new)
        )
        _print(
            args,
            {"swapped": swapped, "value": value},
            "swapped" if swapped else f"not swapped: the value is {value!r}",
        )
        return 0 if swapped else EXIT_FAILED

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: cas(a, c)))


def _add_admin_commands(commands: Commands) -> None:
    p = commands.add_parser("init", help="initialize a new cluster (once, on one node)")
    p.add_argument("--members", type=_peers, help="ID=HOST:PORT,... (default: the node's --peers)")
    _add_client_options(p)

    async def init(args: argparse.Namespace, client: Any) -> int:
        await client.init(args.members)
        _print(args, None, "initialized")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: init(a, c)))

    p = commands.add_parser("add-learner", help="add a node that replicates but does not vote")
    p.add_argument("id", type=_node_id)
    p.add_argument("addr", type=_addr)
    p.add_argument("--no-wait", action="store_true", help="do not wait for it to catch up")
    _add_client_options(p)

    async def add_learner(args: argparse.Namespace, client: Any) -> int:
        index = await client.add_learner(args.id, args.addr, blocking=not args.no_wait)
        _print(args, {"index": index}, f"node {args.id} added as a learner (log index {index})")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: add_learner(a, c)))

    p = commands.add_parser("change-membership", help="set the voters (joint consensus)")
    p.add_argument("voters", type=_id_list, help="node ids, e.g. 1,2,3")
    p.add_argument("--retain", action="store_true", help="keep removed voters as learners")
    _add_client_options(p)

    async def change(args: argparse.Namespace, client: Any) -> int:
        index = await client.change_membership(args.voters, retain=args.retain)
        _print(args, {"index": index}, f"voters are now {args.voters} (log index {index})")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: change(a, c)))

    p = commands.add_parser("transfer-leader", help="hand leadership to another voter")
    p.add_argument("id", type=_node_id)
    _add_client_options(p)

    async def transfer(args: argparse.Namespace, client: Any) -> int:
        await client.transfer_leader(args.id)
        with trio.move_on_after(args.timeout):
            while True:
                if (await client.status(client.leader_addr)).get("leader") == args.id:
                    break
                await trio.sleep(0.05)
            _print(args, {"leader": args.id}, f"node {args.id} leads")
            return 0
        return _fail(EXIT_FAILED, f"node {args.id} did not take over within {args.timeout}s")

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: transfer(a, c)))

    p = commands.add_parser("status", help="a table of every node: role, term, log, lag")
    _add_client_options(p)

    async def status(args: argparse.Namespace, client: Any) -> int:
        from .kv._status import format_status_table

        statuses = await client.cluster_status()
        _print(args, statuses, format_status_table(statuses))
        if all("error" in s for s in statuses):
            raise Unreachable("no node answered")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: status(a, c)))


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def add_commands(commands: Commands) -> None:
    """Register ``serve`` and the client/admin commands on the top-level parser."""
    _add_serve(commands)
    _add_data_commands(commands)
    _add_admin_commands(commands)
