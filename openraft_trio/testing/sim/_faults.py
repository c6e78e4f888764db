"""FaultPlan: which faults a simulation injects, and how hard. Every draw comes from the
run's seed."""

from __future__ import annotations

from typing import final

import attrs


@final
@attrs.frozen(kw_only=True)
class FaultPlan:
    """Faults injected during the fault phase of a simulation.

    Network (per message): ``drop_rate`` loses a request or reply; ``duplicate_rate``
    delivers a request twice; ``latency`` is the one-way delay range; with probability
    ``spike_rate`` a message is delayed up to ``spike`` seconds more (reordering).

    Nemesis (every ``fault_interval`` seconds, drawn uniformly): symmetric partitions,
    one-way blocks, bridge partitions (one node sees both halves) and isolation if
    ``partitions``; crash and restart of up to ``max_crashed`` nodes (default: a minority)
    if ``crashes``; healing. A crash loses log writes that were appended but not yet
    flushed: the disk flushes after a delay drawn from ``flush_delay``.

    Storage: ``storage="mem"`` (default) gives each node a ``MemLogStore`` whose flushes
    come ``flush_delay`` after the append. ``storage="file"`` runs the real durable stack
    instead: ``FileLogStore`` and the durable ``KvStateMachine`` (with the default
    workload) on a per-node ``CrashFS``, each disk operation taking ``flush_delay``; a
    crash is a power cut after which every file keeps a random prefix of its unsynced
    bytes (nothing, a torn record, or all of it), and the restart runs real recovery.

    Leadership (``leadership``, half of the nemesis's turns): it moves leadership on
    purpose and races reads against it: a leader transfer (half of the time the old leader
    then hears nothing more), ``trigger.elect()`` (half of the time on a follower still
    inside its lease, with a majority whose leases ended), isolating the leader while a
    follower keeps calling ``elect()``, cutting one follower off from the leader only,
    restarting a majority of the other nodes within one lease while the leader is cut
    off, a power cut of several nodes at once (unflushed log tails lost), and a period in
    which messages may be delayed by ``long_delay`` seconds (several election timeouts).
    After each but the last two, a *race probe* writes to the newest leader and reads,
    mostly by ``LEASE_READ``, from the leader that was just moved, for two leases: a stale
    read shows up in the linearizability check. See ``docs/simulator.md``.

    Clocks: each node's clock runs at a rate in ``[1 - clock_skew, 1 + clock_skew]``.
    Lease reads stay safe while the rates of two nodes differ by less than
    ``lease_clock_drift / election_timeout_max`` (0.01 / 0.30 = 3.3 % by default), so the
    default ``clock_skew=0.01`` (at most 2 % apart) is inside the bound.
    """

    drop_rate: float = 0.02
    duplicate_rate: float = 0.02
    latency: tuple[float, float] = (0.001, 0.010)
    # Latencies are rounded up to this grid so that messages often arrive together.
    latency_quantum: float = 0.001
    spike_rate: float = 0.02
    spike: float = 0.05
    partitions: bool = True
    crashes: bool = True
    max_crashed: int | None = None
    fault_interval: tuple[float, float] = (0.3, 2.0)
    flush_delay: tuple[float, float] = (0.0, 0.005)
    clock_skew: float = 0.01
    # Membership churn: the nemesis also adds learners (from ``spare_nodes`` extra nodes
    # that start outside the cluster), promotes learners to voters, removes voters (never
    # below three), with or without ``retain``, and transfers leadership.
    membership_changes: bool = False
    spare_nodes: int = 2
    # Log compaction: build a snapshot every this many applied entries and keep a fifth of
    # that in the log (None: the config's policy), so followers behind a purge, restarts
    # and new learners go through snapshots. On by default: every mode builds, purges and
    # installs snapshots.
    snapshot_every: int | None = 150
    storage: str = "mem"
    leadership: bool = True
    long_delay: float = 1.0

    @classmethod
    def none(cls) -> FaultPlan:
        """No faults at all: a healthy network, no crashes, perfect clocks."""
        return cls(
            drop_rate=0.0,
            duplicate_rate=0.0,
            latency=(0.001, 0.001),
            spike_rate=0.0,
            partitions=False,
            crashes=False,
            clock_skew=0.0,
            leadership=False,
        )

    def validate(self) -> FaultPlan:
        """Return the plan itself if every rate, range and option is valid; else raise
        ``ValueError``."""
        for name in ("drop_rate", "duplicate_rate", "spike_rate"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"FaultPlan.{name} must be in [0, 1], got {v}")
        for name in ("latency", "fault_interval", "flush_delay"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"FaultPlan.{name} must be 0 <= lo <= hi, got {(lo, hi)}")
        if self.storage not in ("mem", "file"):
            raise ValueError(f"FaultPlan.storage must be 'mem' or 'file', got {self.storage!r}")
        if self.fault_interval[1] <= 0:
            raise ValueError("FaultPlan.fault_interval must allow a positive interval")
        if not 0 <= self.clock_skew < 0.5:
            raise ValueError(f"FaultPlan.clock_skew must be in [0, 0.5), got {self.clock_skew}")
        if self.snapshot_every is not None and self.snapshot_every < 1:
            raise ValueError("FaultPlan.snapshot_every must be >= 1")
        if self.spare_nodes < 0:
            raise ValueError("FaultPlan.spare_nodes must be >= 0")
        if self.spike < 0:
            raise ValueError("FaultPlan.spike must be >= 0")
        if self.long_delay < 0:
            raise ValueError("FaultPlan.long_delay must be >= 0")
        return self
