"""The model's side of the differential test: ``Platform.bare`` configured as QEMU's board."""

from __future__ import annotations

from typing import Any

from directlpi import Platform, UnknownSysregError
from tests.peers.qemu_harness import UNDEF

#: ``Platform.bare`` options that build what ``qemu-system-aarch64 -M virt,gic-version=3,
#: its=off -cpu max`` (QEMU 7.2) builds: 224 SPIs (GICD_TYPER.ITLinesNumber = 7), 16 INTID
#: bits, LPIs but no Direct LPI registers and no MBIs, EnableLPIs clearable (CES = 1),
#: 5 priority bits (ICC_CTLR_EL1.PRIbits = 4 on "max", as on Cortex-A57), and the
#: IMPLEMENTATION DEFINED identification and routing choices QEMU makes.
QEMU_VIRT: dict[str, Any] = {
    "lpi_id_bits": 16,
    "spis": 224,
    "direct_lpi": False,
    "mbis": False,
    "lpis_clearable": True,
    "priority_bits": 5,
    "dist_priority_bits": 8,
    "cpuif_id_bits": 24,
    "no1n": True,
    "iidr": 0x43B,
    "common_lpi_aff": 1,
    "busy_reads": 0,
}


class ModelGic:
    """The same accesses as :class:`~tests.peers.qemu_harness.QemuGic`, on the model."""

    def __init__(self, cpus: int, **options: Any) -> None:
        self.plat = Platform.bare(cpus=cpus, **options)

    def read(self, addr: int, size: int) -> int:
        return self.plat.bus.read(addr, size)

    def write(self, addr: int, value: int, size: int) -> None:
        self.plat.bus.write(addr, value, size)

    def fill(self, addr: int, length: int, byte: int) -> None:
        self.plat.memory.write(addr, bytes([byte]) * length)

    def read_sysreg(self, cpu: int, name: str) -> int | str:
        icc = self.plat.cpu(cpu)
        if name == "ISR_EL1":               # the PE's interrupt inputs: I (bit 7), F (bit 6)
            return int(icc.can_signal(1)) << 7 | int(icc.can_signal(0)) << 6
        try:
            return icc.read_sysreg(name)
        except UnknownSysregError:
            return UNDEF

    def write_sysreg(self, cpu: int, name: str, value: int) -> str:
        try:
            self.plat.cpu(cpu).write_sysreg(name, value)
        except UnknownSysregError:
            return UNDEF
        return "ok"
