"""The command line's option parsing (the commands themselves run in tests/multiprocess)."""

from __future__ import annotations

import sys

import pytest
import trio

from openraft_trio.__main__ import build_parser
from openraft_trio._cli import _serve_config, watch_command
from openraft_trio.kv import ChangeKind, WatchEvent

SERVE = ["serve", "--id", "1", "--listen", "127.0.0.1:7001", "--mem"]


def test_serve_allow_log_reversion_sets_the_config() -> None:
    assert not _serve_config(build_parser().parse_args(SERVE)).allow_log_reversion
    args = build_parser().parse_args([*SERVE, "--allow-log-reversion"])
    assert _serve_config(args).allow_log_reversion


def test_serve_metrics_listen_without_prometheus_client_is_a_clear_usage_error(
    monkeypatch, capsys
) -> None:
    from openraft_trio.__main__ import main

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    assert main([*SERVE, "--metrics-listen", "127.0.0.1:9100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: --metrics-listen: ")
    assert "pip install 'openraft_trio[prometheus]'" in err


def test_serve_log_format_is_text_or_json() -> None:
    assert build_parser().parse_args(SERVE).log_format == "text"
    assert build_parser().parse_args([*SERVE, "--log-format", "json"]).log_format == "json"


def test_ctrl_c_anywhere_in_a_command_is_one_error_line_and_exit_130(
    monkeypatch, capsys
) -> None:
    import openraft_trio.__main__ as entry

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(entry, "_run_demo", interrupted)
    assert entry.main(["demo"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_usage_names_the_command_as_it_was_started() -> None:
    from openraft_trio.__main__ import invoked_as

    assert invoked_as("/venv/bin/openraft-trio") == "openraft-trio"
    assert invoked_as("/x/openraft_trio/__main__.py") == "python -m openraft_trio"
    assert build_parser(invoked_as("openraft-trio")).format_usage().startswith(
        "usage: openraft-trio "
    )
    assert build_parser().format_usage().startswith("usage: python -m openraft_trio ")


def test_serve_session_timeout_is_positive_seconds(capsys) -> None:
    import pytest

    assert build_parser().parse_args(SERVE).session_timeout == 60.0
    assert build_parser().parse_args([*SERVE, "--session-timeout", "5"]).session_timeout == 5.0
    for bad in ("0", "-1", "nan", "soon"):
        with pytest.raises(SystemExit) as caught:
            build_parser().parse_args([*SERVE, "--session-timeout", bad])
        assert caught.value.code == 2
    assert "--session-timeout" in capsys.readouterr().err


def test_watch_options() -> None:
    args = build_parser().parse_args(["watch", "user:", "--from", "5", "--count", "2", "--json"])
    assert (args.prefix, args.from_index, args.count, args.json) == ("user:", 5, 2, True)
    args = build_parser().parse_args(["watch", ""])
    assert (args.prefix, args.from_index, args.count) == ("", None, None)
    assert build_parser().parse_args([*SERVE, "--watch-history", "0"]).watch_history == 0


def test_watch_refuses_a_negative_start_or_count(capsys) -> None:
    for bad in (["--from", "-1"], ["--count", "0"], ["--from", "x"]):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(["watch", "p", *bad])
        assert info.value.code == 2
    assert "--from is >= 0, got -1" in capsys.readouterr().err


def test_watch_prints_one_line_per_change_until_count(capsys) -> None:
    events = [
        WatchEvent(3, "user:1", ChangeKind.PUT, "Ada"),
        WatchEvent(4, "user:1", ChangeKind.DELETE),
        WatchEvent(5, "user:2", ChangeKind.PUT, {"b": b"\x00"}),
        WatchEvent(6, "user:3", ChangeKind.PUT, 1),
    ]
    calls: list[tuple[str, int | None]] = []

    class FakeClient:
        def watch(self, prefix: str, *, from_index: int | None) -> object:
            calls.append((prefix, from_index))

            async def stream():  # type: ignore[no-untyped-def]
                for event in events:
                    yield event

            return stream()

    args = build_parser().parse_args(["watch", "user:", "--from", "3", "--count", "3"])
    assert trio.run(watch_command, args, FakeClient()) == 0
    assert calls == [("user:", 3)]
    assert capsys.readouterr().out.splitlines() == [
        "3 put user:1 Ada",
        "4 delete user:1",
        "5 put user:2 {'b': b'\\x00'}",
    ]
    args = build_parser().parse_args(["watch", "user:", "--count", "2", "--json"])
    assert trio.run(watch_command, args, FakeClient()) == 0
    assert capsys.readouterr().out.splitlines() == [
        '{"index": 3, "key": "user:1", "kind": "put", "value": "Ada"}',
        '{"index": 4, "key": "user:1", "kind": "delete", "value": null}',
    ]


def test_serve_object_errors_are_usage_errors(capsys) -> None:
    from openraft_trio.__main__ import main

    assert main([*SERVE, "--object", "tests.objects._objects"]) == 2
    assert "--object takes module:Class" in capsys.readouterr().err
    assert main([*SERVE, "--object", "no_such_module_here:X"]) == 2
    assert "cannot import 'no_such_module_here'" in capsys.readouterr().err
    assert main([*SERVE, "--object", "tests.objects._objects:Log"]) == 2
    assert "is not a ReplicatedObject subclass" in capsys.readouterr().err
