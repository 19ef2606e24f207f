"""Shared LPI infrastructure: redistributor tables, the per-CPU LPI enable, the LPI allocator.

This is the one piece the review allowed Direct LPI and an ITS driver to share
(R2): one global LPI configuration (property) table, one pending table per
redistributor, enabling LPIs on each CPU in the architecture's order, the
global INTID allocator (:mod:`lpi_range`), and updating one LPI's
configuration (write the property byte, then ``GICR_INVLPIR`` on the RD that
may cache it, then poll ``GICR_SYNCR``).  No DeviceID, event, collection or
per-device table exists here.

kexec: if LPIs are already enabled on the boot CPU and the previous kernel's
tables were reserved for us, they are reused (property table reset to
all-disabled, pending tables kept, every RD invalidated so that configuration
cached for the previous kernel is dropped).  Otherwise LPIs must be disabled
first; on a GIC where ``GICR_CTLR.EnableLPIs`` cannot be cleared that fails
with EBUSY and the kernel runs without LPIs.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from directlpi.hw.regs import (
    GICR,
    LPI_BASE,
    LPI_CFG_RES1,
    SHARE_INNER,
    SHARE_NON,
    CACHE_nC,
    CACHE_RaWaWb,
)
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irqchip.lpi_range import LpiRangeAllocator

if TYPE_CHECKING:
    from directlpi.kernel.irqchip.gic_v3 import GicV3, Rdist
    from directlpi.kernel.kernel import Kernel

LPI_PROP_DEFAULT_PRIO = 0xA0
SZ_64K = 0x10000
MAX_LPI_ID_BITS = 16
"""Default cap of LPI INTID bits, as Linux's ITS_MAX_LPI_NRBITS (64K INTIDs)."""


