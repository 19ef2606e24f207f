"""The timed simulation: a discrete-event core under the platform (docs/simulate.md).

Time is a layer: the hardware and the kernel never read a clock.  This module's
:class:`Scheduler` (a ``heapq`` of ``(time, sequence, callback, argument)``: ties break
in the order things were scheduled, so a run is reproducible) says when each thing
happens, and the cost model (:mod:`directlpi.sim.costs`) says how long each step takes:

1. a device raises an MSI at a time the workload (:mod:`directlpi.sim.workload`) draws;
   its DMA write is *issued* then and is held in the interconnect (the bus runs with
   posted writes, PCIe ordering: per bus master in order);
2. it *lands* ``dma_write_ns`` later (plus ``its_translate_ns`` at a GITS_TRANSLATER,
   ``hv_doorbell_ns`` at the Hyper-V-style host's doorbell), never before the same
   master's earlier write; a read from the device lands them earlier (the bus does it);
3. the RD (``rd_signal_ns``; an SPI through the distributor: ``spi_signal_ns``) signals
   the PE, which takes the exception as soon as it is free: ``irq_entry_ns``, then
   what the kernel's ``gic_handle_irq`` does costs its parts -- ``iar_ns`` at ICC_IAR1,
   ``handler_ns`` from ``irq_handler_entry`` to ``irq_handler_exit``, ``eoi_ns`` at
   ICC_EOIR1, ``mmio_read_ns`` / ``mmio_write_ns`` per MMIO access the PE makes (and
   ``trap_ns`` more for each one under virtualisation) -- and ``irq_exit_ns``.

Each PE has its own clock (``clock[cpu]``: when it is free again); the costs of what a
PE executes advance it.  A write's *latency* is from its issue to the
``irq_handler_entry`` that serves it (the first after it landed: writes that land while
their LPI is pending coalesce into one handler run).  With every cost 0 the run is the
untimed one: everything happens at once.

Kernel actions of the workload (an affinity change, a CPU offline) run at their time,
at once; what the kernel lets happen while it waits (a spin on GICR_SYNCR) is the
untimed run loop's, at that instant.  Every invariant of the untimed run
(:mod:`directlpi.sim.invariants`) is checked on the timed one at the end.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directlpi.errors import DirectLPIError
from directlpi.hw.events import Event, EventKind
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.pci import PCI_IRQ_AFFINITY, PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.platform import Platform
from directlpi.sim.costs import Costs, load_costs
from directlpi.sim.invariants import InvariantChecker
from directlpi.sim.workload import DeviceLoad, Workload, load_workload

if TYPE_CHECKING:
    from directlpi.sim.trace import Tracer

DEFAULT_RATE = 200_000
"""MSIs per second of simulated time, the whole workload (``--rate``)."""
DEFAULT_DURATION_NS = 10_000_000
"""Simulated time (``--duration``): 10 ms."""
DEFAULT_ROUTES = ("direct-lpi", "mbi", "gicv2m", "its", "spi-pv")
"""``simulate``'s routes unless ``--routes`` says (rfc-v1 is the review's replay: ask)."""
LPI_ROUTES = ("direct-lpi", "its", "rfc-v1")
SCHEMA_VERSION = 1

Callback = Callable[[int], None]


class Scheduler:
    """A thin discrete-event scheduler: callbacks at times in ns, earliest first, ties in
    the order scheduled.  ``now`` is the time of the callback that runs."""

    __slots__ = ("_heap", "_seq", "events", "now")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callback, int]] = []
        self._seq = 0
        self.now = 0
        #: Callbacks run so far.
        self.events = 0

    def at(self, t: int, fn: Callback, arg: int = 0) -> None:
        """Run ``fn(arg)`` at time ``t`` (not before now)."""
        self._seq += 1
        heapq.heappush(self._heap, (t if t > self.now else self.now, self._seq, fn, arg))

    def step(self) -> bool:
        """Run the earliest callback; False when there is none."""
        if not self._heap:
            return False
        t, _seq, fn, arg = heapq.heappop(self._heap)
        self.now = t
        self.events += 1
        fn(arg)
        return True

    def __len__(self) -> int:
        return len(self._heap)


def percentile(sorted_values: list[int], p: float) -> int:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of values sorted ascending: the
    smallest value with at least p % of the values at or below it (0 if there are none)."""
    if not sorted_values:
        return 0
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


