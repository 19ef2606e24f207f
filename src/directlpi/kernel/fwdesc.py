"""What firmware tells the kernel: the board description the kernel boots from.

The firmware layer (devicetree, ACPI) produces a :class:`BoardDescription`;
the kernel reads nothing else about the platform -- the rest it probes through
registers, as Linux does.  For a bare platform the description is synthesised
from the hardware configuration, as a firmware author would write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from directlpi.kernel.irq.domain import Fwnode


@dataclass(frozen=True)
class ItsDescription:
    """An ITS: the DT ``arm,gic-v3-its`` child of the GIC node, or a MADT GIC ITS structure
    (with the IORT ITS group naming it)."""

    base: int
    """Its control frame; the translation frame (GITS_TRANSLATER) is at +0x10000."""
    fwnode: Fwnode = field(default_factory=lambda: Fwnode("its"), compare=False)
    """The MSI controller node PCI hosts name (``msi-map``/``msi-parent``)."""
    translation_id: int = 0
    """ACPI's GIC ITS ID (what an IORT ITS group lists); DT: the ITS's index."""


@dataclass(frozen=True)
class V2mFrameDescription:
    """A GICv2m MSI frame: the DT ``arm,gic-v2m-frame`` child of the GIC node, or a MADT GIC
    MSI Frame structure."""

    base: int
    spi_base: int | None = None
    """``arm,msi-base-spi`` (or the MADT override): the first SPI; None reads MSI_TYPER."""
    spi_count: int | None = None
    """``arm,msi-num-spis`` (or the MADT override); None reads MSI_TYPER."""
    fwnode: Fwnode = field(default_factory=lambda: Fwnode("v2m"), compare=False)
    frame_id: int = 0
    """ACPI's GIC MSI Frame ID; DT: the frame's index."""


@dataclass(frozen=True)
class GicDescription:
    """The GICv3 node (DT ``arm,gic-v3``) or the MADT GICD/GICR entries."""

    dist_base: int
    redist_regions: tuple[tuple[int, int], ...]
    """GICR regions as (base, size)."""
    redist_stride: int = 0
    """``redistributor-stride`` (0: walk by GICR_TYPER.VLPIS)."""
    msi_controller: bool = False
    """DT ``msi-controller`` on the GIC node: the GIC offers MBIs (with ``mbi_ranges``)."""
    mbi_ranges: tuple[tuple[int, int], ...] = ()
    """DT ``mbi-ranges``: (first SPI INTID, count)."""
    direct_lpi: bool = False
    """Firmware names Direct LPI as an MSI provider (R7): the DT ``arm,gic-v3-direct-lpi``
    child of the GIC node, or the proposed IORT node."""
    fwnode: Fwnode = field(default_factory=lambda: Fwnode("gic"), compare=False)
    """The GIC node: the wired-interrupt parent, and the MSI parent that means MBI."""
    direct_lpi_fwnode: Fwnode = field(default_factory=lambda: Fwnode("gic-direct-lpi"),
                                      compare=False)
    """The Direct LPI MSI controller node: the MSI parent that means Direct LPI."""
    its: tuple[ItsDescription, ...] = ()
    """The ITSes firmware describes (an ITS board; none on a Direct LPI board)."""
    v2m_frames: tuple[V2mFrameDescription, ...] = ()
    """The GICv2m MSI frames firmware describes.  Linux registers one MSI domain for all of
    them, under the first frame's node: that is the MSI parent that means GICv2m."""

    def its_by_fwnode(self, fwnode: Fwnode | None) -> ItsDescription | None:
        return next((i for i in self.its if i.fwnode is fwnode), None)


@dataclass(frozen=True)
class MsiRoute:
    """DT ``msi-map`` entry (or ``msi-parent`` for every RID): requester IDs
    ``rid_base .. rid_base + count - 1`` (after ``mask``) signal MSIs to ``parent``."""

    rid_base: int
    count: int
    parent: Fwnode
    msi_base: int = 0
    """The first output ID (the ITS's DeviceID of ``rid_base``); 0 for the GIC's other MSI
    controllers, which take no msi-specifier."""


@dataclass(frozen=True)
class PciHostDescription:
    """A generic ECAM host bridge (DT ``pci-host-ecam-generic``)."""

    ecam_base: int
    ecam_size: int
    mem_base: int
    mem_size: int
    bus_start: int = 0
    bus_end: int = 0
    segment: int = 0
    msi_parent: Fwnode | None = None
    """The MSI controller all its functions use (DT ``msi-parent``), or None."""
    msi_map: tuple[MsiRoute, ...] = ()
    """Per-RID MSI controllers (DT ``msi-map``); when given, ``msi_parent`` is None."""
    msi_map_mask: int = 0xFFFF_FFFF

    def msi_routes(self) -> tuple[MsiRoute, ...]:
        """Where each requester-ID range signals: the ``msi_map``, or ``msi_parent`` for
        every RID."""
        if self.msi_map or self.msi_parent is None:
            return self.msi_map
        return (MsiRoute(0, 0x1_0000, self.msi_parent),)

    def msi_parent_for(self, rid: int) -> Fwnode | None:
        """The MSI controller that requester ID ``rid`` signals to, or None."""
        route = self.msi_route_for(rid)
        return route[0] if route is not None else None

    def msi_route_for(self, rid: int) -> tuple[Fwnode, int] | None:
        """``of_msi_map_id``: the MSI controller requester ID ``rid`` signals to and the ID
        it signals with there (an ITS's DeviceID: ``msi-base + (rid & mask) - rid-base``;
        with ``msi-parent`` and no map, the RID itself), or None."""
        masked = rid & self.msi_map_mask if self.msi_map else rid
        for r in self.msi_routes():
            if r.rid_base <= masked < r.rid_base + r.count:
                return r.parent, r.msi_base + masked - r.rid_base
        return None


@dataclass(frozen=True)
class VmbusDescription:
    """A Hyper-V VMBus (DT ``microsoft,vmbus``): the guest runs on a Hyper-V-style host, and
    the PCI host bridge under it is a vPCI bus whose MSIs the ``pci-hyperv`` driver
    provides (guest SPIs routed by the host).  The vPCI bridge names this node as its MSI
    parent."""

    fwnode: Fwnode = field(default_factory=lambda: Fwnode("vmbus"), compare=False)
    irq_parent: Fwnode | None = field(default=None, compare=False)
    """The interrupt controller of the node (``of_irq_find_parent``): the GIC."""


@dataclass(frozen=True)
class PlatformDeviceDescription:
    """A non-PCI device firmware describes (an IORT named component): the MSI controller
    its MSIs go to (``msi_parent``: the GIC for MBI, the GIC's Direct LPI node, an ITS)
    and, at an ITS, its DeviceID."""

    name: str
    msi_parent: Fwnode = field(compare=False)
    device_id: int | None = None


@dataclass(frozen=True)
class BoardDescription:
    """CPUs (by MPIDR, logical CPU i = entry i), RAM, the interrupt controller, PCI, and
    the platform devices firmware describes."""

    cpus: tuple[int, ...]
    memory: tuple[tuple[int, int], ...]
    gic: GicDescription
    name: str = "board"
    pci_hosts: tuple[PciHostDescription, ...] = ()
    vmbus: VmbusDescription | None = None
    platform_devices: tuple[PlatformDeviceDescription, ...] = ()

    def platform_device(self, name: str) -> PlatformDeviceDescription | None:
        """The description of platform device ``name``, if firmware gives one."""
        return next((d for d in self.platform_devices if d.name == name), None)
