"""The 2021 review's objections, seen in a run: findings labelled R1..R11.

``reference/direct-lpi-rfc-thread.txt`` holds the RFC and the GICv3 maintainer's
review; DESIGN.md turns each objection into a requirement (R1..R11).  A
:class:`ReviewWatch` rides along with a scenario run and reports the objections a
provider *trips*, each as a :class:`Finding` with the objection's label and the
review's own words.  It never asks the provider what it is or what it did: it
compares what it can observe --

* the **device registers** (the message each vector is programmed to write: its
  MSI capability, MSI-X table entry or platform slot),
* the **kernel state** a user can read (each IRQ's INTID, affinity, effective
  affinity, its MSI domain, ``msi_isolated()``, the IORT domain tokens) against the
  **firmware description** the kernel booted from,
* the **hardware events** (which writes made which INTID pending, handler runs),
* the platform's **bus audit** (writes that name an INTID their writer does not own),
* and, when a device whose MSIs go straight to a redistributor is claimed isolated,
  a **probe**: after the last step, vfio is asked to take the device, and another
  device writes its LPI into its redistributor.

-- with what the architecture and the review require.  What it cannot see: R2 ("no
ITS code reused") and R11's ordering rules (the hardware model refuses those
itself), R8 (only firmware with unreachable RDs shows it).

Only messages addressed to a GICR_SETLPIR are held to Direct LPI's rules (data =
INTID, target = the RD the address names): an ITS, MBI or GICv2m message is not.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from directlpi.errors import DirectLPIError
from directlpi.hw.events import Event, EventKind
from directlpi.hw.regs import GICR, LPI_BASE
from directlpi.kernel.errors import KernelError
from directlpi.kernel.irq.desc import (
    IRQD_IRQ_DISABLED,
    IRQD_IRQ_MASKED,
    IRQD_IRQ_STARTED,
    IrqDesc,
)
from directlpi.kernel.irqchip.lpi_range import order_of
from directlpi.kernel.kernel import Kernel

if TYPE_CHECKING:
    from directlpi.platform import Platform
    from directlpi.sim.invariants import InvariantChecker, Violation

#: Each kind of finding: the objection it evidences, and the review's words.
FINDINGS: dict[str, tuple[str, str]] = {
    "data-is-not-the-intid": ("R1", "DirectLPI has no notion of event, collection, or "
                              "anything like this. It deals with LPIs, and that's it."),
    "multimsi-block-unaligned": ("R3", "For example, how can MultiMSI be supported?"),
    "multimsi-block-split": ("R3", "Oh, that's is going to work so well with MultiMSI..."),
    "pending-state-faked": ("R4", "This is a joke, right?"),
    "vcpu-affinity-offered": ("R5", "Then why are you providing this callback the first "
                              "place?"),
    "false-isolation-claim": ("R6", "From a security/isolation perspective, DirectLPI is a "
                              "gaping hole."),
    "iort-its-token": ("R7", "Please remove this. IORT has no notion of DirectLPI, and "
                       "doesn't describe it at all."),
    "msi-domain-not-from-firmware": ("R7", "You cannot /assume/ things."),
    "direct-lpi-without-firmware": ("R7", "you cannot use the *absence* of an ITS to decide "
                                    "and use DirectLPIs."),
    "not-the-first-cpu": ("R9", "At best, this is premature optimisation."),
    "move-not-written": ("R10", "You are trying to reuse the PCI-specific front-end of the "
                         "ITS code, not even realising that it *cannot* work."),
}

#: Invariant violations that are themselves one of the objections.
VIOLATION_OBJECTIONS = {"stale-message": "R10", "intid-allocated-twice": "R1",
                        "misdirected-message": "R1"}


def objection_of(violation: Violation) -> str | None:
    """The objection an invariant violation evidences, if it is one of them."""
    return VIOLATION_OBJECTIONS.get(violation.invariant)


@dataclass(frozen=True)
class Finding:
    """One objection seen in a run."""

    finding: str
    """Its kind, a key of :data:`FINDINGS`."""
    seen_by: str
    """What observed it: "device registers", "kernel state", "hardware events", "bus
    audit" or "probe"."""
    detail: str
    device: str | None = None
    virq: int | None = None

    @property
    def objection(self) -> str:
        return FINDINGS[self.finding][0]

    @property
    def quote(self) -> str:
        return FINDINGS[self.finding][1]

    def as_dict(self) -> dict[str, Any]:
        return {"objection": self.objection, "quote": self.quote, "finding": self.finding,
                "seen_by": self.seen_by, "device": self.device, "virq": self.virq,
                "detail": self.detail}

    def __str__(self) -> str:
        return f'{self.objection} "{self.quote}" -- {self.finding}: {self.detail}'


