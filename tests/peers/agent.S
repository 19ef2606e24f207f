// The EL1 agent of the QEMU differential test: executes system-register accesses on
// command, one mailbox per PE.  Assembled at test time by tests/peers/qemu_harness.py,
// which defines NCPUS, NOPS and MBOX_BASE and generates the jump table (table.S:
// NOPS entries of two instructions each, "mrs x0, <reg>" or "msr <reg>, x3", then
// "b done").
//
// QEMU's virt board boots an ELF kernel at EL1 (no EL2/EL3 without virtualization=on,
// secure=on) with the MMU off, PSTATE.DAIF masked, only the first PE running; the other
// PEs are started here with PSCI CPU_ON (conduit HVC, which QEMU implements).
//
// Mailbox of PE i at MBOX_BASE + 64 i (PE index = Aff1 * 16 + Aff0, the virt layout):
//   +0  OP      which table entry to run (written by the harness before SEQ)
//   +8  VAL     the value an MSR writes
//   +16 SEQ     the harness increments it to issue a command
//   +24 RESULT  what an MRS read (ESR_EL1 if the access trapped)
//   +32 STATUS  0 done, 1 the access took an exception (UNDEF), 2 no such entry
//   +40 ACK     the agent copies SEQ here when RESULT and STATUS are written
//   +48 BOOTS   incremented each time this PE starts the agent (after a reset)
// OP NOPS is PSCI SYSTEM_RESET (no ACK: the harness waits for BOOTS instead).

    .equ OP, 0
    .equ VAL, 8
    .equ SEQ, 16
    .equ RESULT, 24
    .equ STATUS, 32
    .equ ACK, 40
    .equ BOOTS, 48
    .equ PSCI_CPU_ON_64, 0xC4000003
    .equ PSCI_SYSTEM_RESET, 0x84000009

    .text
    .global _start
_start:
    msr     daifset, #0xf
    mrs     x9, mpidr_el1
    and     x10, x9, #0xff
    ubfx    x11, x9, #8, #8
    add     x10, x10, x11, lsl #4           // x10: PE index
    ldr     x19, =MBOX_BASE
    add     x19, x19, x10, lsl #6           // x19: this PE's mailbox
    adr     x9, vectors
    msr     vbar_el1, x9
    isb
    ldr     x21, [x19, #SEQ]                // commands issued before this boot are stale
    ldr     x9, [x19, #BOOTS]
    add     x9, x9, #1
    str     x9, [x19, #BOOTS]
    cbnz    x10, loop                       // only PE 0 starts the others
    mov     x13, #1
1:  cmp     x13, #NCPUS
    b.hs    loop
    ldr     x0, =PSCI_CPU_ON_64
    and     x1, x13, #0xf
    lsr     x14, x13, #4
    orr     x1, x1, x14, lsl #8             // target MPIDR: Aff1 = i / 16, Aff0 = i % 16
    adr     x2, _start
    mov     x3, #0
    hvc     #0
    add     x13, x13, #1
    b       1b

loop:
    yield                                   // a hint: lets TCG end the block and look around
    ldr     x1, [x19, #SEQ]
    cmp     x1, x21
    b.eq    loop
    dmb     ishld                           // OP and VAL were written before SEQ
    ldr     x2, [x19, #OP]
    ldr     x3, [x19, #VAL]
    mov     x22, #0
    mov     x0, #0
    cmp     x2, #NOPS
    b.eq    reset
    b.hi    bad
    adr     x4, table
    add     x4, x4, x2, lsl #3
    br      x4
bad:
    mov     x22, #2
done:
    isb
    str     x0, [x19, #RESULT]
    str     x22, [x19, #STATUS]
    dmb     ish
    str     x1, [x19, #ACK]
    mov     x21, x1
    b       loop
reset:
    ldr     x0, =PSCI_SYSTEM_RESET
    hvc     #0
    b       .

table:
    .include "table.S"

    .ltorg
    .balign 2048
vectors:                                    // every exception: report it, skip the access
    .rept   16
    b       trapped
    .balign 128
    .endr
trapped:
    mrs     x0, esr_el1
    mov     x22, #1
    mrs     x9, elr_el1
    add     x9, x9, #4
    msr     elr_el1, x9
    eret
