"""Traces that tools open: ftrace text, Chrome trace-event JSON, VCD (docs/traces.md).

A :class:`Tracer` hangs off the platform's event hooks (every hardware event kind but
MMIO reads and writes) and the kernel's ``irq_handler_entry`` / ``irq_handler_exit``
tracepoints (:class:`~directlpi.kernel.irq.core.IrqTracer`), turns each into a *record*
(time, CPU, context, event name, fields) and hands it to one sink, chosen by the file's
suffix:

* ``.txt`` (and ``-``, standard output): ftrace text as ``/sys/kernel/tracing/trace``
  prints it -- the header, then ``<task>-<pid> [<cpu>] <flags> <secs.usecs>: <event>:
  <fields>``, sorted by time.  Linux's own event names and fields where Linux has them
  (``irq_handler_entry: irq=N name=...``, ``irq_handler_exit: irq=N ret=handled``); the
  model's GIC events under names of their own (:data:`EVENT_NAMES`).
* ``.json``: Chrome trace-event JSON (Perfetto, ``chrome://tracing``): a process
  "CPUs" with one track per CPU (handler slices as B/E pairs, GIC events as instants),
  a process "devices" with one track per bus master (its writes as instants), and a
  flow arrow (``s`` -> ``f``) from each MSI a device wrote to the handler run that
  served it.
* ``.vcd``: a value-change dump (pyvcd; GTKWave opens it): per CPU its IRQ line and
  its running priority (ICC_RPR_EL1), per redistributor its count of pending LPIs.

Time: a timed run (:mod:`directlpi.sim.timed`) gives its simulated time in ns.  An
untimed run has none, so it uses a *step clock*: the n-th record since the trace began
is at n microseconds (the order is the run's, the spacing means nothing).

Nothing is paid when no trace is asked for: the tracer subscribes only when it is made,
and the kernel's tracepoint is one ``is None`` test per handler run.
"""

from __future__ import annotations

import errno
import fnmatch
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from directlpi.errors import DirectLPIError
from directlpi.hw.events import Event, EventKind
from directlpi.kernel.context import Kind
from directlpi.kernel.irq.desc import IRQ_HANDLED, IRQ_NONE

if TYPE_CHECKING:
    from directlpi.platform import Platform

FORMATS = {".txt": "ftrace", ".json": "chrome", ".vcd": "vcd"}
"""Trace file suffix -> format (``-`` is ftrace text on standard output)."""

STEP_NS = 1000
"""The untimed step clock: each record is this many ns after the one before."""

#: Event name of each hardware event kind (``*_pending`` / ``*_ignored`` are refined by
#: the event's reason: :func:`event_name`).
EVENT_NAMES: dict[EventKind, str] = {
    EventKind.DMA_WRITE: "bus_dma_write",
    EventKind.DMA_LANDED: "bus_dma_land",
    EventKind.DMA_DROPPED: "bus_dma_drop",
    EventKind.LPI_PENDING: "gicv3_lpi_pending",
    EventKind.LPI_CLEARED: "gicv3_clrlpir",
    EventKind.SPI_PENDING: "gicv3_spi_pending",
    EventKind.SPI_CLEARED: "gicv3_spi_clear",
    EventKind.SGI_GENERATED: "gicv3_sgi",
    EventKind.ACK: "gicv3_iar",
    EventKind.EOI: "gicv3_eoir",
    EventKind.DEACTIVATE: "gicv3_deactivate",
    EventKind.INVALIDATE: "gicv3_invlpir",
    EventKind.SYNC: "gicv3_syncr",
    EventKind.CONFIG_LOAD: "gicv3_config_fill",
    EventKind.LPIS_ENABLED: "gicv3_lpis_enable",
    EventKind.LPIS_DISABLED: "gicv3_lpis_disable",
    EventKind.IGNORED: "gicv3_ignored",
    EventKind.BAD_ACCESS: "directlpi_bad_access",
    EventKind.UNPREDICTABLE: "directlpi_unpredictable",
    EventKind.ITS_COMMAND: "its_command",
    EventKind.ITS_COMMAND_ERROR: "its_command_error",
    EventKind.ITS_TRANSLATED: "its_translate",
    EventKind.MSI_DROPPED: "directlpi_msi_dropped",
}
KERNEL_EVENTS = ("irq_handler_entry", "irq_handler_exit")
TRACED_KINDS = tuple(EVENT_NAMES)


