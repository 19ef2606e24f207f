"""The invariant checker: what must hold whatever the driver, workload or timing.

It listens to the hardware (every GICR_SETLPIR outcome, every MBI SPI made
pending, every acknowledge; every doorbell write when a device issues it and
when it lands) and to the kernel (handler entries, LPI and MBI allocations), and
checks, for every *message* interrupt -- an LPI, or an SPI the MBI provider
handed out (wired SPIs are not tracked):

* **no lost interrupt** -- every write its owner's device (or the kernel, retriggering
  or carrying it) makes to an allocated, requested INTID is followed by a handler run
  that starts after the write, unless the interrupt is disabled, masked or shut down
  when the check is made, or software was asked to clear the pending state since
  (irq_set_irqchip_state(PENDING, False), a shutdown or deactivation, a scrub for a new
  owner); a driver clearing it on its own loses the interrupt.  A resend by the kernel
  of what it acknowledged but could not handle carries the kinds of the write it
  re-raises (a resent spoof stays a spoof).  Edge semantics: writes may coalesce into
  one run.  A write that lands before the interrupt is requested may be delivered, but
  is not owed;
* **no spurious handler run** -- a handler runs only after a write of its INTID by its
  owner's device or the kernel since its previous run.  History starts at
  allocation: a run caused by a write of the INTID's *previous* owner (one still in
  flight when the INTID changed hands, even from the same device: each write carries the
  allocation it was issued under) is spurious.  A run caused only by spoofed
  writes is not a driver's fault: it is a security finding (the spoof reached its
  victim), listed in :attr:`spoof_reached`;
* **nothing delivered while masked** -- no message interrupt is acknowledged while the
  kernel has it masked (unless only spoofed writes made it pending: a security
  finding, as above);
* **no INTID allocated twice**;
* **no stale message** -- a device issues an LPI only to the RD the kernel routes it
  to (else an affinity change did not reach the device).  An MBI's address (the
  distributor) does not depend on the target, so it cannot go stale;
* **no misdirected message** -- a message the kernel composed for a vector names that
  vector's interrupt: sent by its device, it reaches the vector's INTID (its LPI,
  SPI, or the LPI its EventID maps to), not another one or none.

Injected faults are the platform's, not the driver's: a write the interconnect drops
(``dma_drop``) is owed nothing (``totals.dropped_by_platform``); a write of its previous
message by a device just reprogrammed (``stale_msi``) is counted in
``totals.stale_by_fault`` and is neither judged nor owed, and a handler run or an
acknowledge of a masked interrupt that only such writes caused is counted in
``totals.stale_runs_by_fault``, not reported as a violation; under ``syncr_stuck`` a
move that timed out leaves its interrupt on the CPU it targeted (the kernel warns, as
Linux does), so one owed on an offline CPU is held there until the CPU returns, counted
in ``totals.held_by_fault`` rather than reported lost.

Writes are judged when the device *issues* them (the platform's audit rule: a
message it is programmed to send now, naming an INTID it owns now), and attributed
when they *land* -- with posted writes in flight the two differ.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from directlpi.hw.events import Event, EventKind
from directlpi.hw.regs import GICD, GICR, LPI_BASE
from directlpi.kernel.context import Kind
from directlpi.kernel.irq.desc import (
    IRQD_IRQ_DISABLED,
    IRQD_IRQ_MASKED,
    IRQD_IRQ_STARTED,
    IRQD_MANAGED_SHUTDOWN,
    IrqDesc,
)

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel
    from directlpi.platform import Platform

_WRITE_OUTCOMES = ("already-pending", "lpis-disabled", "unimplemented-intid", "invalid-spi")
_WRITE_REGISTERS = ("GICR_SETLPIR", "GICD_SETSPI_NSR", "MSI_SETSPI_NS", "its",
                    "HV_MSI_DOORBELL")

#: Audit verdicts of a message the device *is* programmed to send, naming an interrupt
#: it does not own (checked against what the kernel composed: ``misdirected-message``).
_MISDIRECTED = ("names an INTID this device does not own",
                "names an EventID this device has no LPI mapped for",
                "names an interrupt the host did not grant this device")

# What a landed write was, for the INTID it names.
OWNED = "owned"          # the owner's device, or the kernel: owed a handler run
EARLY = "early"          # before the interrupt was requested: may be delivered, not owed
SPOOF = "spoof"          # not a message its writer was programmed to send, for an INTID it owns
FORMER = "former"        # legitimate when issued, but the INTID changed hands in flight
STALE = "stale"          # the device's previous message, written under the stale_msi fault

#: The verdict recorded for a stale write at its issue (no audit verdict is a string
#: like it: the audit's reasons are sentences).
_FAULT_STALE = "fault-stale-msi"


def _kind(intid: int) -> str:
    return "LPI" if intid >= LPI_BASE else "SPI"


@dataclass(frozen=True)
class Violation:
    invariant: str
    intid: int
    virq: int | None
    cpu: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "intid": self.intid, "virq": self.virq,
                "cpu": self.cpu, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


class _History:
    """An INTID since its allocation: its latest write owed a handler run, and its latest
    handler run or software clear (sequence numbers; -1: never)."""

    __slots__ = ("owed", "ran")

    def __init__(self) -> None:
        self.owed = -1
        self.ran = -1


class InvariantChecker:
    """Attach to a booted platform; call :meth:`check` when the CPUs are idle."""

    def __init__(self, plat: Platform) -> None:
        kern = plat.kernel
        assert kern is not None, "boot the platform first"
        self.plat = plat
        self.kern: Kernel = kern
        self.seq = 0
        self._hist: dict[int, _History] = defaultdict(_History)
        #: What made each INTID pending on each RD (-1: the distributor, for an MBI SPI)
        #: since that RD last gave it up: the kinds of the writes that landed there.
        self._pend: dict[tuple[int, int], set[str]] = {}
        #: The kinds behind each INTID's latest acknowledge, for the handler run after it.
        self._cause: dict[int, set[str]] = {}
        self._allocated: set[int] = set()
        self._mbi: set[int] = set()
        """SPIs the MBI provider has handed out (tracked like LPIs)."""
        #: Per bus master, the verdicts of its doorbell writes still in flight (issue order),
        #: each with the allocation epoch of the INTID it names when it was issued.
        self._verdicts: dict[str, deque[tuple[str | None, int | None]]] = defaultdict(deque)
        self._landing: str | None = None
        self._landing_epoch: int | None = None
        #: Allocations of each INTID so far: a write issued under an older one that lands
        #: now is its previous owner's, even from the same device.
        self._epoch: Counter[int] = Counter()
        self.totals: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self._misdirected_seen: set[tuple[int, int, int]] = set()
        #: Security findings: a spoofed write made a victim's handler run, or was
        #: delivered while the victim had it masked.
        self.spoof_reached: list[dict[str, Any]] = []
        self._setlpir = {plat.gicr_base(c) + GICR.SETLPIR.offset: c
                         for c in range(plat.num_cpus)}
        #: Doorbells whose address names no CPU: GICD_SETSPI_NSR (MBI), each GICv2m frame's
        #: MSI_SETSPI_NS, each ITS's GITS_TRANSLATER (data: an EventID), a Hyper-V-style
        #: host's MSI doorbell (data: a handle the host granted the writer).
        self._untargeted = {plat.gicd_base + GICD.SETSPI_NSR.offset, *plat.its_doorbells,
                            *plat.v2m_doorbells, *plat.hv_doorbells}
        self._sub = plat.observe(self._on_event, [EventKind.LPI_PENDING, EventKind.IGNORED,
                                                  EventKind.ACK, EventKind.LPI_CLEARED,
                                                  EventKind.SPI_PENDING, EventKind.SPI_CLEARED,
                                                  EventKind.DMA_DROPPED])
        bus = plat.machine.bus
        bus.add_dma_hook(self._on_issue)
        bus.add_landing_hook(self._on_land)
        kern.irq.handler_hooks.append(self._on_handler)
        if kern.lpi is not None and kern.lpi.allocator is not None:
            kern.lpi.allocator.observers.append(self._on_alloc)
            for base, size in kern.lpi.allocator.allocated_blocks():
                self._allocated.update(range(base, base + size))
        for spi_msi in (kern.mbi, kern.v2m, kern.hv):
            if spi_msi is not None:
                spi_msi.allocator.observers.append(self._on_mbi_alloc)
                self._mbi.update(spi_msi.allocator.allocated())
        self._allocated |= self._mbi

    # -- helpers ------------------------------------------------------------------------------

    def _tracked(self, intid: int) -> bool:
        return intid >= LPI_BASE or intid in self._mbi

    def _virq(self, intid: int) -> int | None:
        dom = self.kern.gic.domain
        return None if dom is None else dom.revmap.get(intid)

    def _desc(self, intid: int) -> IrqDesc | None:
        virq = self._virq(intid)
        return self.kern.irq_to_desc(virq) if virq is not None else None

    def _owner(self, desc: IrqDesc | None) -> str | None:
        """The bus master that owns this interrupt's INTID (its device), if any."""
        msi = desc.irq_data.common.msi_desc if desc is not None else None
        if msi is None:
            return None
        who = getattr(msi.dev, "bdf", msi.dev)
        return who if isinstance(who, str) else None

    def _violate(self, invariant: str, intid: int, cpu: int | None, detail: str) -> None:
        self.violations.append(Violation(invariant, intid, self._virq(intid), cpu, detail))

    def _tick(self) -> int:
        self.seq += 1
        return self.seq

    # -- doorbell writes: issued, then landed -----------------------------------------------------

    def _doorbell(self, addr: int) -> int | None:
        """The CPU whose SETLPIR ``addr`` is, -1 for a doorbell naming no CPU (MBI, GICv2m,
        ITS), None otherwise."""
        return -1 if addr in self._untargeted else self._setlpir.get(addr)

    def _on_issue(self, addr: int, value: int, size: int, master: str) -> None:
        cpu = self._doorbell(addr)
        if cpu is None:
            return
        self.totals["msis_written"] += 1
        verdict = self.plat.classify_msi(addr, value, master)
        intid = self.plat.message_intid(addr, value, master)
        if intid is None:
            intid = -1                  # an EventID the writer's table does not map
        dev = self.plat.device(master)
        if dev is not None and dev.sending_stale:
            # The stale_msi fault: the platform's, neither judged nor owed.
            self.totals["stale_by_fault"] += 1
            self._verdicts[master].append((_FAULT_STALE, self._epoch[intid]))
            return
        self._verdicts[master].append((verdict, self._epoch[intid]))
        if verdict in _MISDIRECTED:
            self._misdirected(addr, value, master, intid)
        if verdict is not None:
            return
        desc = self._desc(intid)
        if desc is not None and self._composed(desc) != (addr, value & 0xFFFF_FFFF):
            # The device owns the INTID, but the message is not the one composed for it:
            # perhaps another of its vectors' (checked), or a stale one (below).
            self._misdirected(addr, value, master, intid)
        if cpu < 0:
            return
        routed = desc.irq_data.common.effective_affinity if desc is not None else frozenset()
        if routed and cpu not in routed:
            self._violate("stale-message", intid, cpu,
                          f"{master} wrote LPI {intid} to CPU{cpu}'s GICR_SETLPIR, but the "
                          f"kernel routes IRQ {desc.irq if desc else '?'} to CPU{min(routed)}: "
                          "the device was not rewritten")

    def _misdirected(self, addr: int, value: int, master: str, intid: int) -> None:
        """The device sends a message the kernel composed for one of its vectors, and it
        does not reach that vector's interrupt: whatever the handler owes is lost."""
        k = self.kern
        for virq in k.msi_irqs_of(master):
            desc = k.irq_to_desc(virq)
            if desc is None or self._composed(desc) != (addr, value & 0xFFFF_FFFF):
                continue
            if desc.levels()[-1].hwirq == intid:
                return                  # composed for the INTID it names: fine
            key = (virq, addr, value & 0xFFFF_FFFF)
            if key in self._misdirected_seen:
                return                  # reported once per vector and message
            self._misdirected_seen.add(key)
            hwirq = desc.levels()[-1].hwirq
            if intid < 0:
                names = "no interrupt"
            elif addr in self._setlpir and intid < LPI_BASE:
                names = f"INTID {intid}, not an LPI (the redistributor ignores it)"
            else:
                owner = self.plat.owner_of(intid, 0 if intid >= LPI_BASE else -1)
                names = f"INTID {intid} ({owner})"
            self._violate("misdirected-message", hwirq, None,
                          f"{master} sends {value & 0xFFFF_FFFF:#x} to {addr:#x}, the message "
                          f"the kernel composed for IRQ {virq} ({_kind(hwirq)} {hwirq}), but it "
                          f"names {names}: IRQ {virq} never gets it")
            return

    @staticmethod
    def _composed(desc: IrqDesc) -> tuple[int, int] | None:
        """The (address, data) the kernel's MSI domain composed for ``desc``, if any."""
        dom = desc.irq_data.domain
        cached = getattr(getattr(dom, "host_data", None), "cached", {}).get(desc.irq)
        return None if cached is None else (cached.address, cached.data)

    def _on_land(self, addr: int, value: int, size: int, master: str) -> None:
        if self._doorbell(addr) is not None:
            fifo = self._verdicts[master]
            # No record: issued before the checker attached (its epoch is not known).
            self._landing, self._landing_epoch = fifo.popleft() if fifo else (None, None)

    def _classify(self, intid: int, master: str | None) -> str:
        """What a write of ``intid`` that lands now is (see the module docstring)."""
        desc = self._desc(intid)
        if master is not None:
            if self._landing is not None:
                return STALE if self._landing == _FAULT_STALE else SPOOF
            epoch = self._landing_epoch
            if master != self._owner(desc) or (epoch is not None and epoch != self._epoch[intid]):
                return FORMER
        return OWNED if desc is not None and desc.actions else EARLY

    # -- hardware events ---------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        if ev.kind is EventKind.DMA_DROPPED:
            # The platform lost it (an injected fault), right after its issue: it will
            # never land, so its verdict leaves the writer's queue; nothing is owed.
            if ev.master is not None and self._doorbell(ev.addr) is not None:
                fifo = self._verdicts[ev.master]
                if fifo:
                    fifo.pop()
                self.totals["dropped_by_platform"] += 1
            return
        intid = ev.intid
        if not self._tracked(intid):
            return
        kind = ev.kind
        rd = ev.cpu if intid >= LPI_BASE else -1
        if kind is EventKind.ACK:
            self._on_ack(ev, rd)
            return
        h = self._hist[intid]
        if kind is EventKind.LPI_CLEARED or kind is EventKind.SPI_CLEARED:
            self._on_clear(intid, rd, h)
            return
        if kind is EventKind.IGNORED:
            if ev.register not in _WRITE_REGISTERS or ev.reason not in _WRITE_OUTCOMES:
                return
            if ev.reason == "already-pending":
                self.totals["coalesced"] += 1
        elif ev.reason == "pending-table":
            return                    # pending state restored at EnableLPIs, not a write
        elif ev.reason == "its-move":
            # An ITS MOVI/MOVALL carried the pending state to this RD: not a write, the
            # same pending state (under the ITS an LPI is pending on one RD at most).
            moved = self._pend.setdefault((intid, rd), set())
            for key in [k for k in self._pend if k[0] == intid and k[1] != rd]:
                moved |= self._pend.pop(key)
            return
        self.totals["lpi_writes"] += 1
        seq = self._tick()
        kinds = self._carried(intid, ev.master)
        if kinds is None and ev.master is None:
            # The kernel re-raising what it acknowledged but could not handle (a resend
            # of an interrupt disabled or in progress): it carries that write's kinds.
            kinds = self._cause.pop(intid, None) or None
        if kinds is None:
            kinds = {self._classify(intid, ev.master)}
        if OWNED in kinds:
            h.owed = seq
        if kind is not EventKind.IGNORED or ev.reason == "already-pending":
            self._pend.setdefault((intid, rd), set()).update(kinds)

    def _on_clear(self, intid: int, rd: int, h: _History) -> None:
        """Software cleared the pending state (GICR_CLRLPIR, GICD_ICPENDR).  Asked for
        (irq_set_irqchip_state(PENDING, False), an interrupt shut down or deactivated,
        an INTID scrubbed for a new owner), what was written is cancelled, not lost, and
        a handler run now would be spurious.  A driver clearing, on its own, what a
        started interrupt still owes loses it."""
        self._pend.pop((intid, rd), None)
        desc = self._desc(intid)
        if (desc is None or self.kern.irq.discarding or intid not in self._allocated
                or not desc.irq_data.has(IRQD_IRQ_STARTED)):
            h.ran = self._tick()
        elif h.owed > h.ran:
            h.ran = self._tick()
            self._violate("lost-interrupt", intid, rd,
                          f"{_kind(intid)} {intid} (IRQ {desc.irq}, {self._name(desc)}) "
                          "owed a handler run, and the driver cleared its pending state "
                          + ("in the distributor" if rd < 0 else f"on CPU{rd}'s redistributor"))

    def _carried(self, intid: int, master: str | None) -> set[str] | None:
        """A write by the kernel on a dying CPU carries what that CPU's RD held (acknowledged
        there, or written back to its pending table): it keeps the kinds it carries -- both
        (an LPI acknowledged there and made pending again since is carried once), so that
        nothing of it stays recorded as pending on the dying RD."""
        f = self.kern.ctx.current
        if master is not None or f is None or f.kind is not Kind.STOPPER:
            return None
        return self._cause.pop(intid, set()) | self._pend.pop((intid, f.cpu), set())

    def _on_ack(self, ev: Event, rd: int) -> None:
        cause = self._pend.pop((ev.intid, rd), set())
        self._cause[ev.intid] = cause
        desc = self._desc(ev.intid)
        if desc is None or not desc.irq_data.has(IRQD_IRQ_MASKED):
            return
        f = self.kern.ctx.current
        if f is not None and f.kind is Kind.STOPPER:
            return        # a dying CPU draining its RD to carry it: no handler runs here
        if cause == {SPOOF}:
            self._security(ev.intid, desc, ev.cpu, "delivered while masked")
            return
        if STALE in cause and cause <= {STALE, SPOOF}:
            self.totals["stale_runs_by_fault"] += 1
            return
        self._violate("delivered-while-masked", ev.intid, ev.cpu,
                      f"{_kind(ev.intid)} {ev.intid} (IRQ {desc.irq}) acknowledged on "
                      f"CPU{ev.cpu} while the kernel has it masked")

    def _security(self, intid: int, desc: IrqDesc, cpu: int, what: str) -> None:
        self.spoof_reached.append({"intid": intid, "virq": desc.irq, "cpu": cpu, "what": what,
                                   "victim": self._name(desc)})

    # -- kernel events -----------------------------------------------------------------------------

    def _on_handler(self, desc: IrqDesc) -> None:
        intid = desc.levels()[-1].hwirq
        if not self._tracked(intid):
            return
        seq = self._tick()
        self.totals["handled"] += 1
        cause = self._cause.pop(intid, set())
        cpu = self.kern.this_cpu
        if not cause & {OWNED, EARLY}:
            if FORMER in cause:
                self._violate("spurious-handler-run", intid, cpu,
                              f"IRQ {desc.irq} ({_kind(intid)} {intid}) handled on CPU{cpu} "
                              "for a write by its INTID's previous owner: the write was still "
                              "in flight when the INTID changed hands")
            elif SPOOF in cause:
                self._security(intid, desc, cpu, "its handler ran")
            elif STALE in cause:
                self.totals["stale_runs_by_fault"] += 1
            else:
                self._violate("spurious-handler-run", intid, cpu,
                              f"IRQ {desc.irq} ({_kind(intid)} {intid}) handled on CPU{cpu} "
                              "with no write of its INTID by its device or the kernel that "
                              "made it pending there since its allocation or its previous run")
        self._hist[intid].ran = seq

    def _on_mbi_alloc(self, op: str, base: int, size: int) -> None:
        span = set(range(base, base + size))
        if op == "alloc":
            self._mbi |= span
            self._on_alloc(op, base, size)
        else:
            self._on_alloc(op, base, size)
            self._mbi -= span

    def _on_alloc(self, op: str, base: int, size: int) -> None:
        span = set(range(base, base + size))
        if op == "alloc":
            twice = span & self._allocated
            if twice:
                self._violate("intid-allocated-twice", min(twice), None,
                              f"INTIDs {sorted(twice)[:8]} handed out while still allocated")
            self._allocated |= span
            for intid in span:              # a new owner starts a new history
                self._epoch[intid] += 1
                self._hist.pop(intid, None)
                self._cause.pop(intid, None)
            for key in [k for k in self._pend if k[0] in span]:
                del self._pend[key]
        else:
            self._allocated -= span

    # -- the end-of-run check ---------------------------------------------------------------------

    def _enabled(self, desc: IrqDesc) -> bool:
        d = desc.irq_data
        return bool(desc.actions) and desc.depth == 0 and not d.has(
            IRQD_IRQ_DISABLED | IRQD_IRQ_MASKED | IRQD_MANAGED_SHUTDOWN)

    def check(self) -> list[Violation]:
        """Report lost interrupts (call when the CPUs are idle); returns all violations."""
        reported = {(v.invariant, v.intid) for v in self.violations}
        for intid, h in sorted(self._hist.items()):
            if h.owed <= h.ran or intid not in self._allocated:
                continue
            desc = self._desc(intid)
            if desc is None or not self._enabled(desc):
                continue
            if ("lost-interrupt", intid) in reported:
                continue
            if self._held_by_fault(desc, intid):
                self.totals["held_by_fault"] += 1
                continue
            self._violate("lost-interrupt", intid, None,
                          f"{_kind(intid)} {intid} (IRQ {desc.irq}, {self._name(desc)}) was "
                          "written but no handler ran after the write, although it is enabled")
        self.totals["lost"] = sum(1 for v in self.violations if v.invariant == "lost-interrupt")
        self.totals["spurious"] = sum(1 for v in self.violations
                                      if v.invariant == "spurious-handler-run")
        return self.violations

    def _held_by_fault(self, desc: IrqDesc, intid: int) -> bool:
        """Under the syncr_stuck fault, an interrupt left on an offline CPU (its migration
        timed out, or every other RD it may go to is wedged) waits there for the CPU to
        return: not lost yet.  So does one written while it was left there and moved away
        since: its pending state stays in that CPU's RD (EnableLPIs could not be cleared,
        and no register moves an LPI's pending state out of an RD), which delivers it when
        its CPU returns."""
        if not self.plat.machine.config.syncr_stuck:
            return False
        online = self.kern.irq.online
        routed = desc.irq_data.common.effective_affinity
        if routed and not routed & online:
            return True
        return intid >= LPI_BASE and any(
            intid in rd.lpi_pending for rd in self.plat.machine.gic.redists
            if rd.cpu not in online)

    @staticmethod
    def _name(desc: IrqDesc) -> str:
        return ", ".join(a.name for a in desc.actions) or "no action"

    def detach(self) -> None:
        self._sub.cancel()
        bus = self.plat.machine.bus
        bus.remove_dma_hook(self._on_issue)
        bus.remove_landing_hook(self._on_land)
        if self._on_handler in self.kern.irq.handler_hooks:
            self.kern.irq.handler_hooks.remove(self._on_handler)
