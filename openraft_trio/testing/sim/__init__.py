"""The deterministic simulator: seeded, replayable runs of a whole cluster with fault
injection, safety invariants and a linearizability check. See ``docs/simulator.md``.

    from openraft_trio.testing.sim import run_simulation, FaultPlan
    result = run_simulation(7, nodes=5, duration=60.0, faults=FaultPlan())
    assert result.ok, result.violations
"""

from ._faults import FaultPlan as FaultPlan
from ._invariants import InvariantChecker as InvariantChecker
from ._invariants import Violation as Violation
from ._objects import ObjectModel as ObjectModel
from ._objects import ObjectWorkload as ObjectWorkload
from ._runner import SimResult as SimResult
from ._runner import SimStats as SimStats
from ._runner import run_simulation as run_simulation
from ._workload import KvWorkload as KvWorkload
from ._workload import SimWorkload as SimWorkload
