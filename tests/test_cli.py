"""The command line's option parsing (the commands themselves run in tests/multiprocess)."""

from __future__ import annotations

import sys

from openraft_trio.__main__ import build_parser
from openraft_trio._cli import _serve_config

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


def test_serve_object_errors_are_usage_errors(capsys) -> None:
    from openraft_trio.__main__ import main

    assert main([*SERVE, "--object", "tests.objects._objects"]) == 2
    assert "--object takes module:Class" in capsys.readouterr().err
    assert main([*SERVE, "--object", "no_such_module_here:X"]) == 2
    assert "cannot import 'no_such_module_here'" in capsys.readouterr().err
    assert main([*SERVE, "--object", "tests.objects._objects:Log"]) == 2
    assert "is not a ReplicatedObject subclass" in capsys.readouterr().err
