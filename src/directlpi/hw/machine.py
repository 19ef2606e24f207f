"""A bare machine: physical memory, the bus, and a GICv3 without an ITS, at reset.

The default memory map follows QEMU's ``virt`` board:

==============================  ===========================================
GICD                            0x0800_0000 (64 KiB)
GICR region 0                   0x080A_0000, 123 RDs x 0x20000 (to 0x0900_0000)
GICR region 1                   0x40_0000_0000 (256 GiB), RDs 123 and up
RAM                             from 0x4000_0000
==============================  ===========================================

PE ``i`` has MPIDR Aff1 = i // 16, Aff0 = i % 16 (16 PEs per cluster, as
``virt`` does for GICv3: without GICD_TYPER.RSS, Aff0 must stay below 16 for
SGIs to reach every PE).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from directlpi.errors import ConfigError
from directlpi.hw.bus import Bus
from directlpi.hw.cache import CpuDataCache
from directlpi.hw.cpuif import CPUInterface
from directlpi.hw.events import EventHub
from directlpi.hw.gic import GIC
from directlpi.hw.gicv2m import V2mFrame
from directlpi.hw.hv_vpci import HvHypercallFrame, HvMsiDoorbell, HvVpciHost
from directlpi.hw.its import Its
from directlpi.hw.memory import PA_LIMIT, PhysicalMemory
from directlpi.hw.redistributor import Redistributor
from directlpi.hw.regs import (
    FRAME_SIZE,
    GICR,
    GICR_STRIDE,
    HV_HYPERCALL_BASE,
    HV_MSI_BASE,
    IIDR_VALUE,
    ITS_SIZE,
    ITS_TRANSLATION_OFFSET,
    SGI_BASE_OFFSET,
)

VIRT_GICD_BASE = 0x0800_0000
VIRT_GICR_REGIONS = ((0x080A_0000, 123), (0x40_0000_0000, 512))
VIRT_RAM_BASE = 0x4000_0000
DEFAULT_RAM_SIZE = 2 << 30
MAX_CPUS = 512
MAX_SPIS = 988


def default_mpidr(i: int) -> int:
    """MPIDR of PE ``i`` on the default board: Aff1 = i // 16, Aff0 = i % 16."""
    return ((i // 16) << 8) | (i % 16)


@dataclass(frozen=True, kw_only=True)
class MachineConfig:
    """What hardware to build.  Every field is validated; errors name the field."""

    cpus: int = 4
    """Number of PEs (1..512), each with its redistributor and CPU interface."""
    lpi_id_bits: int = 16
    """INTID bits of the GIC (GICD_TYPER.IDbits + 1): 14..24."""
    spis: int = MAX_SPIS
    """Number of SPIs: a multiple of 32 up to 960, or 988 (INTIDs 32..1019)."""
    direct_lpi: bool | tuple[bool, ...] = True
    """GICR_TYPER.DirectLPI for every RD, or one flag per PE."""
    mbis: bool = True
    """GICD_TYPER.MBIS: message-based SPIs through GICD_SETSPI_NSR."""
    lpis: bool = True
    """GICD_TYPER.LPIS and GICR_TYPER.PLPIS."""
    lpis_clearable: bool = False
    """Whether GICR_CTLR.EnableLPIs can be cleared once set (the strict choice is no)."""
    priority_bits: int = 5
    """Implemented priority bits (4..8)."""
    # IMPLEMENTATION DEFINED choices a board can make like a peer (docs/hardware-model.md,
    # "Differential test against QEMU"); the defaults are the model's own choices.
    dist_priority_bits: int | None = None
    """Priority bits the Distributor and Redistributors hold (GICD_IPRIORITYR,
    GICR_IPRIORITYR, LPI priorities, which have 6 at most): priority_bits..8; None: as
    the CPU interface (priority_bits).  QEMU holds 8 whatever its CPU interface has."""
    cpuif_id_bits: int | None = None
    """ICC_CTLR_EL1.IDbits: 16 or 24 INTID bits at the CPU interface; None: 16 when the
    GIC's INTIDs fit in 16 bits, else 24.  QEMU reports 24."""
    no1n: bool = False
    """GICD_TYPER.No1N: 1 of N SPI distribution not supported, GICD_IROUTER.IRM is then
    RAZ/WI (QEMU: True)."""
    security_states: int = 1
    """1: one Security state (GICD_CTLR.DS = 1, the default); 2: two (DS = 0) -- Secure and
    Non-secure Group 1 and Group 0, the Non-secure views of priorities and registers, and
    EL3 firmware that sets the GIC up before the kernel starts (docs/hardware-model.md,
    "Two Security states")."""
    scr_el3_fiq: bool = True
    """With two Security states, the SCR_EL3.FIQ the EL3 firmware leaves for the
    Non-secure world: True (a Secure monitor takes FIQs: Group 0 is out of Linux's reach,
    ICC_PMR_EL1 and ICC_RPR_EL1 have their Non-secure view) or False (plain TF-A with no
    Secure interrupt handler: Group 0 registers reachable, PMR unshifted)."""
    iidr: int = IIDR_VALUE
    """GICD_IIDR and GICR_IIDR (QEMU: 0x43B, Arm r0p0, ProductID 0)."""
    common_lpi_aff: int = 0
    """GICR_TYPER.CommonLPIAff (0..3): which RDs must share a configuration table -- 0
    all, n > 0 those whose PEs share affinity levels 3 down to 4 - n (QEMU: 1)."""
    busy_reads: int = 1
    """How many reads of GICD_CTLR.RWP, GICR_CTLR.RWP and GICR_WAKER.ChildrenAsleep see an
    operation still in progress (1: a driver that never polls is visible; 0: done at
    once, as QEMU)."""
    gicd_base: int = VIRT_GICD_BASE
    redist_regions: tuple[tuple[int, int], ...] = VIRT_GICR_REGIONS
    """GICR regions as (base, capacity in RDs); PEs fill them in order."""
    redist_stride: int = GICR_STRIDE
    ram: tuple[tuple[int, int], ...] = ((VIRT_RAM_BASE, DEFAULT_RAM_SIZE),)
    """RAM ranges as (base, size)."""
    mpidrs: tuple[int, ...] | None = None
    """MPIDR of each PE; None gives the default cluster layout."""
    strict: bool = False
    """Raise ArchitectureViolation on reserved or UNPREDICTABLE accesses (for tests)."""
    posted_writes: bool = False
    """Post DMA writes (PCIe ordering): they land later, per master in order, when the
    bus delivers or flushes them (a read from the device flushes its own)."""
    posted_seed: int = 0
    """Seed of the bus's choice of which master's posted write lands next."""
    rd_coherent: bool = True
    """Whether the redistributors' (and ITSes') table accesses are coherent with the PEs'
    data caches.  False: GICR_PROPBASER/PENDBASER.Shareability (and GITS_CBASER/BASER<n>)
    read as Non-shareable and the PEs see memory through
    :class:`~directlpi.hw.cache.CpuDataCache` (``Machine.cpu_memory``)."""
    its: tuple[int, ...] = ()
    """Base of each ITS (its control frame; the translation frame follows at +64 KiB)."""
    its_pta: bool = False
    """GITS_TYPER.PTA of every ITS: collections target RD physical addresses (True) or PE
    numbers (False, the default, as GIC-600 and QEMU)."""
    v2m_frames: tuple[tuple[int, int, int], ...] = ()
    """GICv2m MSI frames as (base, first SPI, SPI count)."""
    dma_drop: float = 0.0
    """Fault injection: the probability that the interconnect drops a DMA write after its
    issue (``DMA_DROPPED``; it never lands), drawn from ``fault_seed``."""
    fault_seed: int = 0
    """Seed of every injected fault's choices (each block draws from its own generator,
    seeded from this and the block's index, so one fault does not perturb another)."""
    syncr_stuck: int = 0
    """Fault injection: after a GICR_CLRLPIR, INVLPIR or INVALLR that the fault hits,
    GICR_SYNCR.Busy reads 1 for this many extra reads (N > 0), or for ever (-1: the
    redistributor never reports completion again).  0: no fault."""
    syncr_stuck_rate: float = 1.0
    """The probability that one such operation is hit by ``syncr_stuck``."""
    cache_refill: float = 0.0
    """Fault injection: the probability, at each LPI made pending and at each GICR_SYNCR
    read, that the redistributor drops its LPI configuration cache and refills it from the
    property table (legal at any time; a driver that relies on a stale copy is caught)."""
    stale_msi: int = 0
    """Fault injection: after a device's message for a vector is reprogrammed, the device
    writes its previous message for its next this-many signals of that vector."""
    its_cmd_error: float = 0.0
    """Fault injection: the probability that an ITS command (other than SYNC) fails with its
    architected error number: the queue stalls (GITS_CREADR.Stalled) until a retry
    (GITS_CWRITER.Retry), which executes it again (and may fail again)."""
    hv_vpci: bool = False
    """A Hyper-V-style host (:mod:`~directlpi.hw.hv_vpci`): its hypercall frame at
    HV_HYPERCALL_BASE and its MSI doorbell at HV_MSI_BASE; vPCI functions' MSIs become
    guest SPIs."""

    def __post_init__(self) -> None:
        self._validate()

    def _fail(self, name: str, why: str) -> None:
        raise ConfigError(f"hardware option {name}: {why}", errno.EINVAL)

    def _validate(self) -> None:
        def is_int(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not is_int(self.cpus) or not 1 <= self.cpus <= MAX_CPUS:
            self._fail("cpus", f"{self.cpus!r} is not a PE count in 1..{MAX_CPUS}")
        if not is_int(self.lpi_id_bits) or not 14 <= self.lpi_id_bits <= 24:
            self._fail("lpi_id_bits", f"{self.lpi_id_bits!r} is not in 14..24 (GICD_TYPER.IDbits "
                       "+ 1; LPIs start at INTID 8192, which needs 14 bits)")
        if (not is_int(self.spis) or not 0 <= self.spis <= MAX_SPIS
                or (self.spis % 32 and self.spis != MAX_SPIS)):
            self._fail("spis", f"{self.spis!r} is not a multiple of 32 up to 960, or 988")
        if not is_int(self.priority_bits) or not 4 <= self.priority_bits <= 8:
            self._fail("priority_bits", f"{self.priority_bits!r} is not in 4..8")
        self._validate_implementation(is_int)
        for name in ("mbis", "lpis", "lpis_clearable", "strict"):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, f"{getattr(self, name)!r} is not a bool")
        for name in ("its_pta", "hv_vpci"):
            if not isinstance(getattr(self, name), bool):
                self._fail(name, f"{getattr(self, name)!r} is not a bool")
        if not isinstance(self.its, tuple) or not all(is_int(b) for b in self.its):
            self._fail("its", f"{self.its!r} is not a tuple of ITS base addresses")
        if len(self.its) > 16:
            self._fail("its", f"{len(self.its)} ITSes; the model builds up to 16")
        if self.its and not self.lpis:
            self._fail("its", "an ITS needs LPIs (lpis=True)")
        if not isinstance(self.v2m_frames, tuple):
            self._fail("v2m_frames", f"{self.v2m_frames!r} is not a tuple of (base, first SPI, "
                       "count)")
        last_spi = 31 + self.spis
        taken: list[tuple[int, int]] = []
        for k, frame in enumerate(self.v2m_frames):
            if (not isinstance(frame, tuple) or len(frame) != 3
                    or not all(is_int(v) for v in frame)):
                self._fail("v2m_frames", f"frame {k} {frame!r} is not (base, first SPI, count)")
            _base, first, count = frame
            if count < 1 or first < 32 or first + count - 1 > min(last_spi, 1019) \
                    or first > 0x3FF or count > 0x3FF:
                self._fail("v2m_frames", f"frame {k}: SPIs {first}..{first + count - 1} are not "
                           f"within the implemented SPIs 32..{last_spi} (MSI_TYPER holds a "
                           "10-bit base and count)")
            clash = next(((f, n) for f, n in taken if first < f + n and f < first + count), None)
            if clash is not None:
                self._fail("v2m_frames", f"frame {k}: SPIs {first}..{first + count - 1} overlap "
                           f"another frame's {clash[0]}..{clash[0] + clash[1] - 1}")
            taken.append((first, count))
        if isinstance(self.dma_drop, bool) or not isinstance(self.dma_drop, int | float) \
                or not 0 <= self.dma_drop <= 1:
            self._fail("dma_drop", f"{self.dma_drop!r} is not a probability in 0..1")
        if not is_int(self.fault_seed) or self.fault_seed < 0:
            self._fail("fault_seed", f"{self.fault_seed!r} is not a non-negative int")
        for name in ("syncr_stuck_rate", "cache_refill", "its_cmd_error"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                self._fail(name, f"{p!r} is not a probability in 0..1")
        if not is_int(self.syncr_stuck) or self.syncr_stuck < -1:
            self._fail("syncr_stuck", f"{self.syncr_stuck!r} is not a count of extra busy "
                       "reads (N >= 0, or -1: busy for ever)")
        if not is_int(self.stale_msi) or self.stale_msi < 0:
            self._fail("stale_msi", f"{self.stale_msi!r} is not a count of stale writes >= 0")
        if not isinstance(self.rd_coherent, bool):
            self._fail("rd_coherent", f"{self.rd_coherent!r} is not a bool")
        if not isinstance(self.posted_writes, bool):
            self._fail("posted_writes", f"{self.posted_writes!r} is not a bool")
        if not is_int(self.posted_seed) or self.posted_seed < 0:
            self._fail("posted_seed", f"{self.posted_seed!r} is not a non-negative int")
        if isinstance(self.direct_lpi, bool):
            pass
        elif (isinstance(self.direct_lpi, Sequence)
              and all(isinstance(v, bool) for v in self.direct_lpi)):
            if len(self.direct_lpi) != self.cpus:
                self._fail("direct_lpi", f"{len(self.direct_lpi)} per-PE flags for "
                           f"{self.cpus} PEs")
        else:
            self._fail("direct_lpi", "must be a bool or one bool per PE")
        if self.mpidrs is not None:
            if len(self.mpidrs) != self.cpus:
                self._fail("mpidrs", f"{len(self.mpidrs)} MPIDRs for {self.cpus} PEs")
            if len(set(self.mpidrs)) != len(self.mpidrs):
                self._fail("mpidrs", "two PEs share an MPIDR")
            for m in self.mpidrs:
                if not is_int(m) or m < 0 or m & ~0xFF00FFFFFF:
                    self._fail("mpidrs", f"{m!r} is not an MPIDR affinity (Aff3.Aff2.Aff1.Aff0)")
        if (not is_int(self.redist_stride) or self.redist_stride < 2 * FRAME_SIZE
                or self.redist_stride % FRAME_SIZE):
            self._fail("redist_stride", f"{self.redist_stride!r} is not a multiple of 64 KiB "
                       "of at least 128 KiB (RD_base + SGI_base)")
        self._validate_map()

    def _validate_implementation(self, is_int: Callable[[object], bool]) -> None:
        dpb = self.dist_priority_bits
        if dpb is not None and (not is_int(dpb) or not self.priority_bits <= dpb <= 8):
            self._fail("dist_priority_bits", f"{dpb!r} is not in priority_bits..8 "
                       f"({self.priority_bits}..8): the Distributor holds at least the bits "
                       "the CPU interface compares")
        cib = self.cpuif_id_bits
        if cib is not None and (isinstance(cib, bool) or cib not in (16, 24)):
            self._fail("cpuif_id_bits", f"{cib!r} is not 16, 24 or None")
        if self.cpuif_id_bits == 16 and self.lpi_id_bits > 16:
            self._fail("cpuif_id_bits", f"16 INTID bits at the CPU interface cannot name the "
                       f"{self.lpi_id_bits}-bit INTIDs of the GIC (lpi_id_bits)")
        if self.security_states not in (1, 2) or isinstance(self.security_states, bool):
            self._fail("security_states", f"{self.security_states!r} is not 1 (GICD_CTLR.DS = 1) "
                       "or 2 (DS = 0)")
        if not isinstance(self.scr_el3_fiq, bool):
            self._fail("scr_el3_fiq", f"{self.scr_el3_fiq!r} is not a bool")
        if not isinstance(self.no1n, bool):
            self._fail("no1n", f"{self.no1n!r} is not a bool")
        if not is_int(self.iidr) or not 0 <= self.iidr <= 0xFFFFFFFF:
            self._fail("iidr", f"{self.iidr!r} is not a 32-bit register value")
        if not is_int(self.common_lpi_aff) or not 0 <= self.common_lpi_aff <= 3:
            self._fail("common_lpi_aff", f"{self.common_lpi_aff!r} is not in 0..3")
        if not is_int(self.busy_reads) or not 0 <= self.busy_reads <= 1000:
            self._fail("busy_reads", f"{self.busy_reads!r} is not a read count in 0..1000")

    def address_map(self) -> list[tuple[object, int, str, str]]:
        """What the machine puts where: (base, size, name, the option that places it) for
        the GICD, each GICR region's used part, ITSes, GICv2m frames, the hypervisor's
        frames and RAM.  ConfigError for an entry that is not even shaped right."""
        out: list[tuple[object, int, str, str]] = [(self.gicd_base, FRAME_SIZE, "GICD",
                                                    "gicd_base")]
        if not self.redist_regions:
            self._fail("redist_regions", "at least one GICR region is needed")
        placed = 0
        for k, region in enumerate(self.redist_regions):
            if (not isinstance(region, tuple) or len(region) != 2
                    or not all(isinstance(v, int) for v in region) or region[1] < 1):
                self._fail("redist_regions", f"region {k} {region!r} is not (base, RD count >= 1)")
            base, capacity = region
            used = min(capacity, self.cpus - placed)
            if used > 0:
                out.append((base, used * self.redist_stride, f"GICR region {k}",
                            "redist_regions"))
            placed += max(used, 0)
        if placed < self.cpus:
            self._fail("redist_regions", f"room for {placed} redistributors, {self.cpus} PEs")
        out += [(base, ITS_SIZE, f"ITS {k}", "its") for k, base in enumerate(self.its)]
        out += [(base, FRAME_SIZE, f"GICv2m frame {k}", "v2m_frames")
                for k, (base, _first, _count) in enumerate(self.v2m_frames)]
        if self.hv_vpci:
            out += [(HV_HYPERCALL_BASE, FRAME_SIZE, "the hypervisor's call frame", "hv_vpci"),
                    (HV_MSI_BASE, FRAME_SIZE, "the hypervisor's MSI doorbell", "hv_vpci")]
        for k, (base, size) in enumerate(self.ram):
            if not isinstance(size, int) or size <= 0:
                self._fail("ram", f"range {k} has size {size!r}")
            out.append((base, size, f"RAM range {k}", "ram"))
        return out

    def _validate_map(self) -> None:
        spans: list[tuple[int, int, str]] = []
        for base, size, name, what in self.address_map():
            if not isinstance(base, int) or base < 0 or base % FRAME_SIZE:
                self._fail(what, f"{name} base {base!r} is not a 64 KiB aligned address")
            assert isinstance(base, int)
            if base + size > PA_LIMIT:
                self._fail(what, f"{name} ends beyond the 52-bit physical address space")
            for start, end, other in spans:
                if base < end and start < base + size:
                    self._fail(what, f"{name} [{base:#x}, {base + size:#x}) overlaps {other}")
            spans.append((base, base + size, name))

    def direct_lpi_flags(self) -> tuple[bool, ...]:
        if isinstance(self.direct_lpi, bool):
            return (self.direct_lpi,) * self.cpus
        return tuple(self.direct_lpi)

    def mpidr_list(self) -> tuple[int, ...]:
        if self.mpidrs is not None:
            return tuple(self.mpidrs)
        return tuple(default_mpidr(i) for i in range(self.cpus))

    def rd_bases(self) -> tuple[tuple[int, ...], tuple[bool, ...]]:
        """RD_base of each PE and whether it is the last RD of its region."""
        bases: list[int] = []
        last: list[bool] = []
        for base, capacity in self.redist_regions:
            n = min(capacity, self.cpus - len(bases))
            for j in range(n):
                bases.append(base + j * self.redist_stride)
                last.append(j == n - 1)
            if len(bases) == self.cpus:
                break
        return tuple(bases), tuple(last)


class Machine:
    """Memory + bus + GIC, built from a :class:`MachineConfig`, at reset."""

    def __init__(self, config: MachineConfig) -> None:
        self.config = config
        self.hub = EventHub(strict=config.strict)
        self.memory = PhysicalMemory()
        self.bus = Bus(self.memory, self.hub, config.ram, posted=config.posted_writes,
                       seed=config.posted_seed, dma_drop=float(config.dma_drop),
                       fault_seed=config.fault_seed)
        bases, last = config.rd_bases()
        self._rd_bases = bases
        self.gic = GIC(
            self.hub, self.memory, mpidrs=config.mpidr_list(), last_flags=last,
            direct_lpi=config.direct_lpi_flags(), spis=config.spis,
            lpi_id_bits=config.lpi_id_bits, lpis=config.lpis, mbis=config.mbis,
            lpis_clearable=config.lpis_clearable, priority_bits=config.priority_bits,
            rd_coherent=config.rd_coherent)
        dist_bits = config.dist_priority_bits or config.priority_bits
        self.gic.dist.set_implementation(no1n=config.no1n, iidr=config.iidr,
                                         busy_reads=config.busy_reads, priority_bits=dist_bits)
        for cpuif in self.gic.cpuifs:
            cpuif.set_implementation(id_bits=config.cpuif_id_bits)
        if config.security_states == 2:
            self.gic.set_two_states()
        for rd in self.gic.redists:
            rd.set_implementation(iidr=config.iidr, common_lpi_aff=config.common_lpi_aff,
                                  busy_reads=config.busy_reads, priority_bits=dist_bits)
            rd.inject_faults(syncr_stuck=config.syncr_stuck,
                             syncr_stuck_rate=float(config.syncr_stuck_rate),
                             cache_refill=float(config.cache_refill),
                             seed=config.fault_seed * 1_000_003 + rd.cpu + 1)
        self._cpu_memory: PhysicalMemory | CpuDataCache = (
            self.memory if config.rd_coherent else CpuDataCache(self.memory))
        self.bus.map_frame(config.gicd_base, self.gic.dist)
        self.bus.claim_window(config.gicd_base, FRAME_SIZE, "the GICD frame")
        for rd, base in zip(self.gic.redists, bases, strict=True):
            self.bus.map_frame(base, rd)
            self.bus.map_frame(base + SGI_BASE_OFFSET, rd.sgi)
            if rd.implements_write(GICR.SETLPIR.offset, 4):       # DirectLPI
                for size in (4, 8):
                    self.bus.add_doorbell(base + GICR.SETLPIR.offset, size, rd._w_SETLPIR)
        #: The ITSes, in configuration order.
        self.its = [Its(self.gic, self.hub, self.memory, index=k, base=base,
                        pta=config.its_pta, coherent=config.rd_coherent, rd_bases=bases,
                        is_ram=self.bus.is_ram, cmd_error=float(config.its_cmd_error),
                        fault_seed=config.fault_seed * 1_000_003 + 0x10000 + k)
                    for k, base in enumerate(config.its)]
        for its in self.its:
            self.bus.map_frame(its.base, its)
            self.bus.map_frame(its.base + ITS_TRANSLATION_OFFSET, its.translation)
            self.bus.claim_window(its.base, ITS_SIZE, f"ITS {its.index}")
        #: The GICv2m MSI frames, in configuration order.
        self.v2m = [V2mFrame(self.gic.dist, self.hub, index=k, spi_base=first, spi_count=count)
                    for k, (_base, first, count) in enumerate(config.v2m_frames)]
        for frame, (base, _first, _count) in zip(self.v2m, config.v2m_frames, strict=True):
            self.bus.map_frame(base, frame)
            self.bus.claim_window(base, FRAME_SIZE, f"GICv2m frame {frame.index}")
        #: The Hyper-V-style host, if any (its vPCI bus is attached by the platform).
        self.hv: HvVpciHost | None = None
        if config.hv_vpci:
            v2m_spis = frozenset(s for _b, first, count in config.v2m_frames
                                 for s in range(first, first + count))
            self.hv = HvVpciHost(self.gic.dist, self.hub, None, v2m_spis)
            self.bus.map_frame(HV_HYPERCALL_BASE, HvHypercallFrame(self.hv, self.cpu_memory,
                                                                   self.hub))
            self.bus.map_frame(HV_MSI_BASE, HvMsiDoorbell(self.hv, self.hub))
            self.bus.claim_window(HV_HYPERCALL_BASE, FRAME_SIZE, "the hypervisor's call frame")
            self.bus.claim_window(HV_MSI_BASE, FRAME_SIZE, "the hypervisor's MSI doorbell")
        placed = 0
        for k, (base, capacity) in enumerate(config.redist_regions):
            used = min(capacity, config.cpus - placed)
            if used > 0:
                # Name the region's whole capacity so that accesses to RD slots
                # without a PE are reported as holes in it.
                self.bus.claim_window(base, capacity * config.redist_stride,
                                      f"GICR region {k} ({used} of {capacity} RDs present)")
            placed += max(used, 0)

    @property
    def cpu_memory(self) -> PhysicalMemory | CpuDataCache:
        """RAM as software on the PEs sees it: what a kernel must be given to access RAM.

        ``memory`` itself when the redistributors are coherent (``rd_coherent``, the
        default); otherwise the PEs' data cache over it, which the redistributors do
        not snoop, so software must clean and invalidate by address (one cache, the
        same object every time).
        """
        return self._cpu_memory

    @property
    def gicd_base(self) -> int:
        return self.config.gicd_base

    def gicr_base(self, cpu: int) -> int:
        """RD_base of PE ``cpu``'s redistributor (its SGI_base frame is at +0x10000)."""
        self._check_cpu(cpu)
        return self._rd_bases[cpu]

    def cpu(self, i: int) -> CPUInterface:
        """The CPU interface of PE ``i``."""
        self._check_cpu(i)
        return self.gic.cpuifs[i]

    def redistributor(self, i: int) -> Redistributor:
        self._check_cpu(i)
        return self.gic.redists[i]

    def _check_cpu(self, cpu: int) -> None:
        if not isinstance(cpu, int) or not 0 <= cpu < self.config.cpus:
            raise ConfigError(f"no PE {cpu!r}: this machine has PEs 0..{self.config.cpus - 1}",
                              errno.ENXIO)
