"""Property tests (hypothesis) for the Engine's building blocks: the vote partial order and
the log-id index against a naive model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from openraft_trio._engine.log_ids import LogIdList
from openraft_trio._types import LeaderId, LogId, Vote

votes = st.builds(
    lambda term, node, committed: Vote(LeaderId(term, node), committed and node is not None),
    st.integers(0, 3),
    st.one_of(st.none(), st.integers(1, 3)),
    st.booleans(),
)


@given(votes, votes)
def test_vote_order_is_antisymmetric(a: Vote, b: Vote) -> None:
    ab, ba = a.partial_cmp(b), b.partial_cmp(a)
    if ab is None:
        assert ba is None
    else:
        assert ba == -ab
    if ab == 0:
        assert a == b


@given(votes, votes, votes)
def test_vote_order_is_transitive(a: Vote, b: Vote, c: Vote) -> None:
    if a >= b and b >= c:
        assert a >= c
    if a > b and b > c:
        assert a > c


@given(votes, votes)
def test_a_higher_term_always_wins(a: Vote, b: Vote) -> None:
    if a.term > b.term:
        assert a > b


# A log as a list of terms (leader = node 1 for term t); operations replayed on both.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 3), st.integers(1, 5)),
        st.tuples(st.just("truncate"), st.integers(-1, 30)),
        st.tuples(st.just("purge"), st.integers(0, 30)),
    ),
    max_size=30,
)


@given(ops)
def test_log_id_list_matches_a_naive_model(operations: list[tuple]) -> None:
    ids = LogIdList()
    model: list[LogId] = []  # every log id ever appended and not truncated, by index
    purged = -1
    for op in operations:
        if op[0] == "append":
            _, bump, count = op
            last_term = model[-1].term if model else 0
            term = last_term + bump
            for _ in range(count):
                log_id = LogId(LeaderId(term, 1), len(model))
                model.append(log_id)
                ids.append(log_id)
        elif op[0] == "truncate":
            keep = op[1]
            if keep < purged or keep >= len(model) - 1:
                continue
            del model[keep + 1 :]
            ids.truncate_after(model[keep] if keep >= 0 else None)
        else:
            upto = op[1]
            if upto >= len(model) or upto <= purged:
                continue
            purged = upto
            ids.purge(model[upto])
        assert ids.last == (model[-1] if model else None)
        for i in range(-1, len(model) + 2):
            expected = model[i] if purged <= i < len(model) and i >= 0 else None
            assert ids.get(i) == expected, (operations, i)
        for i in range(max(purged + 1, 0), len(model)):
            first = i
            while first - 1 > purged and model[first - 1].leader_id == model[i].leader_id:
                first -= 1
            assert ids.first_index_of_run(i) == first
