"""The KV service's commands: ``serve`` a node, and the client/admin commands.

Exit status: 0 success; 1 the operation failed (refused, or ``cas`` did not swap); 2 bad
arguments (a value over the cluster's size limit, :class:`~openraft_trio.PayloadTooLarge`,
too: nothing was written, and retrying cannot help); 3 the cluster (or a leader) could not
be reached (a write was not applied); 4 the outcome of a write is unknown
(:class:`~openraft_trio.kv.AmbiguousOutcome`); 5 the node could not start (its data
directory belongs to another node or is in use, or the address is taken); 130 interrupted
(Ctrl-C); 141 the standard output was closed (``... | head``). Every failure prints one
``error: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import trio

from ._config import Config
from ._errors import ConfigError, PayloadTooLarge, RaftError, Unreachable
from ._nursery import leaves
from ._types import ReadPolicy

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AMBIGUOUS = 4
EXIT_START = 5
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C stopped
EXIT_STDOUT_CLOSED = 141  # 128 + SIGPIPE, as a shell reports ``cat big | head``

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


def _text(text: str) -> str:
    """A key or value from the command line: valid UTF-8 (the OS hands Python the bytes
    of an argument that is not as surrogate escapes, which cannot be stored or sent)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise argparse.ArgumentTypeError(f"not valid UTF-8: {shown}") from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"a timeout is a number of seconds > 0, got {text!r}")
    return value


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in logging.getLevelNamesMapping() or level == "NOTSET":
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r}; expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return level


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
        "--timeout", type=_seconds, default=10.0, help="give up after this many seconds (10)"
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
    p.add_argument(
        "--log-level",
        type=_log_level,
        default="WARNING",
        help="DEBUG, INFO, WARNING (default), ERROR or CRITICAL",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines (default) or one JSON object per line (docs/observability.md)",
    )
    p.add_argument(
        "--session-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="client sessions unused this long (in leader-stamped log time) expire "
        "(default 60; the same on every node)",
    )
    p.add_argument(
        "--watch-history",
        type=lambda text: int_arg(text, 0, "--watch-history"),
        help="changes kept in memory for `watch` (4096); an older start is refused "
        "(WatchCompacted)",
    )
    p.add_argument(
        "--metrics-listen",
        type=_addr,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (needs the prometheus "
        "extra)",
    )
    p.add_argument(
        "--object",
        metavar="MODULE:NAME",
        help="serve this replicated object (openraft_trio.objects) instead of the key-value "
        "store: a ReplicatedObject class, or an instance of one as the initial state "
        "(docs/replicated-objects.md)",
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
    if args.object is not None:
        from .objects import load_object_class

        try:
            load_object_class(args.object)
        except ValueError as e:
            return _fail(EXIT_USAGE, str(e))
    if args.peers and args.id not in args.peers:
        return _fail(
            EXIT_USAGE,
            f"--peers lists the initial members, this node included: add {args.id}=HOST:PORT",
        )
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
        session_timeout=args.session_timeout,
        object_spec=args.object,
    )
    if args.watch_history is not None:
        options.watch_history = args.watch_history

    async def main() -> None:
        # A node allocates many small, mostly acyclic objects (entries, log ids): fewer
        # young-generation collections and no rescans of the startup heap cut CPU and tail
        # latency (measured with bench_tcp: about +8% writes/s, -15% p99 at 64 in flight).
        gc.freeze()
        gc.set_threshold(20_000, 50, 1000)
        # Signals are caught from before the node starts: a stop that arrives while it
        # starts (or right after the line below) still shuts it down cleanly.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                node = await nursery.start(serve_kv_node, options)
                _write_stdout(
                    f"node {args.id} of cluster {config.cluster_name!r} serving on "
                    f"{node.server.addr} (data: {args.data_dir or 'in memory'})"
                    + (f", metrics on http://{node.metrics_addr}/metrics" if node.metrics_addr else "")
                )
                async for signum in signals:
                    # The node shuts down cleanly either way: SIGTERM is the usual stop
                    # (exit 0), Ctrl-C reports the interruption as a shell expects (130).
                    stopped_by.append(signum)
                    nursery.cancel_scope.cancel()
                    break

    stopped_by: list[int] = []
    try:
        trio.run(main)
    except (RaftError, OSError) as e:  # DataDirError, StorageError (e.g. locked), bind
        return _fail(EXIT_START, f"cannot start node {args.id}: {e}")
    except KeyboardInterrupt:  # Ctrl-C before the node was up: it cleaned up on the way out
        return _fail(EXIT_INTERRUPTED, f"interrupted; node {args.id} stopped")
    except BaseExceptionGroup as group:
        if group.subgroup(KeyboardInterrupt) is not None:
            return _fail(EXIT_INTERRUPTED, f"interrupted; node {args.id} stopped")
        leaf = leaves(group)[0]
        if not isinstance(leaf, RaftError | OSError):
            raise
        return _fail(EXIT_START, f"cannot start node {args.id}: {leaf}")
    return EXIT_INTERRUPTED if stopped_by == [signal.SIGINT] else 0


def _configure_logging(level: str, log_format: str) -> None:
    """Log to stderr at ``level``: text lines, or (``json``) one JSON object per line."""
    handler = logging.StreamHandler()
    if log_format == "json":
        from ._events import JsonLogFormatter

        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


# -- client commands -----------------------------------------------------------------------------


def _run_client(args: argparse.Namespace, fn: Callable[[Any], Awaitable[Any]]) -> int:
    from .kv import AmbiguousOutcome, NoLeader, open_kv_client
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

    writes = getattr(args, "writes", False)
    prepare = getattr(args, "prepare", None)
    try:
        if prepare is not None:
            prepare(args)  # read values from files or stdin, before anything is sent
    except UsageError as e:
        return _fail(EXIT_USAGE, str(e))
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted; nothing was sent")
    try:
        status = _run_unwrapped(main)
    except KeyboardInterrupt:
        if writes:
            return _fail(EXIT_INTERRUPTED, "interrupted; the change may or may not have been made")
        return _fail(EXIT_INTERRUPTED, "interrupted")
    except AmbiguousOutcome as e:
        return _fail(EXIT_AMBIGUOUS, f"{e}; check with `get` before retrying")
    except PayloadTooLarge as e:
        return _fail(EXIT_USAGE, f"value too large: {e}; nothing was written")
    except ConfigError as e:
        return _fail(EXIT_USAGE, str(e))
    except Unreachable as e:
        # A write is retried only while it provably was not applied (KvClient): when the
        # retries run out (NoLeader), nothing was written.
        unapplied = "; nothing was written" if writes and isinstance(e, NoLeader) else ""
        return _fail(
            EXIT_UNREACHABLE,
            f"cannot reach the cluster at {','.join(args.cluster)}: {e}{unapplied}",
        )
    except RaftError as e:
        return _fail(EXIT_FAILED, str(e))
    except OSError as e:  # a file named on the command line (snapshot save/restore)
        return _fail(EXIT_FAILED, str(e))
    return EXIT_STDOUT_CLOSED if _stdout_closed else status


def _run_unwrapped(main: Callable[[], Awaitable[int]]) -> int:
    """``trio.run(main)``, raising a failure that trio's internals wrapped in a group as
    itself: Ctrl-C lands in whatever task is running, e.g. inside ``open_tcp_stream``'s
    nursery, and comes out as a ``KeyboardInterrupt`` inside a group."""
    try:
        return trio.run(main)
    except BaseExceptionGroup as group:
        if group.subgroup(KeyboardInterrupt) is not None:
            raise KeyboardInterrupt from group
        found = leaves(group)
        if len(found) == 1 and isinstance(found[0], Exception):
            raise found[0] from group
        raise


_stdout_closed = False


def _write_stdout(text: str) -> None:
    """Print ``text``; if the reader of our stdout went away (``... | head``), stop writing
    and exit 141 at the end instead of a BrokenPipeError traceback. As the Python docs
    advise (signal module, "Note on SIGPIPE"), stdout is pointed at devnull so the flush at
    exit does not fail again."""
    global _stdout_closed
    if _stdout_closed:
        return
    try:
        print(text, flush=True)
    except BrokenPipeError:
        stdout_gone()


def stdout_gone() -> int:
    """The reader of our stdout went away: point stdout at devnull (so the flush at exit
    does not fail again) and return the exit status to report, 141."""
    global _stdout_closed
    _stdout_closed = True
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_STDOUT_CLOSED


def _print(args: argparse.Namespace, value: Any, text: str | None = None) -> None:
    if args.json or text is None:
        _write_stdout(json.dumps(value, sort_keys=True, default=repr))
    else:
        _write_stdout(text)


class UsageError(Exception):
    """A bad command line found after parsing (exit 2, the message on stderr)."""


def _value(args: argparse.Namespace, text: str) -> Any:
    if not args.json_values:
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError("value", f"not JSON: {e}") from None


def _read_value(
    what: str, positional: str | None, literal: str | None, path: str | None, file_option: str
) -> str:
    """The text of a value given as an argument (``-``: read standard input), with
    ``--value TEXT`` (taken as it is, ``-`` included) or with ``--value-file FILE``:
    exactly one of them. Files and stdin are read as they are (a trailing newline is
    kept) and must be UTF-8 text."""
    given = [x for x in (positional, literal, path) if x is not None]
    if len(given) != 1:
        raise UsageError(
            f"give {what} exactly once: as an argument ('-' reads standard input) or with "
            f"{file_option} FILE"
        )
    if literal is not None:
        return literal
    if positional is not None and positional != "-":
        return positional
    try:
        if path is not None:
            with open(path, "rb") as f:
                raw = f.read()
            source = path
        else:
            raw = sys.stdin.buffer.read()
            source = "standard input"
    except OSError as e:
        raise UsageError(f"cannot read {what}: {e}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{what} from {source} is not UTF-8 text: {e}") from None


def _add_data_commands(commands: Commands) -> None:
    def values(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--json-values", action="store_true", help="parse values as JSON (default: strings)"
        )

    p = commands.add_parser(
        "put",
        help="set a key",
        description="Set KEY to VALUE. VALUE '-' reads it from standard input; --value-file "
        "FILE reads it from a file (any size up to the cluster's limit); --value TEXT takes "
        "TEXT as it is (e.g. --value - stores a dash).",
    )
    p.add_argument("key", type=_text)
    p.add_argument("value", type=_text, nargs="?", help="the value; '-' reads standard input")
    p.add_argument(
        "--value", dest="literal_value", type=_text, metavar="TEXT", help="the value, as it is"
    )
    p.add_argument("--value-file", metavar="FILE", help="read the value from FILE")
    values(p)
    _add_client_options(p)

    def read_put_value(args: argparse.Namespace) -> None:
        args.value = _read_value(
            "the value", args.value, args.literal_value, args.value_file, "--value-file"
        )

    async def put(args: argparse.Namespace, client: Any) -> int:
        prev = await client.put(args.key, _value(args, args.value))
        _print(args, {"prev": prev}, "OK")
        return 0

    p.set_defaults(
        handler=lambda a: _run_client(a, lambda c: put(a, c)), prepare=read_put_value, writes=True
    )

    p = commands.add_parser("get", help="read a key (linearizable unless --stale)")
    p.add_argument("key", type=_text)
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
    p.add_argument("key", type=_text)
    _add_client_options(p)

    async def delete(args: argparse.Namespace, client: Any) -> int:
        prev = await client.delete(args.key)
        _print(args, {"prev": prev}, "OK")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: delete(a, c)), writes=True)

    p = commands.add_parser(
        "incr",
        help="add DELTA (default 1) to the integer under KEY, exactly once (exit 1 if the "
        "value is not an integer)",
    )
    p.add_argument("key", type=_text)
    p.add_argument("delta", type=int, nargs="?", default=1)
    _add_client_options(p)

    async def incr(args: argparse.Namespace, client: Any) -> int:
        value = await client.incr(args.key, args.delta)
        text = str(value) if value is not None else "not an integer: nothing changed"
        _print(args, {"value": value}, text)
        return 0 if value is not None else EXIT_FAILED

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: incr(a, c)), writes=True)

    p = commands.add_parser(
        "cas", help="compare-and-swap: set KEY to NEW if it equals EXPECTED (exit 1 if not)"
    )
    p.add_argument("key", type=_text)
    p.add_argument(
        "expected", type=_text, help="the expected value ('null' with --json-values: absent)"
    )
    p.add_argument("new", type=_text, nargs="?", help="the new value; '-' reads standard input")
    p.add_argument("--new-file", metavar="FILE", help="read the new value from FILE")
    values(p)
    _add_client_options(p)

    def read_new_value(args: argparse.Namespace) -> None:
        args.new = _read_value("the new value", args.new, None, args.new_file, "--new-file")

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

    p.set_defaults(
        handler=lambda a: _run_client(a, lambda c: cas(a, c)), prepare=read_new_value, writes=True
    )


