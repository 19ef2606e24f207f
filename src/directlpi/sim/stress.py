"""Whole-stack exercise: random driver, device, hotplug and attacker actions, checked.

One :class:`StackExerciser` owns a booted platform with four devices -- an MSI-X
function with managed affinity (``x``), a MultiMSI function with per-vector masking
(``m``), a 32-bit plain-MSI function (``p``), a platform-MSI device (``d``) -- their
drivers, and an :class:`~directlpi.sim.invariants.InvariantChecker`.  Each operation
takes explicit arguments (so a hypothesis state machine and a seeded random hunt
drive the same code) and accepts exactly the refusals the kernel documents (an
errno *and* the reason); anything else propagates as a finding.

The board is Direct LPI (the default board), MBI (the MBI-only board), an ITS
(``its.dts``), GICv2m (``gicv2m.dts``) or the Hyper-V SPI route (``hyperv-spi.dts``), with
posted writes on or off and EnableLPIs clearable or not.  Operations: bind, unbind,
traffic, mask/unmask, disable/enable, move (forced too: of shut-down vectors),
set/clear pending, retrigger, CPU offline/online, stray writes to any INTID on any
RD by an unknown bus master (any SPI into the MBI or GICv2m doorbell; any EventID into
GITS_TRANSLATER or any handle into the host's doorbell, by an unknown master and by a
known device), replays of a message a device held before, kexec with pending state left
behind (with the old kernel's tables reserved, or not), and running the machine (the
checker's end-of-run check).

Injected faults (``faults``: the hardware options of docs/hardware-model.md, "Injected
faults") may be switched on.  Then a GICR_SYNCR that never clears makes an operation
fail with ETIMEDOUT -- a documented refusal, after which a move must have changed
nothing -- and what the faults make the platform lose or repeat is the checker's to
attribute, not a finding.

Every operation is a tuple (its name, then its arguments: :data:`Op`), drawn by
:meth:`StackExerciser.draw_op` and played by :meth:`StackExerciser.apply`, so that a
seeded run can be recorded, replayed and shrunk (:mod:`directlpi.sim.soak`).
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from directlpi.devices.pci import PciFunction
from directlpi.devices.platform_msi import PlatformMsiDevice
from directlpi.errors import DirectLPIError
from directlpi.firmware.boards import BOARDS_DIR
from directlpi.hw.regs import GICD, GICR, LPI_BASE, V2M
from directlpi.kernel.irq.chip import IRQCHIP_STATE_PENDING
from directlpi.kernel.irq.desc import IRQ_HANDLED, IRQD_ACTIVATED, IRQD_MANAGED_SHUTDOWN
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.msi import MsiDesc, MsiMsg
from directlpi.kernel.pci import PCI_IRQ_AFFINITY, PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.platform import FAULT_STALE, Platform
from directlpi.sim.invariants import InvariantChecker, Violation

Op = tuple[Any, ...]
"""One operation: its name, then its arguments (JSON-serialisable: ints, strs, bools,
lists)."""

DEVICES = ("x", "m", "p", "d")
#: Boards other than the default (Direct LPI) one, by name.
BOARD_FILES = {"mbi": "mbi-only.dts", "its": "its.dts", "gicv2m": "gicv2m.dts",
               "spi-pv": "hyperv-spi.dts"}
DEVICE_BDFS = ("0000:00:01.0", "0000:00:02.0", "0000:00:03.0")
STRANGER = "0000:00:1f.7"
"""A bus master no driver knows (an unassigned function, a DMA engine gone rogue)."""


class Finding(AssertionError):
    """An invariant was violated, or the model reached an inconsistent state."""


@dataclass
class Refusals:
    """Documented refusals seen, by (operation, errno name)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def note(self, op: str, exc: DirectLPIError) -> None:
        key = (op, exc.errno_name)
        self.counts[key] = self.counts.get(key, 0) + 1


