"""What every MSI-capable device shares: it is a bus master that writes messages.

A device sends an MSI as a 4-byte DMA write with itself as the bus master.  It
can say which (address, data) pairs it is programmed to send *now*
(:meth:`MsiMaster.sends`), so that the platform can tell a genuine MSI from a
spoofed one (R6): a pair it was programmed with before and no longer is counts
as spoofed (a replay).

With posted writes (PCIe ordering), a device's MSIs may still be in flight on
the bus; a read that completes from the device lands them first.  ``flush`` is
how the device asks the bus to do so: whoever wires ``dma_write`` sets it too.

**The stale_msi fault** (``stale_writes`` = N > 0, set by the platform from the machine
option): once a vector's message is reprogrammed, the device goes on writing the message
it had before for that vector's next N signals (a device that latched its message, or
ignores the rewrite for a while).  While it writes one, ``sending_stale`` is True, so
that the platform's audit and the invariant checker attribute it to the fault.
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
        #: The stale_msi fault: signals per vector that still use the previous message.
        self.stale_writes = 0
        #: Vector -> [previous address, previous data, signals left] (the fault's state).
        self._stale: dict[int, list[int]] = {}
        #: True while the device writes a stale message (the fault), for the observers.
        self.sending_stale = False
        #: Stale messages written so far.
        self.stale_sent = 0

    def reprogrammed(self, i: int, old: tuple[int, int]) -> None:
        """Vector ``i``'s message changed from ``old``: with the stale_msi fault the device
        goes on writing the message it had before (the oldest not yet given up)."""
        if not self.stale_writes or not old[0]:
            return
        cur = self._stale.get(i)
        if cur is None:
            self._stale[i] = [old[0], old[1], self.stale_writes]
        else:
            cur[2] = self.stale_writes

    def _signal(self, i: int, address: int, data: int) -> bool:
        """Send vector ``i``'s message (address, data) -- or, under the stale_msi fault, the
        previous one.  Callers on the raise path test ``self._stale`` first and call
        ``_send`` directly when no vector has a stale message (one test per MSI)."""
        st = self._stale.get(i)
        if st is None:
            return self._send(address, data)
        st[2] -= 1
        if st[2] <= 0:
            del self._stale[i]
        if (st[0], st[1]) == (address, data):
            return self._send(address, data)
        self.sending_stale = True
        try:
            sent = self._send(st[0], st[1])
        finally:
            self.sending_stale = False
        self.stale_sent += sent
        return sent

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
