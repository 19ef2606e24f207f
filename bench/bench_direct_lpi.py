"""Direct LPI through the whole stack, on the default board.

* ``e2e_msi_per_s`` -- a PCI function raises an MSI-X vector (a DMA write to
  GICR_SETLPIR), the PE takes it (ICC_IAR1_EL1), the genirq flow runs the handler
  through the DLPI-MSI -> DirectLPI -> GICv3 chips, and EOIs it (ICC_EOIR1_EL1).
* ``e2e_multimsi_per_s`` -- the same for a vector of a MultiMSI block.
* ``mask_unmask_pairs_per_s`` -- mask_irq + unmask_irq of an MSI-X vector: the
  device's vector control, the property table, GICR_INVLPIR, polling GICR_SYNCR.
* ``affinity_moves_per_s`` -- irq_set_affinity between two CPUs: the message
  re-composed, rewritten into the MSI-X entry and read back (the old RD delivers what
  it holds; bench_moves.py counts the accesses and compares the rejected designs).
* ``run_default_scenario_s`` -- ``directlpi run`` (the default scenario) in-process.
* ``e2e_mbi_per_s``, ``mbi_mask_unmask_pairs_per_s``, ``mbi_affinity_moves_per_s`` --
  the same three on the MBI-only board (MSIs to GICD_SETSPI_NSR): the route Direct LPI
  is measured against.  An MBI move is a GICD_IROUTER write; the device keeps its
  message.
* ``e2e_its_per_s``, ``its_mask_unmask_pairs_per_s``, ``its_affinity_moves_per_s`` -- the
  ITS board (``its.dts``): the MSI is an EventID written to GITS_TRANSLATER and
  translated through the device, ITT and collection tables; mask/unmask is the
  property byte, then an INV command and a SYNC, waited for on GITS_CREADR; a move is
  a MOVI + SYNC (the device untouched, the pending state moved by the ITS).
* ``e2e_gicv2m_per_s``, ``gicv2m_affinity_moves_per_s`` -- the GICv2m board
  (``gicv2m.dts``): MSI_SETSPI_NS of a frame; a move is a GICD_IROUTER write.
* ``e2e_spipv_per_s``, ``spipv_affinity_moves_per_s`` -- the Hyper-V SPI-route board
  (``hyperv-spi.dts``): the host's doorbell, its grant looked up, the guest SPI made
  pending; a move is a GICD_IROUTER write, no message to the host.
"""

from __future__ import annotations

from collections.abc import Callable

from directlpi import Platform
from directlpi.benchkit import Figure, median_rate, median_seconds
from directlpi.kernel.irq.desc import IRQ_HANDLED
from directlpi.kernel.kernel import Kernel
from directlpi.kernel.pci import PCI_IRQ_MSI, PCI_IRQ_MSIX


def _board(name: str) -> Callable[[], Platform]:
    def build() -> Platform:
        from directlpi.firmware.boards import BOARDS_DIR
        return Platform.from_devicetree(BOARDS_DIR / name)
    return build


_mbi_board = _board("mbi-only.dts")
_its_board = _board("its.dts")
_v2m_board = _board("gicv2m.dts")
_hv_board = _board("hyperv-spi.dts")


def _setup(board: Callable[[], Platform] = Platform.default,
           **fn: int) -> tuple[Platform, Kernel, object, int]:
    plat = board()
    dev = plat.add_pci_device("0000:00:01.0", msi_vectors=fn.get("msi_vectors", 0),
                              msix_vectors=fn.get("msix_vectors", 0))
    kern = plat.boot()
    flags = PCI_IRQ_MSIX if fn.get("msix_vectors") else PCI_IRQ_MSI
    n = kern.pci_alloc_irq_vectors(dev, 1, 4, flags)
    for i in range(n):
        kern.request_irq(kern.pci_irq_vector(dev, i), lambda irq, d: IRQ_HANDLED, name=f"q{i}")
    return plat, kern, dev, kern.pci_irq_vector(dev, n - 1)


def _e2e(quick: bool, board: Callable[[], Platform] = Platform.default, **fn: int) -> float:
    plat, _, dev, _ = _setup(board, **fn)
    raise_msi: Callable[[int], bool] = dev.raise_msi  # type: ignore[attr-defined]
    run_until_idle = plat.run_until_idle
    vector = 3 if fn.get("msi_vectors") else 1

    def run(n: int) -> None:
        for _ in range(n):
            raise_msi(vector)
            run_until_idle()
    return median_rate(run, 10_000 if quick else 50_000, repeats=3 if quick else 7)


