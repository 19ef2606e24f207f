"""directlpi: MSIs on an Arm GICv3 without an ITS ("Direct LPI"), as an executable model.

The public façade::

    from directlpi import Platform, PCI_IRQ_MSI, IRQ_HANDLED

    plat = Platform.default(cpus=8)          # GICv3, Direct LPI, no ITS, a PCI host bridge
    dev = plat.add_pci_device("0000:00:01.0", msi_vectors=4)
    kern = plat.boot()
    n = kern.pci_alloc_irq_vectors(dev, 1, 4, PCI_IRQ_MSI)
    kern.request_irq(kern.pci_irq_vector(dev, 0), lambda irq, dev_id: IRQ_HANDLED,
                     name="eth0-rx0")
    dev.raise_msi(0)
    plat.run_until_idle()

Hardware at reset, for register-level work: ``Platform.bare(cpus=4, lpi_id_bits=16)``.
See ``README.md`` and ``docs/``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from directlpi import _native
from directlpi.errors import (
    ArchitectureViolation,
    ConfigError,
    DirectLPIError,
    UnknownSysregError,
)

# The compiled build, unless DIRECTLPI_PURE=1 or it is stale (directlpi._native).
_native.select()

if TYPE_CHECKING:
    from directlpi.hw.events import Event, EventKind
    from directlpi.kernel.errors import KernelError
    from directlpi.kernel.irq.affinity import IrqAffinity
    from directlpi.kernel.irq.chip import (
        IRQCHIP_STATE_ACTIVE,
        IRQCHIP_STATE_LINE_LEVEL,
        IRQCHIP_STATE_MASKED,
        IRQCHIP_STATE_PENDING,
    )
    from directlpi.kernel.irq.desc import IRQ_HANDLED, IRQ_NONE, IRQF_SHARED
    from directlpi.kernel.pci import PCI_IRQ_AFFINITY, PCI_IRQ_MSI, PCI_IRQ_MSIX
    from directlpi.platform import Platform
    from directlpi.sim.run import RunReport, run_scenario

# The façade is imported on first use (PEP 562), so that ``directlpi --version`` or a
# Ctrl-C at start-up does not wait for the whole model to load.
_LAZY = {
    "Event": "directlpi.hw.events", "EventKind": "directlpi.hw.events",
    "KernelError": "directlpi.kernel.errors", "IrqAffinity": "directlpi.kernel.irq.affinity",
    "IRQCHIP_STATE_ACTIVE": "directlpi.kernel.irq.chip",
    "IRQCHIP_STATE_LINE_LEVEL": "directlpi.kernel.irq.chip",
    "IRQCHIP_STATE_MASKED": "directlpi.kernel.irq.chip",
    "IRQCHIP_STATE_PENDING": "directlpi.kernel.irq.chip",
    "IRQ_HANDLED": "directlpi.kernel.irq.desc", "IRQ_NONE": "directlpi.kernel.irq.desc",
    "IRQF_SHARED": "directlpi.kernel.irq.desc",
    "PCI_IRQ_AFFINITY": "directlpi.kernel.pci", "PCI_IRQ_MSI": "directlpi.kernel.pci",
    "PCI_IRQ_MSIX": "directlpi.kernel.pci",
    "Platform": "directlpi.platform",
    "run_scenario": "directlpi.sim.run", "RunReport": "directlpi.sim.run",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'directlpi' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "IRQCHIP_STATE_ACTIVE",
    "IRQCHIP_STATE_LINE_LEVEL",
    "IRQCHIP_STATE_MASKED",
    "IRQCHIP_STATE_PENDING",
    "IRQF_SHARED",
    "IRQ_HANDLED",
    "IRQ_NONE",
    "PCI_IRQ_AFFINITY",
    "PCI_IRQ_MSI",
    "PCI_IRQ_MSIX",
    "ArchitectureViolation",
    "ConfigError",
    "DirectLPIError",
    "Event",
    "EventKind",
    "IrqAffinity",
    "KernelError",
    "Platform",
    "RunReport",
    "UnknownSysregError",
    "run_scenario",
]

__version__ = "0.1.0"
