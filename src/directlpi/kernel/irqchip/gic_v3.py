"""The GICv3 root interrupt controller driver (Linux ``drivers/irqchip/irq-gic-v3.c``).

Probe (distributor type, every redistributor region, which RD belongs to which
CPU, platform-wide properties such as Direct LPI -- usable only if *every* RD
reports it), distributor and CPU interface initialisation, the root handler
(``gic_handle_irq``: ICC_IAR1_EL1, the mapped interrupt's flow handler, EOI),
the SGI/PPI/SPI chip, and the GIC irq domain.  Everything goes through MMIO and
ICC_* system registers.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from directlpi.hw.regs import GICD, GICR, GICR_SGI, ICC, LPI_BASE, SGI_BASE_OFFSET
from directlpi.kernel.context import RANK_RD, SpinLock
from directlpi.kernel.errors import KernelError
from directlpi.kernel.fwdesc import GicDescription
from directlpi.kernel.irq.chip import (
    IRQ_SET_MASK_OK_DONE,
    IRQCHIP_MASK_ON_SUSPEND,
    IRQCHIP_SET_TYPE_MASKED,
    IRQCHIP_SKIP_SET_WAKE,
    IRQCHIP_STATE_ACTIVE,
    IRQCHIP_STATE_MASKED,
    IRQCHIP_STATE_PENDING,
    IrqChip,
)
from directlpi.kernel.irq.desc import (
    IRQ_TYPE_EDGE_RISING,
    IRQ_TYPE_LEVEL_HIGH,
    IRQ_TYPE_NONE,
    IRQ_TYPE_SENSE_MASK,
    IRQD_PER_CPU,
    IRQD_SINGLE_TARGET,
    Cpumask,
    IrqAction,
    IrqData,
)
from directlpi.kernel.irq.domain import (
    DomainBusToken,
    IrqDomain,
    IrqDomainOps,
    IrqFwspec,
    irq_domain_free_irqs_common,
    irq_domain_set_info,
)
from directlpi.kernel.irq.flow import handle_fasteoi_irq, handle_percpu_devid_irq

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel

GICD_INT_DEF_PRI: Final = 0xA0
DEFAULT_PMR_VALUE: Final = 0xF0
GIC_IRQ_TYPE_LPI: Final = 0xA110C8ED
"""DT specifier type for a raw LPI INTID (Linux ``GIC_IRQ_TYPE_LPI``)."""
RWP_TIMEOUT_READS: Final = 1000


@dataclass(eq=False)
class Rdist:
    """What the driver knows about one CPU's redistributor (Linux ``struct rdist``)."""

    rd_base: int
    region: int
    typer: int
    cpu: int
    lpi_enabled: bool = False
    ces: bool = False
    """GICR_CTLR.CES: EnableLPIs can be cleared (and the pending state written back)."""
    wedged: bool = False
    """LPIs are on in this RD (a previous kernel left EnableLPIs set and it cannot be
    cleared) but it never completed the GICR_SYNCR that adopting it needs: the kernel
    does not use it (``lpi_enabled`` stays False, no LPI targets it), yet it still holds
    pending state and may deliver it, so scrubs still write it (see ``scrub``)."""
    lock: SpinLock = field(init=False)
    """``rd_lock``: serialises Direct LPI register sequences (INVLPIR/CLRLPIR + SYNCR)."""

    def __post_init__(self) -> None:
        self.lock = SpinLock(f"rdist[CPU{self.cpu}].rd_lock", RANK_RD)

    @property
    def sgi_base(self) -> int:
        return self.rd_base + SGI_BASE_OFFSET


