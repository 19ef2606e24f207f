"""The invariant checker: what must hold whatever the driver, workload or timing.

It listens to the hardware (every GICR_SETLPIR outcome, every MBI SPI made
pending, every acknowledge, every DMA write to a doorbell) and to the kernel
(handler entries, LPI and MBI allocations), and checks, for every *message*
interrupt -- an LPI, or an SPI the MBI provider handed out (wired SPIs are not
tracked):

* **no lost interrupt** -- every write of an allocated INTID (a device's MSI to
  GICR_SETLPIR or GICD_SETSPI_NSR, or the kernel retriggering or carrying it
  over) is followed by a handler run that starts after the write, unless the
  interrupt is disabled, masked or shut down when the check is made, or
  software cleared the pending state since (GICR_CLRLPIR, GICD_ICPENDR) (edge
  semantics: several writes may coalesce into one run);
* **no spurious handler run** -- a handler runs only if its LPI was written since
  the previous run;
* **nothing delivered while masked** -- no message interrupt is acknowledged while
  the kernel has it masked;
* **no INTID allocated twice**;
* **no stale message** -- a device writes an LPI only to the RD the kernel routes
  it to (else an affinity change did not reach the device).  An MBI's address
  (the distributor) does not depend on the target, so it cannot go stale.

A spoofed MSI (a pair the device was never programmed with) is a security
finding reported by the platform, not a violation here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from directlpi.hw.events import Event, EventKind
from directlpi.hw.regs import GICD, GICR, LPI_BASE
from directlpi.kernel.irq.desc import (
    IRQD_IRQ_DISABLED,
    IRQD_IRQ_MASKED,
    IRQD_MANAGED_SHUTDOWN,
    IrqDesc,
)

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel
    from directlpi.platform import Platform

_WRITE_OUTCOMES = ("already-pending", "lpis-disabled", "unimplemented-intid")
_WRITE_REGISTERS = ("GICR_SETLPIR", "GICD_SETSPI_NSR")


def _kind(intid: int) -> str:
    return "LPI" if intid >= LPI_BASE else "MBI SPI"


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


class InvariantChecker:
    """Attach to a booted platform; call :meth:`check` when the CPUs are idle."""

    def __init__(self, plat: Platform) -> None:
        kern = plat.kernel
        assert kern is not None, "boot the platform first"
        self.plat = plat
        self.kern: Kernel = kern
        self.seq = 0
        self._write_seq: dict[int, int] = {}
        self._run_seq: dict[int, int] = {}
        self._allocated: set[int] = set()
        self._mbi: set[int] = set()
        """SPIs the MBI provider has handed out (tracked like LPIs)."""
        self.totals: Counter[str] = Counter()
        self.violations: list[Violation] = []
        self._setlpir = {plat.gicr_base(c) + GICR.SETLPIR.offset: c
                         for c in range(plat.num_cpus)}
        self._setspi = plat.gicd_base + GICD.SETSPI_NSR.offset
        self._sub = plat.observe(self._on_event, [EventKind.LPI_PENDING, EventKind.IGNORED,
                                                  EventKind.ACK, EventKind.LPI_CLEARED,
                                                  EventKind.SPI_PENDING, EventKind.SPI_CLEARED])
        plat.machine.bus.add_dma_hook(self._on_dma)
        kern.irq.handler_hooks.append(self._on_handler)
        if kern.lpi is not None and kern.lpi.allocator is not None:
            kern.lpi.allocator.observers.append(self._on_alloc)
            for base, size in kern.lpi.allocator.allocated_blocks():
                self._allocated.update(range(base, base + size))
        if kern.mbi is not None:
            kern.mbi.allocator.observers.append(self._on_mbi_alloc)
            self._mbi.update(kern.mbi.allocator.allocated())
            self._allocated |= self._mbi

    # -- helpers ------------------------------------------------------------------------------

    def _tracked(self, intid: int) -> bool:
        return intid >= LPI_BASE or intid in self._mbi

    def _virq(self, intid: int) -> int | None:
        dom = self.kern.gic.domain
        return None if dom is None else dom.revmap.get(intid)

    def _violate(self, invariant: str, intid: int, cpu: int | None, detail: str) -> None:
        self.violations.append(Violation(invariant, intid, self._virq(intid), cpu, detail))

    # -- observations ----------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        if not self._tracked(ev.intid):
            return
        if ev.kind is EventKind.ACK:
            self._on_ack(ev)
            return
        if ev.kind in (EventKind.LPI_CLEARED, EventKind.SPI_CLEARED):
            # Software cleared the pending state (GICR_CLRLPIR, GICD_ICPENDR): what was
            # written is cancelled, not lost -- and a handler run now would be spurious.
            self.seq += 1
            self._run_seq[ev.intid] = self.seq
            return
        if ev.kind is EventKind.IGNORED and (ev.register not in _WRITE_REGISTERS
                                             or ev.reason not in _WRITE_OUTCOMES):
            return
        if ev.kind is EventKind.IGNORED and ev.reason == "already-pending":
            self.totals["coalesced"] += 1
        self.seq += 1
        self._write_seq[ev.intid] = self.seq
        self.totals["lpi_writes"] += 1

    def _on_ack(self, ev: Event) -> None:
        virq = self._virq(ev.intid)
        desc = self.kern.irq_to_desc(virq) if virq is not None else None
        if desc is not None and desc.irq_data.has(IRQD_IRQ_MASKED):
            self._violate("delivered-while-masked", ev.intid, ev.cpu,
                          f"{_kind(ev.intid)} {ev.intid} (IRQ {virq}) acknowledged on "
                          f"CPU{ev.cpu} while the "
                          "kernel has it masked")

    def _on_dma(self, addr: int, value: int, size: int, master: str) -> None:
        if addr == self._setspi:
            self.totals["msis_written"] += 1
            return
        cpu = self._setlpir.get(addr)
        if cpu is None:
            return
        self.totals["msis_written"] += 1
        intid = value & 0xFFFFFFFF
        virq = self._virq(intid)
        if virq is None:
            return
        desc = self.kern.irq_to_desc(virq)
        if desc is None:
            return
        dev = self.plat.pci_devices.get(master) or self.plat.platform_devices.get(master)
        if dev is None or not dev.was_programmed_with(addr, value):
            return                                   # a spoof: the platform reports it
        assert desc is not None
        routed = desc.irq_data.common.effective_affinity
        if routed and cpu not in routed:
            self._violate("stale-message", intid, cpu,
                          f"{master} wrote LPI {intid} to CPU{cpu}'s GICR_SETLPIR, but the "
                          f"kernel routes IRQ {virq} to CPU{min(routed)}: the device was not "
                          "rewritten")

    def _on_handler(self, desc: IrqDesc) -> None:
        intid = desc.levels()[-1].hwirq
        if not self._tracked(intid):
            return
        self.seq += 1
        self.totals["handled"] += 1
        if self._write_seq.get(intid, -1) <= self._run_seq.get(intid, -1):
            self._violate("spurious-handler-run", intid, self.kern.this_cpu,
                          f"IRQ {desc.irq} ({_kind(intid)} {intid}) handled on "
                          f"CPU{self.kern.this_cpu} "
                          "with no write of its INTID since its previous run")
        self._run_seq[intid] = self.seq

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
        else:
            self._allocated -= span
            for intid in span:              # a new owner starts a new history
                self._write_seq.pop(intid, None)
                self._run_seq.pop(intid, None)

    # -- the end-of-run check ---------------------------------------------------------------------

    def _enabled(self, desc: IrqDesc) -> bool:
        d = desc.irq_data
        return bool(desc.actions) and desc.depth == 0 and not d.has(
            IRQD_IRQ_DISABLED | IRQD_IRQ_MASKED | IRQD_MANAGED_SHUTDOWN)

    def check(self) -> list[Violation]:
        """Report lost interrupts (call when the CPUs are idle); returns all violations."""
        reported = {(v.invariant, v.intid) for v in self.violations}
        for intid, wseq in sorted(self._write_seq.items()):
            if wseq <= self._run_seq.get(intid, -1) or intid not in self._allocated:
                continue
            virq = self._virq(intid)
            desc = self.kern.irq_to_desc(virq) if virq is not None else None
            if desc is None or not self._enabled(desc):
                continue
            if ("lost-interrupt", intid) in reported:
                continue
            self._violate("lost-interrupt", intid, None,
                          f"{_kind(intid)} {intid} (IRQ {virq}, {self._name(desc)}) was "
                          "written but no "
                          "handler ran after the write, although it is enabled")
        self.totals["lost"] = sum(1 for v in self.violations if v.invariant == "lost-interrupt")
        self.totals["spurious"] = sum(1 for v in self.violations
                                      if v.invariant == "spurious-handler-run")
        return self.violations

    @staticmethod
    def _name(desc: IrqDesc) -> str:
        return ", ".join(a.name for a in desc.actions) or "no action"

    def detach(self) -> None:
        self._sub.cancel()
        self.plat.machine.bus.remove_dma_hook(self._on_dma)
        if self._on_handler in self.kern.irq.handler_hooks:
            self.kern.irq.handler_hooks.remove(self._on_handler)
