"""Platforms: hardware assembled from a description, and the run loop.

``Platform.bare(...)`` gives the hardware at reset with nothing programmed, for
register-level work and outside conformance tests::

    hw = Platform.bare(cpus=4, lpi_id_bits=16)
    hw.bus.write(hw.gicr_base(1) + 0x40, 8192, 4, master="0000:00:01.0")  # an MSI
    hw.cpu(1).read_sysreg("ICC_IAR1_EL1")   # -> 8192 once LPIs are set up
"""

from __future__ import annotations

import errno
import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from directlpi.devices.hv_vpci import HvVpciBridge
from directlpi.devices.pci import PciFunction, PciHostBridge, parse_bdf
from directlpi.devices.platform_msi import PlatformMsiDevice
from directlpi.devices.wired import WiredDevice
from directlpi.errors import ConfigError, DirectLPIError
from directlpi.firmware.acpi import (
    GICR_FRAME_PAIR,
    FirmwareError,
    McfgEntry,
    parse_madt,
    parse_mcfg,
)
from directlpi.firmware.boards import default_tree
from directlpi.firmware.devicetree import DtBoard, load_board, read_board
from directlpi.firmware.el3 import el3_gic_init
from directlpi.hw.bus import Bus
from directlpi.hw.cache import CpuDataCache
from directlpi.hw.cpuif import CPUInterface
from directlpi.hw.events import EventKind, Listener, Subscription
from directlpi.hw.hv_vpci import HV_MSI_ADDRESS
from directlpi.hw.its import DEVICE_ID_BITS
from directlpi.hw.machine import Machine, MachineConfig
from directlpi.hw.memory import PhysicalMemory
from directlpi.hw.regs import (
    FRAME_SIZE,
    GICD,
    GICR,
    GITS_TRANSLATION,
    ITS_TRANSLATION_OFFSET,
    V2M,
)
from directlpi.kernel.fwdesc import (
    BoardDescription,
    GicDescription,
    ItsDescription,
    PciHostDescription,
    V2mFrameDescription,
    VmbusDescription,
)
from directlpi.kernel.irq.domain import Fwnode
from directlpi.kernel.kernel import BootParams, Kernel
from directlpi.platform_hot import HotPaths, Processors

#: How the audit's reason starts for a write the ``stale_msi`` fault made (the device
#: wrote its previous message after being reprogrammed): the platform's, not an attacker's.
FAULT_STALE = "injected fault stale_msi"

#: DeviceIDs of platform MSI devices start above every PCI requester ID.
PLATFORM_DEVICE_ID_BASE = 0x1_0000

# The default board's PCI host bridge, as QEMU's virt: ECAM and a 32-bit memory window.
VIRT_PCIE_ECAM = (0x3F00_0000, 0x0100_0000)
VIRT_PCIE_MMIO = (0x1000_0000, 0x2EFF_0000)


@dataclass(frozen=True)
class SpoofedMsi:
    """A DMA write to a GICR_SETLPIR or to GICD_SETSPI_NSR (``target_cpu`` -1: an MBI,
    whose address names no CPU) that is not a message the writer was programmed to send
    when it wrote it; ``victim`` is who owned that INTID then."""

    master: str
    address: int
    data: int
    target_cpu: int
    reason: str
    victim: str = "nobody (the INTID is not allocated)"
    doorbell: str = "GICR_SETLPIR"
    """Which doorbell: "GICR_SETLPIR", "GICD_SETSPI_NSR" (MBI), "GITS_TRANSLATER" (ITS: the
    data is an EventID, looked up in the *writer's* table), "MSI_SETSPI_NS" (GICv2m),
    "HV_MSI_DOORBELL" (a Hyper-V-style host: the data is a handle looked up in what the host
    granted the *writer*)."""

    def as_dict(self) -> dict[str, Any]:
        return {"master": self.master, "address": self.address, "data": self.data,
                "target_cpu": self.target_cpu, "reason": self.reason, "victim": self.victim,
                "doorbell": self.doorbell}


