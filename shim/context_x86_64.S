/*
 * x86_64 context switch between G stacks.
 *
 * Only what the SysV ABI says a callee must preserve is saved: rbx, rbp,
 * r12-r15, rsp, the MXCSR control bits and the x87 control word. Everything
 * else is caller-saved, and a switch is always reached through a call.
 * The frame a switched-out context leaves on its own stack is:
 *
 *      rsp ->  [mxcsr:4][x87cw:2][pad:2]  r15 r14 r13 r12 rbx rbp  [ret]
 *
 * struct gmp_ctx is { rsp @0, fs @8 }. The fs base (the TCB) is loaded on
 * every switch in, never saved: a context always runs with the same TCB.
 * The window between loading rsp and loading fs runs with the old TCB on
 * the new stack; nothing in it reads TLS, and no signal handler of the
 * runtime may switch contexts while it is open.
 */
        .text

/* void gmp_ctx_switch_wrfs(struct gmp_ctx *from, struct gmp_ctx *to) */
        .globl  gmp_ctx_switch_wrfs
        .hidden gmp_ctx_switch_wrfs
        .type   gmp_ctx_switch_wrfs, @function
gmp_ctx_switch_wrfs:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        movq    8(%rsi), %rax
        wrfsbase %rax
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   gmp_ctx_switch_wrfs, .-gmp_ctx_switch_wrfs

/* Same, for CPUs or kernels without FSGSBASE: arch_prctl(ARCH_SET_FS).
 * The syscall clobbers rax, rcx, r11, rdi, rsi: all caller-saved. */
        .globl  gmp_ctx_switch_prctl
        .hidden gmp_ctx_switch_prctl
        .type   gmp_ctx_switch_prctl, @function
gmp_ctx_switch_prctl:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        movq    8(%rsi), %rsi
        movl    $0x1002, %edi           /* ARCH_SET_FS */
        movl    $158, %eax              /* SYS_arch_prctl */
        syscall
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   gmp_ctx_switch_prctl, .-gmp_ctx_switch_prctl

/* First code of a new context: gmp_ctx_make leaves fn in r12 and its
 * argument in r13. rip is marked undefined so unwinders (libunwind, gdb)
 * stop here instead of walking into garbage above the stack top. */
        .globl  gmp_ctx_entry
        .hidden gmp_ctx_entry
        .type   gmp_ctx_entry, @function
gmp_ctx_entry:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r13, %rdi
        xorl    %ebp, %ebp
        callq   *%r12
        ud2
        .cfi_endproc
        .size   gmp_ctx_entry, .-gmp_ctx_entry

/* First code of a context made by gmp_ctx_make_boot: the switch popped
 * the registers from a frame outside the stack; rbx holds the stack top,
 * which only now becomes rsp, so the stack's first page is touched by the
 * context itself when it first runs, not by whoever made it. */
        .globl  gmp_ctx_entry_boot
        .hidden gmp_ctx_entry_boot
        .type   gmp_ctx_entry_boot, @function
gmp_ctx_entry_boot:
        .cfi_startproc
        .cfi_undefined rip
        movq    %rbx, %rsp
        movq    %r13, %rdi
        xorl    %ebp, %ebp
        callq   *%r12
        ud2
        .cfi_endproc
        .size   gmp_ctx_entry_boot, .-gmp_ctx_entry_boot

        .section .note.GNU-stack,"",@progbits
