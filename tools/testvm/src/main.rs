//! `testvm`: guest workload VMM for ept-sampler tests. See the library
//! documentation (`src/lib.rs`) or `testvm --help` for the CLI and the truth
//! file schema.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use kvm_bindings::{
    kvm_regs, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_MEM_LOG_DIRTY_PAGES,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use testvm::cli::Cli;
use testvm::guest;
use testvm::layout::{self, CODE_GPA};
use testvm::passes::PassCounters;
use testvm::range::{fmt_size, Backing, Workload, HUGE_PAGE_SIZE, PAGE_SIZE};
use testvm::truth::{Phase, Truth, SCHEMA};

/// KVM_SET_TSS_ADDR needs three pages outside every memslot; only used when
/// guest memory ends below it (at most ~4 GiB).
const TSS_ADDR: u64 = 0xfffb_d000;

static SIGNALLED: AtomicBool = AtomicBool::new(false);
/// SIGUSR2 arrived (`--switch-on-signal`): passes handed out from now on
/// are phase 1's.
static SWITCH_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

extern "C" fn on_switch(_: libc::c_int) {
    SWITCH_REQUESTED.store(true, Ordering::SeqCst);
}

extern "C" fn on_kick(_: libc::c_int) {}

/// SIGURG arrived (`--dirty-log-on-signal`): log dirty pages from now on.
static DIRTY_LOG_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_dirty_log(_: libc::c_int) {
    DIRTY_LOG_REQUESTED.store(true, Ordering::SeqCst);
}

/// `--dirty-log-on-signal`: dirty logging switched on for slot 0 while the
/// guest runs, and KVM's log checked against the --write ranges.
struct DirtyLogCheck {
    region: kvm_userspace_memory_region,
    /// Every page the guest writes each pass (GFNs, from slot 0 at GPA 0).
    written: Vec<u64>,
    /// Each vCPU's completed passes, read once the ioctl that switched the
    /// log on (or fetched it) had returned. A pass is counted when the next
    /// one begins, so the pass that ends the second count after this one
    /// began after it: a check waits for 2 more passes of every vCPU.
    passes_at: Option<Vec<u64>>,
    checks: u64,
}

impl DirtyLogCheck {
    /// Polled from the main loop: switches the log on once asked, then
    /// checks it whenever every vCPU has done 2 passes since the last look.
    /// Checks of the log, then it stays on unread (every fetch write-
    /// protects the guest's pages again, which slows its passes).
    const CHECKS: u64 = 3;

    fn poll(
        &mut self,
        vm: &kvm_ioctls::VmFd,
        passes: &[std::sync::atomic::AtomicU64],
    ) -> Result<(), String> {
        if self.checks >= Self::CHECKS {
            return Ok(());
        }
        let read = |p: &[std::sync::atomic::AtomicU64]| -> Vec<u64> {
            p.iter().map(|c| c.load(Ordering::SeqCst)).collect()
        };
        let now = read(passes);
        let Some(at) = &self.passes_at else {
            if !DIRTY_LOG_REQUESTED.load(Ordering::SeqCst) {
                return Ok(());
            }
            let region = kvm_userspace_memory_region {
                flags: KVM_MEM_LOG_DIRTY_PAGES,
                ..self.region
            };
            // SAFETY: the same slot over the same mapping as at creation;
            // only its flags change.
            unsafe { vm.set_user_memory_region(region) }
                .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION (log dirty pages on): {e}"))?;
            // Counted after the ioctl returned, not before: a pass that
            // ended while it ran began before the log was on.
            self.passes_at = Some(read(passes));
            println!("testvm: dirty log on");
            let _ = std::io::stdout().flush();
            return Ok(());
        };
        if now.iter().zip(at).any(|(n, a)| *n < a.saturating_add(2)) {
            return Ok(());
        }
        let size = usize::try_from(self.region.memory_size).map_err(|e| e.to_string())?;
        // KVM_GET_DIRTY_LOG returns the bits and clears them (and write-
        // protects or clears D again) for the next look.
        let log = vm
            .get_dirty_log(0, size)
            .map_err(|e| format!("KVM_GET_DIRTY_LOG: {e}"))?;
        self.passes_at = Some(read(passes));
        self.checks += 1;
        let logged = |gfn: u64| {
            let word = usize::try_from(gfn / 64).ok().and_then(|i| log.get(i));
            word.is_some_and(|w| w & (1u64 << (gfn % 64)) != 0)
        };
        let missing = self.written.iter().filter(|g| !logged(**g)).count();
        println!(
            "testvm: dirty log check n={} pages={} missing={missing}",
            self.checks,
            self.written.len()
        );
        let _ = std::io::stdout().flush();
        if missing > 0 {
            return Err(format!(
                "KVM's dirty log lost {missing} of the {} pages the guest wrote",
                self.written.len()
            ));
        }
        Ok(())
    }
}

