"""The GICv3 ITS MSI provider, physical LPIs only (Linux ``drivers/irqchip/irq-gic-v3-its.c``).

The reference every reviewer measures Direct LPI against.  Shaped like Linux's:

* **Probe** (``its_probe_one``): GITS_PIDR2.ArchRev must say GICv3/v4; the ITS is made
  quiescent, its tables allocated (``its_alloc_tables``: each GITS_BASER<n> of type
  Device or Collection gets memory -- the device table sized for every DeviceID,
  ``Indirect`` probed and, when it does not stick, flat -- with the cacheability and
  shareability read back: a Non-shareable ITS gets cache maintenance on every table
  and command), a 64 KiB command queue (GITS_CBASER, GITS_CWRITER = 0), then
  GITS_CTLR.Enabled.
* **Collections**: one per CPU (ICID = CPU number), mapped when the CPU comes up
  (``its_cpu_init_collection``: MAPC to the PE number, or the RD's physical address
  when GITS_TYPER.PTA is 1, then INVALL).
* **Devices** (``its_msi_prepare``, called by the MSI layer before allocation): the
  DeviceID comes from the requester ID through the firmware's ID map (``msi-map``,
  IORT); a DeviceID already known -- an alias, several functions behind one ID under
  ``msi-map-mask`` -- shares the device, which Linux then never frees (``shared``),
  and whose events may run out.  ``its_create_device`` sizes the ITT for a power of
  two of events covering the function's whole MSI-X table (at least 32 for DeviceID 0
  and for platform devices, as Linux), takes one aligned block of LPIs from the
  *shared* LPI allocator (R2: the infrastructure Direct LPI uses; Linux's own ITS
  allocator is first-fit and halves a request it cannot meet -- the model's is the
  aligned buddy one and says ENOSPC), and maps it with MAPD.
* **CPU choice** (``its_select_cpu``): the least loaded CPU of the affinity, online,
  with LPIs on; a non-managed interrupt whose affinity has no such CPU falls back to
  every online CPU.
* **Events** are aligned regions of the device's block (MultiMSI needs vector i at
  EventID base | i): the message is ``address = GITS_TRANSLATER, data = EventID``; the
  LPI is ``LPI base + EventID``.  MAPTI at activation (affinity on activate), DISCARD
  at deactivation, MAPD V=0 and the LPIs given back when a non-shared device's last
  event is freed.
* **Configuration**: the property byte, then ``INV`` (or, when every RD has
  DirectLPI, ``GICR_INVLPIR`` on the target's RD, as Linux prefers).
* **Affinity**: ``MOVI`` to the new CPU's collection; the ITS moves what is pending.
  The device is not rewritten (IRQ_SET_MASK_OK_DONE): its message names no CPU.
* Pending state: INT and CLEAR; it cannot be read.
* **Isolation**: the ITS takes the DeviceID from the bus, not from the write, so a
  device can only signal the events of its own table: IRQ_DOMAIN_FLAG_ISOLATED_MSI.

Every command batch ends, where Linux's does, with a SYNC to the collection it
concerns, and the driver polls GITS_CREADR until the ITS has consumed it
(``its_wait_for_range_completion``).  A queue that does not drain -- a stalled ITS --
is reported (``ITS queue timeout``) and the caller goes on, as Linux does: these paths
cannot fail.  Unlike Linux, a queue stalled on a command error (GITS_CREADR.Stalled) is
retried (GITS_CWRITER.Retry) a few times before that: a transient error (the model's
``its_cmd_error`` fault) then costs nothing, a permanent one is reported as before.
"""

from __future__ import annotations

