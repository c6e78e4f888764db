"""The command line's option parsing (the commands themselves run in tests/multiprocess)."""

from __future__ import annotations

from openraft_trio.__main__ import build_parser
from openraft_trio._cli import _serve_config

SERVE = ["serve", "--id", "1", "--listen", "127.0.0.1:7001", "--mem"]


def test_serve_allow_log_reversion_sets_the_config() -> None:
    assert not _serve_config(build_parser().parse_args(SERVE)).allow_log_reversion
    args = build_parser().parse_args([*SERVE, "--allow-log-reversion"])
    assert _serve_config(args).allow_log_reversion