def event_name(ev: Event) -> str:
    """The trace event name of ``ev``: GICR_SETLPIR making an LPI pending is
    ``gicv3_setlpir``, one that found it pending already (coalesced) too; GICR_INVALLR
    is ``gicv3_invallr``."""
    kind = ev.kind
    if kind is EventKind.LPI_PENDING and ev.reason == "setlpir":
        return "gicv3_setlpir"
    if kind is EventKind.IGNORED and ev.register == "GICR_SETLPIR":
        return "gicv3_setlpir"
    if kind is EventKind.INVALIDATE and ev.intid < 0:
        return "gicv3_invallr"
    return EVENT_NAMES[kind]


def all_event_names() -> list[str]:
    """Every name a trace can carry (what ``--trace-events`` patterns match against)."""
    names = set(EVENT_NAMES.values()) | {"gicv3_setlpir", "gicv3_invallr", *KERNEL_EVENTS}
    return sorted(names)


def parse_filter(text: str | None) -> Callable[[str], bool] | None:
    """``--trace-events 'irq_*,*LPI*'``: comma-separated fnmatch patterns, matched without
    regard to case.  None when ``text`` is None (everything).  Raises DirectLPIError
    (EINVAL) for an empty list or a pattern that matches no event."""
    if text is None:
        return None
    pats = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not pats:
        raise DirectLPIError("--trace-events: no pattern given (e.g. 'irq_*,*lpi*')",
                             errno.EINVAL)
    names = all_event_names()
    for p in pats:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            raise DirectLPIError(f"--trace-events: {p!r} matches no event (events: "
                                 f"{', '.join(names)})", errno.EINVAL)
    cache: dict[str, bool] = {}

    def wanted(name: str) -> bool:
        hit = cache.get(name)
        if hit is None:
            hit = cache[name] = any(fnmatch.fnmatchcase(name, p) for p in pats)
        return hit
    return wanted


class Record:
    """One trace record, whatever the format."""

    __slots__ = ("cpu", "fields", "flow_end", "flow_start", "hardirq", "irqs_off", "name",
                 "seq", "task", "ts")

    def __init__(self, seq: int, ts: int, cpu: int, task: str, hardirq: bool, irqs_off: bool,
                 name: str, fields: str) -> None:
        self.seq = seq
        self.ts = ts
        self.cpu = cpu
        self.task = task
        self.hardirq = hardirq
        self.irqs_off = irqs_off
        self.name = name
        self.fields = fields
        #: Chrome flows: the id of the MSI this record's write starts, and the ids of the
        #: MSIs a handler entry serves.
        self.flow_start = -1
        self.flow_end: tuple[int, ...] = ()


class Sink(Protocol):
    """Where records go; :meth:`close` writes the file."""

    def add(self, rec: Record) -> None: ...
    def sample(self, ts: int) -> None: ...
    def close(self) -> None: ...


def _fields(ev: Event) -> str:
    out: list[str] = []
    k = ev.kind
    if ev.source.startswith("GICR"):
        out.append(f"rd={ev.source[4:].split('.')[0]}")
    elif ev.cpu >= 0:
        out.append(f"cpu={ev.cpu}")
    if k in (EventKind.DMA_WRITE, EventKind.DMA_LANDED, EventKind.DMA_DROPPED):
        out.append(f"master={ev.master} addr={ev.addr:#x} data={ev.value:#x}")
        return " ".join(out)
    if ev.intid >= 0:
        out.append(f"intid={ev.intid}")
    if k is EventKind.ACK:
        out.append(f"prio={ev.value:#04x}")
    elif k is EventKind.CONFIG_LOAD:
        out.append(f"cfg={ev.value:#04x}")
    elif k is EventKind.ITS_TRANSLATED:
        out.append(f"devid={ev.addr} eventid={ev.value}")
    elif k is EventKind.ITS_COMMAND:
        out.append(f"cmd={ev.reason}")
        return " ".join(out)
    if ev.master is not None:
        out.append(f"master={ev.master}")
    if ev.register and k is not EventKind.IGNORED:
        out.append(f"reg={ev.register}")
    if ev.reason:
        key = "result" if k is EventKind.IGNORED and ev.register == "GICR_SETLPIR" else "reason"
        out.append(f"{key}={ev.reason}")
    return " ".join(out)


