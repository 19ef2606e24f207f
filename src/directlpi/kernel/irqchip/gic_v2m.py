"""GICv2m MSI frames as an MSI provider (Linux ``drivers/irqchip/irq-gic-v2m.c``).

The route MSHV, OpenVMM and cloud-hypervisor chose for guests without an ITS: each
frame is a doorbell (``MSI_SETSPI_NS``, offset 0x40) that makes the SPI whose INTID is
written pending.  Linux probes the frames only when the GICv3 has no LPIs
(``GICD_TYPER.LPIS`` = 0, or LPIs turned off on the command line; otherwise it uses
the ITS), and registers one MSI
domain for all of them under the first frame's firmware node.

* A frame's SPIs are ``MSI_TYPER.Base`` .. + ``Number``, unless firmware overrides them
  (DT ``arm,msi-base-spi`` / ``arm,msi-num-spis``, the MADT's SPI count/base select
  flag), for hardware whose MSI_TYPER is wrong.  One invalid frame and none is used
  (``gicv2m_of_init`` tears them all down).
* Message: ``address = frame + MSI_SETSPI_NS``, ``data = SPI INTID``; edge-triggered.
* MultiMSI: a power-of-two block of SPIs within one frame, its first *INTID* aligned
  to the block (the device ORs the vector into the data; Linux aligns the offset in
  the frame, the same only for an aligned frame base -- the strict choice, as MBI).
* Affinity is the SPI's GICD_IROUTER: the device is never rewritten.  Pending state
  and masking are the distributor's.  Freeing disables the SPI and discards what is
  pending, as the MBI provider does (shared code: :class:`SpiMsi`).
* Not isolated: any bus master can write any of a frame's SPIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from directlpi.hw.regs import MAX_SPI, V2M
from directlpi.kernel.irqchip.gic_v3_mbi import MbiAllocator, SpiMsi

if TYPE_CHECKING:
    from directlpi.kernel.kernel import Kernel


@dataclass(frozen=True)
class V2mFrameInfo:
    """One probed frame: its base and SPI block."""

    base: int
    spi_start: int
    nr_spis: int


class GicV2m(SpiMsi):
    """The GICv2m MSI provider: every usable frame, one domain."""

    NAME = "GICv2m"

    def __init__(self, kernel: Kernel, frames: list[V2mFrameInfo]) -> None:
        self.frames = frames
        ranges = tuple((f.spi_start, f.nr_spis) for f in frames)
        first = kernel.board.gic.v2m_frames[0].fwnode
        super().__init__(kernel, first, ranges, "GICv2m",
                         MbiAllocator(ranges, "GICv2m", "the MSI frames"))

    def doorbell(self, spi: int) -> int:
        for f in self.frames:
            if f.spi_start <= spi < f.spi_start + f.nr_spis:
                return f.base + V2M.MSI_SETSPI_NS.offset
        raise AssertionError(f"SPI {spi} is in no frame")


def gicv2m_init(kernel: Kernel) -> GicV2m | None:
    """``gicv2m_init``: probe each frame firmware describes, when the GIC has no LPIs."""
    gic = kernel.board.gic
    log = kernel.log
    if not gic.v2m_frames:
        return None
    if kernel.gic.has_lpis and kernel.params.lpis is not False:
        # gic_dist_supports_lpis(): GICD_TYPER.LPIS and not "irqchip.gicv3_nolpi".
        log.info("GICv2m: frames described by firmware, but the GICv3 has LPIs: MSIs are "
                 "the ITS's; GICv2m not used")
        return None
    last = min(kernel.gic.irq_nr - 1, MAX_SPI)
    frames: list[V2mFrameInfo] = []
    for fd in gic.v2m_frames:
        typer = kernel.readl(fd.base + V2M.MSI_TYPER.offset)
        start = V2M.MSI_TYPER.Base.get(typer) if fd.spi_base is None else fd.spi_base
        count = V2M.MSI_TYPER.Number.get(typer) if fd.spi_count is None else fd.spi_count
        if fd.spi_base is not None or fd.spi_count is not None:
            log.info(f"GICv2m: frame @{fd.base:#x}: SPI range from firmware, not MSI_TYPER "
                     f"({typer:#x})")
        # is_msi_spi_valid(): base >= 32, num > 0, base + num <= 1019 (so SPI 1019 itself
        # is never an MSI); the model also wants them implemented.
        if count < 1 or start < 32 or start + count > MAX_SPI or start + count - 1 > last:
            log.err(f"GICv2m: frame @{fd.base:#x}: invalid MSI_TYPER (SPIs {start}..."
                    f"{start + count - 1}, implemented 32..{last}): GICv2m not used")
            return None             # gicv2m_of_init: break, then gicv2m_teardown()
        if any(f.spi_start < start + count and start < f.spi_start + f.nr_spis
               for f in frames):
            log.err(f"GICv2m: frame @{fd.base:#x}: SPIs {start}..{start + count - 1} overlap "
                    "another frame's: GICv2m not used")
            return None
        frames.append(V2mFrameInfo(fd.base, start, count))
        log.info(f"GICv2m: range[{fd.base:#x}:{fd.base + 0xFFF:#x}], SPI[{start}:"
                 f"{start + count - 1}]")
    if not frames:
        return None
    return GicV2m(kernel, frames)