/// SIGHUP arrived (`--churn-memslot`): stop adding and deleting slot 1.
static CHURN_STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_churn_stop(_: libc::c_int) {
    CHURN_STOP.store(true, Ordering::SeqCst);
}

/// Slot 1 of `--churn-memslot`: 2 MiB of anonymous memory the guest never
/// touches, added and deleted in turn.
struct ChurnSlot {
    hva: *mut libc::c_void,
    gpa: u64,
    present: bool,
    deletes: u64,
}

impl ChurnSlot {
    const SIZE: u64 = 2 << 20;

    /// Maps its memory; its GPA is a whole GiB above guest memory (and so
    /// above or below KVM_SET_TSS_ADDR's pages, never on them).
    fn new(mem: u64) -> Result<ChurnSlot, String> {
        const GIB: u64 = 1 << 30;
        let gpa = mem.div_ceil(GIB).saturating_add(1).saturating_mul(GIB);
        // SAFETY: a fresh private anonymous mapping; the kernel chooses
        // the address.
        let hva = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if hva == libc::MAP_FAILED {
            return Err(format!(
                "churn slot: mmap: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(ChurnSlot {
            hva,
            gpa,
            present: false,
            deletes: 0,
        })
    }

    /// Adds slot 1 if it is absent, deletes it if present.
    fn toggle(&mut self, vm: &kvm_ioctls::VmFd) -> Result<(), String> {
        let region = kvm_userspace_memory_region {
            slot: 1,
            flags: 0,
            guest_phys_addr: self.gpa,
            // Size 0 deletes the slot.
            memory_size: if self.present { 0 } else { Self::SIZE },
            userspace_addr: self.hva as u64,
        };
        // SAFETY: the slot maps our own mapping of SIZE bytes, which is
        // never unmapped while the process lives; the guest never uses it.
        unsafe { vm.set_user_memory_region(region) }.map_err(|e| {
            format!(
                "KVM_SET_USER_MEMORY_REGION slot 1 ({}): {e}",
                if self.present { "delete" } else { "add" }
            )
        })?;
        if self.present {
            self.deletes += 1;
        }
        self.present = !self.present;
        Ok(())
    }
}

fn install_handler(sig: libc::c_int, f: extern "C" fn(libc::c_int)) -> Result<(), String> {
    // SAFETY: a zeroed sigaction with a handler that only touches an atomic
    // (or does nothing) is async-signal-safe; no SA_RESTART so KVM_RUN
    // returns EINTR when a vCPU thread is kicked.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = f as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(format!(
                "sigaction({sig}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn main() {
    let cli = Cli::parse();
    let w = match cli.workload() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("testvm: error: {e}");
            std::process::exit(2);
        }
    };
    match run(&cli, &w) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("testvm: error: {e}");
            std::process::exit(1);
        }
    }
}