_Direct = tuple[int, IrqDesc, int, int, int]
"""A vector whose message goes to a GICR_SETLPIR: (vector, descriptor, INTID, the CPU
whose RD the device writes, the data it writes)."""


class _Driver(Protocol):
    """What the watch reads of a scenario's driver (``sim.run.Driver``)."""

    name: str
    device: Any
    virqs: list[int]


def boot(plat: Platform, provider: str | None = None, **options: Any) -> Kernel:
    """Boot ``plat``'s kernel with the LPI MSI provider ``provider`` ("direct-lpi" or
    "rfc-v1"; None: as :meth:`Platform.boot`, what firmware describes).  ``options`` are
    :meth:`Platform.boot`'s (``lpis``, ``lpi_id_bits``, ``boot_cpu``).

    Raises DirectLPIError: EINVAL for an unknown provider, EBUSY when a kernel runs
    already, ENODEV when the kernel did not bring the provider up on this board (the
    message gives the kernel's reason, from its log)."""
    if provider is None:
        return plat.boot(**options)
    kern = plat.boot(provider=provider, **options)
    if provider not in kern.msi_provider.split("+"):
        why = [ln.text for ln in kern.log.lines if "Direct LPI" in ln.text]
        raise DirectLPIError(f"this board does not offer MSI provider {provider!r}: "
                             + (why[-1] if why else f"the kernel registered {kern.msi_provider}"),
                             errno.ENODEV)
    return kern


