"""PCI functions with MSI and MSI-X, and the ECAM host bridge they sit behind.

Per the PCI Local Bus / PCIe specifications:

* **MSI** capability (ID 0x05): Message Control (Enable, Multiple Message
  Capable/Enable, 64-bit Address Capable, Per-Vector Masking Capable), Message
  Address (and Upper Address when 64-bit capable), 16-bit Message Data, Mask and
  Pending Bits when per-vector masking is implemented.  With N = 2^MME vectors
  enabled, vector i is signalled by writing Message Data with its low log2(N)
  bits replaced by i, to the one Message Address.
* **MSI-X** capability (ID 0x11): Message Control (Table Size, Function Mask,
  Enable), the table and the PBA in BAR0: per entry Message Address (64-bit),
  32-bit Message Data and Vector Control (Mask).  A masked vector sets its
  PBA bit; it is sent when unmasked.
* Every message is a DWORD memory write on the bus with the function as bus
  master -- an MSI is nothing else -- and only while Bus Master Enable is set.
* **Ordering** (PCIe Base Specification, "Transaction Ordering"): memory writes
  are posted, and a completion may not pass a posted write in the same
  direction.  So a CPU read of the function's configuration space (through the
  host bridge's ECAM) or of its BAR (MSI-X table, PBA) lands the function's
  posted writes before it returns -- and only that function's.

Choice made here (the strict one): a CPU *write* to configuration space or to a
BAR does not land anything.  Configuration writes are non-posted on PCIe and
their completion would order too, but the model makes a driver read back to
flush, as Linux does: ``__pci_write_msi_msg`` reads the MSI-X entry back and
``pci_msix_mask`` reads after masking.

The function can say which (address, data) pairs it is programmed to send now
(:meth:`PciFunction.sends`), so that the platform can tell a genuine MSI from a
spoofed one.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from functools import partial
from typing import Final

from directlpi.devices.msi_master import DmaWrite, MsiMaster
from directlpi.errors import ConfigError, DirectLPIError

# Configuration space offsets (type 0 header)
PCI_VENDOR_ID: Final = 0x00
PCI_DEVICE_ID: Final = 0x02
PCI_COMMAND: Final = 0x04
PCI_STATUS: Final = 0x06
PCI_CLASS_REVISION: Final = 0x08
PCI_HEADER_TYPE: Final = 0x0E
PCI_BASE_ADDRESS_0: Final = 0x10
PCI_CAPABILITY_LIST: Final = 0x34
PCI_INTERRUPT_PIN: Final = 0x3D

PCI_COMMAND_MEMORY: Final = 0x0002
PCI_COMMAND_MASTER: Final = 0x0004
PCI_COMMAND_INTX_DISABLE: Final = 0x0400
PCI_STATUS_CAP_LIST: Final = 0x0010

PCI_CAP_ID_MSI: Final = 0x05
PCI_CAP_ID_MSIX: Final = 0x11

# MSI capability (offsets from the capability)
PCI_MSI_FLAGS: Final = 0x02
PCI_MSI_FLAGS_ENABLE: Final = 0x0001
PCI_MSI_FLAGS_QMASK: Final = 0x000E        # Multiple Message Capable
PCI_MSI_FLAGS_QSIZE: Final = 0x0070        # Multiple Message Enable
PCI_MSI_FLAGS_64BIT: Final = 0x0080
PCI_MSI_FLAGS_MASKBIT: Final = 0x0100
PCI_MSI_ADDRESS_LO: Final = 0x04
PCI_MSI_ADDRESS_HI: Final = 0x08
PCI_MSI_DATA_32: Final = 0x08
PCI_MSI_DATA_64: Final = 0x0C
PCI_MSI_MASK_32: Final = 0x0C
PCI_MSI_MASK_64: Final = 0x10
PCI_MSI_PENDING_32: Final = 0x10
PCI_MSI_PENDING_64: Final = 0x14

# MSI-X capability
PCI_MSIX_FLAGS: Final = 0x02
PCI_MSIX_FLAGS_QSIZE: Final = 0x07FF
PCI_MSIX_FLAGS_MASKALL: Final = 0x4000
PCI_MSIX_FLAGS_ENABLE: Final = 0x8000
PCI_MSIX_TABLE: Final = 0x04
PCI_MSIX_PBA: Final = 0x08
PCI_MSIX_ENTRY_SIZE: Final = 16
PCI_MSIX_ENTRY_LOWER_ADDR: Final = 0x0
PCI_MSIX_ENTRY_UPPER_ADDR: Final = 0x4
PCI_MSIX_ENTRY_DATA: Final = 0x8
PCI_MSIX_ENTRY_VECTOR_CTRL: Final = 0xC
PCI_MSIX_ENTRY_CTRL_MASKBIT: Final = 0x1

MSI_CAP_OFFSET: Final = 0x50
MSIX_CAP_OFFSET: Final = 0x70
MSIX_PBA_OFFSET: Final = 0x8000
"""PBA placed 32 KiB into BAR0, after a table of up to 2048 entries."""

_BDF: Final = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])$")


def parse_bdf(bdf: str) -> tuple[int, int, int, int]:
    """``"0000:00:01.0"`` -> (segment, bus, device, function); ConfigError if malformed."""
    m = _BDF.match(bdf) if isinstance(bdf, str) else None
    if m is None or int(m.group(3), 16) > 31:
        raise ConfigError(f"{bdf!r} is not a PCI address of the form DDDD:BB:DD.F "
                          "(device 00-1f, function 0-7)", errno.EINVAL)
    return int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4))


class PciFunction(MsiMaster):
    """One PCI function: configuration space, MSI / MSI-X, BAR0 with the MSI-X table."""

    def __init__(self, bdf: str, *, vendor: int = 0x1AF4, device: int = 0x1000,
                 msi_vectors: int = 0, msix_vectors: int = 0, msi_64bit: bool = True,
                 msi_per_vector_mask: bool = False, class_code: int = 0x020000) -> None:
        parse_bdf(bdf)
        if msi_vectors not in (0, 1, 2, 4, 8, 16, 32):
            raise ConfigError(f"{bdf}: msi_vectors={msi_vectors!r}: MSI offers 1, 2, 4, 8, 16 "
                              "or 32 vectors (or 0 for none)", errno.EINVAL)
        if not isinstance(msix_vectors, int) or not 0 <= msix_vectors <= 2048:
            raise ConfigError(f"{bdf}: msix_vectors={msix_vectors!r}: MSI-X offers 1..2048 "
                              "vectors (or 0 for none)", errno.EINVAL)
        super().__init__(bdf)
        self.bdf = bdf
        self.name = bdf
        self.msi_vectors = msi_vectors
        self.msix_vectors = msix_vectors
        self.msi_64bit = msi_64bit
        self.msi_per_vector_mask = msi_per_vector_mask
        self.cfg = bytearray(4096)
        self._wmask = bytearray(4096)
        self.bar0_base = 0
        self.bar0_size = 0
        self.msix_table = bytearray(PCI_MSIX_ENTRY_SIZE * max(msix_vectors, 1))
        self.msix_pba = bytearray(max(8, (msix_vectors + 63) // 64 * 8))
        # Derived from config space and the MSI-X table on every write to them, so that
        # signalling decodes nothing (the registers stay the source of truth).
        self._master = False
        self._msi_on = False
        self._msix_on = False
        self._msix_fmask = False
        self._msix_msg = [(0, 0)] * msix_vectors
        self._msix_vmask = [True] * msix_vectors
        self._msi_base = (0, 0, 1)          # address, data, vectors enabled (2^MME)
        self._build_config(vendor, device, class_code)
        self._refresh()

    # -- configuration space layout --------------------------------------------------------

    def _put(self, off: int, value: int, size: int, wmask: int = 0) -> None:
        self.cfg[off:off + size] = value.to_bytes(size, "little")
        self._wmask[off:off + size] = wmask.to_bytes(size, "little")

    def _get(self, off: int, size: int) -> int:
        return int.from_bytes(self.cfg[off:off + size], "little")

    def _build_config(self, vendor: int, device: int, class_code: int) -> None:
        self._put(PCI_VENDOR_ID, vendor, 2)
        self._put(PCI_DEVICE_ID, device, 2)
        self._put(PCI_COMMAND, 0, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
                  | PCI_COMMAND_INTX_DISABLE)
        self._put(PCI_CLASS_REVISION, class_code << 8 | 0x01, 4)
        caps = []
        if self.msi_vectors:
            caps.append(MSI_CAP_OFFSET)
        if self.msix_vectors:
            caps.append(MSIX_CAP_OFFSET)
            size = 0x1000
            while size < MSIX_PBA_OFFSET + len(self.msix_pba):
                size <<= 1
            self.bar0_size = size
            self._put(PCI_BASE_ADDRESS_0, 0, 4, ~(size - 1) & 0xFFFFFFF0)
        if caps:
            self._put(PCI_STATUS, PCI_STATUS_CAP_LIST, 2)
            self._put(PCI_CAPABILITY_LIST, caps[0], 1)
        for i, off in enumerate(caps):
            nxt = caps[i + 1] if i + 1 < len(caps) else 0
            if off == MSI_CAP_OFFSET:
                self._build_msi(off, nxt)
            else:
                self._build_msix(off, nxt)

    def _build_msi(self, off: int, nxt: int) -> None:
        self._put(off, PCI_CAP_ID_MSI, 1)
        self._put(off + 1, nxt, 1)
        mmc = (self.msi_vectors - 1).bit_length()
        flags = (mmc << 1) | (PCI_MSI_FLAGS_64BIT if self.msi_64bit else 0) | (
            PCI_MSI_FLAGS_MASKBIT if self.msi_per_vector_mask else 0)
        self._put(off + PCI_MSI_FLAGS, flags, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE)
        self._put(off + PCI_MSI_ADDRESS_LO, 0, 4, 0xFFFFFFFC)
        if self.msi_64bit:
            self._put(off + PCI_MSI_ADDRESS_HI, 0, 4, 0xFFFFFFFF)
        self._put(self.msi_data_offset, 0, 2, 0xFFFF)
        if self.msi_per_vector_mask:
            self._put(self._msi_mask_off, 0, 4, (1 << self.msi_vectors) - 1)
            self._put(self._msi_mask_off + 4, 0, 4)      # Pending Bits: read-only

    def _build_msix(self, off: int, nxt: int) -> None:
        self._put(off, PCI_CAP_ID_MSIX, 1)
        self._put(off + 1, nxt, 1)
        self._put(off + PCI_MSIX_FLAGS, self.msix_vectors - 1, 2,
                  PCI_MSIX_FLAGS_MASKALL | PCI_MSIX_FLAGS_ENABLE)
        self._put(off + PCI_MSIX_TABLE, 0, 4)             # offset 0, BIR 0
        self._put(off + PCI_MSIX_PBA, MSIX_PBA_OFFSET, 4)  # BIR 0
        for i in range(self.msix_vectors):               # every entry masked at reset
            self._entry_put(i, PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_ENTRY_CTRL_MASKBIT)
            self._msix_vmask[i] = True

    @property
    def msi_data_offset(self) -> int:
        """Config-space offset of the MSI Message Data register."""
        return MSI_CAP_OFFSET + (PCI_MSI_DATA_64 if self.msi_64bit else PCI_MSI_DATA_32)

    @property
    def _msi_mask_off(self) -> int:
        return MSI_CAP_OFFSET + (PCI_MSI_MASK_64 if self.msi_64bit else PCI_MSI_MASK_32)

    # -- configuration accesses (through the host bridge's ECAM) -------------------------------

    def cfg_read(self, off: int, size: int) -> int:
        if off % size or off + size > 4096:
            return 0xFFFFFFFF & ((1 << (8 * size)) - 1)
        return self._get(off, size)

    def cfg_write(self, off: int, value: int, size: int) -> None:
        if off % size or off + size > 4096:
            return
        old = self.cfg[off:off + size]
        for k in range(size):
            m = self._wmask[off + k]
            b = (value >> (8 * k)) & 0xFF
            self.cfg[off + k] = (old[k] & ~m) | (b & m)
        if self.cfg[off:off + size] != old:
            self._config_changed()

    def _refresh(self) -> None:
        self._master = bool(self._get(PCI_COMMAND, 2) & PCI_COMMAND_MASTER)
        self._msi_on = self.msi_enabled
        self._msix_on = self.msix_enabled
        self._msix_fmask = bool(self.msix_vectors) and bool(
            self._get(MSIX_CAP_OFFSET + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_MASKALL)
        if self.msi_vectors:
            self._msi_base = (*self._msi_regs(), self.msi_enabled_vectors)

    def _config_changed(self) -> None:
        if self.stale_writes and self.msi_vectors:
            old = self._msi_base
            self._refresh()
            if old[:2] != self._msi_base[:2]:
                for i in range(old[2]):
                    self.reprogrammed(i, (old[0], (old[1] & ~(old[2] - 1)) | i))
        self._refresh()
        self.bar0_base = self._get(PCI_BASE_ADDRESS_0, 4) & 0xFFFFFFF0
        if self.msi_vectors:
            self._flush_msi_pending()
        if self.msix_vectors:
            self._flush_msix_pending()

    # -- state the function acts on ----------------------------------------------------------------

    @property
    def bus_master(self) -> bool:
        return bool(self._get(PCI_COMMAND, 2) & PCI_COMMAND_MASTER)

    @property
    def msi_enabled(self) -> bool:
        return bool(self.msi_vectors) and bool(
            self._get(MSI_CAP_OFFSET + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE)

    @property
    def msix_enabled(self) -> bool:
        return bool(self.msix_vectors) and bool(
            self._get(MSIX_CAP_OFFSET + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE)

    @property
    def msi_enabled_vectors(self) -> int:
        """2^MME: the vectors the function may signal."""
        return 1 << ((self._get(MSI_CAP_OFFSET + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_QSIZE) >> 4)

    def _msi_regs(self) -> tuple[int, int]:
        lo = self._get(MSI_CAP_OFFSET + PCI_MSI_ADDRESS_LO, 4)
        hi = self._get(MSI_CAP_OFFSET + PCI_MSI_ADDRESS_HI, 4) if self.msi_64bit else 0
        return hi << 32 | lo, self._get(self.msi_data_offset, 2)

    def _entry_get(self, i: int, field: int) -> int:
        off = i * PCI_MSIX_ENTRY_SIZE + field
        return int.from_bytes(self.msix_table[off:off + 4], "little")

    def _entry_put(self, i: int, field: int, value: int) -> None:
        off = i * PCI_MSIX_ENTRY_SIZE + field
        self.msix_table[off:off + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")

    def msi_message(self, i: int) -> tuple[int, int]:
        """(address, data) vector ``i`` would be written with now."""
        if self.msix_enabled or (self.msix_vectors and not self.msi_enabled):
            self._check_vector(i, self.msix_vectors, "MSI-X")
            addr = (self._entry_get(i, PCI_MSIX_ENTRY_UPPER_ADDR) << 32
                    | self._entry_get(i, PCI_MSIX_ENTRY_LOWER_ADDR))
            return addr, self._entry_get(i, PCI_MSIX_ENTRY_DATA)
        self._check_vector(i, self.msi_vectors, "MSI")
        addr, data = self._msi_regs()
        n = self.msi_enabled_vectors
        return addr, (data & ~(n - 1)) | i

    def _check_vector(self, i: int, n: int, what: str) -> None:
        if not isinstance(i, int) or not 0 <= i < n:
            raise DirectLPIError(f"{self.bdf}: {what} vector {i!r} does not exist (it has {n})",
                                 errno.EINVAL)

    # -- signalling --------------------------------------------------------------------------------

    def raise_msi(self, i: int) -> bool:
        """Signal vector ``i`` as the PCI spec says; True if a write went on the bus.

        A masked vector sets its pending bit instead and is sent when unmasked.
        With neither MSI nor MSI-X enabled (no INTx in this model), or without
        Bus Master Enable, nothing is sent (counted in ``dropped``).
        """
        if self._msix_on:
            if not 0 <= i < self.msix_vectors:
                self._check_vector(i, self.msix_vectors, "MSI-X")
            if self._msix_fmask or self._msix_vmask[i]:
                self.msix_pba[i // 8] |= 1 << (i % 8)
                return False
            address, data = self._msix_msg[i]
            return self._signal(i, address, data) if self._stale else self._send(address, data)
        if self._msi_on:
            address, data, n = self._msi_base
            if not 0 <= i < n or i >= self.msi_vectors:
                raise DirectLPIError(f"{self.bdf}: MSI vector {i} is not enabled (Multiple "
                                     f"Message Enable allows {n})", errno.EINVAL)
            if self.msi_per_vector_mask and self._get(self._msi_mask_off, 4) >> i & 1:
                self._put(self._msi_mask_off + 4, self._get(self._msi_mask_off + 4, 4)
                          | 1 << i, 4)
                return False
            data = (data & ~(n - 1)) | i
            return self._signal(i, address, data) if self._stale else self._send(address, data)
        self._check_vector(i, max(self.msi_vectors, self.msix_vectors), "MSI")
        self.dropped += 1
        return False

    def _flush_msi_pending(self) -> None:
        if not self.msi_per_vector_mask or not self.msi_enabled:
            return
        pend = self._get(self._msi_mask_off + 4, 4)
        ready = pend & ~self._get(self._msi_mask_off, 4)
        for i in range(32):
            if ready >> i & 1:
                self._put(self._msi_mask_off + 4, self._get(self._msi_mask_off + 4, 4)
                          & ~(1 << i), 4)
                self._signal(i, *self.msi_message(i))

    def _flush_msix_pending(self) -> None:
        if not self.msix_enabled:
            return
        if self._get(MSIX_CAP_OFFSET + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_MASKALL:
            return
        for i in range(self.msix_vectors):
            if self.msix_pba[i // 8] >> (i % 8) & 1 and not (
                    self._entry_get(i, PCI_MSIX_ENTRY_VECTOR_CTRL)
                    & PCI_MSIX_ENTRY_CTRL_MASKBIT):
                self.msix_pba[i // 8] &= ~(1 << (i % 8))
                self._signal(i, *self.msi_message(i))

    def sends(self, address: int, data: int) -> bool:
        """Whether (address, data) is a message the function is programmed to send now.

        MSI-X enabled: any table entry's message, masked or not (a masked vector is
        sent when unmasked).  MSI enabled: (Message Address, Message Data with its
        low log2(N) bits replaced by i) for i < N = 2^MME.  Neither: nothing.
        """
        if self._msix_on and (address, data) in self._msix_msg:
            return True
        if self._msi_on:
            base_address, base_data, n = self._msi_base
            return address == base_address and data & ~(n - 1) == base_data & ~(n - 1)
        return False

    def msix_pending(self, i: int) -> bool:
        return bool(self.msix_pba[i // 8] >> (i % 8) & 1)

    def msi_pending(self, i: int) -> bool:
        return bool(self.msi_per_vector_mask and self._get(self._msi_mask_off + 4, 4) >> i & 1)

    # -- BAR0: the MSI-X table and PBA -------------------------------------------------------------

    def bar_read(self, off: int, size: int) -> int:
        if not self.msix_vectors or off % size:
            return 0
        if off < len(self.msix_table):
            return int.from_bytes(self.msix_table[off:off + size], "little")
        if MSIX_PBA_OFFSET <= off < MSIX_PBA_OFFSET + len(self.msix_pba):
            o = off - MSIX_PBA_OFFSET
            return int.from_bytes(self.msix_pba[o:o + size], "little")
        return 0

    def bar_write(self, off: int, value: int, size: int) -> None:
        if not self.msix_vectors or off % size or off + size > len(self.msix_table):
            return                                   # the PBA is read-only
        if size == 8:
            self.bar_write(off, value & 0xFFFFFFFF, 4)
            self.bar_write(off + 4, value >> 32, 4)
            return
        entry, field = divmod(off, PCI_MSIX_ENTRY_SIZE)
        cur = self._entry_get(entry, field & ~3)
        shift = 8 * (field & 3)
        mask = ((1 << (8 * size)) - 1) << shift
        new = (cur & ~mask) | ((value << shift) & mask)
        if field & ~3 == PCI_MSIX_ENTRY_VECTOR_CTRL:
            new &= PCI_MSIX_ENTRY_CTRL_MASKBIT
        self._entry_put(entry, field & ~3, new)
        if field & ~3 != PCI_MSIX_ENTRY_VECTOR_CTRL:
            old = self._msix_msg[entry]
            self._msix_msg[entry] = self.msi_message_entry(entry)
            if self.stale_writes and old != self._msix_msg[entry]:
                self.reprogrammed(entry, old)
        else:
            self._msix_vmask[entry] = bool(new & PCI_MSIX_ENTRY_CTRL_MASKBIT)
            self._flush_msix_pending()

    def msi_message_entry(self, i: int) -> tuple[int, int]:
        addr = (self._entry_get(i, PCI_MSIX_ENTRY_UPPER_ADDR) << 32
                | self._entry_get(i, PCI_MSIX_ENTRY_LOWER_ADDR))
        return addr, self._entry_get(i, PCI_MSIX_ENTRY_DATA)

    def __repr__(self) -> str:
        return f"<PciFunction {self.bdf}>"


HEADER_DECODE_END: Final = 0x28
"""Config writes below this offset (Command, the BARs) can change what a function decodes."""


class _Window:
    def __init__(self, name: str, read: Callable[[int, int], int],
                 write: Callable[[int, int, int], None]) -> None:
        self.window_name = name
        self.window_read = read
        self.window_write = write


class PciHostBridge:
    """A generic ECAM host bridge (``pci-host-ecam-generic``): config space + a 32-bit
    memory window from which firmware assigns BARs."""

    def __init__(self, *, ecam_base: int, ecam_size: int, mem_base: int, mem_size: int,
                 segment: int = 0) -> None:
        self.ecam_base = ecam_base
        self.ecam_size = ecam_size
        self.mem_base = mem_base
        self.mem_size = mem_size
        self.segment = segment
        self.bus_end = ecam_size >> 20
        self.functions: dict[tuple[int, int, int], PciFunction] = {}
        self._next_bar = mem_base
        #: Memory-window page -> the function that last decoded it (see _bar_owner).
        self._bar_pages: dict[int, PciFunction] = {}
        self.ecam_window = _Window("PCI ECAM", self._ecam_read, self._ecam_write)
        self.mem_window = _Window("PCI MMIO", self._mem_read, self._mem_write)

    def attach(self, fn: PciFunction, dma_write: DmaWrite,
               flush: Callable[[str], None] | None = None) -> None:
        """Put ``fn`` behind the bridge, its BAR0 assigned and bus mastering on.

        ``dma_write`` is how it writes on the bus; ``flush(requester)`` lands a
        master's posted writes (``Bus.flush``): config and BAR reads of ``fn`` call
        it first.  Without it, reads land nothing (right when writes are not posted).
        Raises ConfigError: EINVAL (not this bridge's segment or buses), EEXIST (the
        address is taken), ENOSPC (no room for BAR0 in the memory window).
        """
        seg, bus, dev, func = parse_bdf(fn.bdf)
        if seg != self.segment or bus >= self.bus_end:
            raise ConfigError(f"{fn.bdf}: the host bridge serves segment {self.segment:04x}, "
                              f"buses 00-{self.bus_end - 1:02x}", errno.EINVAL)
        if (bus, dev, func) in self.functions:
            raise ConfigError(f"{fn.bdf}: a function already exists at this address",
                              errno.EEXIST)
        if fn.bar0_size:
            base = (self._next_bar + fn.bar0_size - 1) & ~(fn.bar0_size - 1)
            if base + fn.bar0_size > self.mem_base + self.mem_size:
                raise ConfigError(f"{fn.bdf}: no room left in the PCI memory window",
                                  errno.ENOSPC)
            self._next_bar = base + fn.bar0_size
            fn.cfg_write(PCI_BASE_ADDRESS_0, base, 4)
        # As firmware leaves it: memory decoding and bus mastering enabled.
        fn.cfg_write(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2)
        fn.dma_write = dma_write
        if flush is not None:
            fn.flush = partial(flush, fn.requester)
        self.functions[(bus, dev, func)] = fn

    def ecam_address(self, bdf: str) -> int:
        _, bus, dev, func = parse_bdf(bdf)
        return self.ecam_base + (bus << 20 | dev << 15 | func << 12)

    def _decode(self, off: int) -> tuple[PciFunction | None, int]:
        key = (off >> 20, (off >> 15) & 0x1F, (off >> 12) & 7)
        return self.functions.get(key), off & 0xFFF

    def _ecam_read(self, off: int, size: int) -> int:
        fn, reg = self._decode(off)
        if fn is None:
            return (1 << (8 * size)) - 1          # no function: all ones (master abort)
        fn.land_posted()                          # the completion comes from fn
        return fn.cfg_read(reg, size)

    def _ecam_write(self, off: int, value: int, size: int) -> None:
        fn, reg = self._decode(off)
        if fn is not None:
            if reg < HEADER_DECODE_END:
                self._bar_pages.clear()          # Command or a BAR: decoding may change
            fn.cfg_write(reg, value, size)

    def _bar_owner(self, off: int) -> tuple[PciFunction | None, int]:
        """The function whose BAR0 decodes memory-window offset ``off``.  The last owner
        of each 4 KiB page is remembered and checked again on use (a BAR moved or memory
        decoding turned off is seen), and forgotten on a config write through ECAM to the
        Command register or a BAR, so a page is looked up among every function once."""
        addr = self.mem_base + off
        fn = self._bar_pages.get(addr >> 12)
        if fn is not None and self._decodes(fn, addr):
            return fn, addr - fn.bar0_base
        for fn in self.functions.values():
            if self._decodes(fn, addr):
                self._bar_pages[addr >> 12] = fn
                return fn, addr - fn.bar0_base
        return None, 0

    @staticmethod
    def _decodes(fn: PciFunction, addr: int) -> bool:
        return bool(fn.bar0_size and fn.bar0_base <= addr < fn.bar0_base + fn.bar0_size
                    and fn.cfg_read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY)

    def _mem_read(self, off: int, size: int) -> int:
        fn, reg = self._bar_owner(off)
        if fn is None:
            return (1 << (8 * size)) - 1
        fn.land_posted()                          # the completion comes from fn
        return fn.bar_read(reg, size)

    def _mem_write(self, off: int, value: int, size: int) -> None:
        fn, reg = self._bar_owner(off)
        if fn is not None:
            fn.bar_write(reg, value, size)
