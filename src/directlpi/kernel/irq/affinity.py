"""Managed affinity spreading (Linux ``kernel/irq/affinity.c``, ``lib/group_cpus.c``).

``PCI_IRQ_AFFINITY`` asks the core to spread a device's vectors over the CPUs
and to *manage* them: their masks never change, they are shut down when all
their CPUs go offline and restarted when one returns.  Vectors before
``pre_vectors`` and after ``post_vectors`` (e.g. an admin queue) are not managed
and get the default affinity.
"""

from __future__ import annotations

from dataclasses import dataclass

from directlpi.kernel.irq.core import IrqAffinityDesc
from directlpi.kernel.irq.desc import Cpumask


@dataclass(frozen=True)
class IrqAffinity:
    """``struct irq_affinity``: vectors excluded from spreading at either end."""

    pre_vectors: int = 0
    post_vectors: int = 0


def group_cpus_evenly(groups: int, cpus: list[int]) -> list[Cpumask]:
    """Split ``cpus`` into ``groups`` contiguous, balanced groups (extra CPUs to the first
    groups); with more groups than CPUs, groups wrap around the CPUs."""
    if groups <= len(cpus):
        base, extra = divmod(len(cpus), groups)
        out = []
        pos = 0
        for g in range(groups):
            n = base + (1 if g < extra else 0)
            out.append(frozenset(cpus[pos:pos + n]))
            pos += n
        return out
    return [frozenset((cpus[g % len(cpus)],)) for g in range(groups)]


def irq_create_affinity_masks(nvecs: int, affd: IrqAffinity, possible: Cpumask,
                              default: Cpumask) -> list[IrqAffinityDesc]:
    """One descriptor per vector: spread and managed in the middle, default at the ends."""
    spread = nvecs - affd.pre_vectors - affd.post_vectors
    if spread < 1:
        return [IrqAffinityDesc(default) for _ in range(nvecs)]
    masks = [IrqAffinityDesc(default) for _ in range(affd.pre_vectors)]
    masks += [IrqAffinityDesc(m, is_managed=True)
              for m in group_cpus_evenly(spread, sorted(possible))]
    masks += [IrqAffinityDesc(default) for _ in range(affd.post_vectors)]
    return masks
