"""Running a scenario on the default board, and its report (text and JSON).

The JSON object follows DESIGN.md's contract: ``platform`` {cpus, msi_provider,
lpi_id_bits, its}, ``irqs`` [{virq, hwirq (the MSI domain's number, as
/proc/interrupts shows it), intid (the GIC's), chip, device, vector,
effective_cpu, msi {address, data}, counts}], ``totals`` {msis_written, handled,
lost, spurious, coalesced}, ``violations`` [...], ``security`` {msi_isolation,
spoofed_msis, spoofs_reaching_a_handler, spoof_attempts}; plus ``scenario``, ``steps`` and
``proc_interrupts``, and ``review_findings`` (the 2021 review's objections the run
tripped, :mod:`directlpi.sim.review`).
"""

from __future__ import annotations

import errno
import html
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from directlpi.devices.pci import PciFunction
from directlpi.devices.platform_msi import PlatformMsiDevice
from directlpi.errors import DirectLPIError
from directlpi.firmware.devicetree import DtBoard, load_board
from directlpi.kernel.irq.affinity import IrqAffinity
from directlpi.kernel.irq.chip import IRQCHIP_STATE_PENDING
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.msi import MsiDesc, MsiMsg
from directlpi.kernel.pci import PCI_IRQ_AFFINITY, PCI_IRQ_MSI, PCI_IRQ_MSIX
from directlpi.platform import Platform
from directlpi.sim.invariants import InvariantChecker
from directlpi.sim.review import ReviewWatch, objection_of
from directlpi.sim.review import boot as boot_with_provider
from directlpi.sim.scenario import (
    DEFAULT_SCENARIO,
    AffinityStep,
    CpuStep,
    DeviceStep,
    PciDeviceSpec,
    RaiseStep,
    Scenario,
    ScenarioError,
    SpoofStep,
    StepFailed,
    VectorStep,
    load_scenario,
    parse_scenario,
)

if TYPE_CHECKING:
    from directlpi.sim.trace import Tracer

_FLAGS = {"msi": PCI_IRQ_MSI, "msix": PCI_IRQ_MSIX, "affinity": PCI_IRQ_AFFINITY}


@dataclass
class StepOutcome:
    index: int
    at: int
    what: str
    result: str
    ok: bool = True
    do: str = ""
    """The step's kind (``raise``, ``set_affinity``, ...)."""
    status: str = "done"
    """``done``, ``refused`` (an expected error) or ``skipped`` (``min_cpus``)."""
    args: dict[str, Any] | None = None
    """The step's fields as the scenario gave them (``at`` and ``do`` excepted)."""


@dataclass
class Driver:
    """The scenario's driver of one device: its vectors and what each handler saw."""

    name: str
    device: PciFunction | PlatformMsiDevice
    spec: Any
    virqs: list[int] = field(default_factory=list)
    runs: dict[int, int] = field(default_factory=lambda: defaultdict(int))


