"""Hypothesis drives the cluster step by step — client operations and faults drawn one at
a time inside ``trio.run`` — so a failure shrinks to a short schedule. After the schedule
the network heals; safety invariants (checked after every core round), liveness and
linearizability of the client history must hold.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openraft_trio import Config, ReadPolicy
from openraft_trio.kv import CompareAndSwap, Delete, Get, Set
from openraft_trio.testing import open_cluster
from openraft_trio.testing.linearizability import KvModel, Outcome, check
from openraft_trio.testing.sim import InvariantChecker
from openraft_trio.testing.sim._workload import Clients

NODES = 3
KEYS = ("x", "y")
ACTIONS = ("write", "write", "read", "sleep", "partition", "one-way", "isolate", "heal",
           "crash", "restart")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_schedules_stay_safe_live_and_linearizable(data: st.DataObject) -> None:
    seed = data.draw(st.integers(0, 2**16), label="seed")
    config = Config(cluster_name="prop")

    async def main() -> None:
        t0 = trio.current_time()

        def now() -> float:
            return trio.current_time() - t0

        checker = InvariantChecker(seed, now)
        async with open_cluster(
            NODES, config=config, seed=seed, flush_delay=(0.0, 0.003), observer=checker.observe
        ) as c:
            c.router.set_latency(0.001, 0.008)
            work = Clients(c, seed, now, checker.acknowledged, op_timeout=1.0)
            await c.wait_for_leader(10)
            down: list[int] = []
            n = 0
            async with trio.open_nursery() as ops:
                for _ in range(data.draw(st.integers(1, 30), label="steps")):
                    action = data.draw(st.sampled_from(ACTIONS))
                    ids = list(range(1, NODES + 1))
                    if action in ("write", "read"):
                        n += 1
                        target = c.leader_id() or data.draw(st.sampled_from(c.node_ids))
                        node = c.nodes[target]
                        key = data.draw(st.sampled_from(KEYS))
                        if action == "read":
                            policy = data.draw(st.sampled_from(list(ReadPolicy)))
                            ops.start_soon(work.read, n, node, target, Get(key), policy, None)
                        else:
                            kind = data.draw(st.sampled_from(["set", "delete", "cas"]))
                            req = (
                                Set(key, f"v{n}") if kind == "set"
                                else Delete(key) if kind == "delete"
                                else CompareAndSwap(key, None, f"v{n}")
                            )
                            ops.start_soon(work.write, n, node, target, req, None)
                    elif action == "sleep":
                        await trio.sleep(data.draw(st.floats(0.0, 1.0)))
                    elif action == "partition":
                        k = data.draw(st.integers(1, NODES - 1))
                        perm = data.draw(st.permutations(ids))
                        c.router.partition(perm[:k], perm[k:])
                    elif action == "one-way":
                        src, dst = data.draw(st.permutations(ids))[:2]
                        c.router.block(src, dst)
                    elif action == "isolate":
                        c.router.isolate(data.draw(st.sampled_from(ids)))
                    elif action == "heal":
                        c.router.heal()
                    elif action == "crash" and len(down) < (NODES - 1) // 2:
                        victim = data.draw(st.sampled_from(c.node_ids))
                        checker.node_down(victim)
                        await c.crash(victim)
                        down.append(victim)
                    elif action == "restart" and down:
                        await c.restart(down.pop())
            c.router.heal()
            for nid in down:
                await c.restart(nid)
            # Liveness: within 10 election timeouts a leader commits a write.
            with trio.fail_after(10 * config.election_timeout_max):
                while True:
                    lid = c.leader_id()
                    if lid is not None:
                        try:
                            resp = await c.nodes[lid].client_write(Set("live", 1))
                        except Exception:
                            await trio.sleep(0.01)
                            continue
                        checker.acknowledged(resp.log_id)
                        break
                    await trio.sleep(0.01)
            await c.wait_applied(resp.log_id.index, timeout=10)
            datas = [c.state_machines[i].data for i in c.node_ids]
            assert all(d == datas[0] for d in datas)
        checker.final_check()
        assert checker.violations == [], checker.violations
        result = check(work.history, KvModel())
        assert result.outcome is Outcome.OK, result.explanation

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
