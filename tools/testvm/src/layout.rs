//! Guest-physical layout of testvm's own pages and the structures the guest
//! needs to run in 64-bit long mode.
//!
//! Everything testvm itself puts into guest memory lives in the reserved low
//! region `[0, RESERVED_END)` (1 MiB); `--write`/`--read` ranges may not touch
//! it. Inside it, only these pages are ever used (the rest stays untouched):
//!
//! | GPA                         | what                                               |
//! |-----------------------------|----------------------------------------------------|
//! | `0x1000`                    | GDT: null, 64-bit code (0x08), data (0x10)         |
//! | `0x2000`                    | PML4                                               |
//! | `0x3000`                    | PDPT                                               |
//! | `0x4000`                    | range table of phase 0                             |
//! | `0x5000`                    | range table of phase 1 (only with `--then-write`)  |
//! | `0x6000`                    | guest code                                         |
//! | `0x10000 + i * 0x1000`      | stack of vCPU i (RSP starts at the page's end)     |
//! | `0x80000 + i * 0x1000`      | page directory i, identity-mapping GiB i           |
//!
//! The identity map covers all guest memory with 2 MiB pages (PS=1); guest
//! memory is a multiple of 2 MiB, so nothing beyond it is mapped.

use kvm_bindings::{kvm_segment, kvm_sregs};
use serde::{Deserialize, Serialize};

use crate::range::{Access, Range, HUGE_PAGE_SIZE, PAGE_SIZE};

/// End of testvm's reserved low region (exclusive).
pub const RESERVED_END: u64 = 0x10_0000;
pub const GDT_GPA: u64 = 0x1000;
pub const PML4_GPA: u64 = 0x2000;
pub const PDPT_GPA: u64 = 0x3000;
/// Range table of phase `p` is at `TABLE_GPA + p * 0x1000`.
pub const TABLE_GPA: u64 = 0x4000;
pub const CODE_GPA: u64 = 0x6000;
pub const STACK_GPA: u64 = 0x1_0000;
pub const PD_GPA: u64 = 0x8_0000;
/// Most vCPUs: one stack page each in `[STACK_GPA, PD_GPA)`.
pub const MAX_VCPUS: u32 = 64;
/// Most guest memory: one page directory per GiB in `[PD_GPA, RESERVED_END)`.
pub const MAX_MEM: u64 = 64 << 30;
/// Entries of a range table: 16 bytes each, the last one is the terminator.
pub const MAX_RANGES_PER_TABLE: usize = (PAGE_SIZE as usize / TABLE_ENTRY_SIZE) - 1;
pub const TABLE_ENTRY_SIZE: usize = 16;
/// Range table entry kinds (dword at offset 12).
pub const KIND_WRITE: u32 = 1;
pub const KIND_READ: u32 = 2;

/// Page-table entry bits used by the identity map.
pub const PTE_P: u64 = 1 << 0;
pub const PTE_RW: u64 = 1 << 1;
pub const PTE_PS: u64 = 1 << 7;

/// Control register and EFER bits for long mode.
pub const CR0_PE: u64 = 1 << 0;
pub const CR0_MP: u64 = 1 << 1;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_PAE: u64 = 1 << 5;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;

pub const CODE_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;

/// Number of page directories (one per started GiB).
pub fn page_directories(mem: u64) -> u64 {
    mem.div_ceil(1 << 30)
}

/// GPA of vCPU `i`'s stack page.
pub fn stack_gpa(vcpu: u32) -> u64 {
    STACK_GPA + u64::from(vcpu) * PAGE_SIZE
}

/// GPA of phase `p`'s range table.
pub fn table_gpa(phase: usize) -> u64 {
    TABLE_GPA + phase as u64 * PAGE_SIZE
}

/// Encodes a GDT descriptor from base, 20-bit limit and the 16 bits of
/// access byte (low 8) and flags nibble (bits 12..16) as in the SDM layout.
pub fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((u64::from(base) & 0xff00_0000) << (56 - 24))
        | ((u64::from(flags) & 0x0000_f0ff) << 40)
        | ((u64::from(limit) & 0x000f_0000) << (48 - 16))
        | ((u64::from(base) & 0x00ff_ffff) << 16)
        | (u64::from(limit) & 0x0000_ffff)
}

/// The guest's GDT: null, 64-bit code (present, ring 0, execute/read,
/// accessed; L=1, G=1), data (present, ring 0, read/write, accessed;
/// D/B=1, G=1).
pub fn gdt() -> [u64; 3] {
    [
        0,
        gdt_entry(0xa09b, 0, 0xfffff),
        gdt_entry(0xc093, 0, 0xfffff),
    ]
}