class Platform:
    """A machine, the firmware description of it, its devices and the running kernel."""

    def __init__(self, machine: Machine, board: BoardDescription | None = None,
                 pci_host: PciHostBridge | None = None) -> None:
        self.machine = machine
        #: What firmware tells the kernel (synthesised from the hardware for a bare board).
        self.board = board or describe(machine.config)
        self.kernel: Kernel | None = None
        self.devices: list[WiredDevice] = []
        self.pci_host = pci_host
        self.pci_devices: dict[str, PciFunction] = {}
        self.platform_devices: dict[str, PlatformMsiDevice] = {}
        #: Every DMA write to a GICR_SETLPIR or GICD_SETSPI_NSR that was not a message its
        #: writer was programmed to send when it wrote it, for an INTID it owned then: the
        #: isolation hole of Direct LPI (and of MBIs), made visible (R6).
        self.spoofed_msis: list[SpoofedMsi] = []
        #: MSI doorbells: each RD's GICR_SETLPIR -> its CPU; GICD_SETSPI_NSR and each
        #: GICv2m frame's MSI_SETSPI_NS (data = an SPI INTID) -> -1.
        self._doorbells = {machine.gicr_base(c) + GICR.SETLPIR.offset: c
                           for c in range(machine.config.cpus)}
        self._doorbells[machine.gicd_base + GICD.SETSPI_NSR.offset] = -1
        #: Each GICv2m frame's MSI_SETSPI_NS.
        self.v2m_doorbells = {base + V2M.MSI_SETSPI_NS.offset
                              for base, _first, _count in machine.config.v2m_frames}
        self._doorbells.update(dict.fromkeys(self.v2m_doorbells, -1))
        #: Each ITS's GITS_TRANSLATER -> the ITS (data = an EventID of the writer's DeviceID).
        self.its_doorbells = {its.base + ITS_TRANSLATION_OFFSET
                              + GITS_TRANSLATION.TRANSLATER.offset: its for its in machine.its}
        #: The Hyper-V-style host's MSI doorbell (data: a handle the host granted the
        #: writer), if the machine has that host; its vPCI bus is this platform's bridge.
        self.hv = machine.hv
        self.hv_doorbells = {HV_MSI_ADDRESS} if machine.hv is not None else set()
        self._doorbells.update(dict.fromkeys(self.hv_doorbells, -1))
        if machine.hv is not None and isinstance(pci_host, HvVpciBridge):
            machine.hv.bridge = pci_host
        #: DeviceIDs of platform MSI devices (their firmware msi-specifier for the ITS).
        self._platform_device_ids: dict[str, int] = {}
        #: Derived: device_id_of's answers (firmware is fixed; cleared as devices come).
        self._device_id_cache: dict[str, int | None] = {}
        for its in machine.its:
            its.device_id_of = self.device_id_of
        self._auditing = False
        #: Whether EL3 firmware has set the GIC up (two Security states: at first boot).
        self.el3_done = False
        #: The run loop's choice between a PE taking an interrupt and a posted write
        #: landing (seeded: a run is reproducible).
        self._rng = random.Random(machine.config.posted_seed)
        #: The per-MSI paths (run loop, audit), compiled with the hardware.
        self.hot = HotPaths(self)
        if pci_host is not None:
            machine.bus.map_window(pci_host.ecam_base, pci_host.ecam_size, pci_host.ecam_window)
            machine.bus.map_window(pci_host.mem_base, pci_host.mem_size, pci_host.mem_window)
            self._start_audit()

    @classmethod
    def default(cls, cpus: int = 8, **options: Any) -> Platform:
        """The embedded default board, from its shipped devicetree (``boards/default.dts``):
        QEMU-virt memory map, GICv3 with Direct LPI on every RD and no ITS, MBIs with an
        MBI range, 16 LPI INTID bits, a PCI host bridge whose functions signal MSIs by
        Direct LPI.  ``cpus`` other than 8 gives the same board with that many cpu nodes
        (and a second GICR region above 4 GiB past 123 CPUs), as QEMU writes it.
        Keyword options are the hardware options of :meth:`bare`."""
        return cls._from_dt(read_board(default_tree(cpus)), options)

    @classmethod
    def from_devicetree(cls, source: bytes | str | Path, **options: Any) -> Platform:
        """The board a devicetree describes: a ``.dts`` (compiled with dtc) or ``.dtb``
        path, or DTB bytes.

        The hardware is built to match what the tree says (CPUs and their MPIDRs,
        RAM, GICD, the GICR regions and stride, the ECAM host bridge) plus its
        ``directlpi,hardware-model`` node, if any; keyword options (those of
        :meth:`bare`) override the silicon.  Direct LPI is offered only when the GIC
        node has the ``arm,gic-v3-direct-lpi`` child (R7).  Raises
        :class:`~directlpi.firmware.devicetree.DtError` listing every problem, or
        :class:`FirmwareError` for an unreadable file.
        """
        return cls.from_board(load_board(source), **options)

    @classmethod
    def from_board(cls, dt: DtBoard, **options: Any) -> Platform:
        """The board of an already-read devicetree (:func:`~directlpi.firmware.devicetree.
        load_board`); keyword options override the silicon, as for :meth:`from_devicetree`."""
        try:
            return cls._from_dt(dt, options)
        except ConfigError as e:
            raise FirmwareError(f"{dt.board.name}: the hardware it describes cannot be built: "
                                f"{e}", e.errno) from None

    @classmethod
    def _from_dt(cls, dt: DtBoard, options: dict[str, Any]) -> Platform:
        hw = {**dt.hardware, **options}
        hw.setdefault("lpi_id_bits", 16)
        machine = Machine(cls._config(**hw))
        host = None
        if dt.pci is not None:
            # Under the VMBus the host bridge is the host's vPCI bus (its MSIs the host's).
            vmbus = dt.board.vmbus
            vpci = machine.hv is not None and vmbus is not None and \
                dt.pci.msi_parent is vmbus.fwnode
            kind = HvVpciBridge if vpci else PciHostBridge
            host = kind(ecam_base=dt.pci.ecam_base, ecam_size=dt.pci.ecam_size,
                        mem_base=dt.pci.mem_base, mem_size=dt.pci.mem_size,
                        segment=dt.pci.segment)
        return cls(machine, dt.board, host)

    @classmethod
    def from_acpi(cls, madt: bytes | str | Path, iort: bytes | str | Path | None = None,
                  mcfg: bytes | str | Path | None = None,
                  memory_map: Sequence[tuple[int, int]] | None = None,
                  **options: Any) -> Platform:
        """The board an ACPI MADT (and optionally an IORT) describes.

        The MADT gives the CPUs (MPIDRs of the enabled GICCs, in order), the
        distributor, the redistributor regions, the ITSes (GIC ITS) and the GICv2m
        frames (GIC MSI Frame); the hardware is built to match.  A frame's SPIs are
        the MADT's when its SPI Count/Base Select flag is set, else QEMU virt's
        layout (:func:`~directlpi.firmware.acpi.v2m_default_spis`).  Direct LPI is
        offered only if the IORT maps requester IDs or named components to the
        proposed GIC MSI target node in Direct LPI mode (R7); MBIs, from SPIs of the
        node's range, only if it maps them to one in MBI mode.  PCI segment 0's host
        bridge signals as the IORT says: its ID mappings to ITS groups (DeviceID =
        output base + RID - input base) and to the GIC MSI targets become its
        ``msi_map``, or its ``msi_parent`` when one non-ITS controller takes them all;
        with none, the first GICv2m frame is (IORT has no GICv2m node; Linux's ACPI
        GICv2m code takes every PCI host bridge).  Named components become
        ``board.platform_devices`` (``\\_SB_.DMA0`` describes platform device ``dma0``).
        ACPI cannot say whether the GIC implements LPIs: a MADT with GICv2m frames, no
        ITS and no Direct LPI route is built without them (``lpis=False``, as
        ``gicv2m.dts``), so that the frames are the MSI controller.  An MCFG gives
        segment 0's ECAM window (one host bridge: other segments, or buses not
        starting at 0, are refused); without one it is QEMU virt's.  ``memory_map``
        is the UEFI memory map's RAM as (base, size) ranges (default: QEMU virt's);
        the PCI memory window is QEMU virt's (the host bridge's _CRS in the DSDT is
        not modelled).  Keyword options are the
        hardware options of :meth:`bare` (``lpi_id_bits``, ``direct_lpi``, ``lpis``...)
        and override the above.  Raises :class:`FirmwareError` naming what is wrong (an IORT route
        to a GIC ITS ID the MADT does not describe, too).
        """
        from directlpi.firmware.acpi import Iort, read_iort, v2m_hardware
        from directlpi.kernel.fwdesc import MsiRoute, PlatformDeviceDescription

        described = parse_madt(_table_bytes(madt, "MADT"))
        table = read_iort(_table_bytes(iort, "IORT")) if iort is not None else Iort()
        its_by_id = {i.translation_id: i for i in described.its}
        for where, its_id, first, count in (
                [(f"IORT: segment {r.segment} RIDs {r.rid_base:#x}+{r.count:#x}", r.its_id,
                  r.output_base, r.count) for r in table.its]
                + [(f"IORT: named component {c.path}", c.its_id, c.device_id, 1)
                   for c in table.components if c.target == "its"]):
            if its_id not in its_by_id:
                raise FirmwareError(f"{where} route to GIC ITS {its_id}, which the MADT does "
                                    f"not describe (its GIC ITS IDs: {sorted(its_by_id)})")
            if first + count > 1 << DEVICE_ID_BITS:
                raise FirmwareError(f"{where}: DeviceIDs {first:#x}+{count:#x} do "
                                    f"not fit the model's {DEVICE_ID_BITS}-bit DeviceIDs")
        dlpi = bool(table.direct_lpi) or any(c.target == "direct-lpi" for c in table.components)
        regions = []
        for base, size in described.redist_regions:
            if size % GICR_FRAME_PAIR:
                raise FirmwareError(f"APIC: GICR region @{base:#x} is {size:#x} bytes, not a "
                                    f"multiple of one redistributor ({GICR_FRAME_PAIR:#x})")
            regions.append((base, size // GICR_FRAME_PAIR))
        hw: dict[str, Any] = {"gicd_base": described.dist_base, "redist_regions": tuple(regions),
                              "mpidrs": described.cpus, "lpi_id_bits": 16,
                              "its": tuple(i.base for i in described.its),
                              "v2m_frames": v2m_hardware(described.v2m_frames)}
        if memory_map is not None:
            hw["ram"] = _memory_map(memory_map)
        if described.v2m_frames and not described.its and not dlpi:
            hw["lpis"] = False
        hw.update(options)
        try:
            machine = Machine(cls._config(len(described.cpus), **hw))
        except ConfigError as e:
            if memory_map is not None and str(e).startswith("hardware option ram:"):
                raise FirmwareError(f"memory map: {str(e).split(': ', 1)[1]}",
                                    e.errno) from None
            raise FirmwareError(f"APIC: the hardware it describes cannot be built: {e}",
                                e.errno) from None
        config = machine.config
        last_spi = 32 + config.spis - 1
        for first, count in table.mbi_ranges:
            if first + count - 1 > last_spi or not config.mbis:
                why = ("the GIC has no MBIs (mbis=False)" if not config.mbis else
                       f"the GIC's SPIs end at {last_spi}")
                raise FirmwareError(f"IORT: GIC MSI target SPIs {first}+{count}: {why}")
        # The host bridge the MCFG places (QEMU virt's without one), and a description
        # naming Direct LPI and MBIs when the IORT does.
        virt = describe(config)
        ecam = (_mcfg_ecam(parse_mcfg(_table_bytes(mcfg, "MCFG")), config) if mcfg is not None
                else _ecam_clear(VIRT_PCIE_ECAM, config, "QEMU virt's ECAM (no MCFG)"))
        host = PciHostBridge(ecam_base=ecam[0], ecam_size=ecam[1],
                             mem_base=VIRT_PCIE_MMIO[0], mem_size=VIRT_PCIE_MMIO[1])
        gic = GicDescription(dist_base=virt.gic.dist_base,
                             redist_regions=virt.gic.redist_regions,
                             redist_stride=virt.gic.redist_stride, direct_lpi=dlpi,
                             msi_controller=bool(table.mbi_ranges),
                             mbi_ranges=table.mbi_ranges,
                             its=described.its, v2m_frames=described.v2m_frames)
        msi_map = sorted([MsiRoute(r.rid_base, r.count, its_by_id[r.its_id].fwnode,
                                   r.output_base) for r in table.its if r.segment == 0]
                         + [MsiRoute(r.rid_base, r.count, gic.direct_lpi_fwnode)
                            for r in table.direct_lpi if r.segment == 0]
                         + [MsiRoute(r.rid_base, r.count, gic.fwnode)
                            for r in table.mbi if r.segment == 0], key=lambda m: m.rid_base)
        msi_parent = None
        parents = {id(m.parent) for m in msi_map}
        if len(parents) == 1 and msi_map[0].parent in (gic.direct_lpi_fwnode, gic.fwnode):
            msi_parent, msi_map = msi_map[0].parent, []      # one MSI controller, no DeviceID
        elif not msi_map and described.v2m_frames:
            msi_parent = described.v2m_frames[0].fwnode
        pci = PciHostDescription(ecam_base=host.ecam_base, ecam_size=host.ecam_size,
                                 mem_base=host.mem_base, mem_size=host.mem_size,
                                 bus_start=0, bus_end=host.bus_end - 1,
                                 msi_parent=msi_parent, msi_map=tuple(msi_map))
        parent_of = {"direct-lpi": gic.direct_lpi_fwnode, "mbi": gic.fwnode}
        devices = tuple(PlatformDeviceDescription(
            c.name, its_by_id[c.its_id].fwnode if c.target == "its" else parent_of[c.target],
            c.device_id if c.target == "its" else None) for c in table.components)
        board = BoardDescription(cpus=virt.cpus, memory=virt.memory, gic=gic, pci_hosts=(pci,),
                                 name=f"ACPI board ({len(described.cpus)} CPUs)",
                                 platform_devices=devices)
        return cls(machine, board, host)

    @classmethod
    def bare(
        cls,
        cpus: int = 4,
        *,
        lpi_id_bits: int = 16,
        spis: int = 988,
        direct_lpi: bool | list[bool] | tuple[bool, ...] = True,
        mbis: bool = True,
        lpis: bool = True,
        lpis_clearable: bool = False,
        priority_bits: int = 5,
        strict: bool = False,
        posted_writes: bool = False,
        posted_seed: int = 0,
        rd_coherent: bool = True,
        **layout: object,
    ) -> Platform:
        """Hardware at reset, nothing programmed.

        ``direct_lpi`` may be one flag per PE so that some RDs lack
        GICR_TYPER.DirectLPI.  ``lpis_clearable`` makes GICR_CTLR.CES 1.
        ``posted_writes`` holds DMA writes in the interconnect (PCIe ordering; they land
        as the machine runs, in an order drawn from ``posted_seed``, or when a read from
        the device flushes them).  ``rd_coherent=False`` builds redistributors that do not
        snoop the PEs' caches (software must clean the LPI tables to the point of
        coherency).  ``layout`` accepts the memory-map fields of
        :class:`~directlpi.hw.machine.MachineConfig` (``gicd_base``,
        ``redist_regions``, ``redist_stride``, ``ram``, ``mpidrs``) and the other MSI
        blocks: ``its`` (ITS bases), ``its_pta``, ``v2m_frames`` ((base, first SPI, count)
        per GICv2m frame), ``hv_vpci`` (a Hyper-V-style host: :mod:`directlpi.hw.hv_vpci`);
        and faults, drawn from ``fault_seed``: ``dma_drop`` (the probability that the
        interconnect drops an issued DMA write, recorded as ``DMA_DROPPED``),
        ``syncr_stuck`` (GICR_SYNCR.Busy stays 1 for N extra reads, -1 for ever) with
        ``syncr_stuck_rate``, ``cache_refill`` (an RD drops its configuration cache at
        random), ``stale_msi`` (a reprogrammed device writes its previous message N more
        times), ``its_cmd_error`` (an ITS command fails with its architected error);
        docs/hardware-model.md, "Injected faults".  IMPLEMENTATION DEFINED choices, to
        build a board as a peer does (QEMU's in docs/hardware-model.md, "Differential test
        against QEMU"): ``dist_priority_bits``, ``cpuif_id_bits``, ``no1n``, ``iidr``,
        ``common_lpi_aff``, ``busy_reads`` (:class:`~directlpi.hw.machine.MachineConfig`).
        Two Security states (GICD_CTLR.DS = 0): ``security_states=2``, with the SCR_EL3.FIQ
        its EL3 firmware leaves, ``scr_el3_fiq`` (docs/hardware-model.md, "Two Security
        states").

        Raises :class:`~directlpi.errors.ConfigError` (EINVAL) naming the option
        that is out of range.
        """
        return cls(Machine(cls._config(cpus, lpi_id_bits=lpi_id_bits, spis=spis,
                                       direct_lpi=direct_lpi, mbis=mbis, lpis=lpis,
                                       lpis_clearable=lpis_clearable,
                                       priority_bits=priority_bits, strict=strict,
                                       posted_writes=posted_writes, posted_seed=posted_seed,
                                       rd_coherent=rd_coherent, **layout)))

    @staticmethod
    def _config(cpus: int, *, lpi_id_bits: int = 16, spis: int = 988,
                direct_lpi: bool | list[bool] | tuple[bool, ...] = True, mbis: bool = True,
                lpis: bool = True, lpis_clearable: bool = False, priority_bits: int = 5,
                strict: bool = False, posted_writes: bool = False, posted_seed: int = 0,
                rd_coherent: bool = True, **layout: object) -> MachineConfig:
        if isinstance(direct_lpi, list):
            direct_lpi = tuple(direct_lpi)
        allowed = {"gicd_base", "redist_regions", "redist_stride", "ram", "mpidrs", "its",
                   "its_pta", "v2m_frames", "hv_vpci", "dma_drop", "fault_seed",
                   "syncr_stuck", "syncr_stuck_rate", "cache_refill", "stale_msi",
                   "its_cmd_error", "dist_priority_bits", "cpuif_id_bits", "no1n", "iidr",
                   "common_lpi_aff", "busy_reads", "security_states", "scr_el3_fiq"}
        unknown = sorted(set(layout) - allowed)
        if unknown:
            raise ConfigError(f"unknown hardware option(s) {', '.join(unknown)}; known: "
                              "cpus, lpi_id_bits, spis, direct_lpi, mbis, lpis, lpis_clearable, "
                              "priority_bits, strict, posted_writes, posted_seed, rd_coherent, "
                              f"{', '.join(sorted(allowed))}")
        return MachineConfig(cpus=cpus, lpi_id_bits=lpi_id_bits, spis=spis,
                             direct_lpi=direct_lpi, mbis=mbis, lpis=lpis,
                             lpis_clearable=lpis_clearable, priority_bits=priority_bits,
                             strict=strict, posted_writes=posted_writes,
                             posted_seed=posted_seed, rd_coherent=rd_coherent,
                             **layout)  # type: ignore[arg-type]

    # -- the hardware contract ------------------------------------------------------

    @property
    def bus(self) -> Bus:
        return self.machine.bus

    @property
    def memory(self) -> PhysicalMemory:
        return self.machine.memory

    @property
    def gicd_base(self) -> int:
        return self.machine.gicd_base

    def gicr_base(self, cpu: int) -> int:
        """RD_base of PE ``cpu``'s redistributor; its SGI_base frame is at +0x10000."""
        return self.machine.gicr_base(cpu)

    def cpu(self, i: int) -> CPUInterface:
        """PE ``i``'s GIC CPU interface (``read_sysreg`` / ``write_sysreg``)."""
        return self.machine.cpu(i)

    @property
    def num_cpus(self) -> int:
        return self.machine.config.cpus

    def observe(self, listener: Listener,
                kinds: Iterable[EventKind] | None = None) -> Subscription:
        """Call ``listener(event)`` for every architectural event of ``kinds`` (all if None)."""
        return self.machine.hub.subscribe(listener, kinds)

    def event_count(self, kind: EventKind) -> int:
        """How many ``kind`` events happened (exact for BAD_ACCESS, UNPREDICTABLE, IGNORED)."""
        return self.machine.hub.count(kind)

    def set_spi_line(self, intid: int, level: bool) -> None:
        """Drive a wired SPI input."""
        self.machine.gic.set_spi_line(intid, level)

    def set_ppi_line(self, cpu: int, intid: int, level: bool) -> None:
        """Drive PE ``cpu``'s PPI input."""
        self.machine.cpu(cpu)
        self.machine.gic.set_ppi_line(cpu, intid, level)

    # -- software ----------------------------------------------------------------------------------

    def boot(self, *, lpis: bool | None = None, lpi_id_bits: int = 16,
             boot_cpu: int = 0, provider: str = "direct-lpi") -> Kernel:
        """Boot a kernel: GIC probe and init on every CPU, LPIs if wanted.

        ``lpis``: True forces the LPI infrastructure on, False keeps it off, None
        (default) enables it only when firmware describes an LPI MSI provider.
        ``provider``: the LPI MSI provider to bring up where there is no ITS
        (``BootParams.msi_provider``): "direct-lpi", or "rfc-v1" (the 2021 RFC replayed;
        :func:`directlpi.sim.review.boot` also checks the board brought it up).
        """
        if self.kernel is not None:
            raise DirectLPIError("a kernel is already running; use kexec() to replace it",
                                 errno.EBUSY)
        params = BootParams(boot_cpu=boot_cpu, lpis=lpis, lpi_id_bits=lpi_id_bits,
                            msi_provider=provider)      # KernelError (EINVAL) if unknown
        return self._start(params)

    def _start(self, params: BootParams) -> Kernel:
        m = self.machine
        if m.gic.two_states and not self.el3_done:
            el3_gic_init(m)             # what EL3 firmware does before the kernel starts
            self.el3_done = True
        self.kernel = Kernel(m.bus, m.cpu_memory, Processors(self), self.board, params).boot()
        m.gic.kick_all()
        return self.kernel

    def kexec(self, *, reserve_tables: bool = True, lpis: bool | None = None) -> Kernel:
        """Start a fresh kernel on the same hardware, as kexec does.

        With ``reserve_tables`` the old kernel's LPI tables are handed over as
        reserved memory (EFI memreserve): the new kernel finds LPIs enabled and
        reuses them.  Without, it must disable LPIs first, which fails (EBUSY) on a
        GIC where EnableLPIs cannot be cleared: the new kernel runs without LPIs.
        """
        old = self._running()
        carry = tuple(old.mm.persistent) if reserve_tables else ()
        cache = self.machine.cpu_memory
        if isinstance(cache, CpuDataCache):         # kexec cleans the caches to the PoC
            cache.clean_invalidate_all()
        # The new kernel starts on the CPU that ran kexec (the calling task's, online).
        params = BootParams(boot_cpu=old.task_cpu,
                            lpis=old.params.lpis if lpis is None else lpis,
                            lpi_id_bits=old.params.lpi_id_bits, memreserve=carry,
                            msi_provider=old.params.msi_provider)
        self.kernel = None
        return self._start(params)

    def _running(self) -> Kernel:
        if self.kernel is None:
            raise DirectLPIError("no kernel is running: call boot() first", errno.ENODEV)
        return self.kernel

    def run_until_idle(self, max_rounds: int = 1_000_000, verify: bool = False) -> int:
        """Let the machine run until nothing more happens: online PEs take and handle what
        is pending, posted writes land (in a seeded order, interleaved with the PEs), the
        kernel's deferred work and software resends run.

        Returns the number of interrupts taken.  Raises DirectLPIError (EAGAIN) if
        interrupts keep coming after ``max_rounds`` (an interrupt storm).  With
        ``verify``, also checks that no online PE is left with its IRQ signal
        asserted (a self-check of the model's wake-up bookkeeping).
        """
        k = self._running()
        taken = self.hot.run(k, max_rounds)
        if verify:
            cpuifs = self.machine.gic.cpuifs
            stuck = [c for c in sorted(k.irq.online)
                     if k.cpu_can_take_interrupt(c) and cpuifs[c].irq_pending()]
            if stuck:
                raise DirectLPIError(f"model error: PEs {stuck} have an interrupt pending that "
                                     "the run loop was never told about", errno.EIO)
        return taken

    # -- devices --------------------------------------------------------------------------------

    def add_pci_device(self, bdf: str, msi_vectors: int = 0, msix_vectors: int = 0,
                       msi_64bit: bool = True, msi_per_vector_mask: bool = False,
                       **ids: int) -> PciFunction:
        """A PCI function behind the host bridge, its BAR assigned and bus mastering on (as
        firmware leaves it).  Raises ConfigError for a bad address or capability."""
        if self.pci_host is None:
            raise ConfigError("this platform has no PCI host bridge (Platform.default has one)",
                              errno.ENODEV)
        fn = PciFunction(bdf, msi_vectors=msi_vectors, msix_vectors=msix_vectors,
                         msi_64bit=msi_64bit, msi_per_vector_mask=msi_per_vector_mask, **ids)
        self.pci_host.attach(fn, self.machine.bus.write, self.machine.bus.flush)
        fn.stale_writes = self.machine.config.stale_msi
        self.pci_devices[bdf] = fn
        self._device_id_cache.clear()
        self._start_audit()
        return fn

    def add_platform_device(self, name: str, slots: int = 1,
                            device_id: int | None = None) -> PlatformMsiDevice:
        """A non-PCI device with ``slots`` MSI slots its driver programs.

        ``device_id`` is its DeviceID at the ITS (what firmware would give as its
        msi-parent specifier); by default the one firmware gives (an IORT named component
        mapped to an ITS group), else the lowest free one from 0x10000 up, above every PCI
        requester ID.  A device firmware describes signals to the MSI controller it names.
        The device record carries the DeviceID as ``msi_device_id``.
        """
        if name in self.platform_devices or name in self.pci_devices:
            raise ConfigError(f"a device named {name!r} already exists", errno.EEXIST)
        described = self.board.platform_device(name)
        if device_id is None and described is not None:
            device_id = described.device_id          # an IORT named component's, at an ITS
        if device_id is None:
            taken = set(self._platform_device_ids.values())
            device_id = next(i for i in range(PLATFORM_DEVICE_ID_BASE, 1 << DEVICE_ID_BITS)
                             if i not in taken)
        elif not isinstance(device_id, int) or not 0 <= device_id < 1 << DEVICE_ID_BITS:
            raise ConfigError(f"device {name}: DeviceID {device_id!r} is not a {DEVICE_ID_BITS}"
                              "-bit DeviceID", errno.EINVAL)
        if device_id in self._platform_device_ids.values():
            raise ConfigError(f"device {name}: DeviceID {device_id:#x} is another platform "
                              "device's", errno.EEXIST)
        dev = PlatformMsiDevice(name, slots)
        self._platform_device_ids[name] = device_id
        self._device_id_cache.clear()
        dev.msi_device_id = device_id
        dev.stale_writes = self.machine.config.stale_msi
        dev.dma_write = self.machine.bus.write
        bus = self.machine.bus
        dev.flush = lambda: bus.flush(name)       # a read of its registers completes after
        self.platform_devices[name] = dev
        self._start_audit()
        return dev

    def _start_audit(self) -> None:
        """Audit DMA writes to GICR_SETLPIR from now on.  A platform audits once it knows
        its bus masters (it has a PCI host bridge or a registered MSI device); raw
        hardware (``Platform.bare`` with no device) has no notion of who may write."""
        if not self._auditing:
            self._auditing = True
            self.machine.bus.add_dma_hook(self.hot.audit_dma)

    def _record_spoofed(self, addr: int, value: int, master: str, reason: str) -> None:
        """A doorbell write the audit (:meth:`~directlpi.platform_hot.HotPaths.audit_dma`) found not
        genuine, for ``reason``: who it hit, in :attr:`spoofed_msis`."""
        its = addr in self.its_doorbells
        cpu = -1 if its else self._doorbells[addr]
        dev = self.device(master)
        if dev is not None and dev.sending_stale:
            reason = f"{FAULT_STALE}: {reason}"
        if its:
            bell = "GITS_TRANSLATER"
            lpi = self.its_lpi(addr, value, master)
            victim = (self.owner_of(lpi, 0) if lpi is not None else
                      f"nobody (EventID {value & 0xFFFFFFFF} is not mapped for {master}'s "
                      "DeviceID: the ITS drops it)")
        elif addr in self.hv_doorbells:
            bell = "HV_MSI_DOORBELL"
            spi = self.message_intid(addr, value, master)
            victim = (self.owner_of(spi, -1) if spi is not None else
                      f"nobody (the host granted {master} no interrupt with data "
                      f"{value & 0xFFFFFFFF:#x}: it drops it)")
        else:
            bell = ("GICR_SETLPIR" if cpu >= 0 else
                    "MSI_SETSPI_NS" if addr in self.v2m_doorbells else "GICD_SETSPI_NSR")
            victim = self.owner_of(value & 0xFFFFFFFF, cpu)
        self.spoofed_msis.append(SpoofedMsi(master, addr, value, cpu, reason, victim, bell))

    # -- the ITS's view of bus masters ----------------------------------------------------------

    def device_id_of(self, master: str | None) -> int | None:
        """The DeviceID the ITS sees for ``master``: a PCI function's requester ID through
        its host bridge's ``msi-map`` (or the RID itself under ``msi-parent``), a platform
        device's firmware msi-specifier; None for a CPU or an unknown master."""
        if master is None:
            return None
        cached = self._device_id_cache.get(master, -1)
        if cached != -1:
            return cached
        found = self._find_device_id(master)
        self._device_id_cache[master] = found
        return found

    def _find_device_id(self, master: str) -> int | None:
        pid = self._platform_device_ids.get(master)
        if pid is not None:
            return pid
        fn = self.pci_devices.get(master)
        if fn is None:
            return None
        _seg, bus, slot, func = parse_bdf(master)
        rid = bus << 8 | slot << 3 | func
        for host in self.board.pci_hosts:
            route = host.msi_route_for(rid)
            if route is not None and self.board.gic.its_by_fwnode(route[0]) is not None:
                return route[1]
        return None

    def its_lpi(self, addr: int, value: int, master: str) -> int | None:
        """The LPI the kernel mapped for (``master``'s DeviceID, EventID ``value``) at the
        ITS whose GITS_TRANSLATER is ``addr``."""
        k = self.kernel
        dev_id = self.device_id_of(master)
        if k is None or k.its is None or dev_id is None:
            return None
        return k.its.lpi_of(addr, dev_id, value & 0xFFFFFFFF)

    def message_intid(self, addr: int, value: int, master: str) -> int | None:
        """The INTID a write of ``value`` to doorbell ``addr`` by ``master`` names: the
        data itself (GICR_SETLPIR), its SPI field (GICD_SETSPI_NSR, MSI_SETSPI_NS), or the
        LPI the writer's DeviceID and the EventID map to (GITS_TRANSLATER; None if none)."""
        return self.hot.message_intid(addr, value, master)

    def classify_msi(self, addr: int, value: int, master: str) -> str | None:
        """Why a doorbell write issued now by ``master`` is not a genuine MSI, or None.

        Genuine means: a message the device is programmed to send *now*, naming an INTID
        it owns *now*.  A write posted before the device was reprogrammed was genuine when
        issued -- the grace is its time in flight; a replay of an old message, a pair it
        never held, or its message for an INTID that has changed hands, is not.
        """
        return self.hot.classify_msi(addr, value, master)

    def device(self, master: str) -> PciFunction | PlatformMsiDevice | None:
        """The MSI-capable device that masters the bus as ``master``, if any."""
        return self.pci_devices.get(master) or self.platform_devices.get(master)

    def _desc_of(self, intid: int) -> Any:
        """The descriptor the running kernel maps GIC INTID ``intid`` to, if any."""
        return self.hot.desc_of(intid)

    def owner_of(self, data: int, cpu: int) -> str:
        """Who owns the INTID an MSI to a doorbell names (``cpu`` -1: an MBI SPI)."""
        desc = self._desc_of(data if cpu >= 0 else data & 0x1FFF)
        if desc is None:
            return "nobody (the INTID is not allocated)"
        msi = desc.irq_data.common.msi_desc
        if msi is None:
            return f"IRQ {desc.irq} (not an MSI)"
        who = getattr(msi.dev, "bdf", msi.dev)
        dev = self.device(who) if isinstance(who, str) else None
        name = dev.name if dev is not None else str(who)
        index = msi.msi_index + (0 if msi.is_msix else desc.irq - msi.irq)
        return f"{name} vector {index} (IRQ {desc.irq})"

    def add_wired_device(self, name: str, spi: int, *, level: bool = True) -> WiredDevice:
        """A device whose interrupt line drives SPI ``spi`` (INTID 32..1019)."""
        if not self.machine.gic.dist.valid_spi(spi):
            raise ConfigError(f"device {name}: INTID {spi} is not an implemented SPI",
                              errno.EINVAL)
        dev = WiredDevice(name, spi, self.machine.gic.set_spi_line, level=level)
        self.devices.append(dev)
        return dev


def _mcfg_ecam(entries: tuple[McfgEntry, ...], config: MachineConfig) -> tuple[int, int]:
    """Segment 0's ECAM window from an MCFG, checked against what the model can build."""
    if not entries:
        raise FirmwareError("MCFG: no allocation: the PCI host bridge has no ECAM window")
    others = sorted({e.segment for e in entries if e.segment != 0})
    if others or len(entries) > 1:
        raise FirmwareError(f"MCFG: {len(entries)} allocations (segments "
                            f"{sorted({e.segment for e in entries})}): the model builds one "
                            "host bridge, segment 0")
    e = entries[0]
    if e.bus_start != 0:
        raise FirmwareError(f"MCFG: segment 0 starts at bus {e.bus_start}: the model's host "
                            "bridge starts at bus 0")
    return _ecam_clear(e.window, config, "MCFG: ECAM")


def _ecam_clear(window: tuple[int, int], config: MachineConfig, what: str
                ) -> tuple[int, int]:
    """``window`` (an ECAM window), checked not to overlap what the machine puts
    anywhere (RAM included) or the PCI memory window."""
    base, size = window
    spans = [(b, s, name if name.startswith("RAM") else f"the {name}")
             for b, s, name, _option in config.address_map()]
    spans.append((VIRT_PCIE_MMIO[0], VIRT_PCIE_MMIO[1], "the PCI memory window (QEMU virt's)"))
    for b, s, other in spans:
        assert isinstance(b, int)                   # the config is validated already
        if base < b + s and b < base + size:
            raise FirmwareError(f"{what} @{base:#x}+{size:#x} overlaps {other} "
                                f"@{b:#x}+{s:#x}")
    return base, size


def _memory_map(entries: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The RAM of a UEFI memory map (its EfiConventionalMemory ranges, as (base, size)):
    4 KiB pages, no two overlapping.  Where the GIC's frames and ECAM are is checked when
    the hardware is built."""
    try:
        ram = tuple((int(b), int(n)) for b, n in entries)
    except (TypeError, ValueError):
        raise FirmwareError("memory map: entries are (base, size) pairs of integers") from None
    if not ram:
        raise FirmwareError("memory map: no RAM")
    for b, n in ram:
        if n <= 0 or b < 0 or (b | n) & 0xFFF:
            raise FirmwareError(f"memory map: RAM @{b:#x}+{n:#x} is not a run of whole 4 KiB "
                                "pages")
    spans = sorted(ram)
    for (b1, n1), (b2, n2) in itertools.pairwise(spans):
        if b2 < b1 + n1:
            raise FirmwareError(f"memory map: RAM @{b1:#x}+{n1:#x} and @{b2:#x}+{n2:#x} "
                                "overlap")
    return ram


def _table_bytes(table: bytes | str | Path, what: str) -> bytes:
    """An ACPI table given as bytes or as a file path."""
    if isinstance(table, bytes | bytearray):
        return bytes(table)
    try:
        return Path(table).read_bytes()
    except OSError as e:
        raise FirmwareError(f"{what} {table}: {e.strerror}", e.errno or errno.EIO) from None


def describe(config: MachineConfig) -> BoardDescription:
    """The board description a firmware author would write for this hardware."""
    regions = []
    placed = 0
    for base, capacity in config.redist_regions:
        used = min(capacity, config.cpus - placed)
        if used > 0:
            regions.append((base, used * config.redist_stride))
        placed += max(used, 0)
    gic = GicDescription(dist_base=config.gicd_base, redist_regions=tuple(regions),
                         redist_stride=config.redist_stride if config.redist_stride
                         != 2 * FRAME_SIZE else 0,
                         its=tuple(ItsDescription(base, Fwnode(f"its@{base:x}"), k)
                                   for k, base in enumerate(config.its)),
                         v2m_frames=tuple(V2mFrameDescription(base, fwnode=Fwnode(
                             f"v2m@{base:x}"), frame_id=k)
                             for k, (base, _f, _n) in enumerate(config.v2m_frames)))
    return BoardDescription(cpus=config.mpidr_list(), memory=config.ram, gic=gic,
                            name=f"directlpi bare board ({config.cpus} CPUs)",
                            vmbus=VmbusDescription(irq_parent=gic.fwnode)
                            if config.hv_vpci else None)
