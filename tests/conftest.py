"""Shared pytest configuration. trio_mode is on (pyproject.toml), so async tests just work."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a long-running test (deselect with -m 'not slow')")