@dataclass
class _Device:
    spec: DeviceLoad
    master: str
    virqs: list[int]
    rate: float
    rng: random.Random
    next_vector: int = 0


class TimedRun:
    """One route under one workload, timed.  :meth:`run` returns the route's result."""

    def __init__(self, route: str, workload: Workload, *, costs: Costs | None = None,
                 cpus: int = 8, rate: float = DEFAULT_RATE,
                 duration_ns: int = DEFAULT_DURATION_NS, seed: int = 0,
                 trace: str | Path | None = None, trace_events: str | None = None) -> None:
        from directlpi.sim.compare import _PROVIDER, board_tree
        from directlpi.sim.review import boot

        self.route = route
        self.workload = workload
        self.costs = costs if costs is not None else load_costs()
        self.cpus = cpus
        self.rate = rate
        self.duration_ns = duration_ns
        self.seed = seed
        self.sched = Scheduler()
        self.plat = Platform.from_board(board_tree(route, cpus), posted_writes=True)
        plat = self.plat
        shares = sum(d.share for d in workload.devices)
        self.devices: list[_Device] = []
        for i, spec in enumerate(workload.devices):
            bdf = f"0000:00:{i + 1:02x}.0"
            n = min(spec.vectors, cpus) if spec.queues_per_cpu else spec.vectors
            if spec.kind == "msix":
                plat.add_pci_device(bdf, msix_vectors=n)
            else:
                plat.add_pci_device(bdf, msi_vectors=n)
            plat.pci_devices[bdf].name = spec.name
            self.devices.append(_Device(spec, bdf, [], rate * spec.share / shares,
                                        random.Random(f"{seed}:{spec.name}")))
        self.kern = boot(plat, _PROVIDER.get(route))
        self.checker = InvariantChecker(plat)
        for dev in self.devices:
            self._probe(dev)
        c = self.costs
        self._signal_ns = c.rd_signal_ns if route in LPI_ROUTES else c.spi_signal_ns
        trap = c.trap_ns if route in c.trapped_routes else 0
        self._mmio_ns = (c.mmio_read_ns + trap, c.mmio_write_ns + trap)
        self._land_extra = dict.fromkeys(plat.its_doorbells, c.its_translate_ns)
        self._land_extra.update(dict.fromkeys(plat.hv_doorbells, c.hv_doorbell_ns))
        n = plat.num_cpus
        #: Per PE: the time it is free again (its clock while it executes).
        self.clock = [0] * n
        self.busy_ns = [0] * n
        self.runs = [0] * n
        self._take_pending = bytearray(n)
        #: Per bus master: issue times of its writes in flight, oldest first; writes
        #: issued and landed so far; the time its last write lands (PCIe order).
        self._in_flight: dict[str, deque[int]] = defaultdict(deque)
        self._issued: dict[str, int] = defaultdict(int)
        self._landed: dict[str, int] = defaultdict(int)
        self._last_land: dict[str, int] = defaultdict(int)
        #: Per write issued: its master and its number among that master's writes.
        self._masters: list[str] = []
        self._seq_of: list[int] = []
        self._jitter = random.Random(f"{seed}:interconnect")
        #: Scripted MSIs (:meth:`raise_at`): (device index, vector) by script slot.
        self._script: list[tuple[int, int]] = []
        #: Issue times of writes landed, not acknowledged yet, per INTID; and acknowledged,
        #: not served by a handler entry yet.
        self._unserved: dict[int, list[int]] = defaultdict(list)
        self._acked: dict[int, list[int]] = {}
        self._intid_of_irq: dict[int, int] = {}
        self.latencies: list[int] = []
        #: (time, cpu) of every handler entry, for the heat map.
        self.entries: list[tuple[int, int]] = []
        self.msis_written = 0
        self.held_by_device = 0
        self.coalesced = 0
        self.actions: list[dict[str, Any]] = []
        self._arrivals_open = True
        self.tracer: Tracer | None = None
        if trace is not None:
            from directlpi.sim.trace import Tracer, open_sink, parse_filter
            self.tracer = Tracer(plat, open_sink(trace, plat), clock=lambda: self.sched.now,
                                 cpu_clock=self._cpu_time, wanted=parse_filter(trace_events),
                                 kernel_hooks=False)
        plat.observe(self._on_event, (EventKind.DMA_WRITE, EventKind.DMA_LANDED,
                                      EventKind.ACK, EventKind.EOI, EventKind.MMIO_READ,
                                      EventKind.MMIO_WRITE))
        self.kern.irq.tracer = self

    # -- set-up ----------------------------------------------------------------------------------

    def _probe(self, dev: _Device) -> None:
        k = self.kern
        spec = dev.spec
        flags = (PCI_IRQ_MSIX if spec.kind == "msix" else PCI_IRQ_MSI) | \
            (PCI_IRQ_AFFINITY if spec.managed else 0)
        fn = self.plat.pci_devices[dev.master]
        want = fn.msix_vectors if spec.kind == "msix" else fn.msi_vectors
        try:
            got = k.pci_alloc_irq_vectors(fn, want, want, flags)
        except KernelError as exc:
            raise DirectLPIError(f"route {self.route}: {spec.name}: {want} "
                                 f"{'MSI-X' if spec.kind == 'msix' else 'MultiMSI'} vectors "
                                 f"cannot be had: {exc}", exc.errno) from None
        dev.virqs = [k.pci_irq_vector(fn, i) for i in range(got)]
        for i, virq in enumerate(dev.virqs):
            k.request_irq(virq, _handled, name=f"{spec.name}-{i}")

    def _cpu_time(self, cpu: int) -> int:
        return max(self.clock[cpu], self.sched.now)

    # -- hardware events: issue, landing, costs ---------------------------------------------

    def _on_event(self, ev: Event) -> None:
        kind = ev.kind
        if kind is EventKind.MMIO_READ or kind is EventKind.MMIO_WRITE:
            cpu = self.plat.machine.gic.executing
            if ev.master is None and cpu is not None:
                self.clock[cpu] = self._cpu_time(cpu) + \
                    self._mmio_ns[kind is EventKind.MMIO_WRITE]
            return
        if kind is EventKind.DMA_WRITE:
            self._issue(ev)
        elif kind is EventKind.DMA_LANDED:
            master = ev.master or ""
            self._landed[master] += 1
            flight = self._in_flight[master]
            issued_at = flight.popleft() if flight else self.sched.now
            intid = self.plat.message_intid(ev.addr, ev.value, master)
            if intid is not None:
                self._unserved[intid].append(issued_at)
        elif kind is EventKind.ACK:
            cpu = ev.cpu
            self.clock[cpu] = self._cpu_time(cpu) + self.costs.iar_ns
            got = self._unserved.pop(ev.intid, None)
            if got:
                self._acked.setdefault(ev.intid, []).extend(got)
        else:                                   # EOI
            self.clock[ev.cpu] = self._cpu_time(ev.cpu) + self.costs.eoi_ns

    def _issue(self, ev: Event) -> None:
        master = ev.master or ""
        now = self.sched.now
        self.msis_written += 1
        self._in_flight[master].append(now)
        n = self._issued[master]
        self._issued[master] = n + 1
        c = self.costs
        flight = c.dma_write_ns + self._land_extra.get(ev.addr, 0)
        if c.dma_jitter_ns:
            flight += self._jitter.randint(0, c.dma_jitter_ns)
        land = max(now + flight, self._last_land[master])     # PCIe: never passes its own
        self._last_land[master] = land
        self._masters.append(master)
        self.sched.at(land, self._land, len(self._masters) - 1)
        self._seq_of.append(n)

    def _land(self, i: int) -> None:
        master = self._masters[i]
        if self._landed[master] > self._seq_of[i]:
            return                              # a read from the device landed it
        self.plat.bus.land_oldest(master)
        self._service()

    # -- PEs -------------------------------------------------------------------------------------

    def _service(self) -> None:
        """The kernel's deferred work (at once), then a take scheduled for each PE the GIC
        kicked: ``signal_ns`` from now, or when the PE is free."""
        k = self.kern
        irq = k.irq
        its = self.plat.machine.its
        while True:
            if irq.resend_queue:
                k.run_softirqs()
                continue
            if k.workqueue and not k.ctx.frames:
                k.run_work()
                continue
            if its and any([i.catch_up() for i in its]):
                continue
            break
        kicked = self.plat.machine.gic.kicked
        if not kicked:
            return
        pending = self._take_pending
        when = self.sched.now + self._signal_ns
        for cpu in kicked:
            if not pending[cpu]:
                pending[cpu] = 1
                self.sched.at(max(when, self.clock[cpu]), self._take, cpu)
        kicked.clear()

    def _take(self, cpu: int) -> None:
        self._take_pending[cpu] = 0
        now = self.sched.now
        if cpu not in self.kern.irq.online:
            return
        if self.clock[cpu] > now:               # busy: as soon as it is free
            self._take_pending[cpu] = 1
            self.sched.at(self.clock[cpu], self._take, cpu)
            return
        if not self.plat.machine.gic.cpuifs[cpu].irq_pending():
            return
        c = self.costs
        self.clock[cpu] = now + c.irq_entry_ns
        self.kern.handle_irq(cpu)
        self.clock[cpu] += c.irq_exit_ns
        self.busy_ns[cpu] += self.clock[cpu] - now
        self.plat.machine.gic.kicked.add(cpu)   # anything more for it, once it is free
        self._service()

    # -- the kernel's irq_handler_entry / irq_handler_exit (IrqTracer) ------------------

    def handler_entry(self, irq: int, name: str) -> None:
        cpu = self.kern.this_cpu
        t = self.clock[cpu] = self._cpu_time(cpu)
        intid = self._intid_of_irq.get(irq)
        if intid is None:
            desc = self.kern.irq_to_desc(irq)
            intid = desc.levels()[-1].hwirq if desc is not None else -1
            self._intid_of_irq[irq] = intid
        served = self._acked.pop(intid, None)
        if served:
            self.latencies.extend(t - issued for issued in served)
            self.coalesced += len(served) - 1
        self.runs[cpu] += 1
        self.entries.append((t, cpu))
        if self.tracer is not None:
            self.tracer.handler_entry(irq, name)

    def handler_exit(self, irq: int, ret: int) -> None:
        cpu = self.kern.this_cpu
        self.clock[cpu] = self._cpu_time(cpu) + self.costs.handler_ns
        if self.tracer is not None:
            self.tracer.handler_exit(irq, ret)

    # -- the workload ------------------------------------------------------------------------

    def _arrive(self, i: int) -> None:
        dev = self.devices[i]
        if not self._arrivals_open:
            return
        spec = dev.spec
        n = len(dev.virqs)
        if spec.spread == "rss":
            vector = dev.rng.randrange(n)
        else:
            vector = dev.next_vector
            dev.next_vector = (vector + 1) % n
        fn = self.plat.pci_devices[dev.master]
        for _ in range(spec.burst if spec.pattern == "burst" else 1):
            if not fn.raise_msi(vector):
                self.held_by_device += 1
        self._service()
        self._next_arrival(i)

    def raise_at(self, t_ns: int, device: str, vector: int) -> None:
        """Have ``device`` raise ``vector`` at ``t_ns`` (besides the workload's traffic;
        a workload's ``rate`` may be 0).  Raises DirectLPIError for an unknown device."""
        index = next((i for i, d in enumerate(self.devices) if d.spec.name == device), None)
        if index is None:
            raise DirectLPIError(f"no device named {device!r} in the workload")
        self._script.append((index, vector))
        self.sched.at(t_ns, self._scripted, len(self._script) - 1)

    def _scripted(self, slot: int) -> None:
        index, vector = self._script[slot]
        dev = self.devices[index]
        if not self.plat.pci_devices[dev.master].raise_msi(vector):
            self.held_by_device += 1
        self._service()

    def _next_arrival(self, i: int) -> None:
        dev = self.devices[i]
        per_s = dev.rate / (dev.spec.burst if dev.spec.pattern == "burst" else 1)
        if per_s <= 0:
            return
        gap = max(1, round(dev.rng.expovariate(per_s) * 1e9))
        t = self.sched.now + gap
        if t < self.duration_ns:
            self.sched.at(t, self._arrive, i)

    def _act(self, i: int) -> None:
        a = self.workload.actions[i]
        k = self.kern
        n = self.plat.num_cpus
        out: dict[str, Any] = {"at_ns": self.sched.now, "do": a.do}
        try:
            if a.do == "set_affinity":
                dev = next(d for d in self.devices if d.spec.name == a.device)
                if a.vector >= len(dev.virqs):
                    raise DirectLPIError(f"{a.device} has no vector {a.vector}")
                cpus = sorted({c % n for c in a.cpus})
                k.irq_set_affinity(dev.virqs[a.vector], cpus)
                out["result"] = (f"{a.device}-{a.vector} -> effective CPU "
                                 f"{sorted(k.irq_get_effective_affinity(dev.virqs[a.vector]))}")
            elif a.do == "cpu_offline":
                k.cpu_offline(a.cpu % n)
                out["result"] = f"CPU{a.cpu % n} offline"
            else:
                k.cpu_online(a.cpu % n)
                self.plat.machine.gic.kicked.add(a.cpu % n)
                out["result"] = f"CPU{a.cpu % n} online"
        except DirectLPIError as exc:
            out["result"] = f"refused: {exc} [{exc.errno_name}]"
        self.actions.append(out)
        self._service()

    # -- the run -----------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Play the workload for ``duration_ns``, then let what is in flight finish.
        ``progress(simulated_ns)`` is called now and then."""
        t0 = time.perf_counter()
        self.plat.run_until_idle()
        for i in range(len(self.devices)):
            self._next_arrival(i)
        for i, a in enumerate(self.workload.actions):
            self.sched.at(round(a.at * self.duration_ns), self._act, i)
        sched = self.sched
        step = sched.step
        try:
            while step():
                if progress is not None and not sched.events & 0x3FF:
                    progress(min(sched.now, self.duration_ns))
        finally:
            if self.tracer is not None:
                self.tracer.close()
        self.plat.run_until_idle()
        violations = self.checker.check()
        host_s = time.perf_counter() - t0
        return self._result(violations, host_s)

    def _result(self, violations: list[Any], host_s: float) -> dict[str, Any]:
        lat = sorted(self.latencies)
        seconds = self.duration_ns / 1e9
        handled = sum(self.runs)
        return {
            "cpus": self.plat.num_cpus,
            "msis_written": self.msis_written,
            "held_by_device": self.held_by_device,
            "handler_runs": handled,
            "coalesced": self.coalesced,
            "not_delivered": sum(len(v) for v in self._unserved.values())
            + sum(len(v) for v in self._acked.values()),
            "latency_ns": {"p50": percentile(lat, 50), "p99": percentile(lat, 99),
                           "p999": percentile(lat, 99.9), "max": lat[-1] if lat else 0,
                           "mean": round(sum(lat) / len(lat)) if lat else 0,
                           "samples": len(lat)},
            "throughput_per_s": round(handled / seconds, 1),
            "per_cpu": [{"cpu": c, "interrupts": self.runs[c], "busy_ns": self.busy_ns[c],
                         "load": round(self.busy_ns[c] / self.duration_ns, 4)}
                        for c in range(self.plat.num_cpus)],
            "actions": self.actions,
            "invariants": {"ok": not violations,
                           "violations": [v.as_dict() for v in violations]},
            "simulated_events": self.sched.events,
            "host_seconds": round(host_s, 4),
        }


def _handled(irq: int, dev_id: Any) -> int:
    return IRQ_HANDLED


def trace_path(trace: str, route: str, several: bool) -> str:
    """Where ``--trace FILE`` of route ``route`` goes: FILE itself for one route, FILE
    with ``.<route>`` before its suffix for several (``t.json`` -> ``t.mbi.json``)."""
    if not several or trace == "-":
        return trace
    p = Path(trace)
    return str(p.with_name(f"{p.stem}.{route}{p.suffix}"))


def simulate(routes: tuple[str, ...] = DEFAULT_ROUTES, workload: str | Path | None = None,
             *, rate: float = DEFAULT_RATE, duration_ns: int = DEFAULT_DURATION_NS,
             cpus: int = 8, costs: str | Path | Costs | None = None, seed: int = 0,
             trace: str | None = None, trace_events: str | None = None,
             progress: Callable[[str, int], None] | None = None,
             done: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every route of ``routes`` under the same workload, seed and costs: the object
    ``directlpi simulate --json`` prints (docs/simulate.md).  ``done``, when given, is
    filled route by route (what was finished survives a Ctrl-C).  Raises DirectLPIError
    for bad input (a workload, a cost file, a route that cannot run the workload)."""
    wl = load_workload(workload) if not hasattr(workload, "devices") else workload
    assert isinstance(wl, Workload)
    model = costs if isinstance(costs, Costs) else load_costs(costs)
    if not rate > 0 or not math.isfinite(rate):
        raise DirectLPIError(f"--rate {rate}: MSIs per second, more than 0")
    out: dict[str, Any] = done if done is not None else {}
    out.update({"schema_version": SCHEMA_VERSION, "workload": wl.name, "rate_per_s": rate,
                "duration_ns": duration_ns, "cpus": cpus, "seed": seed,
                "costs": model.as_dict(), "routes": {}})
    for r in routes:
        run = TimedRun(r, wl, costs=model, cpus=cpus, rate=rate, duration_ns=duration_ns,
                       seed=seed, trace=None if trace is None else
                       trace_path(trace, r, len(routes) > 1), trace_events=trace_events)
        tick = None if progress is None else (lambda ns, r=r: progress(r, ns))
        res = run.run(tick)
        res["entries"] = run.entries
        res["latencies"] = run.latencies
        out["routes"][r] = res
    return out


