"""openraft_trio.testing.deterministic: the one user of trio's private scheduler API refuses
a trio release it does not know, with a message that says what to do."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from openraft_trio.testing.deterministic import (
    TESTED_TRIO_VERSIONS,
    UntestedTrioWarning,
    run_deterministic,
)

ALLOW_UNTESTED_TRIO_VARIABLE = "OPENRAFT_TRIO_ALLOW_UNTESTED_TRIO"


async def _sleep_and_report() -> float:
    await trio.sleep(1)
    return trio.current_time()


def _run() -> float:
    return run_deterministic(
        _sleep_and_report, seed=1, clock=trio.testing.MockClock(autojump_threshold=0)
    )


def test_the_installed_trio_is_known() -> None:
    assert trio.__version__.startswith(TESTED_TRIO_VERSIONS)
    assert TESTED_TRIO_VERSIONS[0] == "0.25."
    assert TESTED_TRIO_VERSIONS[-1] == "0.35."


def test_an_unknown_trio_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trio, "__version__", "0.99.0")
    monkeypatch.delenv(ALLOW_UNTESTED_TRIO_VARIABLE, raising=False)
    with pytest.raises(RuntimeError) as error:
        _run()
    message = str(error.value)
    assert "not in trio 0.99.0" in message
    assert "trio 0.25.x to 0.35.x" in message
    assert f"{ALLOW_UNTESTED_TRIO_VARIABLE}=1" in message
    assert "The rest of openraft_trio works with this trio." in message


def test_an_unknown_trio_runs_with_a_warning_when_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trio, "__version__", "0.99.0")
    monkeypatch.setenv(ALLOW_UNTESTED_TRIO_VARIABLE, "1")
    with pytest.warns(UntestedTrioWarning, match="not 0.99.0"):
        assert _run() == pytest.approx(_run_known_time())


def _run_known_time() -> float:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trio, "__version__", "0.35.0")
        return _run()
