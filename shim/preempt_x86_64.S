/*
 * The asynchronous preemption trampoline (see sched/preempt.c).
 *
 * The SIGURG handler does not touch the interrupted G's stack: it keeps
 * the interrupted rip in its M and points the signal context's rip here.
 * After sigreturn this code runs on the G's stack, in the G's context,
 * as if the interrupted instruction had called it:
 *   - it first steps over the red zone (128 bytes the interrupted leaf
 *     function may use below rsp) and reserves the return-address slot,
 *     with lea (flags must survive);
 *   - saves flags and all 15 general registers, then the full extended
 *     state (x87/SSE/AVX/AVX-512: whatever XCR0 enables) with xsave64 into
 *     a 64-byte-aligned area whose 64-byte header is zeroed first (xrstor
 *     faults on a header with reserved bits set);
 *   - fetches the interrupted rip into the return slot, yields the P, and
 *     on resumption (possibly on another OS thread) restores everything
 *     and returns with `ret $128`: pops the rip, then drops the red zone.
 * DF is cleared before calling C (the ABI requires it; popfq restores it).
 * The CFI marks this a signal frame so that unwinders take the caller's
 * pc as exact.
 */
        .text
        .globl  gmp_preempt_tramp
        .hidden gmp_preempt_tramp
        .type   gmp_preempt_tramp, @function
gmp_preempt_tramp:
        .cfi_startproc simple
        .cfi_signal_frame
        .cfi_def_cfa rsp, 0
        lea     -136(%rsp), %rsp
        .cfi_adjust_cfa_offset 136
        pushfq
        pushq   %rax
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        pushq   %rbx
        pushq   %rbp
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, %rbp
        .cfi_def_cfa rbp, 128+136
        movq    gmp_xsave_size(%rip), %rax
        subq    %rax, %rsp
        andq    $-64, %rsp
        xorl    %eax, %eax
        movq    %rax, 512(%rsp)
        movq    %rax, 520(%rsp)
        movq    %rax, 528(%rsp)
        movq    %rax, 536(%rsp)
        movq    %rax, 544(%rsp)
        movq    %rax, 552(%rsp)
        movq    %rax, 560(%rsp)
        movq    %rax, 568(%rsp)
        movl    gmp_xcr0_lo(%rip), %eax
        movl    gmp_xcr0_hi(%rip), %edx
        xsave64 (%rsp)
        cld
        call    gmp_preempt_enter
        movq    %rax, 128(%rbp)
        .cfi_offset rip, -136
        call    gmp_preempt_yield
        movl    gmp_xcr0_lo(%rip), %eax
        movl    gmp_xcr0_hi(%rip), %edx
        xrstor64 (%rsp)
        movq    %rbp, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbp
        popq    %rbx
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rax
        popfq
        ret     $128
        .cfi_endproc
        .size   gmp_preempt_tramp, .-gmp_preempt_tramp

        .section .note.GNU-stack,"",@progbits
