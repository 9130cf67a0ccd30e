//! The guest program: position-independent 64-bit code, assembled by the Rust
//! toolchain into a read-only data section of this binary and copied to
//! [`crate::layout::CODE_GPA`] in guest memory. It never runs on the host.
//!
//! Each pass:
//! 1. `in eax, dx` on [`PORT`]: a `KVM_EXIT_IO` (in) to the VMM, which counts
//!    the pass that just ended, decides whether to continue, and answers with
//!    the GPA of the range table for the next pass (phase 0 or phase 1).
//! 2. Walk the table: for each entry `{u64 gpa, u32 pages, u32 kind}` either
//!    store the pass counter at offset 0 of every 4 KiB page (kind 1, write)
//!    or load offset 0 of every page (kind 2, read). An entry with
//!    `pages == 0` ends the table; go back to 1.
//!
//! Registers: rdx = port, rsi = table cursor, rdi = page cursor, ecx = pages
//! left, r8d = kind, r9 = pass counter (the value written), rax = scratch.
//! No stack, no interrupts (none are ever injected), no other memory: the
//! guest touches only its code page, the range table, its page tables (the
//! CPU's page walker) and the pages of the ranges.

use std::arch::global_asm;

/// I/O port of the per-pass exit ("TEST").
pub const PORT: u16 = 0x7e57;

global_asm!(
    ".pushsection .rodata.testvm_guest,\"a\",@progbits",
    ".balign 16",
    ".globl testvm_guest_start",
    ".hidden testvm_guest_start",
    "testvm_guest_start:",
    "    xor r9d, r9d",                    // pass counter = 0
    "    mov edx, {port}",                 // dx = PORT
    ".Ltestvm_pass:",
    "    in eax, dx",                      // VMM: eax = GPA of this pass's range table
    "    mov esi, eax",
    "    inc r9",
    ".Ltestvm_entry:",
    "    mov rdi, qword ptr [rsi]",        // range start GPA
    "    mov ecx, dword ptr [rsi + 8]",    // pages
    "    mov r8d, dword ptr [rsi + 12]",   // kind
    "    add rsi, 16",
    "    test ecx, ecx",
    "    jz .Ltestvm_pass",                // terminator: pass done
    "    cmp r8d, 1",
    "    jne .Ltestvm_read",
    ".Ltestvm_write:",
    "    mov qword ptr [rdi], r9",         // one store per 4 KiB page
    "    add rdi, 4096",
    "    dec ecx",
    "    jnz .Ltestvm_write",
    "    jmp .Ltestvm_entry",
    ".Ltestvm_read:",
    "    mov rax, qword ptr [rdi]",        // one load per 4 KiB page
    "    add rdi, 4096",
    "    dec ecx",
    "    jnz .Ltestvm_read",
    "    jmp .Ltestvm_entry",
    ".globl testvm_guest_end",
    ".hidden testvm_guest_end",
    "testvm_guest_end:",
    ".popsection",
    port = const PORT,
);

unsafe extern "C" {
    static testvm_guest_start: u8;
    static testvm_guest_end: u8;
}

/// Machine code of the guest program.
pub fn code() -> &'static [u8] {
    // SAFETY: both symbols are defined above in the same read-only section,
    // start before end, and the bytes between them are immutable data.
    unsafe {
        let start = &raw const testvm_guest_start;
        let end = &raw const testvm_guest_end;
        std::slice::from_raw_parts(start, end as usize - start as usize)
    }
}