class ReviewWatch:
    """Attach to a booted platform with its checker; tell it about each step
    (:meth:`step`), each idle point (:meth:`idle`) and the end (:meth:`finish`)."""

    def __init__(self, plat: Platform, checker: InvariantChecker,
                 drivers: Mapping[str, _Driver]) -> None:
        kern = plat.kernel
        assert kern is not None, "boot the platform first"
        self.plat = plat
        self.kern: Kernel = kern
        self.checker = checker
        self.drivers = drivers
        self.findings: list[Finding] = []
        self._seen: set[tuple[Any, ...]] = set()
        self._seq = 0
        self._ran: dict[int, int] = {}
        """virq -> sequence number of its latest handler run."""
        self._raised: dict[int, int] = {}
        """INTID -> sequence number of the latest write by no bus master (the kernel)
        that made it pending, or found it pending already."""
        self._asked: list[tuple[str, str, int, int, int]] = []
        #: How many of the checker's ``spoof_reached`` entries the scenario itself made
        #: (None: no probe ran; the rest are the isolation probe's).
        self.spoofs_before_probe: int | None = None
        self._setlpir = {plat.gicr_base(c) + GICR.SETLPIR.offset: c
                         for c in range(plat.num_cpus)}
        kern.irq.handler_hooks.append(self._on_handler)
        self._sub = plat.observe(self._on_event, [EventKind.LPI_PENDING, EventKind.SPI_PENDING,
                                                  EventKind.IGNORED])

    # -- what it listens to ---------------------------------------------------------------------

    def _on_handler(self, desc: IrqDesc) -> None:
        self._seq += 1
        self._ran[desc.irq] = self._seq

    def _on_event(self, ev: Event) -> None:
        if ev.master is not None or (ev.kind is EventKind.IGNORED
                                     and ev.reason != "already-pending"):
            return
        self._seq += 1
        self._raised[ev.intid] = self._seq

    @contextmanager
    def step(self, step: Any) -> Iterator[None]:
        """Around one scenario step: a retrigger or a pending state set that succeeds is
        owed a write making its INTID pending, or a handler run, by the next idle point."""
        mark = self._seq
        yield
        if step.do in ("retrigger", "set_pending"):
            drv = self.drivers[step.device]
            self._asked.append((step.do, drv.name, step.vector, drv.virqs[step.vector], mark))

    def idle(self) -> None:
        """At an idle point (every CPU has handled what was pending)."""
        self._check_asked()
        self._check_state()

    def finish(self) -> None:
        """After the last step: the state once more, then the isolation probe."""
        self.idle()
        self._check_firmware()
        self._probe_isolation()

    def detach(self) -> None:
        self._sub.cancel()
        if self._on_handler in self.kern.irq.handler_hooks:
            self.kern.irq.handler_hooks.remove(self._on_handler)

    # -- helpers -----------------------------------------------------------------------------------

    def _add(self, key: tuple[Any, ...], finding: Finding) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self.findings.append(finding)

    def _vectors(self, drv: _Driver) -> Iterator[tuple[int, IrqDesc, int, int | None, int]]:
        """(vector, descriptor, INTID, the CPU whose GICR_SETLPIR the device writes or
        None, the data it writes) for each allocated vector."""
        for i, virq in enumerate(drv.virqs):
            desc = self.kern.irq_to_desc(virq)
            if desc is None:
                continue
            addr, data = drv.device.msi_message(i)
            yield i, desc, desc.levels()[-1].hwirq, self._setlpir.get(addr), data

    @staticmethod
    def _effective(desc: IrqDesc) -> int | None:
        eff = desc.irq_data.common.effective_affinity
        return min(eff) if eff else None

    # -- R4: pending state --------------------------------------------------------------------

    def _check_asked(self) -> None:
        for do, name, vector, virq, mark in self._asked:
            desc = self.kern.irq_to_desc(virq)
            if desc is None:
                continue
            intid = desc.levels()[-1].hwirq
            if self._ran.get(virq, -1) > mark or self._raised.get(intid, -1) > mark:
                continue
            what = "irq_inject_interrupt (irq_retrigger)" if do == "retrigger" else \
                "irq_set_irqchip_state(PENDING, true)"
            self._add(("pending", virq, mark), Finding(
                "pending-state-faked", "hardware events",
                f"{what} on IRQ {virq} ({name}-{vector}) returned success, but no write "
                f"made INTID {intid} pending anywhere and its handler did not run: the "
                "interrupt is lost", name, virq))
        self._asked.clear()

    # -- device registers against kernel state -------------------------------------------------

    def _check_state(self) -> None:
        for drv in self.drivers.values():
            if not drv.virqs:
                continue
            vecs: list[_Direct] = [(i, d, n, c, x) for i, d, n, c, x in self._vectors(drv)
                                   if c is not None]
            if not vecs:
                continue                 # not a Direct LPI route (ITS, MBI, GICv2m...)
            self._check_data(drv, vecs)
            self._check_block(drv, vecs)
            picked = [p for i, desc, _n, cpu, _x in vecs
                      if (p := self._check_target(drv, i, desc, cpu)) is not None]
            if picked:
                self._add(("cpu", drv.name), Finding(
                    "not-the-first-cpu", "kernel state",
                    "; ".join(picked) + ": the first online CPU of the affinity is what the "
                    "GIC's SPI path picks", drv.name, drv.virqs[0]))

    def _check_data(self, drv: _Driver, vecs: list[_Direct]) -> None:
        """R1: what a redistributor takes as the INTID is the message data."""
        wrong = [(i, data, intid) for i, _d, intid, _c, data in vecs if data != intid]
        if not wrong:
            return
        datas = {data for _i, data, _n in wrong}
        audited = sum(1 for s in self.plat.spoofed_msis
                      if s.master == drv.device.requester and s.data in datas)
        not_lpis = all(data < LPI_BASE for data in datas)
        self._add(("data", drv.name), Finding(
            "data-is-not-the-intid", "device registers",
            f"{drv.name}'s vectors {[i for i, _d, _n in wrong]} are programmed to write "
            f"data {[d for _i, d, _n in wrong]} into GICR_SETLPIR, but their LPIs are INTIDs "
            f"{[n for _i, _d, n in wrong]}"
            + (" (INTIDs below 8192 are not LPIs: the redistributor ignores them)"
               if not_lpis else "")
            + f"; the bus audit flagged {audited} of its writes so far as naming an INTID "
            "it does not own", drv.name))

    def _check_block(self, drv: _Driver, vecs: list[_Direct]) -> None:
        """R3: a MultiMSI block is one aligned run of INTIDs with one target."""
        dev = drv.device
        if len(vecs) < 2 or not getattr(dev, "msi_enabled", False):
            return
        intids = [intid for _i, _d, intid, _c, _x in vecs]
        size = 1 << order_of(len(intids))
        base = intids[0] & ~(size - 1)
        if intids != list(range(intids[0], intids[0] + len(intids))) or intids[0] != base:
            self._add(("unaligned", drv.name, tuple(intids)), Finding(
                "multimsi-block-unaligned", "kernel state",
                f"{drv.name}'s MultiMSI block got INTIDs {intids}, not one aligned block of "
                f"{size}: a function writing base | i names INTIDs "
                f"{[base | i for i in range(len(intids))]}", drv.name))
        cpus = {c for _i, _d, _n, c, _x in vecs}
        routed = {c for _i, d, _n, _c, _x in vecs if (c := self._effective(d)) is not None}
        if len(routed) > 1:
            self._add(("split", drv.name), Finding(
                "multimsi-block-split", "kernel state",
                f"{drv.name}'s MultiMSI block has one message address (CPU{min(cpus)}'s "
                f"GICR_SETLPIR), but the kernel routes its vectors to CPUs {sorted(routed)}",
                drv.name, vecs[0][1].irq))

    def _check_target(self, drv: _Driver, i: int, desc: IrqDesc, cpu: int) -> str | None:
        """R10: the device writes the RD of the CPU the kernel routes to; R9: that CPU is
        the first usable one of the affinity (returned, when it is not)."""
        eff = self._effective(desc)
        if eff is None:
            return None
        member = i > 0 and getattr(drv.device, "msi_enabled", False)
        if eff != cpu and not member:          # a MultiMSI member: its block is split
            self._add(("move", desc.irq), Finding(
                "move-not-written", "device registers",
                f"the kernel routes IRQ {desc.irq} ({drv.name}-{i}) to CPU{eff}, but the "
                f"device still writes CPU{cpu}'s GICR_SETLPIR: the move never reached it",
                drv.name, desc.irq))
        mask = desc.irq_data.common.affinity
        first = self._first_usable(drv, desc, mask)
        if first is None or eff in (first, min(mask, default=eff)):
            return None
        from directlpi.sim.run import cpulist  # run imports this module
        return (f"IRQ {desc.irq} ({drv.name}-{i}) asks for CPUs {cpulist(mask)} and was "
                f"given CPU{eff}, not CPU{first}")

    def _first_usable(self, drv: _Driver, desc: IrqDesc, mask: frozenset[int]) -> int | None:
        """The first CPU of ``mask`` that is online, has LPIs on and whose RD the device
        can address (a 32-bit MSI function: below 4 GiB)."""
        k = self.kern
        msi = desc.irq_data.common.msi_desc
        limit = None if msi is None or msi.is_64 else 1 << 32
        for c in sorted(mask):
            rd = k.gic.rdists.get(c)
            if (c in k.irq.online and rd is not None and rd.lpi_enabled
                    and (limit is None or rd.rd_base + GICR.SETLPIR.offset < limit)):
                return c
        return None

    # -- R5, R7: what the kernel registered, against firmware ------------------------------------

    def _check_firmware(self) -> None:
        k = self.kern
        gic = k.board.gic
        described = {i.translation_id for i in gic.its}
        for its_id, (_base, fwnode) in sorted(k.iort_domain_tokens.items()):
            if its_id not in described:
                self._add(("iort", its_id), Finding(
                    "iort-its-token", "kernel state",
                    f"the kernel registered an IORT domain token for GIC ITS ID {its_id} "
                    f"(domain node '{fwnode.name}'), but firmware describes no ITS with that "
                    f"ID{' (and no ITS at all)' if not described else ''}"))
        strays: dict[tuple[str, str], list[str]] = {}
        direct: list[str] = []
        vcpu: list[str] = []
        for drv in self.drivers.values():
            for _i, desc, _intid, cpu, _data in self._vectors(drv):
                if cpu is not None and drv.name not in direct:
                    direct.append(drv.name)
                chips = [lv.chip for lv in desc.levels() if lv.chip is not None]
                if k.its is None and any(c.irq_set_vcpu_affinity for c in chips):
                    vcpu.append(f"IRQ {desc.irq}")
            parent = self._firmware_parent(drv)
            first = k.irq_to_desc(drv.virqs[0]) if drv.virqs else None
            dom = first.irq_data.domain if first is not None else None
            if parent is not None and dom is not None and dom.fwnode is not parent:
                strays.setdefault((parent.name, f"'{dom.name}' (node '{dom.fwnode.name}')"),
                                  []).append(drv.name)
        for (parent_name, dom_name), names in strays.items():
            self._add(("domain", parent_name, dom_name), Finding(
                "msi-domain-not-from-firmware", "kernel state",
                f"firmware names {parent_name} as the MSI controller of {', '.join(names)}, "
                f"but their MSIs are handled by domain {dom_name}, which no firmware node "
                "describes"))
        if direct and not gic.direct_lpi:
            self._add(("no-fw",), Finding(
                "direct-lpi-without-firmware", "device registers",
                f"{', '.join(direct)} write their MSIs straight into redistributors "
                "(GICR_SETLPIR), but firmware describes no Direct LPI: only the absence of "
                "an ITS chose it"))
        if vcpu:
            self._add(("vcpu",), Finding(
                "vcpu-affinity-offered", "kernel state",
                f"the chips of {', '.join(vcpu[:4])}{'...' if len(vcpu) > 4 else ''} offer "
                "irq_set_vcpu_affinity, on a GIC without an ITS (so without GICv4)"))

    def _firmware_parent(self, drv: _Driver) -> Any:
        """The MSI controller node firmware names for a PCI function (None otherwise)."""
        pdev = self.kern.pci.devices.get(getattr(drv.device, "bdf", ""))
        return None if pdev is None else pdev.host.msi_parent_for(pdev.dev_id)

    # -- R6: the isolation claim, probed ---------------------------------------------------------

    def _probe_isolation(self) -> None:
        k = self.kern
        claimed = [drv for drv in self.drivers.values() if drv.virqs
                   and k.msi_isolated(drv.device)
                   and any(v[3] is not None for v in self._vectors(drv))]
        if not claimed:
            return
        victim = next((d for d in claimed if self._target(d) is not None), None)
        attacker = next((d for d in self.drivers.values()
                         if victim is not None and d is not victim), None)
        names = ", ".join(d.name for d in claimed)
        what = f"msi_isolated() is true for {names}"
        if victim is not None:
            try:
                k.vfio_assign(victim.device)
                what += f" and vfio_assign() took {victim.name} without allow_unsafe_interrupts"
            except KernelError as exc:
                what += f" (vfio_assign() refused {victim.name}: {exc})"
        if victim is None or attacker is None:
            self._add(("isolation",), Finding("false-isolation-claim", "kernel state",
                                              what + ", yet their MSIs go straight into "
                                              "redistributors (GICR_SETLPIR)"))
            return
        target = self._target(victim)
        assert target is not None
        desc, vector, intid, cpu = target
        before = self.spoofs_before_probe = len(self.checker.spoof_reached)
        attacker.device.spoof_msi(self.plat.gicr_base(cpu) + GICR.SETLPIR.offset, intid)
        self.plat.run_until_idle()
        reached = any(r["virq"] == desc.irq for r in self.checker.spoof_reached[before:])
        audited = Counter(s.master for s in self.plat.spoofed_msis)[attacker.device.requester]
        self._add(("isolation",), Finding(
            "false-isolation-claim", "probe",
            f"{what}; yet {attacker.name} wrote {victim.name}-{vector}'s LPI {intid} into "
            f"CPU{cpu}'s GICR_SETLPIR and "
            + ("its handler ran" if reached else
               f"the redistributor took it (the bus audit flagged {audited} write(s) by "
               f"{attacker.name})")
            + ": any bus master can write any INTID into any redistributor",
            victim.name, desc.irq))

    def _target(self, drv: _Driver) -> tuple[IrqDesc, int, int, int] | None:
        """An enabled vector of ``drv`` that targets an online CPU: (descriptor, vector,
        INTID, CPU)."""
        for i, desc, intid, _cpu, _data in self._vectors(drv):
            eff = self._effective(desc)
            d = desc.irq_data
            if (eff is not None and eff in self.kern.irq.online and desc.actions
                    and d.has(IRQD_IRQ_STARTED) and not d.has(IRQD_IRQ_DISABLED
                                                              | IRQD_IRQ_MASKED)):
                return desc, i, intid, eff
        return None