def strip_samples(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without the raw samples (per-run latencies and handler entries) that
    plots use and JSON output leaves out."""
    return {**result, "routes": {r: {k: v for k, v in res.items()
                                     if k not in ("entries", "latencies")}
                                 for r, res in result["routes"].items()}}


def render(result: dict[str, Any]) -> str:
    """The text report: one row per route."""
    head = (f"directlpi simulate: workload {result['workload']}, {result['rate_per_s']:,.0f} "
            f"MSI/s for {result['duration_ns'] / 1e6:g} ms on {result['cpus']} CPUs, seed "
            f"{result['seed']}")
    cols = ("route", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "handled/s", "written",
            "coalesced", "held", "invariants")
    rows = []
    for r, res in result["routes"].items():
        lat = res["latency_ns"]
        inv = res["invariants"]
        rows.append((r, f"{lat['p50']:,}", f"{lat['p99']:,}", f"{lat['p999']:,}",
                     f"{lat['max']:,}", f"{res['throughput_per_s']:,.0f}",
                     f"{res['msis_written']:,}", f"{res['coalesced']:,}",
                     f"{res['held_by_device']:,}",
                     "hold" if inv["ok"] else f"{len(inv['violations'])} violated"))
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = [head, "", "  ".join(c.rjust(w) if i else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cols, widths, strict=True)))]
    lines += ["  ".join(v.rjust(w) if i else v.ljust(w)
                        for i, (v, w) in enumerate(zip(row, widths, strict=True)))
              for row in rows]
    lines += ["", "per-CPU load (handler busy time / duration; interrupts):"]
    for r, res in result["routes"].items():
        lines.append(f"  {r:<11} " + " ".join(
            f"CPU{p['cpu']} {p['load'] * 100:.1f}%/{p['interrupts']}" for p in res["per_cpu"]))
    for r, res in result["routes"].items():
        for a in res["actions"]:
            lines.append(f"  {r}: at {a['at_ns'] / 1e6:g} ms {a['do']}: {a['result']}")
        for v in res["invariants"]["violations"][:5]:
            lines.append(f"  {r}: VIOLATION {v['invariant']}: {v['detail']}")
    lines.append("")
    lines.append("latency: from the device's DMA write to irq_handler_entry (docs/simulate.md)")
    return "\n".join(lines)
