"""Raft configuration. Times are seconds as floats, like trio."""

from __future__ import annotations

import math
from typing import final

import attrs

from ._errors import ConfigError, short_repr


@final
@attrs.frozen
class SnapshotPolicy:
    """When the state machine worker builds a snapshot: once at least

        ``max(logs_since_last, last_snapshot_bytes // snapshot_bytes_per_log)``

    entries were applied since the last snapshot (built or installed here), where
    ``last_snapshot_bytes`` is the size of that snapshot's ``data``.

    A snapshot costs time in proportion to the whole state (serializing, writing and
    fsyncing it), so a fixed ``logs_since_last`` alone makes the snapshot cost of each write
    grow with the state: at a million keys every write would pay for serializing 200 keys.
    The second term keeps that bounded: every applied entry pays for at most
    ``snapshot_bytes_per_log`` bytes of snapshot, whatever the state's size, and the log
    kept between snapshots stays proportional to the state (about one entry per
    ``snapshot_bytes_per_log`` bytes of snapshot). ``snapshot_bytes_per_log=None`` turns the
    second term off (a snapshot every ``logs_since_last`` entries); so does giving
    ``Config(snapshot_policy=N)`` an ``int``.

    The default, 64 bytes, costs each write about a microsecond of serializing per
    node (``cbor2`` writes a KV snapshot at ~13 ns a byte) and keeps about one log entry per
    5 stored keys of small values; a smaller value keeps more log between snapshots, and
    CPython's collector walks every log entry object that is kept
    (``benchmarks/bench_sustained.py`` measures both).

    Args:
        logs_since_last: the fewest applied entries between two snapshots (>= 1).
        snapshot_bytes_per_log: how many bytes of snapshot each applied entry pays for
            (>= 1), or ``None``.
    """

    logs_since_last: int = 5000
    snapshot_bytes_per_log: int | None = 64

    def logs_between(self, last_snapshot_bytes: int) -> int:
        """How many applied entries the next snapshot waits for, after a snapshot of
        ``last_snapshot_bytes`` bytes (0 when there is none, or its size is unknown)."""
        per_log = self.snapshot_bytes_per_log
        if per_log is None:
            return self.logs_since_last
        return max(self.logs_since_last, last_snapshot_bytes // per_log)


def _policy(value: object) -> SnapshotPolicy:
    if isinstance(value, SnapshotPolicy):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # An int keeps its meaning: a snapshot every ``value`` applied entries.
        return SnapshotPolicy(value, snapshot_bytes_per_log=None)
    raise ConfigError("snapshot_policy", f"expected SnapshotPolicy or int, got {short_repr(value)}")


@final
@attrs.frozen(kw_only=True)
class Config:
    """Tunables of one Raft node; ``validate()`` checks them and names the bad field.

    The leader lease is ``election_timeout_max``: a leader that has not heard from a quorum
    for that long steps down, and a follower that heard from a live leader less than that
    long ago refuses (pre-)votes that are not leader transfers.
    """

    cluster_name: str = "openraft_trio"
    election_timeout_min: float = 0.15
    election_timeout_max: float = 0.30
    heartbeat_interval: float = 0.05
    max_payload_entries: int = 300
    # Byte budget of one AppendEntries: a batch stops before the entry that would take it
    # over (an entry larger than the budget goes alone). Bounds how long one frame holds
    # a connection and a follower.
    max_payload_bytes: int = 1024 * 1024
    # The largest application data (encoded) client_write accepts; a larger write is
    # refused with PayloadTooLarge before anything is logged.
    max_entry_bytes: int = 1024 * 1024
    # Replication pipelining: AppendEntries requests in flight per target at once.
    max_inflight_append_entries: int = 8
    snapshot_policy: SnapshotPolicy = attrs.field(factory=SnapshotPolicy, converter=_policy)
    max_in_snapshot_log_to_keep: int = 1000
    snapshot_max_chunk_size: int = 3 * 1024 * 1024
    install_snapshot_timeout: float = 2.0
    enable_pre_vote: bool = True
    replication_lag_threshold: int = 5000
    # A follower found to have lost log entries it acknowledged (a wiped or restored disk):
    # False stops replicating to it and reports it; True replicates its log again from
    # scratch (still reported). See the guide, "Log reversion".
    allow_log_reversion: bool = False
    # Clock drift (seconds) a leader subtracts from its lease before serving a LEASE_READ.
    lease_clock_drift: float = 0.01
    # How many API calls the core takes per loop round before it looks at notifications.
    api_batch_size: int = 256
    # Bound of the core's and workers' input channels (a full channel is backpressure).
    channel_capacity: int = 4096

    @property
    def lease(self) -> float:
        """The leader lease in seconds: equal to ``election_timeout_max``."""
        return self.election_timeout_max

    def validate(self) -> Config:
        """Return ``self`` if every field is sane, else raise ``ConfigError(field, why)``."""
        if not isinstance(self.cluster_name, str) or not self.cluster_name:
            raise ConfigError("cluster_name", "must be a non-empty string")
        for name in (
            "election_timeout_min",
            "election_timeout_max",
            "heartbeat_interval",
            "install_snapshot_timeout",
        ):
            v = getattr(self, name)
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
                raise ConfigError(
                    name, f"must be a positive number of seconds, got {short_repr(v)}"
                )
        if self.election_timeout_min >= self.election_timeout_max:
            raise ConfigError(
                "election_timeout_min",
                f"must be < election_timeout_max ({self.election_timeout_min} >= "
                f"{self.election_timeout_max})",
            )
        if self.heartbeat_interval >= self.election_timeout_min:
            raise ConfigError(
                "heartbeat_interval",
                f"must be < election_timeout_min ({self.heartbeat_interval} >= "
                f"{self.election_timeout_min})",
            )
        for name in (
            "max_payload_entries",
            "max_payload_bytes",
            "max_entry_bytes",
            "max_inflight_append_entries",
            "snapshot_max_chunk_size",
            "replication_lag_threshold",
            "api_batch_size",
            "channel_capacity",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(name, f"must be a positive integer, got {short_repr(v)}")
        v = self.max_in_snapshot_log_to_keep
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigError(
                "max_in_snapshot_log_to_keep", f"must be an integer >= 0, got {short_repr(v)}"
            )
        if not isinstance(self.allow_log_reversion, bool):
            raise ConfigError(
                "allow_log_reversion",
                f"must be True or False, got {short_repr(self.allow_log_reversion)}",
            )
        policy = self.snapshot_policy
        for name, value in (
            ("logs_since_last", policy.logs_since_last),
            ("snapshot_bytes_per_log", policy.snapshot_bytes_per_log),
        ):
            if value is None and name == "snapshot_bytes_per_log":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    "snapshot_policy", f"{name} must be an integer >= 1, got {short_repr(value)}"
                )
        d = self.lease_clock_drift
        if not isinstance(d, int | float) or isinstance(d, bool) or not 0 <= d < self.election_timeout_max:
            raise ConfigError(
                "lease_clock_drift", f"must be in [0, election_timeout_max), got {short_repr(d)}"
            )
        return self
