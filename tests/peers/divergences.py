"""Every known divergence between QEMU's GICv3 and the model, classified (as data).

The same classification, with the specification's words, is the table in
docs/hardware-model.md, "Differential test against QEMU".  Classes:

* ``QEMU_WRONG``: QEMU 7.2 does what IHI 0069 does not allow; the model does what it says.
* ``BOTH_ALLOWED``: the architecture allows both (UNPREDICTABLE, CONSTRAINED
  UNPREDICTABLE or IMPLEMENTATION DEFINED behaviour the model does not copy).
* Configuration (:data:`CONFIGURATION`): an IMPLEMENTATION DEFINED choice the model makes
  differently by default and can be built to make as QEMU does; the test builds it so,
  and checks that each option is what removes its divergence.

There is no "directlpi wrong" class here: such a divergence is fixed in the model (with a
register-level test under tests/hw/), never listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from fnmatch import fnmatchcase
from typing import Any

Value = int | str


class Verdict(Enum):
    QEMU_WRONG = "QEMU wrong"
    BOTH_ALLOWED = "both allowed"


def exact(qemu: Value, model: Value) -> Callable[[Value, Value], bool]:
    return lambda q, m: q == qemu and m == model


def model_reads(model: Value) -> Callable[[Value, Value], bool]:
    """The model reads ``model`` (QEMU: whatever was stored)."""
    return lambda q, m: m == model


def qemu_keeps_bits(mask: int) -> Callable[[Value, Value], bool]:
    """QEMU reads back bits in ``mask`` that the model reads as 0; the rest is equal."""
    def fits(q: Value, m: Value) -> bool:
        return (isinstance(q, int) and isinstance(m, int) and not m & mask
                and q & ~mask == m and q & mask != 0)
    return fits


@dataclass(frozen=True)
class Known:
    key: str
    verdict: Verdict
    registers: tuple[str, ...]
    """fnmatch patterns of observation names (e.g. "GICR?_PENDBASER")."""
    fits: Callable[[Value, Value], bool]
    why: str
    scenarios: tuple[str, ...] = ("*",)

    def matches(self, scenario: str, what: str, qemu: Value, model: Value) -> bool:
        return (any(fnmatchcase(scenario, p) for p in self.scenarios)
                and any(fnmatchcase(what, p) for p in self.registers)
                and self.fits(qemu, model))


_U64 = 0xFFFF_FFFF_FFFF_FFFF

KNOWN: tuple[Known, ...] = (
    Known("itlines-undercount", Verdict.QEMU_WRONG,
          ("GICD_I[SC]ENABLER8", "GICD_I[SC]PENDR8", "GICD_I[SC]ACTIVER8", "GICD_IGROUPR8",
           "GICD_ICFGR16", "GICD_IROUTER256"), model_reads(0),
          "GICD_TYPER.ITLinesNumber = 7 (highest SPI 255) but INTIDs 256-287 hold state"),
    Known("irouter-res0", Verdict.QEMU_WRONG, ("GICD_IROUTER*",), exact(_U64, 0xFF00FFFFFF),
          "IROUTER bits [63:40] and [30:24] (RES0) read back as written"),
    Known("irouter-irm-no1n", Verdict.BOTH_ALLOWED, ("GICD_IROUTER*",),
          exact(0x8000_0000, 0),
          "IRM = 1 with No1N = 1 is CONSTRAINED UNPREDICTABLE; the model's IRM is RAZ/WI"),
    Known("propbaser-res0", Verdict.QEMU_WRONG, ("GICR?_PROPBASER",),
          exact(_U64, 0x070F_FFFF_FFFF_FF9F),
          "PROPBASER bits [63:59], [55:52], [6:5] (RES0) read back as written"),
    Known("pendbaser-res0-ptz", Verdict.QEMU_WRONG, ("GICR?_PENDBASER",),
          exact(_U64, 0x070F_FFFF_FFFF_0F80),
          "PENDBASER RES0 bits and PTZ (WO, reads as 0) read back as written"),
    Known("ptz-reads-back", Verdict.QEMU_WRONG, ("GICR?_PENDBASER",), qemu_keeps_bits(1 << 62),
          "PENDBASER.PTZ is WO and reads as 0"),
    Known("ptz-reads-back-hi", Verdict.QEMU_WRONG, ("GICR?_PENDBASER.hi",),
          qemu_keeps_bits(1 << 30), "PENDBASER.PTZ (bit 30 of the upper word) reads as 0"),
    Known("pmr-res0", Verdict.QEMU_WRONG, ("ICC_PMR_EL1@PE?",), qemu_keeps_bits(~0xFF & _U64),
          "ICC_PMR_EL1 bits [63:8] (RES0) read back as written"),
    Known("processor-sleep-forwards", Verdict.QEMU_WRONG,
          ("ICC_*@PE1", "ISR_EL1@PE1"), lambda q, m: True,
          "with GICR_WAKER.ProcessorSleep = 1 QEMU still offers the RD's interrupts to the CPU "
          "interface (the later reads of the scenario follow from that acknowledge)",
          scenarios=("waker-sleep",)),
    Known("apr-write-unpredictable", Verdict.BOTH_ALLOWED,
          ("ICC_RPR_EL1@PE0", "ICC_AP1R0_EL1@PE0", "ISR_EL1@PE0", "ICC_HPPIR1_EL1@PE0"),
          lambda q, m: True,
          "writing an active-priority register with a value other than the one read while a "
          "priority is active is UNPREDICTABLE: QEMU takes the value, the model ignores it",
          scenarios=("apr-unpredictable",)),
    Known("pending-table-while-enabled", Verdict.BOTH_ALLOWED, ("pending-byte-*",),
          lambda q, m: True,
          "while EnableLPIs = 1 QEMU clears an acknowledged LPI's bit in the table; the model "
          "keeps pending state in the RD and writes the table when LPIs are disabled"),
    Known("ptz-with-live-table", Verdict.BOTH_ALLOWED, ("ICC_HPPIR1_EL1@PE1", "ISR_EL1@PE1"),
          lambda q, m: True,
          "PTZ = 1 written over a pending table that is not zero (software broke the rule): "
          "QEMU scans it anyway, the model trusts PTZ", scenarios=("lpi-enable-disable",)),
)


@dataclass(frozen=True)
class Configured:
    """An IMPLEMENTATION DEFINED choice the test builds the model to make as QEMU does."""

    option: str
    qemu: Any
    """The option's value on QEMU's board (tests/peers/model.py, QEMU_VIRT)."""
    default: Any
    """The model's own choice."""
    registers: tuple[str, ...]
    """Where the choice shows when the model keeps its default (fnmatch patterns)."""
    why: str