fn read_sys_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Checks that enough 2 MiB huge pages are reserved for `mem` bytes.
fn check_hugetlb(mem: u64) -> Result<(), String> {
    let dir = "/sys/kernel/mm/hugepages/hugepages-2048kB";
    let (Some(free), Some(resv)) = (
        read_sys_u64(&format!("{dir}/free_hugepages")),
        read_sys_u64(&format!("{dir}/resv_hugepages")),
    ) else {
        return Err(format!(
            "--backing hugetlb: this kernel has no 2 MiB hugetlb pages ({dir} missing; CONFIG_HUGETLBFS?)"
        ));
    };
    let need = mem / HUGE_PAGE_SIZE;
    let avail = free.saturating_sub(resv);
    if avail < need {
        let total = read_sys_u64(&format!("{dir}/nr_hugepages")).unwrap_or(0);
        return Err(format!(
            "--backing hugetlb: need {need} free 2 MiB huge pages for --mem {}, only {avail} available \
             ({total} reserved in total); reserve more, e.g. echo {} > /proc/sys/vm/nr_hugepages",
            fmt_size(mem),
            total + (need - avail)
        ));
    }
    Ok(())
}

/// Maps guest memory with the requested backing; returns (address, mmap flags).
fn map_guest_memory(mem: u64, backing: Backing, prefault: bool) -> Result<(*mut u8, i32), String> {
    let size = usize::try_from(mem).map_err(|_| "--mem too large".to_string())?;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let huge = HUGE_PAGE_SIZE as usize;
    // SAFETY: fresh anonymous mappings at kernel-chosen addresses; every
    // pointer below stays within what mmap returned.
    unsafe {
        let addr = match backing {
            Backing::Hugetlb => {
                flags = libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_HUGETLB
                    | libc::MAP_HUGE_2MB;
                let p = libc::mmap(std::ptr::null_mut(), size, prot, flags, -1, 0);
                if p == libc::MAP_FAILED {
                    return Err(format!(
                        "--backing hugetlb: mmap of {} with MAP_HUGETLB failed: {} (are enough 2 MiB pages reserved in /proc/sys/vm/nr_hugepages?)",
                        fmt_size(mem),
                        std::io::Error::last_os_error()
                    ));
                }
                p as *mut u8
            }
            Backing::Anon | Backing::Thp => {
                // Over-allocate by 2 MiB and trim, so the mapping is 2 MiB
                // aligned (THP needs it; harmless for anon).
                let p = libc::mmap(std::ptr::null_mut(), size + huge, prot, flags, -1, 0);
                if p == libc::MAP_FAILED {
                    return Err(format!(
                        "mmap of {}: {}",
                        fmt_size(mem),
                        std::io::Error::last_os_error()
                    ));
                }
                let base = p as usize;
                let aligned = (base + huge - 1) & !(huge - 1);
                if aligned > base {
                    libc::munmap(p, aligned - base);
                }
                let tail = base + size + huge - (aligned + size);
                if tail > 0 {
                    libc::munmap((aligned + size) as *mut libc::c_void, tail);
                }
                let advice = if backing == Backing::Thp {
                    libc::MADV_HUGEPAGE
                } else {
                    libc::MADV_NOHUGEPAGE
                };
                if libc::madvise(aligned as *mut libc::c_void, size, advice) != 0 {
                    let e = std::io::Error::last_os_error();
                    if backing == Backing::Thp {
                        return Err(format!("--backing thp: madvise(MADV_HUGEPAGE): {e} (CONFIG_TRANSPARENT_HUGEPAGE?)"));
                    }
                    // No THP in this kernel: 4 KiB pages anyway.
                }
                if backing == Backing::Thp {
                    if let Ok(s) =
                        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
                    {
                        if s.contains("[never]") {
                            eprintln!("testvm: warning: transparent_hugepage/enabled is 'never': --backing thp gets 4 KiB pages");
                        }
                    }
                }
                aligned as *mut u8
            }
        };
        if prefault {
            // MADV_POPULATE_WRITE (Linux 5.14); fall back to touching each page.
            const MADV_POPULATE_WRITE: libc::c_int = 23;
            if libc::madvise(addr as *mut libc::c_void, size, MADV_POPULATE_WRITE) != 0 {
                for off in (0..size).step_by(PAGE_SIZE as usize) {
                    std::ptr::write_volatile(addr.add(off), 0);
                }
            }
        }
        Ok((addr, flags))
    }
}