class StackExerciser:
    """A booted platform, four devices and their drivers, under a checker."""

    def __init__(self, board: str = "direct-lpi", *, cpus: int = 4, posted: bool = False,
                 seed: int = 0, clearable: bool = False,
                 faults: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        silicon: dict[str, Any] = {"posted_writes": posted, "posted_seed": seed,
                                   "lpis_clearable": clearable, **(faults or {}),
                                   **(options or {})}
        #: Whether GICR_SYNCR may never clear (the syncr_stuck fault): ETIMEDOUT is then a
        #: documented refusal.
        self.timeouts = bool(silicon.get("syncr_stuck", 0))
        if board in BOARD_FILES:
            self.plat = Platform.from_devicetree(BOARDS_DIR / BOARD_FILES[board], **silicon)
        else:
            self.plat = Platform.default(cpus=cpus, **silicon)
        self.board = board
        p = self.plat
        self.fns: dict[str, PciFunction | PlatformMsiDevice] = {
            "x": p.add_pci_device(DEVICE_BDFS[0], msix_vectors=4),
            "m": p.add_pci_device(DEVICE_BDFS[1], msi_vectors=4, msi_per_vector_mask=True),
            "p": p.add_pci_device(DEVICE_BDFS[2], msi_vectors=1, msi_64bit=False),
            "d": p.add_platform_device("dma", slots=2),
        }
        self.kern: Kernel = p.boot()
        self.checker = InvariantChecker(p)
        self.virqs: dict[str, list[int]] = {name: [] for name in DEVICES}
        #: Messages each device was programmed with, for replays.
        self.history: dict[str, set[tuple[int, int]]] = {name: set() for name in DEVICES}
        self.refused = Refusals()
        self.ops = 0
        self.kexecs = 0
        #: Doorbell writes made here that the platform's audit must flag (by an unknown
        #: master, or not a message the writer is programmed to send now).
        self.spoofs_sent = 0
        for name in DEVICES:
            self.bind(name)

    # -- helpers ---------------------------------------------------------------------------

    @property
    def ncpus(self) -> int:
        return self.plat.num_cpus

    def _virq(self, name: str, vec: int) -> int | None:
        vs = self.virqs[name]
        return vs[vec % len(vs)] if vs else None

    def _remember(self, name: str) -> None:
        fn = self.fns[name]
        n = len(self.virqs[name])
        for i in range(n):
            msg = fn.msi_message(i)
            if msg[0]:
                self.history[name].add(msg)

    def _timed_out(self, exc: DirectLPIError) -> bool:
        """A GICR_SYNCR that never cleared, under the syncr_stuck fault."""
        return (self.timeouts and exc.errno == errno.ETIMEDOUT
                and "GICR_SYNCR stuck busy" in str(exc))

    def _expect(self, op: str, fn: Callable[[], object],
                allowed: Callable[[DirectLPIError], bool]) -> bool:
        """Run ``fn``; a refusal passes only if ``allowed`` says it is a documented one (or
        it is the timeout the syncr_stuck fault makes)."""
        self.ops += 1
        try:
            fn()
        except DirectLPIError as exc:
            if not allowed(exc) and not self._timed_out(exc):
                raise
            self.refused.note(op, exc)
            return False
        self._check_now()
        return True

    def _check_now(self) -> None:
        bad = [v for v in self.checker.violations if v.invariant != "lost-interrupt"]
        if bad:
            raise Finding(_describe(bad))

    def audit(self) -> None:
        """The spoofing audit: every doorbell write made here as a spoof was flagged by the
        platform (writes the stale_msi fault made are the platform's, counted apart)."""
        flagged = sum(1 for m in self.plat.spoofed_msis if not m.reason.startswith(FAULT_STALE))
        if flagged != self.spoofs_sent:
            raise Finding(f"spoofing audit: {self.spoofs_sent} spoofed doorbell write(s) made, "
                          f"{flagged} flagged by the platform")

    def _spoof(self, addr: int, data: int, master: str) -> None:
        """Write (addr, data) on the bus as ``master``, noting whether the audit owes a flag:
        an unknown master, or a pair that is not one of the writer's current messages."""
        owner = next((n for n, f in self.fns.items() if f.requester == master), None)
        current = set() if owner is None else {
            self.fns[owner].msi_message(i) for i in range(len(self.virqs[owner]))}
        if (addr, data) not in current:
            self.spoofs_sent += 1
        self.plat.bus.write(addr, data, 4, master=master)

    def _activated(self, virq: int) -> bool:
        desc = self.kern.irq_to_desc(virq)
        return desc is not None and desc.irq_data.has(IRQD_ACTIVATED)

    # -- drivers ---------------------------------------------------------------------------

    def bind(self, name: str) -> None:
        if self.virqs[name]:
            return
        try:
            self._bind(name)
        except DirectLPIError as exc:
            # A kernel that came up without LPIs (kexec'd without reserved tables on a GIC
            # whose EnableLPIs cannot be cleared) has no domain for an LPI route; or the
            # syncr_stuck fault timed the allocation out.  Nothing may be left half-bound.
            no_lpis = self.kern.lpi is None and (
                (exc.errno == errno.ENOSPC and "no MSI domain" in str(exc))
                or "no platform-MSI domain" in str(exc))
            # Under the syncr_stuck fault a kexec'd kernel may have found an RD that never
            # answers (it runs without LPIs there): nothing to target on it.
            wedged = self.timeouts and exc.errno == errno.EINVAL and "LPIs are off" in str(exc)
            if not (no_lpis or wedged or self._timed_out(exc)):
                raise
            self.refused.note("bind", exc)
            if self.kern.msi_irqs_of(self.fns[name].requester):
                raise Finding(f"a refused bind of {name} left IRQs allocated") from None
            fn = self.fns[name]
            if isinstance(fn, PlatformMsiDevice) and any(s != (0, 0) for s in fn.slots):
                raise Finding(f"a refused bind of {name} left its MSI slots programmed: "
                              f"{fn.slots}") from None
        self._check_now()

    def _bind(self, name: str) -> None:
        k, fn = self.kern, self.fns[name]
        self.ops += 1
        if isinstance(fn, PlatformMsiDevice):
            dev = fn

            def write_msg(desc: MsiDesc, msg: MsiMsg) -> None:
                dev.program_slot(desc.msi_index, msg.address, msg.data)
                dev.read_slot(desc.msi_index)
            first = k.platform_msi_domain_alloc_irqs(fn, 2, write_msg)
            virqs = [first, first + 1]
        else:
            flags = {"x": PCI_IRQ_MSIX | PCI_IRQ_AFFINITY, "m": PCI_IRQ_MSI,
                     "p": PCI_IRQ_MSI}[name]
            n = k.pci_alloc_irq_vectors(fn, 1, 4, flags)
            virqs = [k.pci_irq_vector(fn, i) for i in range(n)]
        for i, v in enumerate(virqs):
            k.request_irq(v, lambda irq, dev: IRQ_HANDLED, name=f"{name}{i}", dev_id=i)
        self.virqs[name] = virqs
        self._remember(name)

    def unbind(self, name: str) -> None:
        if not self.virqs[name]:
            return
        self.ops += 1
        for i, v in enumerate(self.virqs[name]):
            self.kern.free_irq(v, i)
        fn = self.fns[name]
        if isinstance(fn, PlatformMsiDevice):
            self.kern.platform_msi_domain_free_irqs(fn)
        else:
            self.kern.pci_free_irq_vectors(fn)
        self.virqs[name] = []
        self._check_now()

    # -- device and attacker actions ------------------------------------------------------------

    def traffic(self, name: str, vec: int, count: int) -> None:
        self.ops += 1
        if self.virqs[name]:
            for _ in range(count):
                self.fns[name].raise_msi(vec % len(self.virqs[name]))

    def replay(self, name: str, pick: int) -> None:
        """The device writes a message it held before (a replay after it was reprogrammed,
        or its old message still used by a device that ignores the rewrite)."""
        self.ops += 1
        old = sorted(self.history[name])
        if old:
            address, data = old[pick % len(old)]
            self._spoof(address, data, self.fns[name].requester)

    def stray(self, intid: int, cpu: int) -> None:
        """An unknown bus master writes any INTID into any RD (or any SPI into the
        distributor's doorbell, on the MBI board)."""
        self.ops += 1
        p = self.plat
        if self.board == "mbi":
            self._spoof(p.gicd_base + GICD.SETSPI_NSR.offset, 32 + intid % 988, STRANGER)
        elif self.board == "gicv2m":
            frame = p.machine.v2m[cpu % len(p.machine.v2m)]
            base = p.machine.config.v2m_frames[frame.index][0]
            self._spoof(base + V2M.MSI_SETSPI_NS.offset, 32 + intid % 988, STRANGER)
        elif self.board in ("spi-pv", "its"):
            # The host's doorbell (any handle) or GITS_TRANSLATER (any EventID): an unknown
            # master's is dropped, a known device reaches only what the host granted it or
            # its own table.
            bell = next(iter(p.hv_doorbells if self.board == "spi-pv" else p.its_doorbells))
            self._spoof(bell, intid % 64, STRANGER)
            self._spoof(bell, intid % 64, DEVICE_BDFS[cpu % len(DEVICE_BDFS)])
        else:
            lpis = 1 << 16
            self._spoof(p.gicr_base(cpu % self.ncpus) + GICR.SETLPIR.offset,
                        LPI_BASE + intid % (lpis - LPI_BASE), STRANGER)

    # -- kernel actions ---------------------------------------------------------------------------

    def mask(self, name: str, vec: int, masked: bool) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        k = self.kern
        if masked:
            self._expect("mask", lambda: k.mask_irq(v), lambda e: False)
            return
        shut = not self._activated(v)
        self._expect("unmask", lambda: k.unmask_irq(v),
                     lambda e: shut and e.errno == errno.EINVAL and "not activated" in str(e))

    def disable(self, name: str, vec: int, disable: bool) -> None:
        v = self._virq(name, vec)
        if v is not None:
            k = self.kern
            self._expect("disable", lambda: (k.disable_irq if disable else k.enable_irq)(v),
                         lambda e: False)

    def move(self, name: str, vec: int, cpus: set[int], force: bool = False) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        k = self.kern
        cpus = {c % self.ncpus for c in cpus}
        desc = k.irq_to_desc(v)
        assert desc is not None
        shut = desc.irq_data.has(IRQD_MANAGED_SHUTDOWN) or not self._activated(v)
        if force and not shut:
            cpus &= k.online_cpus or cpus          # force only what can be delivered
            if not cpus:
                return
        before = self._routing()

        def refused(e: DirectLPIError) -> bool:
            text = str(e)
            if e.errno == errno.ENOSPC:
                return "32-bit MSI addressing" in text
            return e.errno == errno.EINVAL and ("no online CPU" in text
                                                or "MultiMSI block" in text
                                                or "LPIs are off" in text)
        if self._expect("move", lambda: k.irq_set_affinity(v, cpus, force=force), refused):
            self._remember(name)
        elif before != self._routing():
            raise Finding(f"a refused move of IRQ {v} changed a device's message or what the "
                          "kernel records as its target")

    def _routing(self) -> dict[str, list[tuple[tuple[int, int], frozenset[int]]]]:
        """Every vector's message in its device and effective affinity in the kernel."""
        k = self.kern
        return {n: [(self.fns[n].msi_message(i), frozenset(k.irq_get_effective_affinity(v)))
                    for i, v in enumerate(self.virqs[n])] for n in DEVICES}

    def set_pending(self, name: str, vec: int, pending: bool) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        k = self.kern
        self._expect("set_pending",
                     lambda: k.irq_set_irqchip_state(v, IRQCHIP_STATE_PENDING, pending),
                     lambda e: e.errno == errno.EINVAL and (
                         "not activated" in str(e)
                         # the syncr_stuck fault left it on an RD without LPIs
                         or (self.timeouts and "has LPIs off" in str(e))))

    def retrigger(self, name: str, vec: int) -> None:
        v = self._virq(name, vec)
        if v is None:
            return
        k = self.kern
        self._expect("retrigger", lambda: k.irq_inject_interrupt(v),
                     lambda e: e.errno == errno.EINVAL and "not activated" in str(e))

    def offline(self, cpu: int) -> None:
        k = self.kern
        cpu %= self.ncpus
        if cpu not in k.online_cpus or len(k.online_cpus) == 1:
            return
        self._expect("offline", lambda: k.cpu_offline(cpu), lambda e: False)

    def online(self, cpu: int) -> None:
        k = self.kern
        cpu %= self.ncpus
        if cpu in k.online_cpus:
            return
        self._expect("online", lambda: k.cpu_online(cpu), lambda e: False)

    def kexec(self, reserve: bool = True) -> None:
        """Drivers shut down (vectors freed), whatever is pending stays in the RDs, a new
        kernel boots -- on the reserved tables, or without them (then it must turn LPIs
        off first, which a GIC whose EnableLPIs cannot be cleared refuses: it runs without
        LPIs, and its drivers use what MSI route is left) -- and the drivers bind again."""
        self.ops += 1
        self.kexecs += 1
        self.run()
        for name in DEVICES:
            self.unbind(name)
        self.checker.detach()
        self.kern = self.plat.kexec(reserve_tables=reserve)
        self.checker = InvariantChecker(self.plat)
        for name in DEVICES:
            self.bind(name)

    def run(self) -> None:
        """Let the machine run, then the end-of-run check: every invariant holds."""
        self.ops += 1
        self.plat.run_until_idle(verify=True)
        bad = self.checker.check()
        if bad:
            raise Finding(_describe(bad))

    # -- the random hunt -------------------------------------------------------------------------

    def random_op(self, rng: random.Random) -> str:
        """One operation drawn from every kind the exerciser has, and played."""
        op = self.draw_op(rng)
        self.apply(op)
        return str(op[0])

    def draw_op(self, rng: random.Random) -> Op:
        """One operation, drawn from every kind the exerciser has (not played)."""
        name = rng.choice(DEVICES)
        vec = rng.randrange(4)
        cpu = rng.randrange(self.ncpus)
        op = rng.choices(_OPS, _WEIGHTS)[0]
        if op == "traffic":
            return (op, name, vec, rng.randint(1, 3))
        if op in ("mask", "disable"):
            return (op, name, vec, rng.random() < 0.5)
        if op == "move":
            cpus = sorted({c for c in range(self.ncpus) if rng.random() < 0.4} or {cpu})
            return (op, name, vec, cpus, rng.random() < 0.15)
        if op == "set_pending":
            return (op, name, vec, rng.random() < 0.6)
        if op == "retrigger":
            return (op, name, vec)
        if op in ("offline", "online"):
            return (op, cpu)
        if op in ("bind", "unbind"):
            return (op, name)
        if op == "stray":
            return (op, rng.randrange(1 << 16), cpu)
        if op == "replay":
            return (op, name, rng.randrange(64))
        if op == "kexec":
            return (op, rng.random() < 0.85)
        return ("run",)

    def apply(self, op: Op) -> None:
        """Play one operation (as :meth:`draw_op` makes them).  ValueError for one that is
        not an operation of the exerciser."""
        check_op(op)
        self._PLAY[op[0]](self, *op[1:])

    def _move_op(self, name: str, vec: int, cpus: list[int], force: bool) -> None:
        self.move(name, vec, set(cpus), force)

    _PLAY: dict[str, Callable[..., None]] = {
        "traffic": traffic, "mask": mask, "disable": disable, "move": _move_op,
        "set_pending": set_pending, "retrigger": retrigger, "offline": offline,
        "online": online, "bind": bind, "unbind": unbind, "stray": stray, "replay": replay,
        "kexec": kexec, "run": run}


_OPS_WEIGHTED = (("traffic", 20), ("run", 14), ("mask", 10), ("move", 10), ("disable", 6),
                 ("set_pending", 5), ("retrigger", 4), ("offline", 5), ("online", 5),
                 ("bind", 4), ("unbind", 3), ("stray", 5), ("replay", 5), ("kexec", 1))
_OPS = tuple(o for o, _ in _OPS_WEIGHTED)
_WEIGHTS = tuple(w for _, w in _OPS_WEIGHTED)


#: Arguments of each operation: their types, in order.
_ARGS: dict[str, tuple[type, ...]] = {
    "traffic": (str, int, int), "mask": (str, int, bool), "disable": (str, int, bool),
    "move": (str, int, list, bool), "set_pending": (str, int, bool), "retrigger": (str, int),
    "offline": (int,), "online": (int,), "bind": (str,), "unbind": (str,),
    "stray": (int, int), "replay": (str, int), "kexec": (bool,), "run": ()}


def check_op(op: Op) -> None:
    """ValueError unless ``op`` is an operation of the exerciser, its arguments typed
    right (a device name of :data:`DEVICES`, ints, bools, a list of CPU numbers)."""
    types = _ARGS.get(op[0]) if op and isinstance(op[0], str) else None
    if types is None:
        raise ValueError(f"{list(op)!r} is not an operation of the exerciser (one of "
                         f"{', '.join(sorted(_ARGS))}, then its arguments)")
    args = op[1:]
    ok = len(args) == len(types) and all(
        isinstance(a, t) and (t is not int or not isinstance(a, bool)) for a, t in zip(
            args, types, strict=True))
    if ok and types and types[0] is str:
        ok = args[0] in DEVICES
    if ok and op[0] == "move":
        ok = all(isinstance(c, int) and not isinstance(c, bool) for c in args[2])
    if not ok:
        raise ValueError(f"operation {list(op)!r}: {op[0]} takes "
                         f"({', '.join(t.__name__ for t in types)}), a device being one of "
                         f"{', '.join(DEVICES)}")


def _describe(violations: list[Violation]) -> str:
    return "; ".join(str(v) for v in violations[:4])