import errno
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from directlpi.hw.regs import (
    GICR,
    GITS,
    GITS_TRANSLATION,
    ITS_TRANSLATION_OFFSET,
    LPI_CFG_ENABLE,
    SHARE_INNER,
    SHARE_NON,
    CACHE_nC,
    CACHE_RaWaWb,
)
from directlpi.kernel.context import RANK_ITS, SpinLock
from directlpi.kernel.errors import KernelError
from directlpi.kernel.fwdesc import ItsDescription
from directlpi.kernel.irq.chip import (
    IRQ_SET_MASK_OK_DONE,
    IRQCHIP_SKIP_SET_WAKE,
    IRQCHIP_STATE_ACTIVE,
    IRQCHIP_STATE_MASKED,
    IRQCHIP_STATE_PENDING,
    IrqChip,
    irq_chip_eoi_parent,
)
from directlpi.kernel.irq.desc import (
    IRQ_TYPE_EDGE_RISING,
    IRQD_AFFINITY_MANAGED,
    IRQD_AFFINITY_ON_ACTIVATE,
    IRQD_RESEND_WHEN_IN_PROGRESS,
    IRQD_SINGLE_TARGET,
    Cpumask,
    IrqData,
)
from directlpi.kernel.irq.domain import (
    IRQ_DOMAIN_FLAG_ISOLATED_MSI,
    DomainBusToken,
    IrqDomain,
    IrqDomainOps,
    IrqFwspec,
    irq_domain_alloc_irqs_parent,
    irq_domain_free_irqs_parent,
    irq_domain_get_irq_data,
    irq_domain_reset_irq_data,
    irq_domain_set_hwirq_and_chip,
)
from directlpi.kernel.irqchip.gic_v3 import GIC_IRQ_TYPE_LPI
from directlpi.kernel.irqchip.lpi_range import order_of
from directlpi.kernel.msi import (
    MSI_FLAG_MULTI_PCI_MSI,
    MSI_FLAG_PCI_MSIX,
    MSI_FLAG_USE_DEF_CHIP_OPS,
    MSI_FLAG_USE_DEF_DOM_OPS,
    MsiAllocInfo,
    MsiDomain,
    MsiDomainInfo,
    MsiMsg,
    msi_domain_set_affinity,
    platform_msi_chip,
)

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel

SZ_4K, SZ_64K = 0x1000, 0x10000
ITS_CMD_QUEUE_SZ = SZ_64K
ITS_CMD_SIZE = 32
ITS_ITT_ALIGN = 256
ITS_QUEUE_POLLS = 1000
"""CREADR reads before a batch is declared timed out (Linux: 1 s of 1 us polls)."""
ITS_STALL_RETRIES = 8
"""Retries (GITS_CWRITER.Retry) of a command the ITS stalled on before giving up."""
_BASER_TYPE_DEVICE, _BASER_TYPE_COLLECTION = 1, 4
_PAGE_CODE = {SZ_4K: 0, 0x4000: 1, SZ_64K: 2}

# Command numbers (the GITS command encoding, DW0 [7:0]).
_MOVI, _INT, _CLEAR, _SYNC, _MAPD, _MAPC, _MAPTI, _INV, _INVALL, _DISCARD = (
    0x01, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x0F)


def _cmd(op: int, device_id: int = 0, dw1: int = 0, dw2: int = 0, dw3: int = 0) -> list[int]:
    return [op | device_id << 32, dw1, dw2, dw3]


@dataclass(eq=False)
class ItsDevice:
    """``struct its_device``: one DeviceID's ITT and its block of LPIs."""

    node: ItsNode
    device_id: int
    itt_pa: int
    nr_ites: int
    lpi_base: int
    nr_lpis: int
    used: bytearray = field(init=False)
    """Events allocated (``event_map.lpi_map``)."""
    blocks: dict[int, int] = field(default_factory=dict)
    """First event -> events in its aligned region (a MultiMSI block, or 1)."""
    col_map: dict[int, int] = field(default_factory=dict)
    """Event -> the CPU whose collection it is mapped to (activated events)."""
    shared: bool = False
    """Seen through more than one requester: never freed (as Linux)."""

    def __post_init__(self) -> None:
        self.used = bytearray(self.nr_lpis)

    def alloc_events(self, nr: int) -> int:
        """First event of a free region of 2^order_of(nr) events aligned to its size."""
        n = 1 << order_of(nr)
        for ev in range(0, self.nr_lpis - n + 1, n):
            if not any(self.used[ev:ev + n]):
                self.used[ev:ev + n] = b"\1" * n
                self.blocks[ev] = n
                return ev
        raise KernelError(f"ITS: DeviceID {self.device_id:#x}: no {n} free aligned events "
                          f"(its ITT holds {self.nr_lpis})", errno.ENOSPC)


