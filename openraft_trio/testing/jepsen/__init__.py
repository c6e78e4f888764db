"""A fault test of the KV service in real processes, in the manner of Jepsen.

A cluster of ``python -m openraft_trio serve`` processes on loopback, with durable
storage (:mod:`openraft_trio.testing.processes`), serves concurrent clients doing put,
delete, cas and linearizable gets with both read policies (``READ_INDEX``, ``LEASE_READ``)
on a few keys, while a nemesis SIGKILLs and restarts nodes, SIGSTOPs and resumes them, and
has the leader transfer its leadership (kills and pauses mostly hit the leader). Then every
fault is healed, the cluster must converge, and:

* the history, with unknown outcomes recorded as such, must be linearizable
  (:mod:`openraft_trio.testing.linearizability`, per key);
* every node must hold the same data;
* no acknowledged write may be missing from the final state.

Run it with ``python -m openraft_trio.testing.jepsen --seed S --duration D`` (``nox -s
jepsen``), or from Python::

    report = trio.run(run_jepsen, JepsenOptions(seed=7, duration=30))
    print(format_summary(report))

Real processes run on the real clock, so a seed replays the requests and the fault
schedule but not the OS's timing. The checks (:func:`check_history`) need no processes:
feed them a fabricated :class:`History` to see a verdict. See ``docs/kv-service.md``.
"""

from ._checks import Findings as Findings
from ._checks import Verdict as Verdict
from ._checks import check_history as check_history
from ._clients import ClientOptions as ClientOptions
from ._history import FaultKind as FaultKind
from ._history import FaultRecord as FaultRecord
from ._history import History as History
from ._history import OpKind as OpKind
from ._history import OpOutcome as OpOutcome
from ._history import OpRecord as OpRecord
from ._nemesis import NemesisOptions as NemesisOptions
from ._report import format_summary as format_summary
from ._report import replay_command as replay_command
from ._report import summary_json as summary_json
from ._run import JepsenOptions as JepsenOptions
from ._run import JepsenReport as JepsenReport
from ._run import run_jepsen as run_jepsen
