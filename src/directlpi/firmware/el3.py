"""EL3 firmware's GIC set-up before a Non-secure kernel starts (two Security states).

With GICD_CTLR.DS = 0 the kernel runs at Non-secure EL1 and cannot do what only Secure
software may: put interrupts in Non-secure Group 1 (IGROUPR, IGRPMODR and GICR_IGROUPR0
are Secure only), wake the redistributors (GICR_WAKER is Secure only), or lift
ICC_PMR_EL1 out of the Secure range (with SCR_EL3.FIQ = 1 a Non-secure write to a PMR
below 0x80 is ignored, and PMR resets to 0).  Real servers have Trusted Firmware-A do it
(``drivers/arm/gic/v3/gicv3_main.c``: ``gicv3_distif_init``, ``gicv3_rdistif_init``,
``gicv3_cpuif_enable``); :func:`el3_gic_init` does the same, as Secure accesses
(``GIC.secure_world``), on every PE -- TF-A does a PE's part at its first power-on, which
comes to the same before any kernel runs:

* distributor: group enables off (RWP polled), ARE_S and ARE_NS (RAO here), every SPI
  Non-secure Group 1 (IGROUPR all ones, IGRPMODR 0) at priority 0x80
  (``GIC_HIGHEST_NS_PRIORITY``), level-sensitive; no Secure interrupts, so EnableGrp0 and
  EnableGrp1S stay 0 and EnableGrp1NS is left to the kernel (its Non-secure alias);
* each redistributor: woken (ProcessorSleep 0, ChildrenAsleep polled), SGIs and PPIs
  disabled and Non-secure Group 1 at 0x80;
* each CPU interface: ICC_SRE_EL3 (RAO here), SCR_EL3.FIQ as the board says
  (``scr_el3_fiq``), ICC_PMR_EL1 = 0xFF, ICC_IGRPEN0_EL1 = 1 and Secure Group 1 enabled
  through ICC_IGRPEN1_EL3, the Non-secure group enable left to the kernel.

kexec does not run it again (the kernel that starts is still Non-secure), as on hardware.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from functools import partial

from directlpi.errors import DirectLPIError
from directlpi.hw.bus import Bus
from directlpi.hw.machine import Machine
from directlpi.hw.regs import FIRST_SPI, GICD, GICR, GICR_SGI, SGI_BASE_OFFSET

NS_DEFAULT_PRIORITY = 0x80
"""TF-A's ``GIC_HIGHEST_NS_PRIORITY``: what every interrupt's priority is left at."""
_POLL_READS = 1000
_SCR_NS, _SCR_FIQ = 1 << 0, 1 << 2


def el3_gic_init(machine: Machine) -> None:
    """Set the GIC up as EL3 firmware does before the Non-secure world starts.  Raises
    :class:`~directlpi.errors.DirectLPIError` (EINVAL) with one Security state (there is no
    EL3 to run), ETIMEDOUT if RWP or ChildrenAsleep never clears."""
    gic = machine.gic
    if not gic.two_states:
        raise DirectLPIError("EL3 firmware set-up needs two Security states "
                             "(security_states = 2)", errno.EINVAL)
    bus = machine.bus
    d = machine.gicd_base
    spis_end = 32 * (GICD.TYPER.ITLinesNumber.get(bus.read(d + GICD.TYPER.offset, 4)) + 1)
    with gic.secure_world(0):
        bus.write(d + GICD.CTLR.offset, 0, 4)
        _poll(lambda: bus.read(d + GICD.CTLR.offset, 4) & GICD.CTLR.RWP.mask, "GICD_CTLR.RWP")
        for i in range(FIRST_SPI, min(spis_end, 1020), 32):
            bus.write(d + GICD.IGROUPR.at(i // 32), 0xFFFFFFFF, 4)
            bus.write(d + GICD.IGRPMODR.at(i // 32), 0, 4)
        for i in range(FIRST_SPI, min(spis_end, 1020), 4):
            bus.write(d + GICD.IPRIORITYR.at(i // 4), NS_DEFAULT_PRIORITY * 0x01010101, 4)
        for i in range(FIRST_SPI, min(spis_end, 1020), 16):
            bus.write(d + GICD.ICFGR.at(i // 16), 0, 4)
    fiq = machine.config.scr_el3_fiq
    for cpu in range(machine.config.cpus):
        rd = machine.gicr_base(cpu)
        sgi = rd + SGI_BASE_OFFSET
        with gic.secure_world(cpu):
            waker = rd + GICR.WAKER.offset
            bus.write(waker, bus.read(waker, 4) & ~GICR.WAKER.ProcessorSleep.mask, 4)
            _poll(partial(_waker_busy, bus, waker), f"GICR_WAKER.ChildrenAsleep of CPU{cpu}")
            bus.write(sgi + GICR_SGI.ICENABLER0.offset, 0xFFFFFFFF, 4)
            bus.write(sgi + GICR_SGI.IGROUPR0.offset, 0xFFFFFFFF, 4)
            bus.write(sgi + GICR_SGI.IGRPMODR0.offset, 0, 4)
            for n in range(8):
                bus.write(sgi + GICR_SGI.IPRIORITYR.at(n), NS_DEFAULT_PRIORITY * 0x01010101, 4)
            icc = machine.cpu(cpu)
            icc.read_sysreg("ICC_SRE_EL3")
            icc.write_sysreg("SCR_EL3", _SCR_NS | (_SCR_FIQ if fiq else 0))
            icc.write_sysreg("ICC_PMR_EL1", 0xFF)
            icc.write_sysreg("ICC_IGRPEN0_EL1", 1)
            icc.write_sysreg("ICC_IGRPEN1_EL3", icc.read_sysreg("ICC_IGRPEN1_EL3") | 0b10)


def _waker_busy(bus: Bus, waker: int) -> int:
    return bus.read(waker, 4) & GICR.WAKER.ChildrenAsleep.mask


def _poll(busy: Callable[[], int], what: str) -> None:
    for _ in range(_POLL_READS):
        if not busy():
            return
    raise DirectLPIError(f"EL3 firmware: {what} never cleared", errno.ETIMEDOUT)
