"""``directlpi compare``: every MSI route on the same work, side by side.

For each route -- a board that makes the kernel use it -- the same per-operation
micro-workloads run on a freshly booted platform, and the hardware model's own
observation says what each cost: every MMIO access that reached a frame (by frame
kind, reads and writes apart: under virtualisation each one is a trap), the 8-byte
words of RAM the operation changed (table updates: property bytes, ITS commands,
table entries), and the writes that reached a device (config space and BARs: a device
rewrite).  Nothing is counted by hand: add an access to a driver and its count moves.

Static facts are measured too where they can be: how many vectors the route can
hand out, how much table memory the kernel allocated for it, whether a MultiMSI
block's vectors can target different CPUs, what happens to an interrupt pending
when it moves, whether MSIs are isolated.  The firmware description is the one fact
stated, not measured.  Then the default scenario runs on each route's board and its
invariant and spoof outcomes are reported.

Routes: ``direct-lpi`` (the default board), ``mbi`` (``mbi-only.dts``), ``gicv2m``
(``gicv2m.dts``), ``spi-pv`` (``hyperv-spi.dts``: a Hyper-V-style guest, guest SPIs the
host routes), ``its`` (``its.dts``), ``rfc-v1`` (the default board with the 2021 RFC's
provider replayed in place of Direct LPI).  ``cpus`` rewrites every board for that many
CPUs, as QEMU would write its tree.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from directlpi.errors import DirectLPIError
from directlpi.firmware.boards import BOARDS_DIR, DEFAULT_CPUS, default_tree, with_cpus
from directlpi.firmware.devicetree import DtBoard, fdt_bytes, read_board
from directlpi.firmware.fdt import parse_fdt
from directlpi.hw.events import Event, EventKind
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.platform import Platform
from directlpi.sim.review import boot

ROUTES = ("direct-lpi", "mbi", "gicv2m", "spi-pv", "its", "rfc-v1")
_PROVIDER = {"rfc-v1": "rfc-v1"}
"""Routes that are a provider booted in place of Direct LPI on their board."""
EXPECTED_TO_FAIL = ("rfc-v1",)
"""Routes whose violations and review findings are what they are there to show: they do
not make ``directlpi compare`` fail."""
OPS = ("alloc_1", "alloc_multimsi_32", "mask", "unmask", "move", "retrigger", "free")
FRAMES = ("GICD", "GICR", "ITS", "V2M", "HV", "device")
"""``HV``: the hypervisor call frame (SPI-PV's messages to the host: each one is a trap)."""
FACTS = ("most_vectors", "table_memory_bytes", "multimsi_per_vector_affinity",
         "pending_on_move", "isolation", "isolation_claimed", "firmware_dt", "firmware_acpi")
MIN_CPUS, MAX_CPUS = 2, 512

_BOARDS = {"mbi": "mbi-only.dts", "gicv2m": "gicv2m.dts", "its": "its.dts",
           "spi-pv": "hyperv-spi.dts"}
#: What firmware can say about each route today: DT, ACPI.
_FIRMWARE = {
    "direct-lpi": ("proposed (arm,gic-v3-direct-lpi)", "proposed (IORT node)"),
    "mbi": ("yes (msi-controller + mbi-ranges)", "no"),
    "gicv2m": ("yes (arm,gic-v2m-frame)", "yes (MADT GIC MSI Frame)"),
    "its": ("yes (arm,gic-v3-its)", "yes (MADT GIC ITS + IORT ITS group)"),
    "rfc-v1": ("no (used when no ITS is found)", "no (an IORT token for ITS ID 0)"),
    "spi-pv": ("yes (microsoft,vmbus)", "yes (VMBus in the DSDT)"),
}
_X, _M = "0000:00:01.0", "0000:00:02.0"


def parse_routes(text: str | None) -> tuple[str, ...]:
    """``--routes a,b``: the routes asked for, in the order given (all when None)."""
    if text is None:
        return ROUTES
    asked = tuple(r.strip() for r in text.split(",") if r.strip())
    if not asked:
        raise DirectLPIError("--routes: no route named; known: " + ", ".join(ROUTES),
                             errno.EINVAL)
    for r in asked:
        if r not in ROUTES:
            raise DirectLPIError(f"--routes: unknown route {r!r}; known: {', '.join(ROUTES)}",
                                 errno.EINVAL)
        if asked.count(r) > 1:
            raise DirectLPIError(f"--routes: {r} is named twice (one column per route)",
                                 errno.EINVAL)
    return asked


def parse_cpus(cpus: int | None) -> int:
    """``--cpus N``: every route's board with N CPUs (8, the boards' own, when None)."""
    if cpus is None:
        return DEFAULT_CPUS
    if not MIN_CPUS <= cpus <= MAX_CPUS:
        raise DirectLPIError(f"--cpus {cpus}: compare needs {MIN_CPUS}..{MAX_CPUS} CPUs (an "
                             "affinity move needs somewhere to go)", errno.EINVAL)
    return cpus


def board_tree(route: str, cpus: int = DEFAULT_CPUS) -> DtBoard:
    """The devicetree board of ``route`` with ``cpus`` CPUs."""
    if route in ("direct-lpi", "rfc-v1"):
        return read_board(default_tree(cpus))
    root = parse_fdt(fdt_bytes(BOARDS_DIR / _BOARDS[route]))
    return read_board(root if cpus == DEFAULT_CPUS else with_cpus(root, cpus))


def board_of(route: str, cpus: int = DEFAULT_CPUS) -> Platform:
    """A platform, not booted, whose kernel will use ``route``."""
    return Platform.from_board(board_tree(route, cpus))


def _frame_kind(source: str) -> str:
    if source == "HV":
        return source
    for kind in ("GICD", "GICR", "ITS", "V2M"):
        if source.startswith(kind):
            return kind
    return "device" if source.startswith("PCI") else source


class Meter:
    """The accesses and RAM changes of what runs inside ``with meter:``."""

    def __init__(self, plat: Platform) -> None:
        self.plat = plat
        self.mmio: Counter[tuple[str, str]] = Counter()
        self.memory_writes = 0
        self._snap: dict[int, bytes] = {}

    def _on(self, ev: Event) -> None:
        rw = "reads" if ev.kind is EventKind.MMIO_READ else "writes"
        self.mmio[(_frame_kind(ev.source), rw)] += 1

    def _pages(self) -> dict[int, bytes]:
        cache = getattr(self.plat.machine.cpu_memory, "clean_invalidate_all", None)
        if cache is not None:
            cache()                       # what software wrote, as the tables see it
        return self.plat.memory.snapshot()

    def measure(self, fn: Callable[[], object]) -> dict[str, Any]:
        self.mmio.clear()
        before = self._pages()
        sub = self.plat.observe(self._on, [EventKind.MMIO_READ, EventKind.MMIO_WRITE])
        try:
            fn()
        finally:
            sub.cancel()
        after = self._pages()
        changed = 0
        for k, page in after.items():
            old = before.get(k, bytes(len(page)))
            if old != page:
                changed += sum(1 for i in range(0, len(page), 8) if old[i:i + 8] != page[i:i + 8])
        return {
            "mmio": {f: {"reads": self.mmio[(f, "reads")], "writes": self.mmio[(f, "writes")]}
                     for f in FRAMES},
            "memory_writes": changed,
            "device_writes": self.mmio[("device", "writes")],
        }


@dataclass
class _Bench:
    plat: Platform
    kern: Kernel
    meter: Meter


def _boot(route: str, cpus: int = DEFAULT_CPUS) -> _Bench:
    plat = board_of(route, cpus)
    plat.add_pci_device(_X, msix_vectors=4)
    plat.add_pci_device(_M, msi_vectors=32)
    kern = boot(plat, _PROVIDER.get(route))
    return _Bench(plat, kern, Meter(plat))


def _request(kern: Kernel, fn: str, n: int, flags: int,
             ran: list[int] | None = None) -> list[int]:
    """Allocate and request ``n`` vectors; each run appends its CPU to ``ran``."""
    got = kern.pci_alloc_irq_vectors(fn, n, n, flags)
    virqs = [kern.pci_irq_vector(fn, i) for i in range(got)]

    def handler(irq: int, dev: Any) -> int:
        if ran is not None:
            ran.append(kern.this_cpu)
        return IRQ_HANDLED
    for i, v in enumerate(virqs):
        kern.request_irq(v, handler, name=f"{fn}-{i}")
    return virqs


def measure_ops(route: str, cpus: int = DEFAULT_CPUS) -> dict[str, dict[str, Any]]:
    """Each operation of :data:`OPS`, measured on a fresh platform of ``route``."""
    b = _boot(route, cpus)
    k, m = b.kern, b.meter
    out: dict[str, dict[str, Any]] = {}
    x: list[int] = []
    out["alloc_1"] = m.measure(lambda: x.extend(_request(k, _X, 1, PCI_IRQ_MSIX)))
    out["alloc_multimsi_32"] = m.measure(lambda: _request(k, _M, 32, PCI_IRQ_MSI))
    v = x[0]
    out["mask"] = m.measure(lambda: k.mask_irq(v))
    out["unmask"] = m.measure(lambda: k.unmask_irq(v))
    target = next(c for c in range(cpus - 1, -1, -1) if c not in k.irq_get_effective_affinity(v))
    out["move"] = m.measure(lambda: k.irq_set_affinity(v, {target}))
    out["retrigger"] = m.measure(lambda: k.irq_inject_interrupt(v))
    b.plat.run_until_idle()

    def free() -> None:
        k.free_irq(v)
        k.pci_free_irq_vectors(_X)
    out["free"] = m.measure(free)
    return out


def measure_facts(route: str, cpus: int = DEFAULT_CPUS) -> dict[str, Any]:
    """The route's static facts, measured where the model can measure them."""
    b = _boot(route, cpus)
    k, plat = b.kern, b.plat
    if k.lpi is not None and k.lpi.allocator is not None and route in ("direct-lpi", "its",
                                                                        "rfc-v1"):
        most = k.lpi.allocator.end - k.lpi.allocator.first
    else:
        spi = {"mbi": k.mbi, "gicv2m": k.v2m, "spi-pv": k.hv}.get(route)
        most = spi.allocator.total if spi is not None else 0
        if spi is not None and plat.hv is not None:
            # The driver's range, less the SPIs the host keeps for something else (it
            # refuses them, and the driver then skips them).
            ranges = spi.allocator.ranges
            most -= sum(1 for s in plat.hv.reserved_spis
                        if any(r.first <= s < r.first + r.count for r in ranges))
    table_memory = sum(k.mm.allocated.values())
    # MultiMSI with per-vector affinity: vector 1 moved on its own, then raised -- where
    # does its handler run (not what the kernel says: where the interrupt goes)?
    block_ran: list[int] = []
    block = _request(k, _M, 32, PCI_IRQ_MSI, block_ran)
    other = min(3, cpus - 1)
    try:
        k.irq_set_affinity(block[1], {other})
        plat.pci_devices[_M].raise_msi(1)
        plat.run_until_idle()
        per_vector = block_ran == [other]
    except KernelError:
        per_vector = False
    # An interrupt pending when it moves: where is it handled?
    ran: list[int] = []
    [v] = _request(k, _X, 1, PCI_IRQ_MSIX, ran)
    old, new = 1, cpus - 1 if cpus > 2 else 0
    k.irq_set_affinity(v, {old})
    plat.pci_devices[_X].raise_msi(0)
    k.irq_set_affinity(v, {new})
    plat.run_until_idle()
    pending = ("moves with it (hardware)" if ran == [new] else
               "delivered on the old CPU" if ran == [old] else "lost")
    # Isolation, measured: another device writes this vector's message, and its INTID
    # into the same doorbell (what any bus master can do where the data is the INTID).
    msg = k.get_cached_msi_msg(v)
    desc = k.irq_to_desc(v)
    assert desc is not None
    intid = desc.levels()[-1].hwirq
    ran.clear()
    plat.pci_devices[_M].spoof_msi(msg.address, msg.data)
    plat.pci_devices[_M].spoof_msi(msg.address, intid)
    plat.run_until_idle()
    dt, acpi = _FIRMWARE[route]
    return {"most_vectors": most, "table_memory_bytes": table_memory,
            "multimsi_per_vector_affinity": per_vector, "pending_on_move": pending,
            "isolation": not ran, "isolation_claimed": k.msi_isolated(_X),
            "firmware_dt": dt, "firmware_acpi": acpi}


def scenario_outcome(route: str, cpus: int = DEFAULT_CPUS) -> dict[str, Any]:
    """The default scenario on the route's board: violations by invariant, the spoof."""
    from directlpi.sim.run import ScenarioRun
    from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario

    report = ScenarioRun(load_scenario(DEFAULT_SCENARIO), platform=board_tree(route, cpus),
                         provider=_PROVIDER.get(route)).run()
    d = report.as_dict()
    return {"cpus": d["platform"]["cpus"],
            "violations": dict(Counter(v["invariant"] for v in d["violations"])),
            "review_findings": sorted({f"{f['objection']} {f['finding']}"
                                       for f in d["review_findings"]},
                                      key=lambda s: (int(s.split()[0][1:]), s)),
            "spoof_reached_victim": any(a["reached_victim"]
                                        for a in d["security"]["spoof_attempts"])}


def compare(routes: tuple[str, ...] = ROUTES, cpus: int = DEFAULT_CPUS) -> dict[str, Any]:
    """Every route asked for: ``{"routes": {name: {"ops", "facts", "violations", ...}}}``."""
    out: dict[str, Any] = {"schema_version": 1, "cpus": cpus, "routes": {}}
    for r in routes:
        outcome = scenario_outcome(r, cpus)
        out["routes"][r] = {"ops": measure_ops(r, cpus), "facts": measure_facts(r, cpus),
                            "cpus": outcome["cpus"], "violations": outcome["violations"],
                            "review_findings": outcome["review_findings"],
                            "spoof_reached_victim": outcome["spoof_reached_victim"]}
    return out


def render(result: dict[str, Any]) -> str:
    """One table, routes as columns."""
    routes = list(result["routes"])
    rows: list[tuple[str, list[str]]] = []
    for op in OPS:
        for f in FRAMES:
            for rw in ("reads", "writes"):
                if (f, rw) == ("device", "writes"):
                    continue                  # the "device writes" row below
                cells = [result["routes"][r]["ops"][op]["mmio"][f][rw] for r in routes]
                if any(cells):
                    rows.append((f"{op} {f} {rw}", [str(c) for c in cells]))
        rows.append((f"{op} memory words written",
                     [str(result["routes"][r]["ops"][op]["memory_writes"]) for r in routes]))
        rows.append((f"{op} device writes",
                     [str(result["routes"][r]["ops"][op]["device_writes"]) for r in routes]))
    for fact in FACTS:
        rows.append((fact.replace("_", " "),
                     [_cell(result["routes"][r]["facts"][fact]) for r in routes]))
    rows.append(("default scenario violations",
                 [", ".join(f"{k} {n}" for k, n in result["routes"][r]["violations"].items())
                  or "none" for r in routes]))
    rows.append(("review objections tripped",
                 [", ".join(sorted({f.split()[0] for f in result["routes"][r]["review_findings"]},
                                   key=lambda o: int(o[1:])))
                  or "none" for r in routes]))
    rows.append(("spoof reached its victim",
                 [_cell(result["routes"][r]["spoof_reached_victim"]) for r in routes]))
    width = max(len(name) for name, _ in rows)
    cols = [max([len(r)] + [len(cells[i]) for _, cells in rows]) for i, r in enumerate(routes)]
    lines = [" " * width + "  " + "  ".join(r.ljust(c) for r, c in zip(routes, cols, strict=True))]
    lines += [name.ljust(width) + "  " + "  ".join(v.ljust(c) for v, c in
                                                    zip(cells, cols, strict=True))
              for name, cells in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cell(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
