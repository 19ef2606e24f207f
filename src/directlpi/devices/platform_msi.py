"""A platform (non-PCI) device that signals MSIs through slots its driver programs.

Each slot is an (address, data) register pair in the device; the driver
programs it through a callback (the write-message callback of platform-MSI).
Signalling slot i writes its data to its address on the bus, with the device
as bus master.  The device has no mask: masking is the interrupt controller's.
A slot with address 0 is unprogrammed: signalling it sends nothing.

:meth:`PlatformMsiDevice.read_slot` is the driver reading a slot back through
the device's registers: an MMIO read that completes from the device, so the
device's posted writes land before it returns (as a PCIe completion may not
pass them; the model applies the same rule to a platform device's register
read, which is how a driver flushes its posted MSIs).
"""

from __future__ import annotations

import errno

from directlpi.devices.msi_master import MsiMaster
from directlpi.errors import ConfigError, DirectLPIError


class PlatformMsiDevice(MsiMaster):
    """A device with ``slots`` MSI (address, data) slots."""

    def __init__(self, name: str, slots: int) -> None:
        if not isinstance(slots, int) or not 1 <= slots <= 2048:
            raise ConfigError(f"platform device {name}: {slots!r} MSI slots (1..2048)",
                              errno.EINVAL)
        super().__init__(name)
        self.name = name
        self.slots = [(0, 0)] * slots
        #: Its DeviceID at an ITS: the msi-specifier firmware gives it (set by the platform).
        self.msi_device_id: int | None = None

    def program_slot(self, i: int, address: int, data: int) -> None:
        """What the driver's write-message callback does: store a slot's message."""
        self._check(i)
        old = self.slots[i]
        self.slots[i] = (address, data)
        if self.stale_writes and old != (address, data):
            self.reprogrammed(i, old)

    def msi_message(self, i: int) -> tuple[int, int]:
        self._check(i)
        return self.slots[i]

    def read_slot(self, i: int) -> tuple[int, int]:
        """The driver's read-back of slot ``i`` (address, data): lands the device's
        posted writes first.  Raises DirectLPIError (EINVAL) for a slot that does not
        exist."""
        self._check(i)
        self.land_posted()
        return self.slots[i]

    def sends(self, address: int, data: int) -> bool:
        """Whether (address, data) is in a programmed slot now (address 0: unprogrammed)."""
        return address != 0 and (address, data) in self.slots

    def raise_msi(self, i: int) -> bool:
        """Signal slot ``i``; an unprogrammed slot (address 0) sends nothing."""
        self._check(i)
        address, data = self.slots[i]
        if not address:
            self.dropped += 1
            return False
        return self._signal(i, address, data) if self._stale else self._send(address, data)

    def _check(self, i: int) -> None:
        if not isinstance(i, int) or not 0 <= i < len(self.slots):
            raise DirectLPIError(f"{self.name}: MSI slot {i!r} does not exist "
                                 f"(it has {len(self.slots)})", errno.EINVAL)

    def __repr__(self) -> str:
        return f"<PlatformMsiDevice {self.name}>"
