"""What every MSI-capable device shares: it is a bus master that writes messages.

A device sends an MSI as a 4-byte DMA write with itself as the bus master.  It
can say which (address, data) pairs it is programmed to send *now*
(:meth:`MsiMaster.sends`), so that the platform can tell a genuine MSI from a
spoofed one (R6): a pair it was programmed with before and no longer is counts
as spoofed (a replay).

With posted writes (PCIe ordering), a device's MSIs may still be in flight on
the bus; a read that completes from the device lands them first.  ``flush`` is
how the device asks the bus to do so: whoever wires ``dma_write`` sets it too.
"""

from __future__ import annotations

from collections.abc import Callable

DmaWrite = Callable[[int, int, int, str], None]
"""``dma_write(address, value, size, master)``: a write on the bus."""


class MsiMaster:
    """The bus side of an MSI-capable device, named ``requester`` on the bus."""

    def __init__(self, requester: str) -> None:
        self.requester = requester
        self.dma_write: DmaWrite | None = None
        #: Lands this device's posted writes still in flight (``bus.flush(requester)``);
        #: None when nothing is wired (or writes are not posted): nothing to land.
        self.flush: Callable[[], None] | None = None
        #: Whether the device may master the bus now (PCI: Command.BME).
        self._master = True
        #: MSIs the device could not send (not programmed, no mechanism, no bus mastering).
        self.dropped = 0
        #: MSIs sent on the bus.
        self.sent = 0

    def _send(self, address: int, data: int) -> bool:
        if not self._master or self.dma_write is None:
            self.dropped += 1
            return False
        self.sent += 1
        self.dma_write(address, data, 4, self.requester)
        return True

    def land_posted(self) -> None:
        """A read is completing from the device: its posted writes land before it does
        (PCIe: a completion may not pass a posted write in the same direction)."""
        if self.flush is not None:
            self.flush()

    def spoof_msi(self, address: int, data: int) -> None:
        """Write (address, data) on the bus as this device, ignoring its MSI registers --
        what a buggy or malicious device (or a guest owning it) can do."""
        if self.dma_write is not None:
            self.dma_write(address, data, 4, self.requester)

    def sends(self, address: int, data: int) -> bool:
        """Whether (address, data) is a message the device is programmed to send now.

        Not "ever": a message the driver has since replaced, or that a disabled
        mechanism holds, is not one.  A master with no MSI mechanism sends none.
        """
        return False