def _add_watch_command(commands: Commands) -> None:
    p = commands.add_parser(
        "watch",
        help="print every change to keys starting with PREFIX, as it happens",
        description="Print one line per change (put, successful cas, delete) to a key "
        "starting with PREFIX ('' for every key), in log order: INDEX put KEY VALUE or "
        "INDEX delete KEY (--json: one JSON object per line). Follows the leader; runs "
        "until Ctrl-C (exit 130) or --count changes. To resume, give --from the last "
        "INDEX printed + 1.",
    )
    p.add_argument("prefix", type=_text, metavar="PREFIX")
    p.add_argument(
        "--from",
        dest="from_index",
        type=lambda text: int_arg(text, 0, "--from"),
        metavar="INDEX",
        help="start at this log index (default: the changes after this moment); an index "
        "the leader no longer holds exits 1 naming the oldest one it has",
    )
    p.add_argument(
        "--count",
        type=lambda text: int_arg(text, 1, "--count"),
        metavar="N",
        help="exit (0) after N changes",
    )
    _add_client_options(p)
    p.set_defaults(handler=lambda a: _run_client(a, lambda c: watch_command(a, c)))


async def watch_command(args: argparse.Namespace, client: Any) -> int:
    """The ``watch`` command: print each change of ``client.watch(args.prefix, ...)``
    until ``args.count`` of them (forever without), or until stdout is closed."""
    printed = 0
    async for event in client.watch(args.prefix, from_index=args.from_index):
        kind = event.kind.value
        record = {"index": event.index, "kind": kind, "key": event.key, "value": event.value}
        text = f"{event.index} {kind} {event.key}"
        _print(args, record, text if event.kind.value == "delete" else f"{text} {event.value}")
        printed += 1
        if _stdout_closed or printed == args.count:
            break
    return 0