class Tracer:
    """Records the platform's events and the kernel's handler tracepoints into ``sink``.

    ``clock()`` gives now in ns (None: the untimed step clock); ``cpu_clock(cpu)`` the
    time on a given PE, when a timed run keeps one per PE.  ``wanted(name)`` filters.
    ``kernel_hooks``: install as the kernel's tracepoint (False: a caller that is the
    tracepoint forwards to :meth:`handler_entry` / :meth:`handler_exit`)."""

    def __init__(self, plat: Platform, sink: Sink, *,
                 clock: Callable[[], int] | None = None,
                 cpu_clock: Callable[[int], int] | None = None,
                 wanted: Callable[[str], bool] | None = None,
                 kernel_hooks: bool = True) -> None:
        self.plat = plat
        self.sink = sink
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._wanted = wanted
        self._seq = 0
        self._steps = 0
        self._gic = plat.machine.gic
        self._rd_of_doorbell = {plat.gicr_base(c) + 0x40: c for c in range(plat.num_cpus)}
        #: MSIs landed but not acknowledged yet, per INTID: their flow ids.
        self._unserved: dict[int, list[int]] = defaultdict(list)
        #: Per CPU, the MSIs its last acknowledge took, for the handler entry that follows.
        self._acked: dict[int, list[int]] = {}
        self._flow_of_issue: dict[tuple[str, int, int], list[int]] = defaultdict(list)
        self._next_flow = 1
        self.records = 0
        self._sub = plat.observe(self._on_event, TRACED_KINDS)
        k = plat.kernel
        self._kern = k
        if k is not None and kernel_hooks:
            k.irq.tracer = self

    def close(self) -> None:
        """Stop tracing and write the trace."""
        self._sub.cancel()
        if self._kern is not None and self._kern.irq.tracer is self:
            self._kern.irq.tracer = None
        self.sink.close()

    # -- time and context -----------------------------------------------------------------------

    def _now(self, cpu: int) -> int:
        self._steps += 1
        if self._clock is None:
            return self._steps * STEP_NS
        if cpu >= 0 and self._cpu_clock is not None:
            return self._cpu_clock(cpu)
        return self._clock()

    def _record(self, cpu: int, name: str, fields: str, master: str | None = None) -> Record:
        frame = self._kern.ctx.current if self._kern is not None else None
        if frame is not None:
            run_cpu = frame.cpu
            hardirq = frame.kind is Kind.HARDIRQ
            task = "<idle>-0" if hardirq else "directlpi-1"
            irqs_off = frame.irqs_off
        else:
            run_cpu = cpu if cpu >= 0 else 0
            hardirq = irqs_off = False
            task = f"{(master or 'hw')[-12:]}-0"
        self._seq += 1
        ts = self._now(run_cpu if frame is not None else -1)
        return Record(self._seq, ts, run_cpu, task, hardirq, irqs_off, name, fields)

    # -- hardware events ------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        kind = ev.kind
        name = event_name(ev)
        flow = -1
        if kind is EventKind.DMA_WRITE:
            flow = self._next_flow
            self._next_flow += 1
            self._flow_of_issue[(ev.master or "", ev.addr, ev.value)].append(flow)
        elif kind is EventKind.DMA_LANDED:
            self._landed(ev)
        elif kind is EventKind.ACK:
            self._acked[ev.cpu] = self._unserved.pop(ev.intid, [])
        wanted = self._wanted
        if wanted is not None and not wanted(name):
            if self._clock is None:
                self._steps += 1
            return
        cpu = ev.cpu
        if cpu < 0 and ev.addr in self._rd_of_doorbell:
            cpu = self._rd_of_doorbell[ev.addr]
        rec = self._record(cpu, name, _fields(ev), ev.master)
        rec.flow_start = flow
        self.sink.add(rec)
        self.sink.sample(rec.ts)
        self.records += 1

    def _landed(self, ev: Event) -> None:
        flows = self._flow_of_issue.get((ev.master or "", ev.addr, ev.value))
        if not flows:
            return
        flow = flows.pop(0)
        intid = self.plat.message_intid(ev.addr, ev.value, ev.master or "")
        if intid is not None:
            self._unserved[intid].append(flow)

    # -- the kernel's tracepoints (IrqTracer) -----------------------------------------------

    def handler_entry(self, irq: int, name: str) -> None:
        wanted = self._wanted
        if wanted is not None and not wanted("irq_handler_entry"):
            self._steps += self._clock is None
            return
        rec = self._record(-1, "irq_handler_entry", f"irq={irq} name={name}")
        rec.flow_end = tuple(self._acked.pop(rec.cpu, ()))
        self.sink.add(rec)
        self.records += 1

    def handler_exit(self, irq: int, ret: int) -> None:
        wanted = self._wanted
        if wanted is not None and not wanted("irq_handler_exit"):
            self._steps += self._clock is None
            return
        what = "handled" if ret & IRQ_HANDLED else "unhandled" if ret == IRQ_NONE else str(ret)
        rec = self._record(-1, "irq_handler_exit", f"irq={irq} ret={what}")
        self.sink.add(rec)
        self.records += 1