def _mask_unmask(quick: bool, board: Callable[[], Platform] = Platform.default) -> float:
    _, kern, _, virq = _setup(board, msix_vectors=4)
    mask, unmask = kern.mask_irq, kern.unmask_irq

    def run(n: int) -> None:
        for _ in range(n):
            mask(virq)
            unmask(virq)
    return median_rate(run, 5_000 if quick else 20_000, repeats=3 if quick else 7)


def _moves(quick: bool, board: Callable[[], Platform] = Platform.default) -> float:
    _, kern, _, virq = _setup(board, msix_vectors=4)
    move = kern.irq_set_affinity
    a, b = frozenset({2}), frozenset({5})

    def run(n: int) -> None:
        for _ in range(n // 2):
            move(virq, a)
            move(virq, b)
    return median_rate(run, 2_000 if quick else 10_000, repeats=3 if quick else 7)


def _scenario() -> None:
    from directlpi.sim.run import ScenarioRun
    from directlpi.sim.scenario import DEFAULT_SCENARIO, load_scenario
    ScenarioRun(load_scenario(DEFAULT_SCENARIO)).run()


def run(quick: bool) -> list[Figure]:
    return [
        Figure("e2e_msi_per_s", _e2e(quick, msix_vectors=4), "msis/s",
               "MSI-X raise -> GICR_SETLPIR -> IAR1 -> handler -> EOIR1, through the kernel"),
        Figure("e2e_multimsi_per_s", _e2e(quick, msi_vectors=4), "msis/s",
               "the same for vector 3 of a MultiMSI block"),
        Figure("mask_unmask_pairs_per_s", _mask_unmask(quick), "pairs/s",
               "mask_irq + unmask_irq: vector control, property byte, INVLPIR, SYNCR"),
        Figure("affinity_moves_per_s", _moves(quick), "moves/s",
               "irq_set_affinity: rewrite the device and read it back (the old RD delivers)"),
        Figure("run_default_scenario_s", median_seconds(_scenario, 3 if quick else 5), "s",
               "the default scenario of `directlpi run`, in-process"),
        Figure("e2e_mbi_per_s", _e2e(quick, _mbi_board, msix_vectors=4), "msis/s",
               "MSI-X raise -> GICD_SETSPI_NSR -> IAR1 -> handler -> EOIR1 (MBI-only board)"),
        Figure("mbi_mask_unmask_pairs_per_s", _mask_unmask(quick, _mbi_board), "pairs/s",
               "mask_irq + unmask_irq of an MBI: vector control, GICD_ICENABLER/ISENABLER"),
        Figure("mbi_affinity_moves_per_s", _moves(quick, _mbi_board), "moves/s",
               "irq_set_affinity of an MBI: GICD_IROUTER, the device untouched"),
        Figure("e2e_its_per_s", _e2e(quick, _its_board, msix_vectors=4), "msis/s",
               "MSI-X raise -> GITS_TRANSLATER -> DTE/ITTE/CTE -> IAR1 -> handler -> EOIR1"),
        Figure("its_mask_unmask_pairs_per_s", _mask_unmask(quick, _its_board), "pairs/s",
               "mask_irq + unmask_irq through an ITS: property byte, INV + SYNC, CREADR"),
        Figure("its_affinity_moves_per_s", _moves(quick, _its_board), "moves/s",
               "irq_set_affinity through an ITS: MOVI + SYNC, the device untouched"),
        Figure("e2e_gicv2m_per_s", _e2e(quick, _v2m_board, msix_vectors=4), "msis/s",
               "MSI-X raise -> MSI_SETSPI_NS -> IAR1 -> handler -> EOIR1 (GICv2m board)"),
        Figure("gicv2m_affinity_moves_per_s", _moves(quick, _v2m_board), "moves/s",
               "irq_set_affinity of a GICv2m SPI: GICD_IROUTER, the device untouched"),
        Figure("e2e_spipv_per_s", _e2e(quick, _hv_board, msix_vectors=4), "msis/s",
               "MSI-X raise -> host doorbell -> grant -> guest SPI -> IAR1 -> handler -> EOIR1"),
        Figure("spipv_affinity_moves_per_s", _moves(quick, _hv_board), "moves/s",
               "irq_set_affinity of a vPCI SPI: GICD_IROUTER, no host message"),
    ]