def _add_admin_commands(commands: Commands) -> None:
    p = commands.add_parser("init", help="initialize a new cluster (once, on one node)")
    p.add_argument("--members", type=_peers, help="ID=HOST:PORT,... (default: the node's --peers)")
    _add_client_options(p)

    async def init(args: argparse.Namespace, client: Any) -> int:
        await client.init(args.members)
        _print(args, None, "initialized")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: init(a, c)), writes=True)

    p = commands.add_parser("add-learner", help="add a node that replicates but does not vote")
    p.add_argument("id", type=_node_id)
    p.add_argument("addr", type=_addr)
    p.add_argument("--no-wait", action="store_true", help="do not wait for it to catch up")
    _add_client_options(p)

    async def add_learner(args: argparse.Namespace, client: Any) -> int:
        index = await client.add_learner(args.id, args.addr, blocking=not args.no_wait)
        _print(args, {"index": index}, f"node {args.id} added as a learner (log index {index})")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: add_learner(a, c)), writes=True)

    p = commands.add_parser("change-membership", help="set the voters (joint consensus)")
    p.add_argument("voters", type=_id_list, help="node ids, e.g. 1,2,3")
    p.add_argument("--retain", action="store_true", help="keep removed voters as learners")
    _add_client_options(p)

    async def change(args: argparse.Namespace, client: Any) -> int:
        index = await client.change_membership(args.voters, retain=args.retain)
        _print(args, {"index": index}, f"voters are now {args.voters} (log index {index})")
        return 0

    p.set_defaults(handler=lambda a: _run_client(a, lambda c: change(a, c)), writes=True)

    p = commands.add_parser(
        "remove-learner",
        help="remove a learner from the membership (voters: change-membership)",
    )
    p.add_argument("id", type=_node_id)
    _add_client_options(p)

    async def remove_learner(args: argparse.Namespace, client: Any) -> int:
        index = await client.remove_learner(args.id)
        _print(args, {"index": index}, f"learner {args.id} removed (log index {index})")
        return 0

    p.set_defaults(
        handler=lambda a: _run_client(a, lambda c: remove_learner(a, c)), writes=True
    )

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


