"""A machine with PCI functions behind an ECAM host bridge and a platform MSI device,
wired to the bus the way a platform does it (``dma_write`` and ``flush``), built
without the Platform façade."""

from __future__ import annotations

from functools import partial

from directlpi.devices.pci import PciFunction, PciHostBridge
from directlpi.devices.platform_msi import PlatformMsiDevice
from directlpi.hw.machine import Machine, MachineConfig

RAM = 0x4000_0000
ECAM_BASE, ECAM_SIZE = 0x3F00_0000, 0x100_0000
PCI_MEM_BASE, PCI_MEM_SIZE = 0x1000_0000, 0x1000_0000
# Literal PCI configuration offsets (PCI Local Bus specification), not the model's.
PCI_COMMAND = 0x04
PCI_BAR0 = 0x10
PCI_CAPABILITY_LIST = 0x34
FNS = ("0000:00:01.0", "0000:00:02.0")
PLAT_DEV = "dma0"
RAW = "raw-master"
MASTERS = (*FNS, PLAT_DEV, RAW)


def machine(*, posted: bool = True, seed: int = 0, strict: bool = False) -> Machine:
    return Machine(MachineConfig(cpus=2, posted_writes=posted, posted_seed=seed,
                                 strict=strict))


def ecam_addr(bdf: str, off: int) -> int:
    bus, dev, fn = int(bdf[5:7], 16), int(bdf[8:10], 16), int(bdf[11])
    return ECAM_BASE + (bus << 20 | dev << 15 | fn << 12) + off


class Rig:
    """Two PCI functions (FNS) and a platform device (PLAT_DEV) on one machine."""

    def __init__(self, *, posted: bool = True, seed: int = 0, msi_vectors: int = 0,
                 msix_vectors: int = 4) -> None:
        self.m = machine(posted=posted, seed=seed)
        bus = self.m.bus
        host = PciHostBridge(ecam_base=ECAM_BASE, ecam_size=ECAM_SIZE,
                             mem_base=PCI_MEM_BASE, mem_size=PCI_MEM_SIZE)
        bus.map_window(ECAM_BASE, ECAM_SIZE, host.ecam_window)
        bus.map_window(PCI_MEM_BASE, PCI_MEM_SIZE, host.mem_window)
        self.fns = [PciFunction(bdf, msi_vectors=msi_vectors, msix_vectors=msix_vectors)
                    for bdf in FNS]
        for fn in self.fns:
            host.attach(fn, bus.write, bus.flush)
        self.dev = PlatformMsiDevice(PLAT_DEV, 2)
        self.dev.dma_write = bus.write
        self.dev.flush = partial(bus.flush, PLAT_DEV)
        # BAR0 read through ECAM now, while nothing is in flight.
        self.bars = [bus.read(ecam_addr(bdf, PCI_BAR0), 4) & ~0xF for bdf in FNS]
        self.landed: list[tuple[str, int]] = []
        bus.add_landing_hook(lambda a, v, s, master: self.landed.append((master, v)))

    def issue(self, k: int, value: int) -> None:
        """Master ``MASTERS[k]`` writes ``value`` to its own word of RAM."""
        addr = RAM + 0x100 * k
        if k < len(self.fns):
            self.fns[k].spoof_msi(addr, value)
        elif k == len(self.fns):
            self.dev.spoof_msi(addr, value)
        else:
            self.m.bus.write(addr, value, 4, RAW)

    def ram_word(self, k: int) -> int:
        return self.m.bus.read(RAM + 0x100 * k, 4)

    def cfg_read(self, k: int, off: int, size: int = 4) -> int:
        return self.m.bus.read(ecam_addr(FNS[k], off), size)

    def cfg_write(self, k: int, off: int, value: int, size: int = 4) -> None:
        self.m.bus.write(ecam_addr(FNS[k], off), value, size)

    def cap(self, k: int, cap_id: int) -> int:
        """Offset of function k's capability ``cap_id``, found by walking the list."""
        pos = self.cfg_read(k, PCI_CAPABILITY_LIST, 1)
        while pos:
            if self.cfg_read(k, pos, 1) == cap_id:
                return pos
            pos = self.cfg_read(k, pos + 1, 1)
        raise LookupError(cap_id)
