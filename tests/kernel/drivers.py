"""A PCI function's driver for the kernel tests: vectors requested, handler runs recorded."""

from __future__ import annotations

from typing import Any

from directlpi import Platform
from directlpi.devices.pci import PciFunction
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import Kernel


class Driver:
    """Adds the function at ``bdf`` (or takes ``fn``, already added), allocates up to
    ``nvec`` vectors of ``flags`` and requests each; ``runs`` is (vector, CPU) per run."""

    def __init__(self, plat: Platform, kern: Kernel, bdf: str, flags: int, nvec: int,
                 fn: PciFunction | None = None, **caps: Any) -> None:
        self.kern = kern
        self.fn = fn if fn is not None else plat.add_pci_device(bdf, **caps)
        kern.pci.scan()
        n = kern.pci_alloc_irq_vectors(self.fn, 1, nvec, flags)
        self.virqs = [kern.pci_irq_vector(self.fn, i) for i in range(n)]
        self.runs: list[tuple[int, int]] = []
        for i, v in enumerate(self.virqs):
            kern.request_irq(v, self._handler(i), name=f"{bdf}-{i}")

    def _handler(self, i: int) -> Any:
        def handler(irq: int, dev: Any) -> int:
            self.runs.append((i, self.kern.this_cpu))
            return IRQ_HANDLED
        return handler

    def free(self) -> None:
        for v in self.virqs:
            self.kern.free_irq(v)
        self.kern.pci_free_irq_vectors(self.fn)
