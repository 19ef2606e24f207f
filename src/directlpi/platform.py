"""Platforms: hardware assembled from a description, and the run loop.

``Platform.bare(...)`` gives the hardware at reset with nothing programmed, for
register-level work and outside conformance tests::

    hw = Platform.bare(cpus=4, lpi_id_bits=16)
    hw.bus.write(hw.gicr_base(1) + 0x40, 8192, 4, master="0000:00:01.0")  # an MSI
    hw.cpu(1).read_sysreg("ICC_IAR1_EL1")   # -> 8192 once LPIs are set up
"""

from __future__ import annotations

from collections.abc import Iterable

from directlpi.hw.bus import Bus
from directlpi.hw.cpuif import CPUInterface
from directlpi.hw.events import EventKind, Listener, Subscription
from directlpi.hw.machine import Machine, MachineConfig
from directlpi.hw.memory import PhysicalMemory


class Platform:
    """A machine and (in later layers) the devices and kernel that run on it."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    @classmethod
    def bare(
        cls,
        cpus: int = 4,
        *,
        lpi_id_bits: int = 16,
        spis: int = 988,
        direct_lpi: bool | list[bool] | tuple[bool, ...] = True,
        mbis: bool = True,
        lpis: bool = True,
        lpis_clearable: bool = False,
        priority_bits: int = 5,
        strict: bool = False,
        **layout: object,
    ) -> Platform:
        """Hardware at reset, nothing programmed.

        ``direct_lpi`` may be one flag per PE so that some RDs lack
        GICR_TYPER.DirectLPI.  ``layout`` accepts the memory-map fields of
        :class:`~directlpi.hw.machine.MachineConfig` (``gicd_base``,
        ``redist_regions``, ``redist_stride``, ``ram``, ``mpidrs``).

        Raises :class:`~directlpi.errors.ConfigError` (EINVAL) naming the option
        that is out of range.
        """
        if isinstance(direct_lpi, list):
            direct_lpi = tuple(direct_lpi)
        allowed = {"gicd_base", "redist_regions", "redist_stride", "ram", "mpidrs"}
        unknown = sorted(set(layout) - allowed)
        if unknown:
            from directlpi.errors import ConfigError
            raise ConfigError(f"unknown hardware option(s) {', '.join(unknown)}; known: "
                              "cpus, lpi_id_bits, spis, direct_lpi, mbis, lpis, lpis_clearable, "
                              f"priority_bits, strict, {', '.join(sorted(allowed))}")
        config = MachineConfig(cpus=cpus, lpi_id_bits=lpi_id_bits, spis=spis,
                               direct_lpi=direct_lpi, mbis=mbis, lpis=lpis,
                               lpis_clearable=lpis_clearable, priority_bits=priority_bits,
                               strict=strict, **layout)  # type: ignore[arg-type]
        return cls(Machine(config))

    # -- the hardware contract ------------------------------------------------------

    @property
    def bus(self) -> Bus:
        return self.machine.bus

    @property
    def memory(self) -> PhysicalMemory:
        return self.machine.memory

    @property
    def gicd_base(self) -> int:
        return self.machine.gicd_base

    def gicr_base(self, cpu: int) -> int:
        """RD_base of PE ``cpu``'s redistributor; its SGI_base frame is at +0x10000."""
        return self.machine.gicr_base(cpu)

    def cpu(self, i: int) -> CPUInterface:
        """PE ``i``'s GIC CPU interface (``read_sysreg`` / ``write_sysreg``)."""
        return self.machine.cpu(i)

    @property
    def num_cpus(self) -> int:
        return self.machine.config.cpus

    def observe(self, listener: Listener,
                kinds: Iterable[EventKind] | None = None) -> Subscription:
        """Call ``listener(event)`` for every architectural event of ``kinds`` (all if None)."""
        return self.machine.hub.subscribe(listener, kinds)

    def event_count(self, kind: EventKind) -> int:
        """How many ``kind`` events happened (exact for BAD_ACCESS, UNPREDICTABLE, IGNORED)."""
        return self.machine.hub.count(kind)

    def set_spi_line(self, intid: int, level: bool) -> None:
        """Drive a wired SPI input."""
        self.machine.gic.set_spi_line(intid, level)

    def set_ppi_line(self, cpu: int, intid: int, level: bool) -> None:
        """Drive PE ``cpu``'s PPI input."""
        self.machine.cpu(cpu)
        self.machine.gic.set_ppi_line(cpu, intid, level)