def _align(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


class LpiInfrastructure:
    """One per kernel: tables, allocator, per-CPU enable, configuration updates."""

    def __init__(self, kernel: Kernel, gic: GicV3, id_bits_cap: int = MAX_LPI_ID_BITS) -> None:
        self.k = kernel
        self.gic = gic
        self.id_bits_cap = id_bits_cap
        self.preallocated = False
        self.prop_pa = 0
        self.prop_size = 0
        self.lpi_id_bits = 0
        self.needs_flushing = False
        self.pend_pa: dict[int, int] = {}
        self.allocator: LpiRangeAllocator | None = None
        #: The priority byte of every LPI: the GIC driver's ``dist_prio_irq`` (Linux 6.12
        #: passes it to ``its_init``), LPI_PROP_DEFAULT_PRIO unless the kernel runs
        #: Non-secure with Group 0 reachable (``GicV3.prio_init``).
        self.prop_prio = gic.dist_prio_irq

    # -- tables ------------------------------------------------------------------------------

    def _prop_table_size(self, bits: int) -> int:
        return _align((1 << bits) - LPI_BASE, SZ_64K)

    def _pend_table_size(self, bits: int) -> int:
        return _align((1 << bits) // 8, SZ_64K)

    def allocate_lpi_tables(self) -> None:
        """Decide between reusing a previous kernel's tables and allocating new ones."""
        k = self.k
        rd = self.gic.rdists[k.boot_cpu]
        if k.readl(rd.rd_base + GICR.CTLR.offset) & GICR.CTLR.EnableLPIs.mask and \
                self._enabled_lpis_allowed(rd):
            self.preallocated = True
            k.log.info("GICv3: Using preallocated redistributor tables")
        self._setup_prop_table(rd)
        # A pending table for every possible CPU up front, as Linux does; zeroed, and
        # cleaned to the point of coherency so a non-snooping RD reads the zeros.
        for cpu in range(len(k.board.cpus)):
            size = self._pend_table_size(self.lpi_id_bits)
            self.pend_pa[cpu] = k.mm.alloc(size, SZ_64K)
            k.dcache_clean_poc(self.pend_pa[cpu], size)
            k.mm.reserve_persistent(self.pend_pa[cpu], size)
        self.allocator = LpiRangeAllocator(LPI_BASE, (1 << self.lpi_id_bits) - LPI_BASE)
        k.log.info(f"GICv3: LPIs: {self.lpi_id_bits} INTID bits, "
                   f"{(1 << self.lpi_id_bits) - LPI_BASE} LPIs")

    def _enabled_lpis_allowed(self, rd: Rdist) -> bool:
        """Reuse only tables a previous kernel reserved for us (kexec memreserve)."""
        k = self.k
        prop = k.readq(rd.rd_base + GICR.PROPBASER.offset)
        bits = GICR.PROPBASER.IDbits.get(prop) + 1
        pa = prop & GICR.PROPBASER.Physical_Address.mask
        return k.mm.is_inherited_reserved(pa, self._prop_table_size(bits))

    def _setup_prop_table(self, rd: Rdist) -> None:
        k = self.k
        if self.preallocated:
            prop = k.readq(rd.rd_base + GICR.PROPBASER.offset)
            self.lpi_id_bits = GICR.PROPBASER.IDbits.get(prop) + 1
            self.prop_pa = prop & GICR.PROPBASER.Physical_Address.mask
            self.prop_size = self._prop_table_size(self.lpi_id_bits)
            # Still in use: the next kexec'd kernel must inherit it reserved too.
            k.mm.reserve_persistent(self.prop_pa, self.prop_size)
        else:
            self.lpi_id_bits = min(self.gic.id_bits, self.id_bits_cap)
            if self.lpi_id_bits < 14:
                raise KernelError(f"GICv3: {self.lpi_id_bits} INTID bits leave no room for "
                                  "LPIs", errno.ENXIO)
            self.prop_size = self._prop_table_size(self.lpi_id_bits)
            self.prop_pa = k.mm.alloc(self.prop_size, SZ_64K)
            k.mm.reserve_persistent(self.prop_pa, self.prop_size)
        # Every LPI disabled, default priority (gic_reset_prop_table), made visible to
        # redistributors that do not snoop the CPU caches.
        k.ram.fill(self.prop_pa, (1 << self.lpi_id_bits) - LPI_BASE,
                   self.prop_prio | LPI_CFG_RES1)
        k.dcache_clean_poc(self.prop_pa, (1 << self.lpi_id_bits) - LPI_BASE)
        k.log.info(f"GICv3: using LPI property table @{self.prop_pa:#018x}")

    # -- per-CPU enable --------------------------------------------------------------------------

    def redist_disable_lpis(self, cpu: int) -> None:
        """Make sure LPIs are off on ``cpu``'s RD before new tables are installed."""
        k = self.k
        rd = self.gic.rdists[cpu]
        if not GICR.TYPER.PLPIS.get(rd.typer):
            raise KernelError(f"GICv3: CPU{cpu}: LPIs not supported", errno.ENXIO)
        ctlr = k.readl(rd.rd_base + GICR.CTLR.offset)
        if not ctlr & GICR.CTLR.EnableLPIs.mask or rd.lpi_enabled or self.preallocated:
            return
        k.log.warn(f"GICv3: CPU{cpu}: Booted with LPIs enabled, memory probably corrupted")
        self._clear_enable_lpis(cpu, ctlr)
        if k.readl(rd.rd_base + GICR.CTLR.offset) & GICR.CTLR.EnableLPIs.mask:
            raise KernelError(f"GICv3: CPU{cpu}: Failed to disable LPIs (GICR_CTLR.EnableLPIs "
                              "cannot be cleared on this GIC; boot the new kernel with the "
                              "previous kernel's LPI tables reserved)", errno.EBUSY)

    def cpu_init_lpis(self, cpu: int) -> None:
        """``its_cpu_init_lpis``: PROPBASER, PENDBASER, read back, then EnableLPIs."""
        k = self.k
        rd = self.gic.rdists[cpu]
        if rd.lpi_enabled:
            return
        self.redist_disable_lpis(cpu)
        base = rd.rd_base
        if self.preallocated and k.readl(base + GICR.CTLR.offset) & GICR.CTLR.EnableLPIs.mask:
            self._adopt(cpu, rd)
            return
        attrs = GICR.PROPBASER.Shareability.put(SHARE_INNER) | GICR.PROPBASER.InnerCache.put(
            CACHE_RaWaWb)
        val = self.prop_pa | attrs | GICR.PROPBASER.IDbits.put(self.lpi_id_bits - 1)
        k.writeq(val, base + GICR.PROPBASER.offset)
        tmp = k.readq(base + GICR.PROPBASER.offset)
        if (tmp ^ val) & GICR.PROPBASER.Shareability.mask:
            if GICR.PROPBASER.Shareability.get(tmp) == SHARE_NON:
                val = GICR.PROPBASER.InnerCache.replace(
                    GICR.PROPBASER.Shareability.replace(val, SHARE_NON), CACHE_nC)
                k.writeq(val, base + GICR.PROPBASER.offset)
            self.needs_flushing = True
            k.log.info("GICv3: using cache flushing for LPI property table")
        pend = self.pend_pa[cpu] | attrs
        k.writeq(pend, base + GICR.PENDBASER.offset)
        tmp = k.readq(base + GICR.PENDBASER.offset)
        if GICR.PENDBASER.Shareability.get(tmp) == SHARE_NON and tmp != pend:
            pend = GICR.PENDBASER.InnerCache.replace(
                GICR.PENDBASER.Shareability.replace(pend, SHARE_NON), CACHE_nC)
            k.writeq(pend, base + GICR.PENDBASER.offset)
        k.writel(k.readl(base + GICR.CTLR.offset) | GICR.CTLR.EnableLPIs.mask,
                 base + GICR.CTLR.offset)
        ctlr = k.readl(base + GICR.CTLR.offset)
        if not ctlr & GICR.CTLR.EnableLPIs.mask:
            raise KernelError(f"GICv3: CPU{cpu}: GICR_CTLR.EnableLPIs did not stick",
                              errno.EIO)
        rd.ces = bool(ctlr & GICR.CTLR.CES.mask)
        rd.lpi_enabled = True
        k.log.info(f"GICv3: CPU{cpu}: using allocated LPI pending table "
                   f"@{self.pend_pa[cpu]:#018x}")

    def _adopt(self, cpu: int, rd: Rdist) -> None:
        """LPIs were left enabled on this RD with tables reserved for us: keep them."""
        k = self.k
        base = rd.rd_base
        prop = k.readq(base + GICR.PROPBASER.offset) & GICR.PROPBASER.Physical_Address.mask
        if prop != self.prop_pa:
            k.log.warn(f"GICv3: CPU{cpu}: redistributor uses property table {prop:#x}, not "
                       f"{self.prop_pa:#x}: this is hopeless")
        pend = k.readq(base + GICR.PENDBASER.offset) & GICR.PENDBASER.Physical_Address.mask
        if not k.mm.is_inherited_reserved(pend, self._pend_table_size(self.lpi_id_bits)):
            k.log.warn(f"GICv3: CPU{cpu}: pending table {pend:#x} is not reserved")
        ours = self.pend_pa.get(cpu)
        if ours is not None and ours != pend:
            k.mm.free(ours)
        self.pend_pa[cpu] = pend
        k.mm.reserve_persistent(pend, self._pend_table_size(self.lpi_id_bits))
        # The RD may still hold configuration cached for the previous kernel's LPIs:
        # the property table was reset, make the RD reload it.
        try:
            self.invall(cpu)
        except KernelError:
            rd.wedged = True            # on in hardware, unusable: see Rdist.wedged
            raise
        rd.wedged = False
        rd.ces = bool(k.readl(base + GICR.CTLR.offset) & GICR.CTLR.CES.mask)
        rd.lpi_enabled = True
        k.log.info(f"GICv3: CPU{cpu}: using reserved LPI pending table @{pend:#018x}")

    # -- configuration of one LPI -----------------------------------------------------------------

    def lpi_config(self, hwirq: int) -> int:
        return self.k.ram.read_u8(self.prop_pa + hwirq - LPI_BASE)

    def lpi_write_config(self, hwirq: int, clr: int, set_bits: int) -> None:
        """Update the property byte; bit 1 (RES1) is always written as 1.  On a GIC that
        does not snoop the CPU caches (PROPBASER read back Non-shareable) the byte is
        cleaned to the point of coherency, else a barrier suffices (``lpi_write_config``:
        ``gic_flush_dcache_to_poc`` or ``dsb(ishst)``)."""
        addr = self.prop_pa + hwirq - LPI_BASE
        ram = self.k.ram
        cfg = (ram.read_u8(addr) & ~clr) | set_bits | LPI_CFG_RES1
        ram.write_int(addr, cfg, 1)
        if self.needs_flushing:
            self.k.dcache_clean_poc(addr, 1)

    def _clear_enable_lpis(self, cpu: int, ctlr: int) -> None:
        """GICR_CTLR.EnableLPIs 1 -> 0, then poll RWP to 0 (the RD has written its pending
        state back); ETIMEDOUT if RWP never clears."""
        k = self.k
        ctlr_addr = self.gic.rdists[cpu].rd_base + GICR.CTLR.offset
        k.writel(ctlr & ~GICR.CTLR.EnableLPIs.mask, ctlr_addr)
        for _ in range(1000):
            if not k.readl(ctlr_addr) & GICR.CTLR.RWP.mask:
                return
        raise KernelError(f"GICv3: CPU{cpu}: Timeout while disabling LPIs", errno.ETIMEDOUT)

    def _wait_for_syncr(self, rd_base: int) -> None:
        k = self.k
        for _ in range(1000):
            if not k.readl(rd_base + GICR.SYNCR.offset) & 1:
                return
        raise KernelError("GICv3: GICR_SYNCR stuck busy", errno.ETIMEDOUT)

    def _rd_op(self, cpu: int, hwirq: int, *regs: int) -> None:
        """Write ``hwirq`` to each of ``regs`` (CLRLPIR, INVLPIR, INVALLR offsets) on
        ``cpu``'s RD, then poll GICR_SYNCR, under that RD's ``rd_lock`` (taken after any
        ``desc->lock``).  ETIMEDOUT if SYNCR never clears."""
        rd = self.gic.rdists[cpu]
        with self.k.ctx.locked(rd.lock):
            for reg in regs:
                self.k.writeq(hwirq, rd.rd_base + reg)
            self._wait_for_syncr(rd.rd_base)

    def inv_lpi(self, cpu: int, hwirq: int) -> None:
        """``direct_lpi_inv``: GICR_INVLPIR on ``cpu``'s RD, then GICR_SYNCR."""
        self._rd_op(cpu, hwirq, GICR.INVLPIR.offset)

    def invall(self, cpu: int) -> None:
        self._rd_op(cpu, 0, GICR.INVALLR.offset)

    def set_pending(self, cpu: int, hwirq: int) -> None:
        """GICR_SETLPIR on ``cpu``'s RD: the LPI becomes pending there (no completion to
        wait for)."""
        self.k.writeq(hwirq, self.gic.rdists[cpu].rd_base + GICR.SETLPIR.offset)

    def clear_pending(self, cpu: int, hwirq: int) -> None:
        """GICR_CLRLPIR on ``cpu``'s RD, then poll GICR_SYNCR (under ``rd_lock``)."""
        if self.gic.rdists[cpu].lpi_enabled:   # LPIs off there: nothing pending
            self._rd_op(cpu, hwirq, GICR.CLRLPIR.offset)

    def lpi_update_config(self, cpus: Iterable[int], hwirq: int, clr: int, set_bits: int,
                          on_error: Callable[[int, KernelError], None] | None = None) -> None:
        """Write the property byte, then invalidate it on every RD in ``cpus`` -- each RD
        that may hold a cached copy (R11).  ``on_error(cpu, exc)``: an RD whose
        invalidation fails (ETIMEDOUT) is reported there and the others are still
        invalidated (for callers that cannot fail); without it, the error is raised."""
        self.lpi_write_config(hwirq, clr, set_bits)
        for cpu in cpus:
            if not self.gic.rdists[cpu].lpi_enabled:
                continue
            try:
                self.inv_lpi(cpu, hwirq)
            except KernelError as exc:
                if on_error is None:
                    raise
                on_error(cpu, exc)

    def scrub(self, hwirq: int) -> None:
        """Before an INTID goes to a new owner: nothing is pending for it and no cached
        configuration survives, on any RD.  Pending state may have been left by its
        previous owner, by a stray or hostile write to any RD (any bus master can write
        any INTID anywhere), or by a previous kernel (kexec keeps the pending tables), so
        every RD is cleared: GICR_CLRLPIR and GICR_INVLPIR, then GICR_SYNCR, on each RD
        with LPIs enabled (about 4 MMIO accesses per RD); an RD whose LPIs were turned
        off (its CPU went offline) has the INTID's bit cleared in its pending table.  A
        wedged RD (LPIs on, GICR_SYNCR never completes: :attr:`Rdist.wedged`) is written
        CLRLPIR and INVLPIR without waiting for a completion it never reports: the kernel
        cannot confirm them, but skipping it would leave a previous owner's pending state
        there to be delivered to its CPU."""
        k = self.k
        for cpu, rd in self.gic.rdists.items():
            if rd.lpi_enabled:
                self._rd_op(cpu, hwirq, GICR.CLRLPIR.offset, GICR.INVLPIR.offset)
            elif rd.wedged:
                with k.ctx.locked(rd.lock):
                    k.writeq(hwirq, rd.rd_base + GICR.CLRLPIR.offset)
                    k.writeq(hwirq, rd.rd_base + GICR.INVLPIR.offset)
            elif cpu in self.pend_pa:
                addr = self.pend_pa[cpu] + hwirq // 8
                byte = k.ram.read_u8(addr)
                if byte >> (hwirq % 8) & 1:
                    k.ram.write_int(addr, byte & ~(1 << (hwirq % 8)), 1)
                    k.dcache_clean_poc(addr, 1)

    def writeback_pending(self, cpu: int) -> list[int] | None:
        """On ``cpu`` itself, as it goes offline: turn its RD's LPIs off so that the RD
        writes its pending state back to the pending table (GICR_CTLR.EnableLPIs 1 -> 0,
        then GICR_CTLR.RWP polled to 0), and return the INTIDs that were pending there
        (the table is zeroed again for the CPU's return).  None when EnableLPIs cannot be
        cleared on this GIC (GICR_CTLR.CES = 0).  ETIMEDOUT if RWP never clears."""
        k = self.k
        rd = self.gic.rdists[cpu]
        if not rd.lpi_enabled or not rd.ces:
            return None
        self._clear_enable_lpis(cpu, k.readl(rd.rd_base + GICR.CTLR.offset))
        rd.lpi_enabled = False
        pa = self.pend_pa[cpu]
        first, end = LPI_BASE // 8, (1 << self.lpi_id_bits) // 8
        k.dcache_inval_poc(pa + first, end - first)    # what the RD wrote, not stale lines
        table = k.ram.read(pa + first, end - first)
        found = []
        bits = int.from_bytes(table, "little")
        while bits:
            low = bits & -bits
            found.append(LPI_BASE + low.bit_length() - 1)
            bits ^= low
        if found:
            k.ram.fill(pa + first, end - first, 0)
            k.dcache_clean_poc(pa + first, end - first)
        return found

    # -- INTIDs ------------------------------------------------------------------------------------

    def alloc_lpis(self, nr: int, limit: int | None = None) -> int:
        assert self.allocator is not None
        return self.allocator.alloc(nr, limit)

    def free_lpis(self, base: int, nr: int) -> None:
        assert self.allocator is not None
        self.allocator.free(base, nr)