# -- ftrace text ------------------------------------------------------------------------------

_FTRACE_HEADER = """\
# tracer: nop
#
# entries-in-buffer/entries-written: {n}/{n}   #P:{cpus}
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""


def ftrace_line(rec: Record) -> str:
    """One line as ``/sys/kernel/tracing/trace`` prints it."""
    flags = ("d" if rec.irqs_off else ".") + "." + ("h" if rec.hardirq else ".") + \
        ("1" if rec.hardirq else ".") + "."
    secs, ns = divmod(rec.ts, 1_000_000_000)
    return (f"{rec.task:>16} [{rec.cpu:03d}] {flags} {secs:5d}.{ns // 1000:06d}: "
            f"{rec.name}: {rec.fields}")


class FtraceSink:
    """ftrace text, sorted by time, header first (written at :meth:`close`)."""

    def __init__(self, out: TextIO, cpus: int, close_out: bool) -> None:
        self._out = out
        self._cpus = cpus
        self._close_out = close_out
        self._recs: list[Record] = []

    def add(self, rec: Record) -> None:
        self._recs.append(rec)

    def sample(self, ts: int) -> None:
        pass

    def close(self) -> None:
        recs = sorted(self._recs, key=lambda r: (r.ts, r.seq))
        out = self._out
        try:
            out.write(_FTRACE_HEADER.format(n=len(recs), cpus=self._cpus))
            for r in recs:
                out.write(ftrace_line(r) + "\n")
            out.flush()
        finally:
            if self._close_out:
                out.close()


# -- Chrome trace-event JSON ----------------------------------------------------------------

_PID_CPUS, _PID_DEVICES = 1, 2


class ChromeSink:
    """Trace-event JSON (the "JSON Object Format"): ``traceEvents``, ts in microseconds."""

    def __init__(self, out: TextIO, cpus: int) -> None:
        self._out = out
        self._cpus = cpus
        self._events: list[dict[str, Any]] = []
        self._devices: dict[str, int] = {}
        #: Per CPU, the handler slices open (a handler can be interrupted by a higher
        #: priority one: slices nest).
        self._open: dict[int, int] = defaultdict(int)

    def _device_tid(self, name: str) -> int:
        tid = self._devices.get(name)
        if tid is None:
            tid = self._devices[name] = len(self._devices) + 1
        return tid

    def add(self, rec: Record) -> None:
        ts = rec.ts / 1000
        ev: dict[str, Any]
        if rec.name == "irq_handler_entry":
            args = dict(f.split("=", 1) for f in rec.fields.split())
            ev = {"ph": "B", "name": args.get("name", "irq"), "cat": "irq",
                  "pid": _PID_CPUS, "tid": rec.cpu, "ts": ts, "args": args}
            self._events.append(ev)
            self._open[rec.cpu] += 1
            for flow in rec.flow_end:
                self._events.append({"ph": "f", "bp": "e", "name": "msi", "cat": "msi",
                                     "id": flow, "pid": _PID_CPUS, "tid": rec.cpu, "ts": ts})
            return
        if rec.name == "irq_handler_exit":
            if self._open[rec.cpu] == 0:
                return                      # its entry was before the trace began
            self._open[rec.cpu] -= 1
            args = dict(f.split("=", 1) for f in rec.fields.split())
            self._events.append({"ph": "E", "pid": _PID_CPUS, "tid": rec.cpu, "ts": ts,
                                 "args": args})
            return
        if rec.name.startswith("bus_"):
            master = rec.fields.split("master=", 1)[1].split()[0]
            tid = self._device_tid(master)
            self._events.append({"ph": "i", "s": "t", "name": rec.name, "cat": "bus",
                                 "pid": _PID_DEVICES, "tid": tid, "ts": ts,
                                 "args": {"fields": rec.fields}})
            if rec.flow_start >= 0:
                self._events.append({"ph": "s", "name": "msi", "cat": "msi",
                                     "id": rec.flow_start, "pid": _PID_DEVICES, "tid": tid,
                                     "ts": ts})
            return
        self._events.append({"ph": "i", "s": "t", "name": rec.name, "cat": "gic",
                             "pid": _PID_CPUS, "tid": rec.cpu, "ts": ts,
                             "args": {"fields": rec.fields}})

    def sample(self, ts: int) -> None:
        pass

    def close(self) -> None:
        meta: list[dict[str, Any]] = [
            {"ph": "M", "name": "process_name", "pid": _PID_CPUS, "tid": 0,
             "args": {"name": "CPUs"}},
            {"ph": "M", "name": "process_name", "pid": _PID_DEVICES, "tid": 0,
             "args": {"name": "devices"}}]
        meta += [{"ph": "M", "name": "thread_name", "pid": _PID_CPUS, "tid": c,
                  "args": {"name": f"CPU{c}"}} for c in range(self._cpus)]
        meta += [{"ph": "M", "name": "thread_name", "pid": _PID_DEVICES, "tid": t,
                  "args": {"name": d}} for d, t in self._devices.items()]
        try:
            json.dump({"traceEvents": meta + self._events, "displayTimeUnit": "ns",
                       "otherData": {"generator": "directlpi"}}, self._out)
            self._out.write("\n")
        finally:
            self._out.close()


# -- VCD ----------------------------------------------------------------------------------------

class VcdSink:
    """Per CPU its IRQ line and running priority, per RD its pending LPIs, sampled after
    every hardware event (timescale 1 ns)."""

    def __init__(self, out: TextIO, plat: Platform) -> None:
        self._out = out
        gic = plat.machine.gic
        self._cpuifs = gic.cpuifs
        self._rds = gic.redists
        #: (ts, seq, signal index, value) changes, sorted at close.
        self._changes: list[tuple[int, int, int, int]] = []
        n = len(self._cpuifs)
        self._last = [-1] * (3 * n)
        self._seq = 0

    def add(self, rec: Record) -> None:
        pass

    def sample(self, ts: int) -> None:
        last = self._last
        n = len(self._cpuifs)
        for c, cpuif in enumerate(self._cpuifs):
            vals = (int(cpuif.irq_pending()), cpuif.running_priority(),
                    len(self._rds[c].lpi_pending))
            for j, v in enumerate(vals):
                i = j * n + c
                if last[i] != v:
                    last[i] = v
                    self._seq += 1
                    self._changes.append((ts, self._seq, i, v))

    def close(self) -> None:
        from vcd import VCDWriter

        n = len(self._cpuifs)
        try:
            with VCDWriter(self._out, timescale="1 ns", date="(simulated time)",
                           version="directlpi") as w:
                sigs = [w.register_var(f"cpu{c}", "irq", "wire", size=1, init=0)
                        for c in range(n)]
                sigs += [w.register_var(f"cpu{c}", "running_priority", "integer", size=8,
                                        init=0xFF) for c in range(n)]
                sigs += [w.register_var(f"rd{c}", "pending_lpis", "integer", size=32, init=0)
                         for c in range(n)]
                for ts, _seq, i, v in sorted(self._changes):
                    w.change(sigs[i], ts, v)
        finally:
            self._out.close()


# -- opening a trace ---------------------------------------------------------------------------

def trace_format(path: str | Path) -> str:
    """The format ``--trace PATH`` asks for; DirectLPIError (EINVAL) for an unknown suffix."""
    text = str(path)
    if text == "-":
        return "ftrace"
    fmt = FORMATS.get(Path(text).suffix.lower())
    if fmt is None:
        raise DirectLPIError(f"--trace {text}: unknown trace format {Path(text).suffix!r} "
                             "(known: .txt ftrace text, .json Chrome trace events, .vcd "
                             "value-change dump, - ftrace text on standard output)",
                             errno.EINVAL)
    return fmt


def open_sink(path: str | Path, plat: Platform, stdout: TextIO | None = None) -> Sink:
    """The sink for ``--trace PATH`` (``-``: ftrace text on ``stdout``).  Raises
    DirectLPIError for an unknown suffix (EINVAL) or a file that cannot be created."""
    fmt = trace_format(path)
    if str(path) == "-":
        import sys
        return FtraceSink(stdout or sys.stdout, plat.num_cpus, close_out=False)
    try:
        out = Path(path).open("w")  # noqa: SIM115 (the sink closes it, at the trace's end)
    except OSError as exc:
        raise DirectLPIError(f"--trace {path}: {exc.strerror}", exc.errno or errno.EIO) from None
    if fmt == "ftrace":
        return FtraceSink(out, plat.num_cpus, close_out=True)
    if fmt == "chrome":
        return ChromeSink(out, plat.num_cpus)
    return VcdSink(out, plat)