CONFIGURATION: tuple[Configured, ...] = (
    Configured("spis", 224, 988, ("GICD_TYPER",),
               "GICD_TYPER.ITLinesNumber = 7 on QEMU's virt (see itlines-undercount)"),
    Configured("mbis", False, True, ("GICD_TYPER",), "QEMU has no message-based SPIs"),
    Configured("direct_lpi", False, True, ("GICR?_TYPER", "GICR?_CTLR"),
               "QEMU has no Direct LPI registers (GICR_TYPER.DirectLPI, GICR_CTLR.IR 0)"),
    Configured("lpis_clearable", True, False, ("GICR?_CTLR",),
               "GICR_CTLR.CES = 1: EnableLPIs can be cleared"),
    Configured("no1n", True, False, ("GICD_TYPER",), "GICD_TYPER.No1N = 1"),
    Configured("iidr", 0x43B, 0x4C00143B, ("GICD_IIDR", "GICR?_IIDR"),
               "GICD_IIDR/GICR_IIDR: Arm r0p0, ProductID 0"),
    Configured("common_lpi_aff", 1, 0, ("GICR?_TYPER",), "GICR_TYPER.CommonLPIAff = 1"),
    Configured("cpuif_id_bits", 24, None, ("ICC_CTLR_EL1@PE?",),
               "ICC_CTLR_EL1.IDbits = 1 (24 bits) with a 16-bit Distributor"),
    Configured("dist_priority_bits", 8, None,
               ("GICD_IPRIORITYR*", "GICR?_IPRIORITYR*", "ICC_HPPIR1_EL1@PE?",
                "ICC_IAR1_EL1@PE?"),
               "the Distributor and Redistributors hold 8 priority bits (LPIs 6), the CPU "
               "interface 5"),
    Configured("busy_reads", 0, 1, ("GICD_CTLR", "GICR?_CTLR", "GICR?_WAKER"),
               "RWP and ChildrenAsleep complete at once"),
)


def classify(scenario: str, what: str, qemu: Value, model: Value) -> Known | None:
    """The known divergence this one is, or None (unclassified: the test fails)."""
    return next((k for k in KNOWN if k.matches(scenario, what, qemu, model)), None)
