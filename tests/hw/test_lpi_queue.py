"""The redistributor's queue of pending LPI keys against a sorted list (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from directlpi.hw.lpi_queue import LpiQueue

KEYS = st.builds(lambda prio, intid: prio << 24 | intid, st.integers(0, 255) | st.sampled_from(
    [0x80, 0xA0]), st.integers(8192, 8192 + 300))
OPS = st.lists(st.one_of(st.tuples(st.just("push"), KEYS), st.just(("pop", 0)),
                         st.tuples(st.just("rebuild"), st.lists(KEYS, max_size=20)),
                         st.just(("clear", 0))), max_size=200)


@given(OPS)
def test_the_queue_gives_the_lowest_key_like_a_sorted_list(ops: list[tuple[str, object]]) -> None:
    q = LpiQueue()
    model: list[int] = []
    for op, arg in ops:
        if op == "push":
            assert isinstance(arg, int)
            q.push(arg)
            model.append(arg)
        elif op == "pop" and model:
            assert q.top() == min(model)
            q.pop()
            model.remove(min(model))
        elif op == "rebuild":
            assert isinstance(arg, list)
            q.rebuild(list(arg))
            model = list(arg)
        elif op == "clear":
            q.clear()
            model = []
        assert q.n == len(model)
        if model:
            assert q.top() == min(model)


def test_the_top_of_one_priority_does_not_walk_the_others() -> None:
    q = LpiQueue()
    q.rebuild([0xE0 << 24 | i for i in range(8200, 8200 + 65_535)])
    q.push(0x80 << 24 | 8192)
    assert q.top() == 0x80 << 24 | 8192
    q.pop()
    assert q.top() == 0xE0 << 24 | 8200 and q.n == 65_535
    assert len(q._by_prio[0xE0]) == 65_535 and q._prios == [0xE0]
