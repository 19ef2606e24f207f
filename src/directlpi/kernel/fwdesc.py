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
class GicDescription:
    """The GICv3 node (DT ``arm,gic-v3``) or the MADT GICD/GICR entries."""

    dist_base: int
    redist_regions: tuple[tuple[int, int], ...]
    """GICR regions as (base, size)."""
    redist_stride: int = 0
    """``redistributor-stride`` (0: walk by GICR_TYPER.VLPIS)."""
    msi_controller: bool = False
    """DT ``msi-controller`` on the GIC node."""
    mbi_ranges: tuple[tuple[int, int], ...] = ()
    """DT ``mbi-ranges``: (first SPI INTID, count)."""
    direct_lpi: bool = False
    """The discriminating firmware property that names Direct LPI as an MSI provider (R7)."""
    fwnode: Fwnode = field(default_factory=lambda: Fwnode("gic"), compare=False)


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
    """The MSI controller its functions use (DT ``msi-parent``), or None."""


@dataclass(frozen=True)
class BoardDescription:
    """CPUs (by MPIDR, logical CPU i = entry i), RAM, the interrupt controller, PCI."""

    cpus: tuple[int, ...]
    memory: tuple[tuple[int, int], ...]
    gic: GicDescription
    name: str = "board"
    pci_hosts: tuple[PciHostDescription, ...] = ()
