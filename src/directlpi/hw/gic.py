"""The GICv3 as a whole: one distributor, one redistributor and CPU interface per PE.

This module only wires the blocks together; each block's behaviour lives in its
own module.  ITSes and GICv2m frames, when a machine has them, are separate frames
on the bus (:mod:`directlpi.hw.its`, :mod:`directlpi.hw.gicv2m`), built by the machine.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from directlpi.errors import DirectLPIError
from directlpi.hw.cpuif import CPUInterface
from directlpi.hw.distributor import Distributor
from directlpi.hw.events import EventHub
from directlpi.hw.memory import PhysicalMemory
from directlpi.hw.redistributor import Redistributor
from directlpi.hw.regs import affinity_of


class GIC:
    """Distributor + redistributors + CPU interfaces of a GICv3."""

    def __init__(self, hub: EventHub, memory: PhysicalMemory, *, mpidrs: Sequence[int],
                 last_flags: Sequence[bool], direct_lpi: Sequence[bool], spis: int,
                 lpi_id_bits: int, lpis: bool, mbis: bool, lpis_clearable: bool,
                 priority_bits: int, rd_coherent: bool = True) -> None:
        self.hub = hub
        self.num_cpus = len(mpidrs)
        #: Derived: PEs whose IRQ/FIQ signal may have changed since the run loop last
        #: looked.  Every state change that can raise a PE's signal adds that PE.
        self.kicked: set[int] = set()
        #: The PE whose instruction stream is running (set by the platform while software
        #: runs on a PE); None: no software runs, a caller stands in for any PE.
        self.executing: int | None = None
        #: Two Security states (GICD_CTLR.DS = 0), set at reset by :meth:`set_two_states`.
        self.two_states = False
        #: The Security state of the software now running (True only inside
        #: :meth:`secure_world`): its MMIO transactions and system register accesses are
        #: Secure.  Bus masters other than PEs (devices) are always Non-secure.
        self.secure = False
        #: INTID bits of the GIC (GICD_TYPER.IDbits + 1).
        self.id_bits = lpi_id_bits if lpis else 10
        self.cpu_by_affinity = {affinity_of(m): i for i, m in enumerate(mpidrs)}
        #: GICR_PROPBASER of the RDs with LPIs enabled, counted (CommonLPIAff = 0: one
        #: value at most while any is enabled).  PROPBASER cannot change while enabled.
        self.enabled_propbasers: Counter[int] = Counter()
        self.dist = Distributor(self, hub, spis=spis, lpi_id_bits=lpi_id_bits, lpis=lpis,
                                mbis=mbis, priority_bits=priority_bits)
        self.redists = [
            Redistributor(self, hub, memory, cpu=i, affinity=affinity_of(m), last=last_flags[i],
                          plpis=lpis, direct_lpi=direct_lpi[i], lpis_clearable=lpis_clearable,
                          priority_bits=priority_bits, coherent=rd_coherent)
            for i, m in enumerate(mpidrs)
        ]
        self.cpuifs = [
            CPUInterface(self, hub, cpu=i, mpidr=m, rd=self.redists[i], dist=self.dist,
                         priority_bits=priority_bits, id_bits=self.id_bits)
            for i, m in enumerate(mpidrs)
        ]

    def set_two_states(self) -> None:
        """Reset with two Security states (GICD_CTLR.DS = 0): the machine option
        ``security_states = 2``."""
        self.two_states = True
        self.dist.set_two_states()
        for rd in self.redists:
            rd.set_two_states()
        for cpuif in self.cpuifs:
            cpuif.set_two_states()

    @contextmanager
    def secure_world(self, cpu: int) -> Iterator[None]:
        """Run code as PE ``cpu`` at EL3 (SCR_EL3.NS = 0): every access it makes is Secure.
        Only with two Security states; what EL3 firmware does before Linux starts runs
        here (:mod:`directlpi.firmware.el3`)."""
        if not self.two_states:
            raise DirectLPIError("one Security state (GICD_CTLR.DS = 1): there is no Secure "
                                 "state to run in", errno.EINVAL)
        saved = (self.executing, self.secure)
        self.executing, self.secure = cpu, True
        try:
            yield
        finally:
            self.executing, self.secure = saved

    def kick_all(self) -> None:
        self.kicked.update(range(self.num_cpus))

    def set_spi_line(self, intid: int, level: bool) -> None:
        """Drive a wired SPI input (a level or edge device output)."""
        if not self.dist.valid_spi(intid):
            raise DirectLPIError(f"INTID {intid} is not an implemented SPI", errno.EINVAL)
        self.dist.set_line(intid, level)

    def set_ppi_line(self, cpu: int, intid: int, level: bool) -> None:
        """Drive PE ``cpu``'s PPI input ``intid`` (16..31)."""
        if not 16 <= intid < 32:
            raise DirectLPIError(f"INTID {intid} is not a PPI (16..31)", errno.EINVAL)
        self.redists[cpu].sgi.set_line(intid, level)