class ItsNode:
    """``struct its_node``: one ITS, its tables, command queue and domains."""

    def __init__(self, k: Kernel, desc: ItsDescription, index: int) -> None:
        self.k = k
        self.desc = desc
        self.index = index
        self.base = desc.base
        self.translater = desc.base + ITS_TRANSLATION_OFFSET + GITS_TRANSLATION.TRANSLATER.offset
        self.lock = SpinLock(f"its[{index}].lock", RANK_ITS)
        self.devices: dict[int, ItsDevice] = {}
        self.collections: dict[int, int] = {}
        """CPU -> the RDbase field of its MAPC (PE number, or RD address >> 16)."""
        self.needs_flushing = False
        self.cmd_pa = 0
        self.cmd_write = 0
        self.typer = k.readq(self.base + GITS.TYPER.offset)
        self.pta = bool(GITS.TYPER.PTA.get(self.typer))
        self.device_ids = GITS.TYPER.Devbits.get(self.typer) + 1
        self.event_ids = GITS.TYPER.ID_bits.get(self.typer) + 1
        self.ite_size = GITS.TYPER.ITT_entry_size.get(self.typer) + 1

    # -- probe --------------------------------------------------------------------------------

    def probe(self) -> None:
        k = self.k
        arch = (k.readl(self.base + 0xFFE8) >> 4) & 0xF
        if arch not in (3, 4):
            raise KernelError(f"ITS@{self.base:#x}: no ITS detected, giving up", errno.ENODEV)
        if not GITS.TYPER.Physical.get(self.typer):
            raise KernelError(f"ITS@{self.base:#x}: no physical LPI support", errno.ENODEV)
        self._force_quiescent()
        self._alloc_tables()
        self._alloc_cmd_queue()
        ctlr = k.readl(self.base + GITS.CTLR.offset)
        k.writel(ctlr | GITS.CTLR.Enabled.mask, self.base + GITS.CTLR.offset)
        k.log.info(f"ITS@{self.base:#018x}: {self.device_ids} DeviceID bits, "
                   f"{self.event_ids} EventID bits, ITT entries of {self.ite_size} bytes"
                   + (", collections by RD address (PTA)" if self.pta else ""))

    def _force_quiescent(self) -> None:
        k = self.k
        ctlr = k.readl(self.base + GITS.CTLR.offset)
        if not ctlr & GITS.CTLR.Enabled.mask and ctlr & GITS.CTLR.Quiescent.mask:
            return
        k.writel(ctlr & ~GITS.CTLR.Enabled.mask, self.base + GITS.CTLR.offset)
        for _ in range(ITS_QUEUE_POLLS):
            if k.readl(self.base + GITS.CTLR.offset) & GITS.CTLR.Quiescent.mask:
                return
        raise KernelError(f"ITS@{self.base:#x}: failed to quiesce, giving up", errno.EBUSY)

    def _alloc_tables(self) -> None:
        """``its_alloc_tables``: memory for each BASER of a type this driver uses."""
        k = self.k
        for n in range(8):
            reg = self.base + GITS.BASER.at(n)
            val = k.readq(reg)
            kind = GITS.BASER.Type.get(val)
            if kind not in (_BASER_TYPE_DEVICE, _BASER_TYPE_COLLECTION):
                continue
            esz = GITS.BASER.Entry_Size.get(val) + 1
            if kind == _BASER_TYPE_DEVICE:
                # Two-level tables: write Indirect, see whether it sticks.
                k.writeq(val | GITS.BASER.Indirect.mask, reg)
                if k.readq(reg) & GITS.BASER.Indirect.mask:
                    k.writeq(val, reg)
                    raise KernelError(f"ITS@{self.base:#x}: two-level device tables are not "
                                      "implemented by this driver", errno.ENXIO)
                size = max(esz << self.device_ids, SZ_64K)
            else:
                size = SZ_64K
            self._setup_baser(n, kind, esz, size)

    def _setup_baser(self, n: int, kind: int, esz: int, size: int) -> None:
        """Allocate, describe, read back: page size and shareability may not stick."""
        k = self.k
        reg = self.base + GITS.BASER.at(n)
        B = GITS.BASER
        psz = SZ_64K
        share, cache = SHARE_INNER, CACHE_RaWaWb
        pa = k.mm.alloc(size, SZ_64K)
        k.dcache_clean_poc(pa, size)
        for _ in range(6):
            pages = size // psz
            addr = pa if psz != SZ_64K else (pa & 0xFFFF_FFFF_0000) | ((pa >> 48) & 0xF) << 12
            val = (addr | B.Type.put(kind) | B.Entry_Size.put(esz - 1)
                   | B.InnerCache.put(cache) | B.Shareability.put(share)
                   | B.Page_Size.put(_PAGE_CODE[psz]) | B.Size.put(pages - 1) | B.Valid.mask)
            k.writeq(val, reg)
            tmp = k.readq(reg)
            if tmp == val:
                break
            if (tmp ^ val) & B.Shareability.mask:
                if B.Shareability.get(tmp) == SHARE_NON:
                    cache = CACHE_nC
                share = B.Shareability.get(tmp)
                self.needs_flushing = True
                continue
            if (tmp ^ val) & B.Page_Size.mask and psz > SZ_4K:
                psz = 0x4000 if psz == SZ_64K else SZ_4K
                continue
            raise KernelError(f"ITS@{self.base:#x}: GITS_BASER{n} doesn't stick: {val:#x} "
                              f"{tmp:#x}", errno.ENXIO)
        what = "Devices" if kind == _BASER_TYPE_DEVICE else "Interrupt Collections"
        k.log.info(f"ITS@{self.base:#018x}: allocated {size // esz} {what} @{pa:#x} (flat, "
                   f"esz {esz}, psz {psz // 1024}K, shr {share})")
        # Not reserved for a kexec'd kernel: it quiesces the ITS and gives it new tables.

    def _alloc_cmd_queue(self) -> None:
        k = self.k
        C = GITS.CBASER
        self.cmd_pa = k.mm.alloc(ITS_CMD_QUEUE_SZ, SZ_64K)
        val = (self.cmd_pa | C.Valid.mask | C.InnerCache.put(CACHE_RaWaWb)
               | C.Shareability.put(SHARE_INNER) | C.Size.put(ITS_CMD_QUEUE_SZ // SZ_4K - 1))
        k.writeq(val, self.base + GITS.CBASER.offset)
        tmp = k.readq(self.base + GITS.CBASER.offset)
        if C.Shareability.get(tmp) == SHARE_NON and tmp != val:
            val = C.InnerCache.replace(C.Shareability.replace(val, SHARE_NON), CACHE_nC)
            k.writeq(val, self.base + GITS.CBASER.offset)
            self.needs_flushing = True
            k.log.info(f"ITS@{self.base:#018x}: using cache flushing for cmd queue")
        k.writeq(0, self.base + GITS.CWRITER.offset)
        self.cmd_write = 0

    # -- the command queue --------------------------------------------------------------------

    def target(self, cpu: int) -> int:
        """The RDbase field for ``cpu``'s collection."""
        rd = self.k.gic.rdists[cpu]
        return rd.rd_base >> 16 if self.pta else GICR.TYPER.Processor_Number.get(rd.typer)

    def send(self, cmds: list[list[int]], sync_cpu: int | None = None) -> None:
        """``its_send_single_command``: queue ``cmds`` (then a SYNC to ``sync_cpu``'s
        collection), advance CWRITER, wait until CREADR has passed them."""
        k = self.k
        if sync_cpu is not None:
            cmds = [*cmds, _cmd(_SYNC, dw2=self.target(sync_cpu) << 16)]
        with k.ctx.locked(self.lock):
            for words in cmds:
                nxt = (self.cmd_write + ITS_CMD_SIZE) % ITS_CMD_QUEUE_SZ
                if not self._wait(lambda nxt=nxt: nxt != self._creadr(), "queue full"):
                    break           # post what was written, as Linux's "goto post" does
                at = self.cmd_pa + self.cmd_write
                for i, w in enumerate(words):
                    k.ram.write_int(at + 8 * i, w, 8)
                if self.needs_flushing:
                    k.dcache_clean_poc(at, ITS_CMD_SIZE)
                self.cmd_write = nxt
            k.writeq(self.cmd_write, self.base + GITS.CWRITER.offset)
            self._wait(lambda: self._creadr() == self.cmd_write, "queue timeout")

    def _creadr(self) -> int:
        return self.k.readl(self.base + GITS.CREADR.offset) & GITS.CREADR.Offset.mask

    def _wait(self, done: Any, what: str) -> bool:
        k = self.k
        for attempt in range(ITS_STALL_RETRIES + 1):
            for _ in range(ITS_QUEUE_POLLS):
                if done():
                    return True
            creadr = k.readq(self.base + GITS.CREADR.offset)
            if not creadr & GITS.CREADR.Stalled.mask or attempt == ITS_STALL_RETRIES:
                break
            k.log.err(f"ITS@{self.base:#x}: command at {creadr & GITS.CREADR.Offset.mask:#x} "
                      "failed (GITS_CREADR.Stalled): retrying it")
            k.writeq(self.cmd_write | GITS.CWRITER.Retry.mask, self.base + GITS.CWRITER.offset)
        creadr = self.k.readq(self.base + GITS.CREADR.offset)
        stalled = " (stalled on a command error)" if creadr & GITS.CREADR.Stalled.mask else ""
        self.k.log.err(f"ITS@{self.base:#x}: ITS {what} ({creadr & ~1:#x} {self.cmd_write:#x})"
                       f"{stalled}")
        return False

    def map_collection(self, cpu: int) -> None:
        """``its_cpu_init_collection``: MAPC, then INVALL."""
        target = self.target(cpu)
        self.collections[cpu] = target
        self.send([_cmd(_MAPC, dw2=1 << 63 | target << 16 | cpu)], sync_cpu=cpu)
        self.send([_cmd(_INVALL, dw2=cpu)], sync_cpu=cpu)

    def mapd(self, dev: ItsDevice, valid: bool) -> None:
        size = (dev.nr_ites.bit_length() - 2) if valid else 0
        self.send([_cmd(_MAPD, dev.device_id, dw1=size,
                        dw2=(1 << 63 | dev.itt_pa) if valid else 0)])

    def event_cmd(self, op: int, dev: ItsDevice, event: int, cpu: int, dw1_hi: int = 0,
                  dw2: int = 0) -> None:
        """MAPTI, MOVI, INV, INT, CLEAR, DISCARD: one event, then a SYNC to ``cpu``."""
        self.send([_cmd(op, dev.device_id, dw1=event | dw1_hi << 32, dw2=dw2)], sync_cpu=cpu)


class Its:
    """The ITS MSI provider of one kernel (every ITS firmware describes)."""

    def __init__(self, kernel: Kernel, nodes: list[ItsNode]) -> None:
        assert kernel.lpi is not None and kernel.gic.domain is not None
        self.k = kernel
        self.lpi = kernel.lpi
        self.nodes = nodes
        self.chip = IrqChip(
            name="ITS", irq_mask=self.mask, irq_unmask=self.unmask, irq_eoi=irq_chip_eoi_parent,
            irq_set_affinity=self.set_affinity, irq_retrigger=self.retrigger,
            irq_compose_msi_msg=self.compose_msi_msg,
            irq_set_irqchip_state=self.set_irqchip_state,
            irq_get_irqchip_state=self.get_irqchip_state, flags=IRQCHIP_SKIP_SET_WAKE)
        self.domains: dict[int, tuple[IrqDomain, MsiDomain, MsiDomain]] = {}
        #: LPIs targeted at each CPU (Linux's per-CPU ``managed``/``unmanaged`` counts).
        self.load: Counter[int] = Counter()
        for node in nodes:
            fw = node.desc.fwnode
            nexus = kernel.irq.create_domain(
                f"ITS@{node.base:#x}", fw,
                IrqDomainOps(alloc=self._alloc, free=self._free, activate=self._activate,
                             deactivate=self._deactivate),
                parent=kernel.gic.domain, host_data=node, bus_token=DomainBusToken.NEXUS,
                flags=IRQ_DOMAIN_FLAG_ISOLATED_MSI)
            pci_chip = kernel.pci.msi_chip("ITS-MSI", msi_domain_set_affinity)
            flags = (MSI_FLAG_USE_DEF_DOM_OPS | MSI_FLAG_USE_DEF_CHIP_OPS | MSI_FLAG_PCI_MSIX
                     | MSI_FLAG_MULTI_PCI_MSI)
            pci = MsiDomain(kernel.irq, "ITS-PCI-MSI", fw,
                            MsiDomainInfo(flags, pci_chip, prepare=self._pci_prepare),
                            nexus, DomainBusToken.PCI_MSI)
            pmsi = MsiDomain(kernel.irq, "ITS-pMSI", fw,
                             MsiDomainInfo(MSI_FLAG_USE_DEF_DOM_OPS,
                                           platform_msi_chip("ITS-pMSI", msi_domain_set_affinity),
                                           prepare=self._platform_prepare),
                             nexus, DomainBusToken.PLATFORM_MSI)
            self.domains[node.index] = (nexus, pci, pmsi)
        #: Platform MSIs go to the first ITS (platform devices are not in the devicetree).
        self.platform = self.domains[nodes[0].index][2]
        for cpu in sorted(kernel.irq.online):
            self.cpu_init(cpu)

    def cpu_init(self, cpu: int) -> None:
        """A CPU came up with LPIs on: map its collection on every ITS."""
        if not self.k.gic.rdists[cpu].lpi_enabled:
            return
        for node in self.nodes:
            node.map_collection(cpu)

    # -- msi_prepare: the device --------------------------------------------------------------

    def _pci_prepare(self, domain: MsiDomain, info: MsiAllocInfo) -> None:
        """``its_pci_msi_prepare``: the DeviceID through the firmware's ID map; the ITT
        sized for the whole MSI-X table (or every MSI vector the function can have), not
        just what is allocated now; 32 at least for DeviceID 0 (systems where the DevID
        is not wired)."""
        pdev = info.descs[0].dev
        rid = pdev.dev_id
        route = pdev.host.msi_route_for(rid)
        if route is None:
            raise KernelError(f"pci {pdev.bdf}: no DeviceID (firmware maps no ID for RID "
                              f"{rid:#x})", errno.EINVAL)
        dev_id = route[1]
        nvec = max(info.nvec, self.k.pci.vec_count(pdev, info.descs[0].is_msix))
        self._prepare(domain, info, dev_id, max(nvec, 32) if dev_id == 0 else nvec)

    def _platform_prepare(self, domain: MsiDomain, info: MsiAllocInfo) -> None:
        """``its_pmsi_prepare``: the DeviceID is the device's msi-specifier in firmware;
        at least 32 events, as Linux allocates them."""
        if info.dev_id is None:
            raise KernelError(f"{info.dev_name}: no DeviceID (firmware gives the device no "
                              "msi-parent specifier for the ITS)", errno.EINVAL)
        self._prepare(domain, info, info.dev_id, max(info.nvec, 32))

    def _prepare(self, domain: MsiDomain, info: MsiAllocInfo, dev_id: int, nvec: int) -> None:
        parent = domain.domain.parent
        assert parent is not None
        node: ItsNode = parent.host_data
        if dev_id >> node.device_ids:
            raise KernelError(f"{info.dev_name}: DeviceID {dev_id:#x} exceeds the ITS's "
                              f"{node.device_ids} bits", errno.EINVAL)
        info.dev_id = dev_id
        dev = node.devices.get(dev_id)
        if dev is not None:
            # Seen already -- through another requester (an alias under msi-map-mask) or
            # an allocation while the device still holds events: reuse its ITT and never
            # free it (Linux: "its_dev->shared = true").  Its events may run out: ENOSPC.
            dev.shared = True
            info.its_dev = dev
            return
        info.its_dev = self._create_device(node, dev_id, max(nvec, info.nvec), info.dev_name)

    def _create_device(self, node: ItsNode, dev_id: int, nvec: int, name: str) -> ItsDevice:
        k = self.k
        nvec = 1 << order_of(max(nvec, 1))
        nr_ites = max(2, nvec)
        if nr_ites > 1 << node.event_ids:
            raise KernelError(f"{name}: {nr_ites} events exceed the ITS's {node.event_ids} "
                              "EventID bits", errno.EINVAL)
        sz = max(nr_ites * node.ite_size, ITS_ITT_ALIGN)
        lpi_base = self.lpi.alloc_lpis(nvec)
        try:
            itt = k.mm.alloc(sz, ITS_ITT_ALIGN)
        except KernelError:
            self.lpi.free_lpis(lpi_base, nvec)
            raise
        k.dcache_clean_poc(itt, sz)
        dev = ItsDevice(node, dev_id, itt, nr_ites, lpi_base, nvec)
        node.devices[dev_id] = dev
        node.mapd(dev, True)
        k.log.info(f"ITS@{node.base:#x}: DeviceID {dev_id:#x} ({name}): ITT of {nr_ites} "
                   f"events @{itt:#x}, LPIs {lpi_base}..{lpi_base + nvec - 1}")
        return dev

    def _free_device(self, dev: ItsDevice) -> None:
        node = dev.node
        node.mapd(dev, False)
        del node.devices[dev.device_id]
        self.k.mm.free(dev.itt_pa)
        self.lpi.free_lpis(dev.lpi_base, dev.nr_lpis)

    # -- the nexus domain ---------------------------------------------------------------------

    def _alloc(self, domain: IrqDomain, virq: int, nr_irqs: int, arg: Any) -> None:
        if not isinstance(arg, MsiAllocInfo) or not isinstance(arg.its_dev, ItsDevice):
            raise KernelError("ITS allocation needs a prepared device (msi_prepare)",
                              errno.EINVAL)
        dev = arg.its_dev
        if arg.multi_msi:
            first = dev.alloc_events(nr_irqs)
            events = list(range(first, first + nr_irqs))
            firsts = [first]                  # the regions allocated, by first event
        else:
            events = firsts = []              # one event each: each its own region
            try:
                for _ in range(nr_irqs):
                    events.append(dev.alloc_events(1))
            except KernelError:
                self._release(dev, firsts)
                raise
        done = 0
        try:
            for i, event in enumerate(events):
                hwirq = dev.lpi_base + event
                irq_domain_alloc_irqs_parent(domain, virq + i, 1, IrqFwspec(
                    self.k.board.gic.fwnode, (GIC_IRQ_TYPE_LPI, hwirq, IRQ_TYPE_EDGE_RISING)))
                done += 1
                d = irq_domain_set_hwirq_and_chip(domain, virq + i, hwirq, self.chip, dev)
                d.set(IRQD_SINGLE_TARGET | IRQD_AFFINITY_ON_ACTIVATE
                      | IRQD_RESEND_WHEN_IN_PROGRESS)
                d.set_trigger_type(IRQ_TYPE_EDGE_RISING)
                self.lpi.lpi_write_config(hwirq, 0xFF, self.lpi.prop_prio)
        except KernelError:
            if done:
                irq_domain_free_irqs_parent(domain, virq, done)
            self._release(dev, firsts)
            raise

    def _release(self, dev: ItsDevice, firsts: list[int]) -> None:
        """Give event regions back, by their first event; an emptied, unshared device is
        unmapped (MAPD V=0), its LPIs and ITT given back."""
        for first in firsts:
            n = dev.blocks.pop(first, 0)
            dev.used[first:first + n] = bytes(n)
        if not dev.shared and not any(dev.used):
            self._free_device(dev)

    def _free(self, domain: IrqDomain, virq: int, nr_irqs: int) -> None:
        """``its_irq_domain_free``: the events go back (a MultiMSI block with its first
        vector)."""
        freed: dict[int, tuple[ItsDevice, list[int]]] = {}
        for i in range(nr_irqs):
            d = irq_domain_get_irq_data(domain, virq + i)
            dev: ItsDevice = d.chip_data
            event = d.hwirq - dev.lpi_base
            if event in dev.blocks:
                freed.setdefault(id(dev), (dev, []))[1].append(event)
            irq_domain_reset_irq_data(d)
        irq_domain_free_irqs_parent(domain, virq, nr_irqs)
        for dev, firsts in freed.values():
            self._release(dev, firsts)

    def _pick(self, dev: ItsDevice, mask: Cpumask, force: bool, d: IrqData) -> int:
        """``its_select_cpu``: the least loaded CPU of ``mask`` (``cpumask_pick_least_loaded``:
        fewest LPIs targeted, ties to the lowest) that is online (unless forced), takes
        LPIs and has its collection mapped.  A non-managed interrupt whose mask has none
        falls back to every online CPU, as Linux's does; a managed one is refused."""
        online = self.k.irq.online
        rdists = self.k.gic.rdists

        def usable(cpus: Cpumask) -> list[int]:
            return [c for c in sorted(cpus) if (force or c in online)
                    and rdists[c].lpi_enabled and c in dev.node.collections]
        cands = usable(mask)
        if not cands and not d.has(IRQD_AFFINITY_MANAGED):
            cands = usable(frozenset(online))
        if not cands:
            raise KernelError(f"ITS: no online CPU in {sorted(mask)} with LPIs on and a "
                              "mapped collection", errno.EINVAL)
        load = self.load
        return min(cands, key=lambda c: (load[c], c))

    def _activate(self, domain: IrqDomain, d: IrqData, reserve: bool) -> None:
        """``its_irq_domain_activate``: pick the collection, then MAPTI."""
        dev: ItsDevice = d.chip_data
        event = d.hwirq - dev.lpi_base
        cpu = self._pick(dev, d.common.affinity or frozenset(self.k.irq.online), False, d)
        dev.col_map[event] = cpu
        self.load[cpu] += 1
        dev.node.event_cmd(_MAPTI, dev, event, cpu, dw1_hi=d.hwirq, dw2=cpu)
        d.update_effective_affinity(frozenset((cpu,)))

    def _deactivate(self, domain: IrqDomain, d: IrqData) -> None:
        """``its_irq_domain_deactivate``: DISCARD (the mapping and what is pending go)."""
        dev: ItsDevice = d.chip_data
        event = d.hwirq - dev.lpi_base
        cpu = dev.col_map.pop(event, None)
        if cpu is not None:
            dev.node.event_cmd(_DISCARD, dev, event, cpu)
            self.load[cpu] -= 1
        d.update_effective_affinity(frozenset())

    # -- the chip -----------------------------------------------------------------------------

    def _target(self, d: IrqData) -> tuple[ItsDevice, int, int]:
        dev: ItsDevice = d.chip_data
        event = d.hwirq - dev.lpi_base
        cpu = dev.col_map.get(event)
        if cpu is None:
            raise KernelError(f"ITS: LPI {d.hwirq} is not activated: it is not mapped to a "
                              "collection", errno.EINVAL)
        return dev, event, cpu

    def _update_config(self, d: IrqData, clr: int, set_bits: int) -> None:
        """``lpi_update_config``: the property byte, then INV -- or GICR_INVLPIR on the
        target's RD when every RD has DirectLPI (``direct_lpi_inv``)."""
        self.lpi.lpi_write_config(d.hwirq, clr, set_bits)
        dev: ItsDevice = d.chip_data
        event = d.hwirq - dev.lpi_base
        cpu = dev.col_map.get(event)
        if cpu is None:
            return              # not mapped: no RD may cache it; MAPTI comes first
        if self.k.gic.has_direct_lpi:
            try:
                self.lpi.inv_lpi(cpu, d.hwirq)
            except KernelError as exc:
                self.k.log.err(f"ITS: LPI {d.hwirq}: {exc}")
        else:
            dev.node.event_cmd(_INV, dev, event, cpu)

    def mask(self, d: IrqData) -> None:
        self._update_config(d, LPI_CFG_ENABLE, 0)

    def unmask(self, d: IrqData) -> None:
        self._update_config(d, 0, LPI_CFG_ENABLE)

    def set_affinity(self, d: IrqData, mask: Cpumask, force: bool) -> int:
        """``its_set_affinity``: MOVI to the new CPU's collection; the ITS moves what is
        pending, the device is not rewritten."""
        dev, event, old = self._target(d)
        self.load[old] -= 1                 # its own load does not count against it
        try:
            cpu = self._pick(dev, mask, force, d)
        finally:
            self.load[old] += 1
        if cpu != old:
            # The SYNC goes to the source collection (its_build_movi_cmd returns it).
            dev.node.event_cmd(_MOVI, dev, event, old, dw2=cpu)
            dev.col_map[event] = cpu
            self.load[old] -= 1
            self.load[cpu] += 1
        d.update_effective_affinity(frozenset((cpu,)))
        return IRQ_SET_MASK_OK_DONE

    def retrigger(self, d: IrqData) -> int:
        self.set_irqchip_state(d, IRQCHIP_STATE_PENDING, True)
        return 1

    def set_irqchip_state(self, d: IrqData, which: int, value: bool) -> None:
        if which == IRQCHIP_STATE_ACTIVE and not value:
            return
        if which != IRQCHIP_STATE_PENDING:
            raise KernelError(f"ITS: LPI {d.hwirq}: state {which} cannot be set", errno.EINVAL)
        dev, event, cpu = self._target(d)
        dev.node.event_cmd(_INT if value else _CLEAR, dev, event, cpu)

    def get_irqchip_state(self, d: IrqData, which: int) -> bool:
        if which == IRQCHIP_STATE_ACTIVE:
            return False
        if which == IRQCHIP_STATE_MASKED:
            return not self.lpi.lpi_config(d.hwirq) & LPI_CFG_ENABLE
        raise KernelError(f"ITS: LPI {d.hwirq}: no register reads an LPI's pending state",
                          errno.EINVAL)

    def compose_msi_msg(self, d: IrqData, msg: MsiMsg) -> None:
        dev: ItsDevice = d.chip_data
        msg.address = dev.node.translater
        msg.data = d.hwirq - dev.lpi_base

    # -- introspection ------------------------------------------------------------------------

    def device_of(self, translater: int, device_id: int) -> ItsDevice | None:
        """The device the ITS whose GITS_TRANSLATER is at ``translater`` knows as
        ``device_id``, if any."""
        for node in self.nodes:
            if node.translater == translater:
                return node.devices.get(device_id)
        return None

    def lpi_of(self, translater: int, device_id: int, event: int) -> int | None:
        """The LPI an MSI of ``event`` from ``device_id`` is mapped to, per the driver."""
        dev = self.device_of(translater, device_id)
        if dev is None or event not in dev.col_map:
            return None
        return dev.lpi_base + event


def its_probe(kernel: Kernel) -> list[ItsNode]:
    """``its_init``'s first half: probe every ITS firmware describes (quiesce, tables,
    command queue, enable), before the LPI tables exist, as Linux does."""
    nodes = []
    for index, desc in enumerate(kernel.board.gic.its):
        node = ItsNode(kernel, desc, index)
        try:
            node.probe()
        except KernelError as exc:
            kernel.log.err(f"{exc} [{exc.errno_name}]")
            continue
        nodes.append(node)
    return nodes


def its_init(kernel: Kernel, nodes: list[ItsNode]) -> Its | None:
    """The ITS provider over the probed ``nodes``, once LPIs are enabled; None if there is
    nothing to use."""
    if not nodes:
        return None
    if kernel.lpi is None:
        kernel.log.err("ITS: probed, but LPIs are not enabled: not used")
        return None
    return Its(kernel, nodes)
