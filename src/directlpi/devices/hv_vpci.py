"""The vPCI bus of a Hyper-V-style host: a host bridge whose functions' MSI messages the
host owns (see :mod:`directlpi.hw.hv_vpci` for the host itself).

Config space and BARs are emulated by the host.  The model presents them as an ECAM
host bridge (Hyper-V's is a per-function 4 KiB window: the same accesses, each one a
trap).  The guest's writes of a function's *MSI message* -- MSI Message Address and
Data and Multiple Message Enable, the MSI-X entries' address and data words -- land in
a shadow the guest reads back, and never reach the function: the host programs those
itself (:meth:`HvVpciBridge.program_msi`), from the guest's create-interrupt messages.
Everything else -- the MSI and MSI-X enables, MSI mask bits, MSI-X vector control, BARs
-- reaches the function as the guest wrote it.
"""

from __future__ import annotations

from typing import Final

from directlpi.devices.pci import (
    HEADER_DECODE_END,
    MSI_CAP_OFFSET,
    PCI_MSI_ADDRESS_HI,
    PCI_MSI_ADDRESS_LO,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_QSIZE,
    PCI_MSIX_ENTRY_DATA,
    PCI_MSIX_ENTRY_LOWER_ADDR,
    PCI_MSIX_ENTRY_SIZE,
    PCI_MSIX_ENTRY_UPPER_ADDR,
    PCI_MSIX_ENTRY_VECTOR_CTRL,
    PciFunction,
    PciHostBridge,
)

_FLAGS: Final = MSI_CAP_OFFSET + PCI_MSI_FLAGS


