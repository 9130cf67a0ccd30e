//! # testvm: a guest workload with a known page-access pattern
//!
//! `testvm` is a minimal KVM VMM (rust-vmm `kvm-ioctls`, `kvm-bindings`,
//! `vm-memory`) whose guest touches exactly the guest-physical pages it is
//! told to, so tests can compare what ept-sampler reports with the truth.
//!
//! ```text
//! testvm --mem SIZE [--backing anon|thp|hugetlb] [--vcpus N]
//!        [--seconds S | --iterations N]
//!        [--write GPA+LEN]... [--read GPA+LEN]...
//!        [--switch-after S | --switch-on-signal] [--then-write GPA+LEN...]
//!        [--dirty-log] [--prefault] [--churn-memslot] [--truth FILE]
//! ```
//!
//! Sizes are numbers (decimal or `0x` hex) with an optional `K`/`M`/`G`
//! (binary) suffix: `--write 16M+8M` writes the 2048 pages `[16 MiB, 24 MiB)`.
//!
//! ## Guest
//!
//! One memslot (slot 0) maps `[0, mem)` at GPA 0. The guest runs in 64-bit
//! long mode on an identity map of all guest memory built from 2 MiB pages.
//! Every vCPU runs the same loop over the same ranges (ranges are not split
//! between vCPUs): per pass it stores one qword at offset 0 of every 4 KiB
//! page of each `--write` range, then loads offset 0 of every page of each
//! `--read` range, then does one `in` from port 0x7e57 (a `KVM_EXIT_IO`),
//! where the VMM counts the pass and answers with the range table for the
//! next pass. Apart from the ranges, the guest touches only its own pages in
//! the reserved region `[0, 1 MiB)` (see [`layout`]); ranges must lie outside
//! it, inside guest memory, be 4 KiB aligned, non-empty and not overlap
//! (within a phase). All of this is checked before any VM is created.
//!
//! Host side: before the guest starts, testvm writes its own pages and one
//! qword into every page of each `--read` range (so reads hit real anonymous
//! pages, not the shared zero page that idle page tracking cannot see);
//! `--prefault` populates all of guest memory. Pages of `--write` ranges and
//! untouched pages are faulted in by the guest (or not at all).
//!
//! Stopping: after `--iterations N` passes of every vCPU, after `--seconds S`,
//! or on SIGINT/SIGTERM (all are clean exits that write the final truth);
//! with neither limit it runs until signalled. A vCPU in the middle of a pass
//! when time is up is kicked out of `KVM_RUN` (its partial pass is not
//! counted).
//!
//! Phases: with `--switch-after S --then-write R...`, the first pass handed
//! out `S` seconds after the guest started (and all later ones) use the
//! `--then-write` ranges instead of the `--write` ranges; `--read` ranges stay.
//! With `--switch-on-signal` instead, the first pass handed out after testvm
//! receives SIGUSR2 does. Once every vCPU has completed a whole pass of
//! phase 1 (every page of the new ranges written, so mapped), testvm prints
//! `testvm: phase 1 running start_s=S`: the event a test waits for.
//! With several vCPUs, a vCPU in the middle of a phase-0 pass at the switch
//! finishes that pass first.
//!
//! Roots that go away: with `--churn-memslot`, testvm adds and deletes a
//! second memslot (slot 1, 2 MiB above guest memory, never touched by the
//! guest) every 5 ms once the guest runs, until SIGHUP, then prints
//! `testvm: memslot churn stopped deletes=N`. Each delete makes KVM
//! invalidate every TDP root of the VM (`kvm_mmu_zap_all_fast`), so a
//! sampler's round loses its roots mid-walk; the guest refaults and goes
//! on.
//!
//! Measured access pattern (KVM dirty log on a real host): the guest writes
//! only the `--write` pages and its PML4, PDPT and the page directories it
//! walks (the CPU sets accessed/dirty bits there); it reads the code page and
//! the range table. The GDT (descriptors are preset accessed) and the stacks
//! are listed in `own` but never touched.
//!
//! On stdout: `testvm: running pid=P vm_fd=F vm=P-F hva=0x... mem=BYTES`
//! once every vCPU has completed its first pass (the truth file is written
//! just before it), and `testvm: done iterations=N elapsed_s=S` at the end.
//!
//! ## Truth file (`--truth FILE`, JSON, schema 1)
//!
//! Written atomically (temporary file + rename) when every vCPU has completed
//! its first pass, again when phase 1 starts, and at exit.
//!
//! ```json
//! {
//!   "schema": 1,
//!   "state": "running",            // "running" | "done" | "failed"
//!   "pid": 1234, "vm_fd": 5, "vm": "1234-5",
//!   "mem_bytes": 67108864, "backing": "anon", // "anon" | "thp" | "hugetlb"
//!   "hva": 140123456789504,        // host virtual address of GPA 0
//!   "vcpus": 1, "dirty_log": false, "prefault": false, "page_size": 4096,
//!   "written": [{"gpa": 16777216, "len": 8388608}],  // started phases, merged
//!   "read":    [{"gpa": 33554432, "len": 4194304}],
//!   "own": [{"gpa": 4096, "len": 4096, "what": "gdt"}, ...],
//!   "phases": [{"written": [...], "after_s": 0.0, "started": true, // after_s null: SIGUSR2
//!               "start_s": 0.0, "start_unix_ns": 1764000000000000000}],
//!   "iterations": 42, "vcpu_iterations": [42],
//!   "passes_file": "/tmp/t.json.passes", // live per-vCPU pass counters
//!   "start_unix_ns": 1764000000000000000, "elapsed_s": 0.73
//! }
//! ```
//!
//! `passes_file` (the truth file's path with `.passes` appended) holds one
//! native-endian `u64` per vCPU, the passes it has completed, updated live
//! through a shared mapping: the event a measurement window waits on (see
//! [`passes`]). `iterations` in the truth file is only a snapshot.
//!
//! All ranges are byte ranges `[gpa, gpa + len)` of whole 4 KiB pages.
//! `own` kinds: `gdt`, `pml4`, `pdpt`, `range-table`, `code`, `stack`, `pd`.
//! Pages in none of `written`, `read`, `own` are never touched by the guest.
//!
//! ## page-idle
//!
//! The second binary, `page-idle --truth FILE [--passes N] [--timeout-s S] [--json]`, is a
//! reference measurement with the kernel's idle page tracking; see
//! `src/bin/page-idle.rs`.

pub mod cli;
pub mod guest;
pub mod idle;
pub mod layout;
pub mod passes;
pub mod range;
pub mod truth;

#[cfg(test)]
mod tests;
