"""Shared pytest configuration. trio_mode is on (pyproject.toml), so async tests just work."""

from __future__ import annotations

import pytest
from hypothesis import settings

# No per-example deadline: hypothesis's default (200 ms) is a timing assertion, and a test
# that passes on an idle machine would fail as "flaky" on a loaded one.
settings.register_profile("openraft_trio", deadline=None)
settings.load_profile("openraft_trio")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a long-running test (deselect with -m 'not slow')")