class HvVpciBridge(PciHostBridge):
    """The vPCI bus: a host bridge whose functions' MSI message registers the host owns."""

    def __init__(self, *, ecam_base: int, ecam_size: int, mem_base: int, mem_size: int,
                 segment: int = 0) -> None:
        super().__init__(ecam_base=ecam_base, ecam_size=ecam_size, mem_base=mem_base,
                         mem_size=mem_size, segment=segment)
        #: The guest's view of each function's MSI message registers, byte by byte:
        #: (function, "cfg" | "bar", byte offset) -> the host-owned bits the guest wrote.
        self._shadow: dict[tuple[str, str, int], int] = {}
        self.ecam_window.window_name = "PCI ECAM (vPCI)"
        self.mem_window.window_name = "PCI MMIO (vPCI)"

    # -- the host's side ------------------------------------------------------------------------

    def function_at(self, wslot: int) -> PciFunction | None:
        """The function whose requester ID (bus << 8 | devfn) is ``wslot``."""
        return self.functions.get((wslot >> 8 & 0xFF, wslot >> 3 & 0x1F, wslot & 7))

    def all_functions(self) -> list[PciFunction]:
        return list(self.functions.values())

    def program_msi(self, fn: PciFunction, index: int, msix: bool, count: int, address: int,
                    data: int) -> None:
        """The host writes ``fn``'s real message registers (MSI-X entry ``index``, or the MSI
        capability with Multiple Message Enable for ``count`` vectors); address 0
        unprograms them."""
        if msix:
            entry = index * PCI_MSIX_ENTRY_SIZE
            fn.bar_write(entry + PCI_MSIX_ENTRY_LOWER_ADDR, address & 0xFFFF_FFFF, 4)
            fn.bar_write(entry + PCI_MSIX_ENTRY_UPPER_ADDR, address >> 32, 4)
            fn.bar_write(entry + PCI_MSIX_ENTRY_DATA, data, 4)
            return
        flags = fn.cfg_read(_FLAGS, 2) & ~PCI_MSI_FLAGS_QSIZE
        mme = (count - 1).bit_length() if address else 0
        fn.cfg_write(_FLAGS, flags | mme << 4, 2)
        fn.cfg_write(MSI_CAP_OFFSET + PCI_MSI_ADDRESS_LO, address & 0xFFFF_FFFF, 4)
        if fn.msi_64bit:
            fn.cfg_write(MSI_CAP_OFFSET + PCI_MSI_ADDRESS_HI, address >> 32, 4)
        fn.cfg_write(fn.msi_data_offset, data, 2)

    def guest_view(self, fn: PciFunction) -> dict[str, int]:
        """What the guest last wrote into ``fn``'s MSI message registers, as 32-bit words by
        ``"cfg:<offset>"`` / ``"bar:<offset>"`` (the host-owned bits only)."""
        key = fn.bdf
        words: dict[str, int] = {}
        for (k, where, off), byte in sorted(self._shadow.items()):
            if k == key:
                name = f"{where}:{off & ~3:#x}"
                words[name] = words.get(name, 0) | byte << 8 * (off & 3)
        return words


    # -- the guest's accesses -------------------------------------------------------------------

    @staticmethod
    def _owned(fn: PciFunction, space: str, off: int) -> int:
        """The bits of byte ``off`` of ``space`` ("cfg" or "bar") that the host owns: MSI
        Message Address and Data, the Multiple Message Enable field, each MSI-X entry's
        address and data -- whatever the width or alignment of the access."""
        if space == "bar":
            if fn.msix_vectors and off < fn.msix_vectors * PCI_MSIX_ENTRY_SIZE and \
                    off % PCI_MSIX_ENTRY_SIZE < PCI_MSIX_ENTRY_VECTOR_CTRL:
                return 0xFF
            return 0
        if not fn.msi_vectors:
            return 0
        if MSI_CAP_OFFSET + PCI_MSI_ADDRESS_LO <= off < fn.msi_data_offset + 2:
            return 0xFF
        return PCI_MSI_FLAGS_QSIZE if off == _FLAGS else 0      # MME: bits 6:4 of byte 2

    def _merge_read(self, fn: PciFunction, space: str, reg: int, size: int,
                    value: int) -> int:
        key = fn.bdf
        for k in range(size):
            m = self._owned(fn, space, reg + k)
            if m:
                shadow = self._shadow.get((key, space, reg + k), 0)
                value = (value & ~(m << 8 * k)) | ((shadow & m) << 8 * k)
        return value

    def _merge_write(self, fn: PciFunction, space: str, reg: int, size: int, value: int,
                     real: int) -> int | None:
        """Record the host-owned bits of the guest's write in the shadow; the value to
        write to the function (its own bits kept where the host owns them), or None when
        the guest's write touched only host-owned bits."""
        key = fn.bdf
        out, passes = value, False
        for k in range(size):
            m = self._owned(fn, space, reg + k)
            byte = (value >> 8 * k) & 0xFF
            if m:
                old = self._shadow.get((key, space, reg + k), 0)
                self._shadow[(key, space, reg + k)] = (old & ~m) | (byte & m)
                out = (out & ~(m << 8 * k)) | (real & (m << 8 * k))
            passes = passes or m != 0xFF
        return out if passes else None

    def _ecam_read(self, off: int, size: int) -> int:
        fn, reg = self._decode(off)
        value = super()._ecam_read(off, size)
        if fn is None or off % size:
            return value
        return self._merge_read(fn, "cfg", reg, size, value)

    def _ecam_write(self, off: int, value: int, size: int) -> None:
        fn, reg = self._decode(off)
        if fn is None:
            return
        if reg < HEADER_DECODE_END:
            self._bar_pages.clear()              # Command or a BAR: decoding may change
        if off % size == 0:
            merged = self._merge_write(fn, "cfg", reg, size, value, fn.cfg_read(reg, size))
            if merged is None:
                return
            value = merged
        fn.cfg_write(reg, value, size)

    def _mem_read(self, off: int, size: int) -> int:
        fn, reg = self._bar_owner(off)
        value = super()._mem_read(off, size)
        if fn is None or off % size:
            return value
        return self._merge_read(fn, "bar", reg, size, value)

    def _mem_write(self, off: int, value: int, size: int) -> None:
        fn, reg = self._bar_owner(off)
        if fn is not None and off % size == 0:
            merged = self._merge_write(fn, "bar", reg, size, value, fn.bar_read(reg, size))
            if merged is None:
                return
            value = merged
        super()._mem_write(off, value, size)