struct Shared {
    start: Instant,
    stop: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Completed passes per vCPU, live in the truth's `passes_file`.
    iterations: PassCounters,
    /// vCPUs that completed at least one pass.
    first_done: AtomicU32,
    max_iterations: Option<u64>,
    deadline: Option<Duration>,
    switch_after: Option<Duration>,
    switch_on_signal: bool,
    /// (seconds after start, unix ns) of the first pass handed phase 1.
    phase1_start: OnceLock<(f64, u64)>,
    /// vCPUs that completed a whole pass of phase 1.
    phase1_done: AtomicU32,
}

impl Shared {
    fn fail(&self, msg: String) {
        let mut f = self.failure.lock().unwrap();
        if f.is_none() {
            *f = Some(msg);
        }
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn vcpu_loop(idx: usize, mut vcpu: VcpuFd, sh: Arc<Shared>) {
    let mut passes_started = 0u64;
    // The phase of the pass this vCPU was last handed, and whether a whole
    // pass of phase 1 has come back from it yet.
    let mut handed = 0;
    let mut phase1_counted = false;
    loop {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        let what = match vcpu.run() {
            Ok(VcpuExit::IoIn(guest::PORT, data)) => {
                if passes_started > 0 {
                    let n = sh.iterations.counters()[idx].fetch_add(1, Ordering::SeqCst) + 1;
                    if n == 1 {
                        sh.first_done.fetch_add(1, Ordering::SeqCst);
                    }
                    if handed == 1 && !phase1_counted {
                        phase1_counted = true;
                        sh.phase1_done.fetch_add(1, Ordering::SeqCst);
                    }
                    if sh.max_iterations.is_some_and(|m| n >= m) {
                        return;
                    }
                }
                let elapsed = sh.start.elapsed();
                if sh.deadline.is_some_and(|d| elapsed >= d) {
                    sh.stop.store(true, Ordering::SeqCst);
                    return;
                }
                // Once switched, every later pass is phase 1's.
                let switch = sh.phase1_start.get().is_some()
                    || sh.switch_after.is_some_and(|s| elapsed >= s)
                    || (sh.switch_on_signal && SWITCH_REQUESTED.load(Ordering::SeqCst));
                let phase = if switch {
                    sh.phase1_start
                        .get_or_init(|| (elapsed.as_secs_f64(), unix_ns(SystemTime::now())));
                    1
                } else {
                    0
                };
                handed = phase;
                let table = (layout::table_gpa(phase) as u32).to_le_bytes();
                let n = data.len().min(table.len());
                data[..n].copy_from_slice(&table[..n]);
                passes_started += 1;
                continue;
            }
            Ok(other) => format!("unexpected exit {other:?}"),
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) => format!("KVM_RUN failed: {e}"),
        };
        let regs = match vcpu.get_regs() {
            Ok(r) => format!(
                "rip={:#x} rsp={:#x} rsi={:#x} rdi={:#x} rcx={:#x} rax={:#x}",
                r.rip, r.rsp, r.rsi, r.rdi, r.rcx, r.rax
            ),
            Err(e) => format!("registers unavailable: {e}"),
        };
        sh.fail(format!("vCPU {idx}: {what} ({regs})"));
        return;
    }
}

fn run(cli: &Cli, w: &Workload) -> Result<i32, String> {
    // Everything that can be refused without KVM is checked first.
    if cli.backing == Backing::Hugetlb {
        check_hugetlb(w.mem)?;
    }
    let code = guest::code();
    assert!(
        code.len() as u64 <= PAGE_SIZE,
        "guest code larger than its page"
    );

    let (hva, flags) = map_guest_memory(w.mem, cli.backing, cli.prefault)?;
    let size = w.mem as usize;
    // SAFETY: [hva, hva + size) is the mapping created just above with these
    // prot and flags; it lives until the process exits.
    let region = unsafe {
        MmapRegion::<()>::build_raw(hva, size, libc::PROT_READ | libc::PROT_WRITE, flags)
    }
    .map_err(|e| format!("vm-memory region: {e}"))?;
    let region =
        GuestRegionMmap::new(region, GuestAddress(0)).ok_or("vm-memory: bad guest region")?;
    let mem = GuestMemoryMmap::from_regions(vec![region]).map_err(|e| format!("vm-memory: {e}"))?;

    // Guest structures, all in the reserved low region.
    let put = |gpa: u64, bytes: &[u8]| {
        mem.write_slice(bytes, GuestAddress(gpa))
            .map_err(|e| format!("writing guest memory at {gpa:#x}: {e}"))
    };
    for (i, e) in layout::gdt().iter().enumerate() {
        put(layout::GDT_GPA + 8 * i as u64, &e.to_le_bytes())?;
    }
    for (gpa, v) in layout::page_table_entries(w.mem) {
        put(gpa, &v.to_le_bytes())?;
    }
    for p in 0..w.phases() {
        put(
            layout::table_gpa(p),
            &layout::range_table(&w.phase_ranges(p)),
        )?;
    }
    put(CODE_GPA, code)?;
    // Give the read ranges real pages: a guest read of never-written
    // anonymous memory would map the shared zero page, which is not on the
    // LRU, so idle page tracking could not see the reads. The host writes one
    // qword (the GPA) per page; the guest itself never writes them.
    for r in &w.read {
        for gpa in (r.gpa..r.end()).step_by(PAGE_SIZE as usize) {
            mem.write_obj(gpa, GuestAddress(gpa))
                .map_err(|e| format!("filling read range at {gpa:#x}: {e}"))?;
        }
    }

    // KVM.
    let kvm = Kvm::new().map_err(|e| {
        format!("cannot open /dev/kvm: {e} (is KVM available: kvm + kvm_intel/kvm_amd loaded?)")
    })?;
    let vm = kvm
        .create_vm_with_type(cli.vm_type.kvm_type())
        .map_err(|e| format!("KVM_CREATE_VM ({:?}): {e}", cli.vm_type))?;
    let vm_fd = vm.as_raw_fd();
    if w.mem <= TSS_ADDR {
        vm.set_tss_address(TSS_ADDR as usize)
            .map_err(|e| format!("KVM_SET_TSS_ADDR: {e}"))?;
    }
    let slot = kvm_userspace_memory_region {
        slot: 0,
        flags: if cli.dirty_log {
            KVM_MEM_LOG_DIRTY_PAGES
        } else {
            0
        },
        guest_phys_addr: 0,
        memory_size: w.mem,
        userspace_addr: hva as u64,
    };
    // SAFETY: the memslot points at our own mapping of exactly memory_size
    // bytes, which is never unmapped while the VM exists.
    unsafe { vm.set_user_memory_region(slot) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    let mut vcpus = Vec::new();
    for i in 0..w.vcpus {
        let vcpu = vm
            .create_vcpu(u64::from(i))
            .map_err(|e| format!("KVM_CREATE_VCPU {i}: {e}"))?;
        vcpu.set_cpuid2(&cpuid)
            .map_err(|e| format!("KVM_SET_CPUID2: {e}"))?;
        let mut sregs = vcpu
            .get_sregs()
            .map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
        layout::long_mode_sregs(&mut sregs);
        vcpu.set_sregs(&sregs)
            .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
        let regs = kvm_regs {
            rip: CODE_GPA,
            rsp: layout::stack_gpa(i) + PAGE_SIZE,
            rflags: 0x2,
            ..Default::default()
        };
        vcpu.set_regs(&regs)
            .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
        vcpus.push(vcpu);
    }

    install_handler(libc::SIGINT, on_term)?;
    install_handler(libc::SIGTERM, on_term)?;
    install_handler(libc::SIGUSR1, on_kick)?;
    install_handler(libc::SIGUSR2, on_switch)?;
    install_handler(libc::SIGHUP, on_churn_stop)?;
    install_handler(libc::SIGURG, on_dirty_log)?;
    let mut dirty_check = cli.dirty_log_on_signal.then(|| DirtyLogCheck {
        region: slot,
        written: w
            .write
            .iter()
            .flat_map(|r| (r.gpa / PAGE_SIZE)..(r.end() / PAGE_SIZE))
            .collect(),
        passes_at: None,
        checks: 0,
    });
    let mut churn = if cli.churn_memslot {
        Some(ChurnSlot::new(w.mem)?)
    } else {
        None
    };

    // The live pass counters sit beside the truth file, for page-idle.
    // Absolute: a reader may run in another directory.
    let passes_file = match &cli.truth {
        Some(t) => {
            let mut p = std::path::absolute(t)
                .map_err(|e| format!("truth path {}: {e}", t.display()))?
                .into_os_string();
            p.push(".passes");
            Some(std::path::PathBuf::from(p))
        }
        None => None,
    };
    let iterations = match &passes_file {
        Some(p) => PassCounters::create(p, w.vcpus as usize)?,
        None => PassCounters::anonymous(w.vcpus as usize)?,
    };

    let pid = std::process::id();
    let start_wall = SystemTime::now();
    let sh = Arc::new(Shared {
        start: Instant::now(),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        iterations,
        first_done: AtomicU32::new(0),
        max_iterations: cli.iterations,
        deadline: cli.seconds.map(Duration::from_secs_f64),
        switch_after: cli.switch_after.map(Duration::from_secs_f64),
        switch_on_signal: cli.switch_on_signal,
        phase1_start: OnceLock::new(),
        phase1_done: AtomicU32::new(0),
    });
    let mut handles = Vec::new();
    for (i, vcpu) in vcpus.into_iter().enumerate() {
        let s = Arc::clone(&sh);
        let h = thread::Builder::new()
            .name(format!("vcpu{i}"))
            .spawn(move || vcpu_loop(i, vcpu, s))
            .map_err(|e| format!("spawning vCPU thread: {e}"))?;
        handles.push(h);
    }

    let mut phases = vec![Phase {
        written: w.write.clone(),
        after_s: Some(0.0),
        started: true,
        start_s: Some(0.0),
        start_unix_ns: Some(unix_ns(start_wall)),
    }];
    if let Some(t) = &w.then_write {
        phases.push(Phase {
            written: t.clone(),
            after_s: cli.switch_after,
            started: false,
            start_s: None,
            start_unix_ns: None,
        });
    }
    let mut truth = Truth {
        schema: SCHEMA,
        state: "running".into(),
        pid,
        vm_fd,
        vm: format!("{pid}-{vm_fd}"),
        mem_bytes: w.mem,
        backing: cli.backing,
        hva: hva as u64,
        vcpus: w.vcpus,
        dirty_log: cli.dirty_log,
        prefault: cli.prefault,
        page_size: PAGE_SIZE,
        written: Vec::new(),
        read: testvm::range::merge(&w.read),
        own: layout::own_ranges(w.mem, w.vcpus, w.phases(), code.len()),
        phases,
        iterations: 0,
        vcpu_iterations: Vec::new(),
        passes_file,
        start_unix_ns: unix_ns(start_wall),
        elapsed_s: 0.0,
    };
    let refresh = |t: &mut Truth| {
        t.vcpu_iterations = sh
            .iterations
            .counters()
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect();
        t.iterations = t.vcpu_iterations.iter().sum();
        t.elapsed_s = sh.start.elapsed().as_secs_f64();
        if let (Some((s, ns)), Some(p)) = (sh.phase1_start.get(), t.phases.get_mut(1)) {
            p.started = true;
            p.start_s = Some(*s);
            p.start_unix_ns = Some(*ns);
        }
        t.update_written();
    };
    let write_truth = |t: &Truth| {
        if let Some(path) = &cli.truth {
            if let Err(e) = t.write_atomic(path) {
                eprintln!("testvm: error: writing truth file {}: {e}", path.display());
                sh.fail(format!("cannot write truth file {}", path.display()));
            }
        }
    };

    // "phase 1 running": once every vCPU completed a whole pass of phase 1
    // (after the truth file says phase 1 started).
    let mut phase1_announced = false;
    let announce_phase1 = |done: &mut bool, truth_written: bool| {
        if truth_written
            && !*done
            && sh.phase1_done.load(Ordering::SeqCst) == w.vcpus
            && sh.failure.lock().unwrap().is_none()
        {
            let start_s = sh.phase1_start.get().map_or(0.0, |p| p.0);
            println!("testvm: phase 1 running start_s={start_s:.3}");
            let _ = std::io::stdout().flush();
            *done = true;
        }
    };
    let mut announced = false;
    let mut phase1_written = false;
    loop {
        thread::sleep(Duration::from_millis(5));
        if SIGNALLED.load(Ordering::SeqCst) {
            sh.stop.store(true, Ordering::SeqCst);
        }
        if sh.deadline.is_some_and(|d| sh.start.elapsed() >= d) {
            sh.stop.store(true, Ordering::SeqCst);
        }
        if !announced
            && sh.first_done.load(Ordering::SeqCst) == w.vcpus
            && sh.failure.lock().unwrap().is_none()
        {
            refresh(&mut truth);
            write_truth(&truth);
            println!(
                "testvm: running pid={pid} vm_fd={vm_fd} vm={pid}-{vm_fd} hva={:#x} mem={} backing={} vcpus={}",
                hva as u64, w.mem, cli.backing, w.vcpus
            );
            let _ = std::io::stdout().flush();
            announced = true;
        }
        if announced && !phase1_written && sh.phase1_start.get().is_some() {
            refresh(&mut truth);
            write_truth(&truth);
            phase1_written = true;
        }
        announce_phase1(&mut phase1_announced, phase1_written);
        // Churn once the guest runs (every 5 ms: this loop's pace).
        if let Some(c) = churn.as_mut().filter(|_| announced) {
            if CHURN_STOP.load(Ordering::SeqCst) {
                println!("testvm: memslot churn stopped deletes={}", c.deletes);
                let _ = std::io::stdout().flush();
                churn = None;
            } else if let Err(e) = c.toggle(&vm) {
                sh.fail(e);
            }
        }
        if let Some(d) = dirty_check.as_mut().filter(|_| announced) {
            if let Err(e) = d.poll(&vm, sh.iterations.counters()) {
                sh.fail(e);
                dirty_check = None;
            }
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        if sh.stop.load(Ordering::SeqCst) {
            for h in handles.iter().filter(|h| !h.is_finished()) {
                // SAFETY: the thread is joinable (not yet joined), so its
                // pthread_t is valid; SIGUSR1 has a no-op handler.
                unsafe {
                    libc::pthread_kill(h.as_pthread_t(), libc::SIGUSR1);
                }
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    // A vCPU may complete its phase-1 pass and end (--iterations) between
    // the loop's last look and its exit.
    announce_phase1(&mut phase1_announced, phase1_written);
    refresh(&mut truth);
    let failure = sh.failure.lock().unwrap().clone();
    truth.state = if failure.is_some() { "failed" } else { "done" }.into();
    write_truth(&truth);
    println!(
        "testvm: {} iterations={} elapsed_s={:.3}",
        truth.state, truth.iterations, truth.elapsed_s
    );
    let _ = std::io::stdout().flush();
    // Keep the VM (and its memory) alive until here.
    drop(vm);
    match failure {
        Some(f) => {
            eprintln!("testvm: error: {f}");
            Ok(1)
        }
        None => Ok(0),
    }
}