def _add_snapshot_commands(commands: Commands) -> None:
    p = commands.add_parser(
        "snapshot",
        help="save a backup of a live cluster, or restore one into a new cluster",
        description="`snapshot save FILE` and `snapshot restore FILE` (docs/operations.md).",
    )
    actions = p.add_subparsers(title="actions", metavar="ACTION", required=True)

    save = actions.add_parser(
        "save",
        help="write the leader's snapshot of every acknowledged write to FILE",
        description="Ask the leader for a snapshot that holds every write acknowledged "
        "before this command started (it builds one if its latest is older), check it, and "
        "write it to FILE atomically.",
    )
    save.add_argument("file", metavar="FILE")
    _add_client_options(save)

    async def save_snapshot(args: argparse.Namespace, client: Any) -> int:
        from .kv._backup import save_backup

        backup, file_sha256 = await save_backup(client, args.file)
        _print(
            args,
            {
                "file": args.file,
                "cluster_name": backup.cluster_name,
                "node_id": backup.node_id,
                "term": backup.term,
                "index": backup.index,
                "keys": len(backup.data),
                "sha256": file_sha256,
            },
            f"saved {len(backup.data)} keys of cluster {backup.cluster_name!r} at log index "
            f"{backup.index} (from node {backup.node_id}) to {args.file}; sha256 {file_sha256}",
        )
        return 0

    save.set_defaults(handler=lambda a: _run_client(a, lambda c: save_snapshot(a, c)))

    restore = actions.add_parser(
        "restore",
        help="seed a new, empty cluster with the keys of a snapshot FILE",
        description="Check FILE, then write every key it holds through the leader of the "
        "cluster at --cluster, which must be a new cluster: initialized, empty, and with "
        "another --cluster-name than the cluster FILE was saved from.",
    )
    restore.add_argument("file", metavar="FILE")
    _add_client_options(restore)

    async def restore_snapshot(args: argparse.Namespace, client: Any) -> int:
        from .kv._backup import read_backup, restore_backup

        backup = await read_backup(args.file)
        count = await restore_backup(client, backup)
        _print(
            args,
            {"keys": count, "from_cluster": backup.cluster_name, "index": backup.index},
            f"restored {count} keys (cluster {backup.cluster_name!r} at log index "
            f"{backup.index}) into cluster {args.cluster_name!r}",
        )
        return 0

    restore.set_defaults(
        handler=lambda a: _run_client(a, lambda c: restore_snapshot(a, c)), writes=True
    )


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def add_commands(commands: Commands) -> None:
    """Register ``serve`` and the client/admin commands on the top-level parser."""
    _add_serve(commands)
    _add_data_commands(commands)
    _add_watch_command(commands)
    _add_admin_commands(commands)
    _add_snapshot_commands(commands)
