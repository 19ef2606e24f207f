"""GICv2m MSI frames: a doorbell that turns an MSI write into an SPI (Arm's GICv2m
architecture, as Server Base System Architecture describes it and Linux's
``irq-gic-v2m.c`` drives it).

A frame owns a block of SPIs, fixed by the silicon and read from ``MSI_TYPER``
(``Base`` [25:16], ``Number`` [9:0]).  A write of an INTID to ``MSI_SETSPI_NS``
(offset 0x40) makes that SPI pending at the distributor, exactly as a write to
``GICD_SETSPI_NSR`` does (edge SPIs latch; the SPI's enable, priority, group and
``GICD_IROUTER`` decide the rest).  Nothing says who wrote it: a GICv2m MSI is not
isolated, any bus master can make any SPI of the frame pending.

Choices where the architecture leaves room (each the strict one):

* A write naming an INTID outside the frame's block is ignored and recorded
  (``MSI_DROPPED``, reason "spi-out-of-range"): a frame can only signal its own SPIs.
* ``MSI_SETSPI_NS`` takes 32-bit writes (a PCI MSI is a DWORD write; the upper bits are
  ignored as the architecture's [31:10] are RES0); 16-bit writes are supported too, as
  some frames do for 16-bit MSI data.  Other widths are bad accesses.
* The frame is 4 KiB architecturally; the model decodes the whole 64 KiB frame it is
  mapped in, so offsets from 0x1000 up are reserved (RAZ/WI, recorded).
* ``MSI_IIDR`` reads the model's implementer code (as GICD_IIDR, product 'M').
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Final

from directlpi.hw.events import Event, EventHub, EventKind
from directlpi.hw.mmio import MmioFrame, Tables
from directlpi.hw.regs import V2M

if TYPE_CHECKING:
    from directlpi.hw.distributor import Distributor

#: Implementer 0x43B (Arm's JEP106 code), product 'M'.
V2M_IIDR_VALUE: Final = (0x4D << 24) | (1 << 12) | 0x43B
_SPI: Final = V2M.MSI_SETSPI_NS.SPI


class V2mFrame(MmioFrame):
    """One GICv2m MSI frame: SPIs ``spi_base .. spi_base + spi_count - 1``."""

    REGISTERS = V2M

    __slots__ = ("_dist", "_typer", "index", "spi_base", "spi_count")

    def __init__(self, dist: Distributor, hub: EventHub, *, index: int, spi_base: int,
                 spi_count: int) -> None:
        super().__init__(f"V2M{index}", hub)
        self._dist = dist
        self.index = index
        self.spi_base = spi_base
        self.spi_count = spi_count
        self._typer = V2M.MSI_TYPER.Base.put(spi_base) | V2M.MSI_TYPER.Number.put(spi_count)

    def _table_key(self) -> Hashable:
        return ()

    def _build_tables(self) -> Tables:
        rtab, wtab, words = super()._build_tables()
        # A 16-bit write of MSI_SETSPI_NS is the same doorbell write (zero-extended).
        off = V2M.MSI_SETSPI_NS.offset
        wtab[(off << 4) | 2] = wtab[(off << 4) | 4]
        return rtab, wtab, words

    def _r_MSI_TYPER(self) -> int:
        return self._typer

    def _r_MSI_IIDR(self) -> int:
        return V2M_IIDR_VALUE

    def _w_MSI_SETSPI_NS(self, value: int) -> None:
        spi = _SPI.get(value)
        if not self.spi_base <= spi < self.spi_base + self.spi_count:
            hub = self._hub
            hub.report(Event(EventKind.MSI_DROPPED, self.frame_name, intid=spi,
                             value=value, master=hub.requester, reason="spi-out-of-range",
                             register="MSI_SETSPI_NS",
                             detail=f"MSI_SETSPI_NS names INTID {spi}, outside this frame's "
                                    f"SPIs {self.spi_base}..{self.spi_base + self.spi_count - 1}:"
                                    " ignored"))
            return
        self._dist.message_spi(spi, "MSI_SETSPI_NS")
