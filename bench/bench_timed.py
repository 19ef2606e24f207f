"""The timed simulation and tracing.

* ``timed_sim_events_per_s`` -- scheduler events (arrivals, landings, PE takes, actions)
  per second of host time, ``directlpi simulate``'s default workload on Direct LPI.
* ``timed_simulated_msis_per_host_s`` -- MSIs written (and each timed to its handler) per
  second of host time, same run.
* ``timed_host_s_per_simulated_ms_{low,high}`` -- host seconds per simulated ms at 100k and
  at 1M MSI/s: how host time grows with simulated load.
* ``sched_heapq_events_per_s`` / ``sched_simpy_events_per_s`` -- the bare scheduler: a
  chain of timeouts (64 interleaved processes), our ``heapq`` :class:`Scheduler` against
  SimPy 4's ``Environment.timeout`` (SimPy only when installed: the ``dev`` extra); and
  ``sched_heapq_vs_simpy`` their ratio (a rate ratio: > 1, ours is faster).
* ``run_default_untraced_s`` / ``run_default_traced_s`` -- ``directlpi run`` (the default
  scenario) in-process without a trace and with an ftrace trace to /dev/null, measured
  interleaved in the same process; ``trace_off_vs_before_ratio`` compares the untraced run
  with the kernel's tracepoint patched out entirely (the code as it was before tracing):
  1.00 means a run without ``--trace`` pays nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Generator
from typing import Any

from directlpi.benchkit import Figure


def _timed(rate: float, duration_ns: int) -> tuple[float, dict[str, object]]:
    from directlpi.sim.timed import TimedRun
    from directlpi.sim.workload import load_workload

    run = TimedRun("direct-lpi", load_workload("mixed"), rate=rate, duration_ns=duration_ns)
    t0 = time.perf_counter()
    res = run.run()
    return time.perf_counter() - t0, res


def _sched_heapq(n: int) -> float:
    from directlpi.sim.timed import Scheduler

    s = Scheduler()
    left = [n]

    def tick(i: int) -> None:
        left[0] -= 1
        if left[0] > 0:
            s.at(s.now + 10 + i, tick, i)
    for i in range(64):
        s.at(i, tick, i)
    t0 = time.perf_counter()
    while s.step():
        pass
    return s.events / (time.perf_counter() - t0)


def _sched_simpy(n: int) -> float | None:
    try:
        import simpy
    except ImportError:
        return None
    env = simpy.Environment()
    left = [n]
    count = [0]

    def proc(i: int) -> Generator[Any, Any, None]:
        yield env.timeout(i)
        while left[0] > 0:
            left[0] -= 1
            count[0] += 1
            yield env.timeout(10 + i)
    for i in range(64):
        env.process(proc(i))
    t0 = time.perf_counter()
    env.run()
    return count[0] / (time.perf_counter() - t0)


def _run_default(trace: str | None) -> Callable[[], object]:
    from directlpi.sim.run import ScenarioRun
    from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario

    sc = load_scenario(DEFAULT_SCENARIO)
    return lambda: ScenarioRun(sc, trace=trace).run()


def _interleaved(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        # Rotate who goes first each round: the first of a round pays the warm-up.
        for i in [(r + j) % len(fns) for j in range(len(fns))]:
            fn = fns[i]
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _without_tracepoint() -> Callable[[], object]:
    """The default run with handle_irq_event as it was before the tracepoint existed."""
    import directlpi.kernel.irq.flow as flow
    from directlpi.kernel.irq.desc import IRQ_NONE, IRQD_IRQ_INPROGRESS, IRQS_PENDING, IrqDesc

    original = flow.handle_irq_event

    def before(desc: IrqDesc) -> int:
        desc.istate &= ~IRQS_PENDING
        hooks = desc.core.handler_hooks
        if hooks:
            for hook in hooks:
                hook(desc)
        common = desc.irq_data.common
        common.state |= IRQD_IRQ_INPROGRESS
        ctx = desc.core.ctx
        lock = desc.lock
        ctx.unlock(lock)
        result = IRQ_NONE
        irq = desc.irq
        try:
            for action in desc.actions:
                result |= action.handler(irq, action.dev_id)
        finally:
            ctx.lock(lock)
            common.state &= ~IRQD_IRQ_INPROGRESS
        if result == IRQ_NONE:
            flow.note_unhandled(desc)
        return result

    run = _run_default(None)

    def go() -> object:
        flow.handle_irq_event = before
        try:
            return run()
        finally:
            flow.handle_irq_event = original
    return go


def run(quick: bool) -> list[Figure]:
    dur = 2_000_000 if quick else 20_000_000
    host, res = _timed(200_000, dur)
    events = float(res["simulated_events"])        # type: ignore[arg-type]
    msis = float(res["msis_written"])              # type: ignore[arg-type]
    low, _ = _timed(100_000, dur)
    high, _ = _timed(1_000_000, dur)
    n = 20_000 if quick else 200_000
    heap = statistics.median(_sched_heapq(n) for _ in range(3))
    simpy_rates = [r for r in (_sched_simpy(n) for _ in range(3)) if r is not None]
    reps = 3 if quick else 21
    untraced, traced, before = _trace_costs(reps)
    figs = [
        Figure("timed_sim_events_per_s", events / host, "events/s",
               "timed simulation: scheduler events per host second (mixed, Direct LPI)"),
        Figure("timed_simulated_msis_per_host_s", msis / host, "msis/s",
               "timed simulation: MSIs timed to their handler per host second"),
        Figure("timed_host_s_per_simulated_ms_low", low / (dur / 1e6), "s",
               "host seconds per simulated ms at 100k MSI/s"),
        Figure("timed_host_s_per_simulated_ms_high", high / (dur / 1e6), "s",
               "host seconds per simulated ms at 1M MSI/s"),
        Figure("sched_heapq_events_per_s", heap, "events/s",
               "bare heapq scheduler: timeout chain, 64 processes"),
        Figure("run_default_untraced_s", untraced, "s", "directlpi run, no --trace"),
        Figure("run_default_traced_s", traced, "s", "directlpi run --trace (ftrace text)"),
        Figure("trace_off_vs_before_ratio", untraced / before, "ratio",
               "untraced run / run with no tracepoint in the code (1.00: free when off)"),
    ]
    if simpy_rates:
        simpy_rate = statistics.median(simpy_rates)
        figs += [Figure("sched_simpy_events_per_s", simpy_rate, "events/s",
                        "SimPy 4 Environment: the same timeout chain"),
                 Figure("sched_heapq_vs_simpy", heap / simpy_rate, "ratio",
                        "heapq scheduler rate / SimPy rate (> 1: ours is faster)")]
    return figs


def _trace_costs(reps: int) -> list[float]:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.txt")
        return _interleaved([_run_default(None), _run_default(path), _without_tracepoint()],
                            reps)