class ScenarioRun:
    """One run of a scenario: platform, kernel, drivers, checker, outcomes."""

    def __init__(self, scenario: Scenario, cpus: int | None = None,
                 trace: str | Path | None = None, platform: Path | DtBoard | None = None,
                 posted_writes: bool | None = None, provider: str | None = None,
                 trace_events: str | None = None) -> None:
        """``provider``: the LPI MSI provider to boot with ("direct-lpi", "rfc-v1": the
        2021 RFC replayed, see :mod:`directlpi.sim.review`); None: what firmware describes.
        ``platform``: a devicetree (``.dts``/``.dtb``, or a board already read) to run on
        instead of the default board; it then says how many CPUs there are (``cpus`` must
        be None) and what the silicon is (the scenario's ``lpi_id_bits`` applies unless its
        ``directlpi,hardware-model`` node sets them).  ``posted_writes`` overrides the
        scenario's ``[platform] posted_writes``.  ``trace``: a trace file, its format
        chosen by its suffix (``-``: ftrace text on standard output; docs/traces.md),
        ``trace_events`` the ``--trace-events`` patterns; written when :meth:`run` ends."""
        from directlpi.sim.trace import parse_filter, trace_format

        if trace is not None:
            trace_format(trace)                  # an unknown suffix: before any work
        wanted = parse_filter(trace_events)
        self.scenario = scenario
        board = scenario.platform
        silicon: dict[str, Any] = {
            "posted_writes": board.posted_writes if posted_writes is None else posted_writes,
            "posted_seed": board.seed, "lpis_clearable": board.lpis_clearable,
            "security_states": board.security_states, "scr_el3_fiq": board.scr_el3_fiq,
            **scenario.faults.hardware()}
        if platform is not None:
            if cpus is not None:
                raise ScenarioError("--cpus and --platform conflict: the board file says how "
                                    "many CPUs there are")
            dt = platform if isinstance(platform, DtBoard) else load_board(platform)
            hw = {} if "lpi_id_bits" in dt.hardware else {"lpi_id_bits": board.lpi_id_bits}
            ncpus = len(dt.board.cpus)
            scenario.check_cpus(ncpus)
            self.plat = Platform.from_board(dt, **hw, **silicon)
        else:
            ncpus = cpus if cpus is not None else board.cpus
            scenario.check_cpus(ncpus)
            self.plat = Platform.default(cpus=ncpus, lpi_id_bits=board.lpi_id_bits, **silicon)
        self.ncpus = ncpus
        self.drivers: dict[str, Driver] = {}
        for spec in scenario.devices:
            if isinstance(spec, PciDeviceSpec):
                dev: PciFunction | PlatformMsiDevice = self.plat.add_pci_device(
                    spec.bdf, msi_vectors=spec.msi_vectors, msix_vectors=spec.msix_vectors,
                    msi_64bit=spec.msi_64bit, msi_per_vector_mask=spec.per_vector_mask)
                dev.name = spec.name
            else:
                dev = self.plat.add_platform_device(spec.name, spec.slots)
            self.drivers[spec.name] = Driver(spec.name, dev, spec)
        self.kern: Kernel = boot_with_provider(self.plat, provider)
        self.tracer: Tracer | None = None
        if trace is not None:
            from directlpi.sim.trace import Tracer, open_sink
            self.tracer = Tracer(self.plat, open_sink(trace, self.plat), wanted=wanted)
        self.checker = InvariantChecker(self.plat)
        #: The review's objections, as the run shows them (docs/rfc-v1.md).
        self.review = ReviewWatch(self.plat, self.checker, self.drivers)
        self.outcomes: list[StepOutcome] = []
        #: The scenario's spoof steps: who wrote whose message, and the victim's IRQ.
        self.spoof_attempts: list[dict[str, Any]] = []
        for drv in self.drivers.values():
            self._probe(drv)

    # -- drivers ---------------------------------------------------------------------------------

    def _handler(self, drv: Driver, vector: int) -> Callable[[int, Any], int]:
        def handler(irq: int, dev_id: Any) -> int:
            drv.runs[vector] += 1
            return IRQ_HANDLED
        return handler

    def _probe(self, drv: Driver) -> None:
        k = self.kern
        spec = drv.spec
        if isinstance(drv.device, PciFunction):
            flags = 0
            for f in spec.driver.flags:
                flags |= _FLAGS[f]
            most = spec.driver.max_vectors or max(spec.msix_vectors, spec.msi_vectors)
            affd = IrqAffinity(pre_vectors=spec.driver.pre_vectors)
            n = k.pci_alloc_irq_vectors(drv.device, spec.driver.min_vectors, most, flags, affd)
            drv.virqs = [k.pci_irq_vector(drv.device, i) for i in range(n)]
        else:
            dev = drv.device

            def write_msg(desc: MsiDesc, msg: MsiMsg, dev: PlatformMsiDevice = dev) -> None:
                dev.program_slot(desc.msi_index, msg.address, msg.data)
                dev.read_slot(desc.msi_index)      # read back: what it posted has landed
            first = k.platform_msi_domain_alloc_irqs(dev, len(dev.slots), write_msg)
            drv.virqs = list(range(first, first + len(dev.slots)))
        for i, virq in enumerate(drv.virqs):
            k.request_irq(virq, self._handler(drv, i), name=f"{drv.name}-{i}",
                          dev_id=(drv.name, i))

    def _unbind(self, drv: Driver) -> None:
        for i, virq in enumerate(drv.virqs):
            self.kern.free_irq(virq, (drv.name, i))
        if isinstance(drv.device, PciFunction):
            self.kern.pci_free_irq_vectors(drv.device)
        else:
            self.kern.platform_msi_domain_free_irqs(drv.device)
        drv.virqs = []

    def _virq(self, drv: Driver, vector: int) -> int:
        if not 0 <= vector < len(drv.virqs):
            raise DirectLPIError(f"{drv.name} has {len(drv.virqs)} vector(s) allocated, not "
                                 f"vector {vector}", errno.EINVAL)
        return drv.virqs[vector]

    # -- steps -------------------------------------------------------------------------------------

    def run(self, on_tick: Callable[[int, int], None] | None = None) -> RunReport:
        """Play the scenario; ``on_tick(done, total)`` after each of its ticks (progress)."""
        by_tick: dict[int, list[tuple[int, Any]]] = defaultdict(list)
        for i, step in enumerate(self.scenario.steps):
            by_tick[step.at].append((i, step))
        try:
            self.plat.run_until_idle()
            for n, tick in enumerate(sorted(by_tick), 1):
                for i, step in by_tick[tick]:
                    self._play(i, step)
                self.plat.run_until_idle()
                self.checker.check()          # at every idle point, not only at the end
                self.review.idle()
                if on_tick is not None:
                    on_tick(n, len(by_tick))
            self.review.finish()
        finally:
            if self.tracer is not None:       # what was traced is kept, even on Ctrl-C
                self.tracer.close()
        return RunReport(self)

    def _play(self, i: int, step: Any) -> None:
        what = _describe(step)
        meta = {"do": step.do,
                "args": step.model_dump(exclude={"at", "do"}, exclude_defaults=True)}
        if self.ncpus < step.min_cpus:
            self.outcomes.append(StepOutcome(i, step.at, what,
                                             f"skipped: needs {step.min_cpus} CPUs, the "
                                             f"platform has {self.ncpus}",
                                             status="skipped", **meta))
            return
        try:
            with self.review.step(step):
                result = self._do(step)
        except DirectLPIError as exc:
            if step.expect_error == exc.errno_name:
                self.outcomes.append(StepOutcome(i, step.at, what,
                                                 f"refused as expected: {exc} [{exc.errno_name}]",
                                                 status="refused", **meta))
                return
            raise StepFailed(f"step {i} (at {step.at}, {what}) failed: {exc}",
                                exc.errno) from None
        if step.expect_error is not None:
            raise StepFailed(f"step {i} (at {step.at}, {what}) succeeded, but "
                                f"{step.expect_error} was expected", errno.EINVAL)
        self.outcomes.append(StepOutcome(i, step.at, what, result, **meta))

    def _do(self, step: Any) -> str:
        k = self.kern
        if isinstance(step, CpuStep):
            cpu = step.cpu % self.ncpus
            (k.cpu_offline if step.do == "cpu_offline" else k.cpu_online)(cpu)
            if step.do == "cpu_online":
                self.plat.machine.gic.kicked.add(cpu)
            return f"CPU{cpu}"
        drv = self.drivers[step.device]
        if isinstance(step, RaiseStep):
            vectors = range(len(drv.virqs)) if step.vector == "all" else [step.vector]
            sent = 0
            for v in vectors:
                self._virq(drv, v)
                for _ in range(step.count):
                    sent += bool(drv.device.raise_msi(v))
            return f"{sent} MSI write(s)"
        if isinstance(step, AffinityStep):
            virq = self._virq(drv, step.vector)
            k.irq_set_affinity(virq, [c % self.ncpus for c in step.cpus], force=step.force)
            return f"effective CPU {sorted(k.irq_get_effective_affinity(virq))}"
        if isinstance(step, VectorStep):
            virq = self._virq(drv, step.vector)
            action: dict[str, Callable[[], None]] = {
                "mask": lambda: k.mask_irq(virq), "unmask": lambda: k.unmask_irq(virq),
                "disable": lambda: k.disable_irq(virq), "enable": lambda: k.enable_irq(virq),
                "retrigger": lambda: k.irq_inject_interrupt(virq),
                "set_pending": lambda: k.irq_set_irqchip_state(virq, IRQCHIP_STATE_PENDING,
                                                               True),
                "clear_pending": lambda: k.irq_set_irqchip_state(virq, IRQCHIP_STATE_PENDING,
                                                                 False)}
            action[step.do]()
            return "done"
        if isinstance(step, DeviceStep):
            if step.do == "free":
                self._unbind(drv)
                return "vectors freed"
            if drv.virqs:
                raise DirectLPIError(f"{drv.name} still has its vectors", errno.EBUSY)
            self._probe(drv)
            return f"{len(drv.virqs)} vector(s)"
        assert isinstance(step, SpoofStep)
        victim = self.drivers[step.victim]
        msg = k.get_cached_msi_msg(self._virq(victim, step.victim_vector))
        address = msg.address if step.cpu is None else (
            self.plat.gicr_base(step.cpu % self.ncpus) + 0x40)
        drv.device.spoof_msi(address, msg.data)
        self.spoof_attempts.append({"attacker": drv.name,
                                    "victim": f"{victim.name} vector {step.victim_vector}",
                                    "victim_virq": self._virq(victim, step.victim_vector),
                                    "address": address, "data": msg.data})
        return f"wrote {msg.data} to {address:#x}"


