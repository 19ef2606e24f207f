from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from directlpi import Platform
from directlpi.devices.wired import WiredDevice
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import Kernel


@dataclass
class Wired:
    """A wired device, its virq, and a record of (irq, cpu) per handler run."""

    dev: WiredDevice
    virq: int
    runs: list[tuple[int, int]] = field(default_factory=list)


@pytest.fixture
def booted() -> tuple[Platform, Kernel]:
    plat = Platform.bare(cpus=4)
    return plat, plat.boot()


def make_handler(kern: Kernel, w: Wired) -> Callable[[int, Any], int]:
    def handler(irq: int, dev_id: Any) -> int:
        w.runs.append((irq, kern.this_cpu))
        w.dev.ack()
        return IRQ_HANDLED
    return handler


def wired(plat: Platform, kern: Kernel, spi: int, *, level: bool = False,
          request: bool = True, name: str = "dev") -> Wired:
    dev = plat.add_wired_device(name, spi, level=level)
    w = Wired(dev, kern.gic_spi_mapping(spi, dev.trigger))
    if request:
        kern.request_irq(w.virq, make_handler(kern, w), name=name, dev_id=dev)
    return w


def gicd(plat: Platform, off: int, size: int = 4) -> int:
    return plat.bus.read(plat.gicd_base + off, size)


def spi_bit(plat: Platform, base_off: int, intid: int) -> bool:
    return bool(gicd(plat, base_off + 4 * (intid // 32)) >> (intid % 32) & 1)


@pytest.fixture
def booted_default() -> tuple[Platform, Kernel]:
    """The embedded default board (Direct LPI, 8 CPUs), booted."""
    plat = Platform.default(cpus=8)
    return plat, plat.boot()