/// Decodes a GDT descriptor into the segment KVM wants in `kvm_sregs`.
pub fn segment_from_gdt(entry: u64, selector: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000);
    let limit_raw = (entry & 0xffff) | ((entry >> 32) & 0xf_0000);
    let g = ((entry >> 55) & 1) as u8;
    let limit = if g == 1 {
        (limit_raw << 12) | 0xfff
    } else {
        limit_raw
    } as u32;
    kvm_segment {
        base,
        limit,
        selector,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

/// Identity map of `[0, mem)` with 2 MiB pages: every 64-bit entry as
/// `(gpa of the entry, value)`, PML4 first, then PDPT, then the PDs.
pub fn page_table_entries(mem: u64) -> Vec<(u64, u64)> {
    let mut v = vec![(PML4_GPA, PDPT_GPA | PTE_P | PTE_RW)];
    let pds = page_directories(mem);
    for i in 0..pds {
        v.push((PDPT_GPA + i * 8, (PD_GPA + i * PAGE_SIZE) | PTE_P | PTE_RW));
    }
    let leaves = mem / HUGE_PAGE_SIZE;
    for j in 0..leaves {
        // Leaf j lives in PD j / 512 at index j % 512; consecutive PD pages
        // make that simply PD_GPA + j * 8.
        v.push((
            PD_GPA + j * 8,
            (j * HUGE_PAGE_SIZE) | PTE_P | PTE_RW | PTE_PS,
        ));
    }
    v
}

/// Encodes a range table: 16-byte entries `{u64 gpa, u32 pages, u32 kind}`
/// (little endian), ended by an entry with `pages == 0`.
pub fn range_table(ranges: &[(Range, Access)]) -> Vec<u8> {
    assert!(ranges.len() <= MAX_RANGES_PER_TABLE);
    let mut out = Vec::with_capacity((ranges.len() + 1) * TABLE_ENTRY_SIZE);
    for (r, a) in ranges {
        let pages = u32::try_from(r.pages()).expect("range too large for a table entry");
        out.extend_from_slice(&r.gpa.to_le_bytes());
        out.extend_from_slice(&pages.to_le_bytes());
        let kind = match a {
            Access::Write => KIND_WRITE,
            Access::Read => KIND_READ,
        };
        out.extend_from_slice(&kind.to_le_bytes());
    }
    out.extend_from_slice(&[0u8; TABLE_ENTRY_SIZE]);
    out
}

/// One of testvm's own guest page ranges, with what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnRange {
    pub gpa: u64,
    pub len: u64,
    /// `gdt`, `pml4`, `pdpt`, `pd`, `range-table`, `code`, `stack`.
    pub what: String,
}

impl OwnRange {
    pub fn range(&self) -> Range {
        Range::new(self.gpa, self.len)
    }
}

/// Every guest page testvm uses for itself, sorted by GPA.
pub fn own_ranges(mem: u64, vcpus: u32, phases: usize, code_len: usize) -> Vec<OwnRange> {
    let o = |gpa: u64, len: u64, what: &str| OwnRange {
        gpa,
        len,
        what: what.to_string(),
    };
    let code_pages = (code_len as u64).div_ceil(PAGE_SIZE).max(1);
    let mut v = vec![
        o(GDT_GPA, PAGE_SIZE, "gdt"),
        o(PML4_GPA, PAGE_SIZE, "pml4"),
        o(PDPT_GPA, PAGE_SIZE, "pdpt"),
        o(TABLE_GPA, phases as u64 * PAGE_SIZE, "range-table"),
        o(CODE_GPA, code_pages * PAGE_SIZE, "code"),
        o(STACK_GPA, u64::from(vcpus) * PAGE_SIZE, "stack"),
        o(PD_GPA, page_directories(mem) * PAGE_SIZE, "pd"),
    ];
    v.sort_by_key(|r| r.gpa);
    v
}

/// Puts `sregs` (as read from a fresh vCPU) into 64-bit long mode with
/// paging on the identity map, flat segments from [`gdt`], no IDT.
pub fn long_mode_sregs(sregs: &mut kvm_sregs) {
    let g = gdt();
    let code = segment_from_gdt(g[1], CODE_SELECTOR);
    let data = segment_from_gdt(g[2], DATA_SELECTOR);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.gdt.base = GDT_GPA;
    sregs.gdt.limit = (std::mem::size_of_val(&g) - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr3 = PML4_GPA;
    sregs.cr4 = CR4_PAE;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.efer = EFER_LME | EFER_LMA;
}