def _describe(step: Any) -> str:
    fields = step.model_dump(exclude={"at", "do", "expect_error"}, exclude_none=True)
    if fields.get("min_cpus") == 1:
        del fields["min_cpus"]
    return str(step.do) + "(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"


SCHEMA_VERSION = 1
"""Version of :meth:`RunReport.as_dict`'s layout (docs/report.md); bumped on any change
that is not an addition."""


def cpulist(cpus: Iterable[int]) -> str:
    """A CPU set in Linux's list format (``/proc/irq/N/smp_affinity_list``): ``0-3,5``."""
    spans: list[list[int]] = []
    for c in sorted(cpus):
        if spans and spans[-1][1] == c - 1:
            spans[-1][1] = c
        else:
            spans.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


class RunReport:
    """Everything a run produced, for people (``render``) and tools (``as_dict``)."""

    def __init__(self, run: ScenarioRun) -> None:
        self.run = run
        self.violations = run.checker.violations
        #: The review's objections the run tripped (docs/rfc-v1.md).
        self.findings = run.review.findings
        self.ok = not self.violations and not self.findings

    def irqs(self) -> list[dict[str, Any]]:
        k = self.run.kern
        out = []
        for drv in self.run.drivers.values():
            for i, virq in enumerate(drv.virqs):
                desc = k.irq_to_desc(virq)
                assert desc is not None
                levels = desc.levels()
                try:
                    msg = k.get_cached_msi_msg(virq)
                    msi: dict[str, int] | None = {"address": msg.address, "data": msg.data}
                except DirectLPIError:
                    msi = None
                eff = sorted(k.irq_get_effective_affinity(virq))
                aff = k.irq_get_affinity(virq)
                out.append({
                    "virq": virq, "hwirq": desc.irq_data.hwirq, "intid": levels[-1].hwirq,
                    "chip": desc.irq_data.chip.name if desc.irq_data.chip else None,
                    "device": drv.name, "vector": i,
                    "effective_cpu": eff[0] if eff else None, "msi": msi,
                    "smp_affinity_list": cpulist(aff), "effective_affinity_list": cpulist(eff),
                    "counts": [desc.kstat[c] for c in range(self.run.plat.num_cpus)],
                })
        return out

    def spoof_attempts(self) -> list[dict[str, Any]]:
        """Each spoof step, and whether it reached its victim (the victim's handler ran,
        or it was delivered while masked, for a spoofed write)."""
        reached = {r["virq"] for r in self.run.checker.spoof_reached[
            :self.run.review.spoofs_before_probe]}          # not the review's probe
        return [{"attacker": a["attacker"], "victim": a["victim"], "address": a["address"],
                 "data": a["data"], "reached_victim": a["victim_virq"] in reached}
                for a in self.run.spoof_attempts]

    def as_dict(self) -> dict[str, Any]:
        run = self.run
        k = run.kern
        totals = run.checker.totals
        return {
            "schema_version": SCHEMA_VERSION,
            "scenario": run.scenario.name,
            "platform": {"cpus": run.plat.num_cpus, "msi_provider": k.msi_provider,
                         "lpi_id_bits": k.lpi.lpi_id_bits if k.lpi else 0,
                         "its": k.its is not None,
                         "board": run.plat.board.name},
            "irqs": self.irqs(),
            "totals": {key: totals[key] for key in ("msis_written", "handled", "lost",
                                                    "spurious", "coalesced",
                                                    "dropped_by_platform", "stale_by_fault",
                                                    "stale_runs_by_fault", "held_by_fault")},
            "violations": [{**v.as_dict(), "review": objection_of(v)} for v in self.violations],
            "review_findings": [f.as_dict() for f in self.findings],
            "security": {
                "msi_isolation": any(k.msi_isolated(d.device) for d in run.drivers.values()),
                "host_isolation": k.hv is not None,
                "spoofed_msis": [s.as_dict() for s in run.plat.spoofed_msis],
                "spoofs_reaching_a_handler": list(run.checker.spoof_reached),
                "spoof_attempts": self.spoof_attempts(),
            },
            "steps": [{"index": o.index, "at": o.at, "do": o.do, "args": o.args,
                       "description": o.what, "status": o.status, "result": o.result}
                      for o in run.outcomes],
            "proc_interrupts": k.proc_interrupts(),
            "log": [{"level": ln.level, "text": ln.text} for ln in k.log.lines],
            "ok": self.ok,
        }

    def _repr_html_(self) -> str:
        """Jupyter: the invariant outcome, the steps and ``/proc/interrupts``."""
        d = self.as_dict()
        esc = html.escape
        verdict = ("every invariant holds" if self.ok else
                   f"{len(self.violations)} violation(s): "
                   + "; ".join(esc(str(v)) for v in self.violations[:5]))
        steps = "".join(f"<tr><td>{o['at']}</td><td><code>{esc(o['description'])}</code></td>"
                        f"<td>{esc(o['status'])}</td><td>{esc(o['result'])}</td></tr>"
                        for o in d["steps"])
        plat = d["platform"]
        return (f"<div><b>directlpi: scenario {esc(d['scenario'])}</b> on {plat['cpus']} CPUs, "
                f"MSI provider {esc(plat['msi_provider'])}: "
                f"<b style='color:{'green' if self.ok else 'red'}'>{verdict}</b>"
                f"<table><tr><th>t</th><th>step</th><th>status</th><th>result</th></tr>{steps}"
                f"</table><pre>{esc(d['proc_interrupts'])}</pre></div>")

    def render(self, verbose: bool = False) -> str:
        """The text report; ``verbose`` adds the kernel log."""
        d = self.as_dict()
        plat = d["platform"]
        gic = "GICv3 with an ITS" if plat["its"] else "GICv3 without an ITS"
        out = [f"directlpi: scenario '{d['scenario']}' on {plat['cpus']} CPUs, {gic}, MSI "
               f"provider: {plat['msi_provider']}, {plat['lpi_id_bits']} LPI INTID bits",
               "", "steps:"]
        out += [f"  t={o['at']:<3} {o['description']:<58} {o['result']}" for o in d["steps"]]
        out += ["", "/proc/interrupts:", d["proc_interrupts"], "",
                "affinity (/proc/irq/N/smp_affinity_list, effective_affinity_list):"]
        out += [f"  IRQ {q['virq']:<4} {q['device'] + '-' + str(q['vector']):<16} "
                f"{q['smp_affinity_list']:<12} {q['effective_affinity_list']}" for q in d["irqs"]]
        if verbose:
            out += ["", "kernel log (dmesg):"] + [f"  {ln}" for ln in self.run.kern.log.lines]
        out += ["", "invariants:"]
        t = d["totals"]
        misdirected = sum(1 for v in self.violations if v.invariant == "misdirected-message")
        out.append(f"  MSIs written {t['msis_written']}, handler runs {t['handled']}, coalesced "
                   f"{t['coalesced']}, lost {t['lost']}, spurious {t['spurious']}"
                   + (f", vectors whose message names another interrupt {misdirected}"
                      if misdirected else "")
                   + (f", dropped by the platform (injected fault) {t['dropped_by_platform']}"
                      if t["dropped_by_platform"] else ""))
        if self.violations:
            out += [f"  VIOLATION {v}" + (f" (review: {r})" if (r := objection_of(v)) else "")
                    for v in self.violations]
        else:
            out.append("  every invariant holds: no lost interrupt, no spurious handler run, "
                       "nothing delivered while masked, no INTID allocated twice, no stale "
                       "or misdirected message")
        sec = d["security"]
        why = {"direct-lpi": "Direct LPI: any bus master can write any INTID into any "
                             "redistributor",
               "mbi": "MBI: any bus master can write any SPI into GICD_SETSPI_NSR",
               "gicv2m": "GICv2m: any bus master can write any of a frame's SPIs into its "
                         "MSI_SETSPI_NS",
               "its": "ITS: the DeviceID comes from the bus, so a device reaches only the "
                      "events of its own table",
               "rfc-v1": "RFC v1 claims it (IRQ_DOMAIN_FLAG_ISOLATED_MSI), but any bus master "
                         "can write any INTID into any redistributor",
               "spi-pv": "SPI-PV: the kernel claims none, but the host owns every vPCI "
                         "function's real MSI and looks each write up in what it granted "
                         "that function: a vPCI device reaches only its own guest SPIs"}
        reasons = [why[p] for p in d["platform"]["msi_provider"].split("+") if p in why]
        out += ["", "security:",
                f"  MSI isolation: {'yes' if sec['msi_isolation'] else 'no'}"
                + (f" ({'; '.join(reasons)})" if reasons else "")]
        seen = Counter(tuple(s.items()) for s in sec["spoofed_msis"])   # one line per kind
        for items, times in seen.items():
            s = dict(items)
            bell = s.get("doorbell", "GICR_SETLPIR")
            target = f"CPU{s['target_cpu']}" if bell == "GICR_SETLPIR" else bell
            what = ("which under its own DeviceID reaches" if bell == "GITS_TRANSLATER"
                    else "which the host looks up for the writer:" if
                    bell == "HV_MSI_DOORBELL" else "the INTID of")
            out.append(f"  spoofed MSI: {s['master']} wrote {s['data']} to {s['address']:#x} "
                       f"({target}), {what} {s['victim']}: {s['reason']}"
                       + (f" ({times} times)" if times > 1 else ""))
        for r in sec["spoofs_reaching_a_handler"]:
            out.append(f"  a spoofed MSI reached {r['victim']} (IRQ {r['virq']}) on "
                       f"CPU{r['cpu']}: {r['what']}")
        for a in sec["spoof_attempts"]:
            out.append(f"  spoof attempt: {a['attacker']} wrote {a['victim']}'s message "
                       f"(data {a['data']} to {a['address']:#x}): reached its victim: "
                       + ("yes" if a["reached_victim"] else "no"))
        if not sec["spoofed_msis"] and not sec["spoof_attempts"]:
            out.append("  no spoofed MSI seen")
        out += ["", "review (the 2021 RFC review's objections, docs/rfc-v1.md):"]
        out += [f"  {f}" for f in self.findings] or ["  no objection of the review tripped"]
        return "\n".join(out)


def run_scenario(scenario: str | Path | dict[str, Any] | Scenario | None = None, *,
                 cpus: int | None = None, platform: str | Path | None = None,
                 posted_writes: bool | None = None, provider: str | None = None) -> RunReport:
    """Play a scenario and return its report -- what ``directlpi run`` does, for notebooks
    and scripts.  ``scenario``: a TOML file, a dict in the same shape, a parsed
    :class:`Scenario`, or None for the embedded default.  ``cpus``, ``platform`` (a
    devicetree), ``posted_writes`` and ``provider`` override the scenario as the command's
    options do.  Raises :class:`ScenarioError` (bad input) or :class:`StepFailed`."""
    if scenario is None:
        sc = load_scenario(DEFAULT_SCENARIO)
    elif isinstance(scenario, Scenario):
        sc = scenario
    elif isinstance(scenario, dict):
        sc = parse_scenario(scenario)
    else:
        sc = load_scenario(scenario)
    board = None if platform is None else Path(platform)
    return ScenarioRun(sc, cpus=cpus, platform=board, posted_writes=posted_writes,
                       provider=provider).run()