class GicV3:
    """One GICv3 (Linux ``gic_data``)."""

    def __init__(self, kernel: Kernel, desc: GicDescription) -> None:
        self.k = kernel
        self.desc = desc
        self.dist_base = desc.dist_base
        self.rdists: dict[int, Rdist] = {}
        self.irq_nr = 0
        self.has_lpis = False
        self.has_mbis = False
        self.has_rss = False
        self.has_direct_lpi = False
        #: ``gic_prio_init``: GICD_CTLR.DS as the kernel reads it, whether it can reach
        #: Group 0 (SCR_EL3.FIQ = 0), and the priority it programs for every interrupt
        #: (SPIs, SGIs, PPIs and the LPI property table).
        self.security_disabled = True
        self.has_group0 = True
        self.dist_prio_irq = GICD_INT_DEF_PRI
        self.id_bits = 0
        self.domain: IrqDomain | None = None
        self._ipi_fwspec: IrqFwspec | None = None
        #: ICC_IAR1_EL1 and ICC_EOIR1_EL1 of each CPU, resolved once (the hot path names
        #: no register: ``read_sysreg("ICC_IAR1_EL1")`` would look it up on every IRQ).
        self._iar1 = kernel.sysreg_readers("ICC_IAR1_EL1")
        self._eoir1 = kernel.sysreg_writers("ICC_EOIR1_EL1")
        self.chip = IrqChip(
            name="GICv3", irq_mask=self.mask_irq, irq_unmask=self.unmask_irq,
            irq_eoi=self.eoi_irq, irq_set_type=self.set_type,
            irq_set_affinity=self.set_affinity, irq_retrigger=self.retrigger,
            irq_get_irqchip_state=self.get_irqchip_state,
            irq_set_irqchip_state=self.set_irqchip_state,
            flags=IRQCHIP_SET_TYPE_MASKED | IRQCHIP_SKIP_SET_WAKE | IRQCHIP_MASK_ON_SUSPEND)

    # -- probe -------------------------------------------------------------------------------

    def init_bases(self) -> None:
        """``gic_init_bases``: probe the distributor and every RD, build the domain."""
        k = self.k
        pidr2 = k.readl(self.dist_base + 0xFFE8)
        if (pidr2 >> 4) & 0xF not in (3, 4):
            raise KernelError(f"GICv3: no distributor detected at {self.dist_base:#x}, giving "
                              "up", errno.ENODEV)
        typer = k.readl(self.dist_base + GICD.TYPER.offset)
        self.irq_nr = min(32 * (GICD.TYPER.ITLinesNumber.get(typer) + 1), 1020)
        self.id_bits = GICD.TYPER.IDbits.get(typer) + 1
        self.has_lpis = bool(GICD.TYPER.LPIS.get(typer))
        self.has_mbis = bool(GICD.TYPER.MBIS.get(typer))
        self.has_rss = bool(GICD.TYPER.RSS.get(typer))
        k.log.info(f"GICv3: {self.irq_nr - 32} SPIs implemented")
        k.log.info("GICv3: 0 Extended SPIs implemented")
        k.log.info(f"GICv3: Distributor has {'' if self.has_rss else 'no '}Range Selector "
                   "support")
        self.domain = k.irq.create_domain(
            "GICv3", self.desc.fwnode,
            IrqDomainOps(alloc=self._domain_alloc, free=irq_domain_free_irqs_common,
                         translate=self._translate, select=self._select),
            host_data=self, bus_token=DomainBusToken.WIRED)
        self._update_rdist_properties()
        features = "16 PPIs" + (", RSS" if self.has_rss else "") + (
            ", DirectLPI" if self.has_direct_lpi else "")
        k.log.info(f"GICv3: GICv3 features: {features}")
        self.prio_init()
        self.dist_init()

    def _has_group0(self) -> bool:
        """``gic_has_group0``: with SCR_EL3.FIQ = 1 a Non-secure PMR write is shifted into
        the Non-secure range, so the highest non-zero priority written reads back as 0."""
        k = self.k
        pribits = ICC.CTLR.PRIbits.get(k.read_sysreg("ICC_CTLR_EL1")) + 1
        old = k.read_sysreg("ICC_PMR_EL1")
        k.write_sysreg("ICC_PMR_EL1", 1 << (8 - pribits))
        val = k.read_sysreg("ICC_PMR_EL1")
        k.write_sysreg("ICC_PMR_EL1", old)
        return val != 0

    def prio_init(self) -> None:
        """``gic_prio_init`` (Linux 6.12): learn the security configuration and pick the
        priority to program.  Running Non-secure on a GIC with two Security states, a
        priority written to the (re)distributor or the LPI property table is seen through
        the Non-secure view (``0x80 | p >> 1``); so is ICC_PMR_EL1 when Group 0 belongs to
        EL3 (SCR_EL3.FIQ = 1), and then the same values work.  With SCR_EL3.FIQ = 0 PMR is
        not shifted, so the kernel writes ``p << 1`` (``__gicv3_prio_to_ns``) for the
        interrupt to sit at ``p`` -- it does not own priorities 0x00..0x7F."""
        k = self.k
        ctlr = k.readl(self.dist_base + GICD.CTLR.offset)
        self.security_disabled = bool(ctlr & GICD.CTLR.DS.mask)
        self.has_group0 = self._has_group0()
        self.dist_prio_irq = GICD_INT_DEF_PRI
        if self.has_group0 and not self.security_disabled:
            self.dist_prio_irq = (GICD_INT_DEF_PRI << 1) & 0xFF
        k.log.info(f"GICv3: GICD_CTLR.DS={int(self.security_disabled)}, "
                   f"SCR_EL3.FIQ={int(not self.has_group0)}")

    def iterate_rdists(self) -> list[tuple[int, int, int]]:
        """Walk every GICR region: (region index, RD_base, GICR_TYPER) per RD found."""
        k = self.k
        found = []
        for region, (base, size) in enumerate(self.desc.redist_regions):
            pidr2 = k.readl(base + 0xFFE8)
            if (pidr2 >> 4) & 0xF not in (3, 4):
                k.log.warn(f"GICv3: No redistributor present @{base:#x}")
                break
            ptr = base
            while ptr < base + size:
                typer = k.readq(ptr + GICR.TYPER.offset)
                found.append((region, ptr, typer))
                if GICR.TYPER.Last.get(typer):
                    break
                if self.desc.redist_stride:
                    ptr += self.desc.redist_stride
                else:
                    ptr += 0x20000 + (0x20000 if GICR.TYPER.VLPIS.get(typer) else 0)
        return found

    def _update_rdist_properties(self) -> None:
        """Direct LPI is a platform property only if *every* RD has it (AND, not OR)."""
        rds = self.iterate_rdists()
        self.has_direct_lpi = bool(rds) and all(
            GICR.TYPER.DirectLPI.get(t) for _, _, t in rds)
        self.all_rds = rds
        # What gic_populate_rdist's walk finds for each affinity, found once: the register
        # reads are the walk's; the host work per CPU is not a walk of every RD again.
        self._rd_by_affinity: dict[int, tuple[int, int, int]] = {}
        for rd in rds:
            self._rd_by_affinity.setdefault(GICR.TYPER.Affinity_Value.get(rd[2]), rd)

    def populate_rdist(self, cpu: int) -> Rdist:
        """Find the RD whose GICR_TYPER affinity matches this CPU's MPIDR."""
        mpidr = self.k.board.cpus[cpu]
        aff = (((mpidr >> 32) & 0xFF) << 24) | (mpidr & 0xFFFFFF)
        found = self._rd_by_affinity.get(aff)
        if found is not None:
            region, ptr, typer = found
            rd = Rdist(ptr, region, typer, cpu)
            self.rdists[cpu] = rd
            self.k.log.info(f"GICv3: CPU{cpu}: found redistributor {mpidr:x} region "
                            f"{region}:{ptr:#018x}")
            return rd
        raise KernelError(f"GICv3: CPU{cpu}: mpidr {mpidr:x} has no re-distributor!",
                          errno.ENODEV)

    # -- distributor and CPU interface init --------------------------------------------------

    def _wait_rwp(self, addr: int, bit: int, what: str) -> None:
        for _ in range(RWP_TIMEOUT_READS):
            if not self.k.readl(addr) & bit:
                return
        raise KernelError(f"GICv3: RWP timeout on {what}, gone fishing", errno.ETIMEDOUT)

    def dist_wait_for_rwp(self) -> None:
        self._wait_rwp(self.dist_base + GICD.CTLR.offset, GICD.CTLR.RWP.mask, "the distributor")

    def dist_init(self) -> None:
        k = self.k
        d = self.dist_base
        k.writel(0, d + GICD.CTLR.offset)
        self.dist_wait_for_rwp()
        for i in range(32, self.irq_nr, 32):
            k.writel(0xFFFFFFFF, d + GICD.IGROUPR.at(i // 32))
        for i in range(32, self.irq_nr, 16):
            k.writel(0, d + GICD.ICFGR.at(i // 16))
        for i in range(32, self.irq_nr, 4):
            k.writel(self.dist_prio_irq * 0x01010101, d + GICD.IPRIORITYR.at(i // 4))
        for i in range(32, self.irq_nr, 32):
            k.writel(0xFFFFFFFF, d + GICD.ICACTIVER.at(i // 32))
            k.writel(0xFFFFFFFF, d + GICD.ICENABLER.at(i // 32))
        self.dist_wait_for_rwp()
        k.writel(GICD.CTLR.EnableGrp0.mask | GICD.CTLR.EnableGrp1.mask, d + GICD.CTLR.offset)
        self.dist_wait_for_rwp()
        affinity = self.cpu_to_affinity(k.boot_cpu)
        for i in range(32, self.irq_nr):
            k.writeq(affinity, d + GICD.IROUTER.at(i))

    def cpu_to_affinity(self, cpu: int) -> int:
        """IROUTER value for ``cpu``: Aff3 << 32 | Aff2 << 16 | Aff1 << 8 | Aff0."""
        mpidr = self.k.board.cpus[cpu]
        return (((mpidr >> 32) & 0xFF) << 32) | (mpidr & 0xFFFFFF)

    def cpu_init(self, cpu: int) -> None:
        """``gic_cpu_init`` on ``cpu``: find and wake its RD, set up SGIs/PPIs and ICC regs."""
        k = self.k
        rd = self.rdists.get(cpu) or self.populate_rdist(cpu)
        k.writel(0, rd.rd_base + GICR.WAKER.offset)
        for _ in range(RWP_TIMEOUT_READS):
            if not k.readl(rd.rd_base + GICR.WAKER.offset) & GICR.WAKER.ChildrenAsleep.mask:
                break
        else:
            raise KernelError(f"GICv3: CPU{cpu}: redistributor failed to wakeup...",
                              errno.ETIMEDOUT)
        s = rd.sgi_base
        k.writel(0xFFFFFFFF, s + GICR_SGI.ICACTIVER0.offset)
        k.writel(0xFFFFFFFF, s + GICR_SGI.ICENABLER0.offset)
        k.writel(0xFFFFFFFF, s + GICR_SGI.IGROUPR0.offset)
        for n in range(8):
            k.writel(self.dist_prio_irq * 0x01010101, s + GICR_SGI.IPRIORITYR.at(n))
        # The CPU interface is this PE's own: gic_cpu_init runs on the CPU it sets up.
        if k.this_cpu != cpu:
            raise KernelError(f"GICv3: gic_cpu_init for CPU{cpu} runs on CPU{k.this_cpu}: a "
                              "CPU interface is set up by its own PE", errno.EINVAL)
        k.read_sysreg("ICC_SRE_EL1")
        k.write_sysreg("ICC_PMR_EL1", DEFAULT_PMR_VALUE)
        k.write_sysreg("ICC_BPR1_EL1", 0)
        k.write_sysreg("ICC_CTLR_EL1", 0)   # EOImode 0: EOIR drops and deactivates
        k.write_sysreg("ICC_IGRPEN1_EL1", 1)

    # -- IPIs (SGIs) ------------------------------------------------------------------------------

    def ipi_init(self, nr: int, handler: Callable[[int, Any], int]) -> int:
        """``gic_smp_init``: SGIs 0..nr-1 as per-CPU interrupts of the GIC domain, each
        with ``handler``, hidden from /proc/interrupts' list.  Returns the first virq."""
        assert self.domain is not None
        k = self.k
        self._ipi_fwspec = IrqFwspec(self.desc.fwnode, (0,))
        virq = k.irq.irq_domain_alloc_irqs(self.domain, nr, self._ipi_fwspec)
        for i in range(nr):
            desc = k.irq.irq_to_desc(virq + i)
            assert desc is not None
            desc.actions.append(IrqAction(handler, "IPI", None))
            desc.hidden = True
        return virq

    def ipi_enable_this_cpu(self, nr: int) -> None:
        """Enable SGIs 0..nr-1 on the running CPU's redistributor (``enable_percpu_irq``)."""
        rd = self.rdists[self.k.this_cpu]
        self.k.writel((1 << nr) - 1, rd.sgi_base + GICR_SGI.ISENABLER0.offset)

    def ipi_send(self, cpu: int, sgi: int) -> None:
        """``gic_ipi_send_mask`` for one CPU: this PE's ICC_SGI1R_EL1 names the target by
        affinity (Aff3.Aff2.Aff1 and a TargetList bit for Aff0)."""
        mpidr = self.k.board.cpus[cpu]
        aff0 = mpidr & 0xFF
        if aff0 >= 16:
            raise KernelError(f"GICv3: CPU{cpu} (MPIDR {mpidr:#x}) cannot be targeted by an "
                              "SGI: Aff0 >= 16 needs GICD_TYPER.RSS", errno.EINVAL)
        value = (ICC.SGI1R.INTID.put(sgi) | ICC.SGI1R.TargetList.put(1 << aff0)
                 | ICC.SGI1R.Aff1.put((mpidr >> 8) & 0xFF)
                 | ICC.SGI1R.Aff2.put((mpidr >> 16) & 0xFF)
                 | ICC.SGI1R.Aff3.put((mpidr >> 32) & 0xFF))
        self.k.write_sysreg("ICC_SGI1R_EL1", value)

    def drain_this_cpu(self, on_lpi: Callable[[int], None]) -> None:
        """On a CPU going offline, interrupts off: acknowledge everything pending for this
        PE at its own CPU interface (ICC_IAR1_EL1 until 1023).  Each LPI is handed to
        ``on_lpi`` and its priority dropped (ICC_EOIR1_EL1; an LPI has no active state);
        SGIs, PPIs and SPIs are given back -- EOI (drop and deactivate, EOImode 0), then,
        once the loop is done, pending again unless level-sensitive (the line keeps a
        level interrupt pending by itself).  Only enabled interrupts are seen: a disabled
        LPI's pending state is invisible to the CPU interface."""
        k = self.k
        given_back = []
        for _ in range(1 << 24):
            intid = k.read_sysreg("ICC_IAR1_EL1")
            if 1020 <= intid <= 1023:
                break
            if intid >= LPI_BASE:
                on_lpi(intid)
            elif not self._is_level(intid):
                given_back.append(intid)
            k.write_sysreg("ICC_EOIR1_EL1", intid)
        else:
            raise KernelError(f"GICv3: CPU{k.this_cpu}: interrupts keep arriving while it "
                              "drains its CPU interface", errno.EIO)
        rd = self.rdists[k.this_cpu]
        for intid in given_back:
            if intid < 32:
                k.writel(1 << intid, rd.sgi_base + GICR_SGI.ISPENDR0.offset)
            else:
                k.writel(1 << (intid % 32), self.dist_base + GICD.ISPENDR.at(intid // 32))

    def _is_level(self, intid: int) -> bool:
        """The trigger the GIC is configured with (ICFGR: 0 level, 1 edge)."""
        if intid < 16:
            return False
        if intid < 32:
            cfg = self.k.readl(self.rdists[self.k.this_cpu].sgi_base + GICR_SGI.ICFGR1.offset)
            return not cfg >> (2 * (intid - 16) + 1) & 1
        cfg = self.k.readl(self.dist_base + GICD.ICFGR.at(intid // 16))
        return not cfg >> (2 * (intid % 16) + 1) & 1

    # -- the root handler -----------------------------------------------------------------------

    def handle_irq(self) -> None:
        """``gic_handle_irq`` on the current CPU: acknowledge, dispatch, (flow handler EOIs)."""
        k = self.k
        cpu = k.this_cpu
        irqnr = self._iar1[cpu]()
        if 1020 <= irqnr <= 1023:
            return
        assert self.domain is not None
        if not k.irq.generic_handle_domain_irq(self.domain, irqnr):
            k.irq.spurious_count += 1
            k.log.warn(f"Unexpected interrupt (irqnr {irqnr})")
            self._eoir1[cpu](irqnr)

    # -- the SGI/PPI/SPI chip --------------------------------------------------------------------

    def _reg_for(self, d: IrqData, reg_rd: int, reg_dist: int) -> tuple[int, int]:
        """(address of the 32-bit register holding hwirq's bit, bit) in the RD or GICD."""
        hw = d.hwirq
        if hw < 32:
            rd = self.rdists[self.k.this_cpu]
            return rd.sgi_base + reg_rd, 1 << hw
        if hw >= LPI_BASE:
            raise KernelError(f"GICv3: hwirq {hw} is an LPI: not handled by the GIC chip",
                              errno.EINVAL)
        return self.dist_base + reg_dist + 4 * (hw // 32), 1 << (hw % 32)

    def _poke(self, d: IrqData, rd_off: int, dist_off: int) -> None:
        addr, bit = self._reg_for(d, rd_off, dist_off)
        self.k.writel(bit, addr)

    def _peek(self, d: IrqData, rd_off: int, dist_off: int) -> bool:
        addr, bit = self._reg_for(d, rd_off, dist_off)
        return bool(self.k.readl(addr) & bit)

    def mask_irq(self, d: IrqData) -> None:
        self._poke(d, GICR_SGI.ICENABLER0.offset, GICD.ICENABLER.offset)
        if d.hwirq >= 32:
            self.dist_wait_for_rwp()

    def unmask_irq(self, d: IrqData) -> None:
        self._poke(d, GICR_SGI.ISENABLER0.offset, GICD.ISENABLER.offset)

    def eoi_irq(self, d: IrqData) -> None:
        self._eoir1[self.k.this_cpu](d.hwirq)

    def set_type(self, d: IrqData, flow_type: int) -> int:
        hw = d.hwirq
        flow_type &= IRQ_TYPE_SENSE_MASK
        if hw < 16:
            if flow_type != IRQ_TYPE_EDGE_RISING:
                raise KernelError(f"GICv3: SGI {hw} is always edge-triggered", errno.EINVAL)
            return 0
        if flow_type not in (IRQ_TYPE_LEVEL_HIGH, IRQ_TYPE_EDGE_RISING):
            raise KernelError(f"GICv3: INTID {hw}: only level-high and rising-edge triggers "
                              "exist", errno.EINVAL)
        if hw < 32:
            addr = self.rdists[self.k.this_cpu].sgi_base + GICR_SGI.ICFGR1.offset
            shift = 2 * (hw - 16) + 1
        else:
            addr = self.dist_base + GICD.ICFGR.at(hw // 16)
            shift = 2 * (hw % 16) + 1
        cfg = self.k.readl(addr)
        cfg = cfg | (1 << shift) if flow_type == IRQ_TYPE_EDGE_RISING else cfg & ~(1 << shift)
        self.k.writel(cfg, addr)
        return 0

    def set_affinity(self, d: IrqData, mask: Cpumask, force: bool) -> int:
        """Route an SPI to the first online CPU of ``mask`` through GICD_IROUTER."""
        k = self.k
        candidates = sorted(mask if force else mask & k.irq.online)
        if not candidates:
            raise KernelError(f"GICv3: irq {d.irq}: no online CPU in {sorted(mask)}",
                              errno.EINVAL)
        if d.hwirq < 32 or d.hwirq >= LPI_BASE:
            raise KernelError(f"GICv3: INTID {d.hwirq} cannot be routed by GICD_IROUTER",
                              errno.EINVAL)
        cpu = candidates[0]
        enabled = self._peek(d, GICR_SGI.ISENABLER0.offset, GICD.ISENABLER.offset)
        if enabled:
            self.mask_irq(d)
        k.writeq(self.cpu_to_affinity(cpu), self.dist_base + GICD.IROUTER.at(d.hwirq))
        if enabled:
            self.unmask_irq(d)
        d.update_effective_affinity(frozenset((cpu,)))
        return IRQ_SET_MASK_OK_DONE

    def retrigger(self, d: IrqData) -> int:
        self.set_irqchip_state(d, IRQCHIP_STATE_PENDING, True)
        return 1

    def set_irqchip_state(self, d: IrqData, which: int, value: bool) -> None:
        regs = {
            IRQCHIP_STATE_PENDING: ((GICR_SGI.ISPENDR0, GICD.ISPENDR),
                                    (GICR_SGI.ICPENDR0, GICD.ICPENDR)),
            IRQCHIP_STATE_ACTIVE: ((GICR_SGI.ISACTIVER0, GICD.ISACTIVER),
                                   (GICR_SGI.ICACTIVER0, GICD.ICACTIVER)),
            IRQCHIP_STATE_MASKED: ((GICR_SGI.ICENABLER0, GICD.ICENABLER),
                                   (GICR_SGI.ISENABLER0, GICD.ISENABLER)),
        }.get(which)
        if regs is None:
            raise KernelError(f"GICv3: irqchip state {which} cannot be set", errno.EINVAL)
        rd_reg, dist_reg = regs[0] if value else regs[1]
        self._poke(d, rd_reg.offset, dist_reg.offset)

    def get_irqchip_state(self, d: IrqData, which: int) -> bool:
        if which == IRQCHIP_STATE_PENDING:
            return self._peek(d, GICR_SGI.ISPENDR0.offset, GICD.ISPENDR.offset)
        if which == IRQCHIP_STATE_ACTIVE:
            return self._peek(d, GICR_SGI.ISACTIVER0.offset, GICD.ISACTIVER.offset)
        if which == IRQCHIP_STATE_MASKED:
            return not self._peek(d, GICR_SGI.ISENABLER0.offset, GICD.ISENABLER.offset)
        raise KernelError(f"GICv3: irqchip state {which} cannot be read", errno.EINVAL)

    # -- the GIC irq domain ------------------------------------------------------------------------

    def _select(self, domain: IrqDomain, fwspec: IrqFwspec | None,
                token: DomainBusToken) -> bool:
        if fwspec is None or fwspec.fwnode is not self.desc.fwnode:
            return False
        return token in (DomainBusToken.ANY, domain.bus_token)

    def _translate(self, domain: IrqDomain, fwspec: IrqFwspec) -> tuple[int, int]:
        """DT three-cell specifiers and two-cell (raw INTID, type) ones, as Linux does."""
        p = fwspec.params
        if fwspec is self._ipi_fwspec:
            # gic_smp_init's one-cell specifier: the SGIs of the kernel's own IPIs.
            return p[0], IRQ_TYPE_EDGE_RISING
        if len(p) >= 3:
            kind, num, flags = p[0], p[1], p[2]
            if kind == 0:
                hwirq = num + 32
            elif kind == 1:
                hwirq = num + 16
            elif kind == GIC_IRQ_TYPE_LPI:
                hwirq = num
            else:
                raise KernelError(f"GICv3: specifier type {kind} not supported (no extended "
                                  "SPI/PPI range)", errno.EINVAL)
            flow = flags & IRQ_TYPE_SENSE_MASK
        elif len(p) == 2:
            hwirq, flow = p[0], p[1] & IRQ_TYPE_SENSE_MASK
            if hwirq < 16:
                raise KernelError(f"GICv3: raw INTID {hwirq} is an SGI", errno.EINVAL)
        else:
            raise KernelError(f"GICv3: interrupt specifier with {len(p)} cells", errno.EINVAL)
        self._check_hwirq(hwirq)
        return hwirq, flow

    def _check_hwirq(self, hwirq: int) -> None:
        if 32 <= hwirq < 1020 and hwirq >= self.irq_nr:
            raise KernelError(f"GICv3: SPI {hwirq} is beyond the {self.irq_nr - 32} "
                              "implemented SPIs", errno.EINVAL)
        if 1020 <= hwirq < LPI_BASE:
            raise KernelError(f"GICv3: INTID {hwirq} is special or reserved", errno.EINVAL)
        if hwirq >= LPI_BASE:
            if not self.has_lpis or not self.k.lpis_enabled:
                raise KernelError(f"GICv3: INTID {hwirq} is an LPI and LPIs are not enabled",
                                  errno.EPERM)
            if hwirq >= 1 << self.id_bits:
                raise KernelError(f"GICv3: LPI {hwirq} is beyond {self.id_bits} INTID bits",
                                  errno.EINVAL)

    def _domain_alloc(self, domain: IrqDomain, virq: int, nr_irqs: int, arg: object) -> None:
        if not isinstance(arg, IrqFwspec):
            raise KernelError("GICv3 domain allocation needs an interrupt specifier",
                              errno.EINVAL)
        hwirq, flow = self._translate(domain, arg)
        if arg is self._ipi_fwspec:                  # the IPIs: per-CPU SGIs
            for i in range(nr_irqs):
                d = irq_domain_set_info(domain, virq + i, hwirq + i, self.chip, self,
                                        handle_percpu_devid_irq)
                d.set(IRQD_PER_CPU)
            return
        for i in range(nr_irqs):
            self._check_hwirq(hwirq + i)
            self._map(domain, virq + i, hwirq + i)
        del flow

    def _map(self, domain: IrqDomain, virq: int, hwirq: int) -> None:
        if hwirq < 16:
            raise KernelError(f"GICv3: SGI {hwirq} is reserved for IPIs", errno.EPERM)
        if hwirq < 32:
            d = irq_domain_set_info(domain, virq, hwirq, self.chip, self,
                                    handle_percpu_devid_irq)
            d.set(IRQD_PER_CPU)
            return
        d = irq_domain_set_info(domain, virq, hwirq, self.chip, self, handle_fasteoi_irq)
        if hwirq >= LPI_BASE:
            d.set(IRQD_SINGLE_TARGET)
        if d.trigger_type == IRQ_TYPE_NONE:
            d.set_trigger_type(IRQ_TYPE_LEVEL_HIGH if hwirq < LPI_BASE else IRQ_TYPE_EDGE_RISING)
