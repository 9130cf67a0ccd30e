// SPDX-License-Identifier: GPL-2.0

//! The formats of `/proc/ept_sampler/`: exact renderings of hand-built
//! inputs (expected text written out), render -> parse round trips with
//! random contents, the binary heat map at random offsets against the
//! slice of the whole file, and the seq_file-style item renderers against
//! the whole-file ones.

use proptest::collection::vec;
use proptest::prelude::*;

use ept_core::ept_walk::{Gfn, GfnRange, Leaf, PageSize, Spte, Stats, Visitor};
use ept_core::heat::{
    Geometry, Granule, HeatMap, IdleBins, IdleBytes, IdleCounts, RootCounts, RoundEnd, RoundRecord,
    Sizes, State, StoreLayout, Totals, Track, DEFAULT_REGION,
};
use ept_core::procfs::config::Config;
use ept_core::procfs::control::{Flush, Settings, VmId, Walk};
use ept_core::procfs::fields::{Centi, FormatError};
use ept_core::procfs::heatmap::{self, Run};
use ept_core::procfs::heatmap_bin::{self, BinHeader, BinRecord};
use ept_core::procfs::history;
use ept_core::procfs::idle::IdleFile;
use ept_core::procfs::last_error::{self, Errno, LastError, MessageBuf};
use ept_core::procfs::memslots::{self, Memslot, MemslotFlags, SlotFinder};
use ept_core::procfs::stats::{DirtyStatus, StatsFile};
use ept_core::procfs::vms::{self, Refusal, TdpKind, VmRow, VmState};

type Map = HeatMap<Vec<u16>, Vec<u64>>;

const VM: VmId = VmId { pid: 1234, fd: 12 };

fn r(start: u64, end: u64) -> GfnRange {
    GfnRange::new(Gfn(start), Gfn(end))
}

fn new_map(span_pages: u64, granule: Granule, window: u8, rounds: u16) -> Map {
    let layout = Geometry {
        span: r(0, span_pages),
        granule,
        window,
        region: DEFAULT_REGION,
        rounds,
    }
    .layout()
    .unwrap();
    HeatMap::new(
        &layout,
        vec![0; layout.store.words()],
        vec![0; layout.history.words()],
    )
    .unwrap()
}

fn wleaf(gfn: u64, size: PageSize, a: bool, d: bool) -> Leaf {
    Leaf {
        gfn: Gfn(gfn),
        size,
        spte: Spte(0),
        pfn: 0xdead_b000,
        accessed: a,
        dirty: d,
        cleared_accessed: a,
        cleared_dirty: d,
    }
}

fn end(walk_ns: u64) -> RoundEnd {
    RoundEnd {
        walk_ns,
        flush_ns: 90 + walk_ns % 2,
        walk: Stats {
            leaves: 10,
            cleared_accessed: 3,
            cleared_dirty: 1,
            ..Stats::default()
        },
        yields: 2,
        longest_hold: 70,
        flushed: true,
        passed_accessed: 3,
        roots: RootCounts {
            walked: 2,
            lost: 1,
            over_limit: 0,
            invalid: 3,
            mirror: 0,
            guest_mode: 1,
        },
    }
}

fn slot(as_id: u16, id: u16, base_gfn: u64, npages: u64, dirty_log: bool) -> Memslot {
    Memslot {
        as_id,
        id,
        base_gfn,
        npages,
        flags: MemslotFlags {
            dirty_log,
            readonly: false,
        },
    }
}

/// A small VM: 4 MiB, with a hole between two slots.
fn small_vm() -> (Map, Vec<Memslot>) {
    let mut m = new_map(1024, Granule::SIZE_4K, 5, 4);
    for round in 0..2u64 {
        m.set_period(100);
        m.begin_round(1_000_000 + round * 100_000_000, Track::Both);
        m.begin_root();
        let mut v = m.visitor();
        v.leaf(wleaf(0, PageSize::Size4K, true, round == 0));
        v.leaf(wleaf(1, PageSize::Size4K, true, false));
        v.idle(r(2, 160));
        v.hole(r(160, 192));
        v.idle(r(192, 512));
        v.leaf(wleaf(512, PageSize::Size2M, round == 1, false));
        m.end_round(&end(5000 + round));
    }
    let slots = vec![slot(0, 0, 0, 160, false), slot(0, 1, 192, 832, true)];
    (m, slots)
}

// ---------------------------------------------------------------------------
// Exact renderings.

#[test]
fn heatmap_text_exactly() {
    let (m, slots) = small_vm();
    let mut out = String::new();
    heatmap::render(&mut out, &m.view(), VM, &slots).unwrap();
    let want = "\
# ept_sampler heatmap 1
# vm 1234-12
# granule 4K
# window 5
# rounds 2
# mode both
# dirty_partial 0
# columns start end granule leaf accessed dirty window slot idle_ms unwritten_ms
0x000000000000 0x000000001000 4K 4K 2 1 5 0 0 0
0x000000001000 0x000000002000 4K 4K 2 0 5 0 0 never
0x000000002000 0x0000000a0000 4K ? 0 0 5 0 never never
0x0000000a0000 0x0000000c0000 4K hole 0 0 5 - - -
0x0000000c0000 0x000000200000 4K ? 0 0 5 1 never never
0x000000200000 0x000000400000 4K 2M 1 0 5 1 0 never
";
    assert_eq!(out, want);
    // The item renderer writes the same thing.
    let mut items = String::new();
    let mut pos = Some(0);
    while let Some(p) = pos {
        pos = heatmap::render_item(&mut items, &m.view(), VM, &slots, p).unwrap();
    }
    assert_eq!(items, want);
    // And it parses back.
    let (header, runs) = heatmap::parse(&out).unwrap();
    assert_eq!(header.granule, Granule::SIZE_4K);
    assert_eq!(header.rounds, 2);
    let runs: Vec<Run> = runs.map(Result::unwrap).collect();
    assert_eq!(runs.len(), 6);
    assert_eq!(runs[5].start, 0x200000);
    assert_eq!(runs[5].state, State::Present(Sizes::One(PageSize::Size2M)));
    assert_eq!(runs[3].slot, None);
    assert_eq!(runs[3].state, State::Hole);
}

/// A round whose dirty bits were cut short (dirty logging began) is named
/// in both headers, and said to be in the window exactly while it is one of
/// the window's rounds.
#[test]
fn heatmap_headers_name_the_partial_round() {
    let mut m = new_map(8, Granule::SIZE_4K, 3, 4);
    let header = |m: &Map| {
        let mut out = String::new();
        heatmap::render(&mut out, &m.view(), VM, &[]).unwrap();
        let (text, _) = heatmap::parse(&out).unwrap();
        let bin = BinHeader::parse(&render_bin_all(m)).unwrap();
        assert_eq!(text.dirty_partial, bin.dirty_partial, "{out}");
        (out, text)
    };
    let round = |m: &mut Map, t: u64, partial: bool| {
        m.begin_round(t, Track::Both);
        m.begin_root();
        m.visitor().leaf(wleaf(0, PageSize::Size4K, true, true));
        if partial {
            m.stop_dirty();
        }
        m.visitor().leaf(wleaf(1, PageSize::Size4K, true, true));
        m.end_round(&end(t));
    };
    round(&mut m, 1, false);
    let (_, h) = header(&m);
    assert_eq!((h.rounds, h.dirty_partial), (1, 0));
    assert!(!h.dirty_partial_in_window());
    round(&mut m, 2, true);
    let (out, h) = header(&m);
    assert!(out.contains("\n# dirty_partial 2\n"), "{out}");
    assert_eq!(&render_bin_all(&m)[56..64], &2u64.to_le_bytes());
    assert!(h.dirty_partial_in_window());
    // Window 3: round 2 is in it through round 4, out of it from round 5.
    round(&mut m, 3, false);
    round(&mut m, 4, false);
    let (_, h) = header(&m);
    assert_eq!((h.rounds, h.dirty_partial), (4, 2));
    assert!(h.dirty_partial_in_window());
    round(&mut m, 5, false);
    let (_, h) = header(&m);
    assert_eq!((h.rounds, h.dirty_partial), (5, 2));
    assert!(!h.dirty_partial_in_window());
    // The latest partial round is the one named.
    round(&mut m, 6, true);
    assert_eq!(header(&m).1.dirty_partial, 6);
    assert_eq!(m.totals().dirty_partial_rounds, 2);
}

/// A heat map from a module older than the `dirty_partial` line parses,
/// as naming no partial round; a malformed value is an error.
#[test]
fn heatmap_header_without_dirty_partial() {
    let old = "\
# ept_sampler heatmap 1
# vm 1234-12
# granule 4K
# window 5
# rounds 9
# mode both
# columns start end granule leaf accessed dirty window slot
";
    let (h, _) = heatmap::parse(old).unwrap();
    assert_eq!((h.rounds, h.dirty_partial), (9, 0));
    assert!(!h.dirty_partial_in_window());
    let bad = old.replace("# mode both\n", "# mode both\n# dirty_partial x\n");
    assert!(heatmap::parse(&bad).is_err());
}

#[test]
fn accessed_mode_shows_dashes() {
    let mut m = new_map(8, Granule::SIZE_4K, 3, 1);
    m.begin_round(0, Track::Accessed);
    m.begin_root();
    m.visitor().leaf(wleaf(0, PageSize::Size4K, true, true));
    m.end_round(&end(1));
    let mut out = String::new();
    heatmap::render(&mut out, &m.view(), VM, &[]).unwrap();
    assert!(out.ends_with(
        "0x000000000000 0x000000001000 4K 4K 1 - 3 - 0 -\n\
         0x000000001000 0x000000008000 4K unknown 0 - 3 - - -\n"
    ));
    let bin = render_bin_all(&m);
    assert_eq!(&bin[64..72], &[3, 1, 0xff, 0, 0, 0, 0xff, 0]);
}

#[test]
fn history_text_exactly() {
    let (m, _) = small_vm();
    let mut out = String::new();
    history::render(&mut out, &m.view(), VM).unwrap();
    // Two regions of 2M. Round 1: pages 0, 1 accessed, 0 dirtied: 2/512
    // -> ceil(508/512) = 1; 1/512 -> 1. Round 2: 0, 1 and the 2M leaf.
    let want = "\
# ept_sampler history 1
# vm 1234-12
# region 2M
# base 0x0
# regions 2
# capacity 4
# kept 2
# share 00: no page, ff: every page, 01-fe: ceil(254 * pages / region pages)
round 1 start_ns 1000000 walk_ns 5000 leaves 10 accessed_pages 2 dirty_pages 1 cleared 4 yields 2 flush yes mode both
accessed 1 0x0 0100
dirty 1 0x0 0100
round 2 start_ns 101000000 walk_ns 5001 leaves 10 accessed_pages 514 dirty_pages 0 cleared 4 yields 2 flush yes mode both
accessed 2 0x0 01ff
dirty 2 0x0 0000
";
    assert_eq!(out, want);
    let (header, lines) = history::parse(&out).unwrap();
    assert_eq!(header.kept, 2);
    assert_eq!(header.region, DEFAULT_REGION);
    let lines: Vec<_> = lines.map(Result::unwrap).collect();
    assert_eq!(lines.len(), 6);
    match lines[3] {
        history::Line::Round(rec) => {
            assert_eq!(rec, m.view().history.record(1).unwrap());
        }
        other => panic!("{other:?}"),
    }
    match lines[4] {
        history::Line::Shares {
            dirty,
            round,
            gpa,
            hex,
        } => {
            assert!(!dirty);
            assert_eq!((round, gpa), (2, 0));
            let s: Vec<_> = history::shares(hex).collect();
            assert_eq!(s, [Some(1), Some(255)]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stats_text_exactly() {
    let (m, _) = small_vm();
    let s = StatsFile::new(m.totals(), 2048, 4096, DirtyStatus::Tracked);
    let want = "\
rounds 2
leaves 20
leaves_last 10
bits_cleared 8
accessed_passed 6
walk_ns_last 5001
walk_ns_avg 5000
walk_ns_max 5001
walk_ns_total 10001
flushes 2
unflushed_rounds 0
flush_last yes
flush_ns_last 91
flush_ns_avg 90
flush_ns_total 181
yields 4
hold_entries_max 70
cas_retries 0
frozen 0
untracked 0
unreachable 0
malformed 0
cold_tables 0
roots_last 2
roots_walked 4
roots_lost 2
roots_over_limit 0
roots_invalid 6
roots_mirror 0
roots_guest_mode 2
store_bytes 2048
history_bytes 4096
accessed_pages_last 514
dirty_pages_last 0
interval_ns_last 100000000
dirty_partial_rounds 0
dirty tracked
accessed_mib_last 2.00
dirty_mib_last 0.00
dirty_mb_s 0.00
";
    assert_eq!(s.to_string(), want);
    assert_eq!(StatsFile::parse(want), Ok(s));
    // Derived values, computed by hand: 256 dirty pages = 1 MiB
    // = 1.048576 MB in 0.1 s = 10.48 MB/s.
    let busy = StatsFile {
        dirty_pages_last: 256,
        ..s
    };
    assert_eq!(busy.dirty_mib_last(), Some(Centi(100)));
    assert_eq!(busy.dirty_mb_s(), Some(Centi(1048)));
    // Before any round: dashes.
    let fresh = StatsFile::new(&Totals::default(), 0, 0, DirtyStatus::DirtyLogging);
    let text = fresh.to_string();
    assert!(text.contains("\nflush_last -\n"));
    assert!(text.contains("\ninterval_ns_last -\n"));
    assert!(text.contains("\ndirty refused:dirty-logging\n"));
    assert!(text.ends_with("accessed_mib_last -\ndirty_mib_last -\ndirty_mb_s -\n"));
    assert_eq!(StatsFile::parse(&text), Ok(fresh));
    // Readers ignore keys they do not know.
    let more = format!("future_key 7\n{want}another 1\n");
    assert_eq!(StatsFile::parse(&more), Ok(s));
    assert_eq!(
        StatsFile::parse("rounds 1\n"),
        Err(FormatError::Missing("leaves"))
    );
    // An older module's file, without the roots_ keys, hold_entries_max,
    // accessed_passed and the flush_ns_ keys: 0 for each, and None for the
    // totals; a bad value is still an error.
    let old: String = want
        .lines()
        .filter(|l| {
            !l.starts_with("roots_")
                && !l.starts_with("hold_entries_max ")
                && !l.starts_with("accessed_passed ")
                && !l.starts_with("flush_ns_")
                && !l.starts_with("walk_ns_total ")
                && !l.starts_with("dirty_partial_rounds ")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let zeroed = StatsFile {
        roots_last: 0,
        roots_walked: 0,
        roots_lost: 0,
        roots_invalid: 0,
        roots_guest_mode: 0,
        hold_entries_max: 0,
        accessed_passed: 0,
        flush_ns_last: 0,
        flush_ns_avg: 0,
        // Not 0: a reader must tell an older module's file from no time.
        walk_ns_total: None,
        flush_ns_total: None,
        ..s
    };
    assert_eq!(StatsFile::parse(&old), Ok(zeroed));
    assert_eq!(
        StatsFile::parse(&want.replace("roots_lost 2", "roots_lost x")),
        Err(FormatError::Bad("roots_lost"))
    );
}

#[test]
fn vms_memslots_config_last_error_exactly() {
    let rows = [
        VmRow {
            vm: VM,
            vcpus: 2,
            memslots: 3,
            memory_bytes: 1 << 30,
            tdp: TdpKind::EptAd,
            dirty_logging: false,
            state: VmState::Sampling,
        },
        VmRow {
            vm: VmId { pid: 77, fd: 5 },
            vcpus: 1,
            memslots: 1,
            memory_bytes: 4096,
            tdp: TdpKind::Shadow,
            dirty_logging: true,
            state: VmState::Refused(Refusal::ShadowPaging),
        },
    ];
    let mut out = String::new();
    vms::render(&mut out, &rows).unwrap();
    assert_eq!(
        out,
        "# vm vcpus memslots memory tdp dirty_logging state\n\
         1234-12 2 3 1073741824 ept+ad no sampling\n\
         77-5 1 1 4096 shadow yes refused:shadow-paging\n"
    );
    let back: Vec<VmRow> = vms::parse(&out).map(Result::unwrap).collect();
    assert_eq!(back, rows);
    // Extra columns and unknown reasons from a newer module.
    let newer = vms::parse_line("1-2 1 1 4096 npt no refused:nested-only extra col").unwrap();
    assert_eq!(newer.state, VmState::Refused(Refusal::Other));

    let slots = [
        slot(0, 0, 0, 160, false),
        slot(0, 1, 0x100, 0x3ff00, true),
        Memslot {
            flags: MemslotFlags {
                dirty_log: false,
                readonly: true,
            },
            ..slot(1, 0, 0, 160, false)
        },
    ];
    let mut out = String::new();
    memslots::render(&mut out, &slots).unwrap();
    assert_eq!(
        out,
        "# slot as_id id base size flags\n\
         0 0 0 0x0 0xa0000 -\n\
         1 0 1 0x100000 0x3ff00000 dirty_log\n\
         65536 1 0 0x0 0xa0000 readonly\n"
    );
    let back: Vec<Memslot> = memslots::parse(&out).map(Result::unwrap).collect();
    assert_eq!(back, slots);
    assert_eq!(
        memslots::parse_line("1 0 1 0x100001 0x1000 -"),
        Err(FormatError::Bad("base"))
    );
    assert_eq!(
        memslots::parse_line("2 0 1 0x0 0x1000 -"),
        Err(FormatError::Bad("slot"))
    );

    let config = Config {
        vm: VM,
        state: VmState::Sampling,
        settings: Some(Settings {
            period_ms: 250,
            track: Track::Both,
            granule: Granule::SIZE_2M,
            window: 20,
            flush: Flush::None,
            walk: Walk::Upper,
            history: 16,
            idle: IdleBins::parse("500ms,1m").unwrap(),
        }),
    };
    let text = config.to_string();
    assert_eq!(
        text,
        "vm 1234-12\nstate sampling\nperiod_ms 250\nmode both\ngranule 2M\nwindow 20\n\
         flush none\nwalk upper\nhistory 16\nidle 500ms,1m\n"
    );
    assert_eq!(Config::parse(&text), Ok(config));
    // An older module's config, without idle bins: the default ones.
    let old = Config::parse(text.strip_suffix("idle 500ms,1m\n").unwrap()).unwrap();
    assert_eq!(old.settings.unwrap().idle, IdleBins::DEFAULT);
    assert_eq!(
        Config::parse(&text.replace("500ms,1m", "1m,500ms")),
        Err(FormatError::Bad("idle"))
    );

    // idle.
    let mut accessed = IdleBytes {
        never: 4096,
        ..IdleBytes::default()
    };
    accessed.bins[..3].copy_from_slice(&[3 << 20, 2 << 20, 8192]);
    let idle = IdleFile {
        vm: VM,
        counts: IdleCounts {
            rounds: 1200,
            sampled_ms: 119_900,
            mapped: 4 << 20,
            bins: IdleBins::parse("1s,10s,1m").unwrap(),
            accessed: Some(accessed),
            written: None,
        },
    };
    let text = idle.to_string();
    assert_eq!(
        text,
        "vm 1234-12\nrounds 1200\nsampled_ms 119900\nmapped_bytes 4194304\nbins 1s,10s,1m\n\
         never 4096 -\nidle 1s 3145728 -\nidle 10s 2097152 -\nidle 1m 8192 -\n"
    );
    assert_eq!(IdleFile::parse(&text), Ok(idle));
    let both = IdleFile {
        counts: IdleCounts {
            written: Some(IdleBytes {
                never: 1,
                ..accessed
            }),
            ..idle.counts
        },
        ..idle
    };
    assert_eq!(IdleFile::parse(&both.to_string()), Ok(both));
    for (bad, why) in [
        (
            text.replace("idle 10s", "idle 20s"),
            FormatError::Bad("idle bin"),
        ),
        (
            text.replace("idle 1m 8192 -\n", ""),
            FormatError::Missing("idle"),
        ),
        (
            text.replace("idle 1m 8192 -", "idle 1m 8192 5"),
            FormatError::Bad("idle written"),
        ),
        (
            text.replace("idle 1m 8192 -", "idle 1m - -"),
            FormatError::Bad("idle accessed"),
        ),
        (
            text.replace("never 4096 -", "never x -"),
            FormatError::Bad("never"),
        ),
        (
            text.replace("rounds 1200\n", ""),
            FormatError::Missing("rounds"),
        ),
    ] {
        assert_eq!(IdleFile::parse(&bad), Err(why), "{bad}");
    }
    let attached = Config {
        vm: VM,
        state: VmState::Attached,
        settings: None,
    };
    assert_eq!(attached.to_string(), "vm 1234-12\nstate attached\n");
    assert_eq!(Config::parse(&attached.to_string()), Ok(attached));

    let mut out = String::new();
    last_error::render(&mut out, None).unwrap();
    assert_eq!(out, "none\n");
    assert_eq!(last_error::parse(&out), Ok(None));
    let mut msg = MessageBuf::<32>::new();
    use std::fmt::Write;
    write!(msg, "period_ms: {} is below {}\nand \u{e9}", 5, 10).unwrap();
    assert_eq!(msg.as_str(), "period_ms: 5 is below 10?and ?");
    let e = LastError {
        errno: Errno::Einval,
        message: msg.as_str(),
    };
    let mut out = String::new();
    last_error::render(&mut out, Some(&e)).unwrap();
    assert_eq!(out, "EINVAL period_ms: 5 is below 10?and ?\n");
    assert_eq!(last_error::parse(&out), Ok(Some(e)));
    let mut long = MessageBuf::<8>::new();
    write!(long, "0123456789").unwrap();
    assert_eq!(long.as_str(), "01234567");
    assert_eq!(Errno::from_number(95), Some(Errno::Eopnotsupp));
    assert_eq!(Errno::Enomem.number(), 12);
}

#[test]
fn slot_finder_prefers_address_space_zero() {
    let slots = [
        slot(1, 0, 0, 1024, false),
        slot(0, 3, 100, 50, false),
        slot(0, 1, 0, 10, false),
    ];
    let mut f = SlotFinder::new(&slots);
    let got: Vec<_> = [0, 9, 10, 99, 100, 149, 150, 1023, 1024]
        .iter()
        .map(|&g| f.find(Gfn(g)))
        .collect();
    assert_eq!(
        got,
        [
            Some(1),
            Some(1),
            Some(65536),
            Some(65536),
            Some(3),
            Some(3),
            Some(65536),
            Some(65536),
            None
        ]
    );
}

// ---------------------------------------------------------------------------
// heatmap.bin

fn render_bin_all(m: &Map) -> Vec<u8> {
    let v = m.view();
    let size = heatmap_bin::file_size(&v.store) as usize;
    let mut buf = vec![0xaa; size + 10];
    let n = heatmap_bin::render(&v, 0, &mut buf);
    assert_eq!(n, size);
    buf.truncate(n);
    buf
}

/// A snapshot reads as the file did when it was taken, in reads of any
/// size, while the heat map goes on changing (new rounds, a new pattern).
#[test]
fn bin_snapshot_stays_as_taken() {
    let (mut m, _) = small_vm();
    let before = render_bin_all(&m);
    let snap = heatmap_bin::BinSnapshot::take(&m.view(), |n| Some(vec![0u16; n])).unwrap();
    assert_eq!(snap.header().rounds, 2);
    for round in 0..3u64 {
        m.begin_round(9_000_000 + round, Track::Both);
        m.begin_root();
        m.visitor().leaf(wleaf(7, PageSize::Size4K, true, true));
        m.visitor().idle(r(0, 7));
        m.end_round(&end(round));
    }
    let after = render_bin_all(&m);
    assert_ne!(after, before, "the heat map did not change");
    // Reads of 1, 7, 64 and 4096 bytes, from every offset they reach.
    for chunk in [1usize, 7, 64, 4096] {
        let mut got = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = snap.read_at(got.len() as u64, &mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, before, "reads of {chunk} bytes");
    }
    // No storage, or too little: no snapshot.
    assert!(heatmap_bin::BinSnapshot::take(&m.view(), |_| None::<Vec<u16>>).is_none());
    assert!(heatmap_bin::BinSnapshot::take(&m.view(), |n| Some(vec![0u16; n - 1])).is_none());
}

#[test]
fn bin_layout_exactly() {
    let (m, _) = small_vm();
    let bin = render_bin_all(&m);
    assert_eq!(bin.len(), 64 + 1024 * 4);
    let mut want = Vec::new();
    want.extend_from_slice(b"EPTHEAT\0");
    want.extend_from_slice(&[1, 0, 64, 0, 4, 0]);
    want.extend_from_slice(&[12, 5, 2, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&0u64.to_le_bytes());
    want.extend_from_slice(&(4u64 << 20).to_le_bytes());
    want.extend_from_slice(&1024u64.to_le_bytes());
    want.extend_from_slice(&2u64.to_le_bytes());
    want.extend_from_slice(&[0; 8]);
    assert_eq!(&bin[..64], &want[..]);
    // Records: page 0 present 4K, accessed 2 dirty 1; page 2 present size
    // unseen; page 160 a hole; page 512 a 2M leaf accessed once.
    assert_eq!(&bin[64..68], &[3, 2, 1, 0]);
    assert_eq!(&bin[64 + 2 * 4..64 + 3 * 4], &[2, 0, 0, 0]);
    assert_eq!(&bin[64 + 160 * 4..64 + 161 * 4], &[1, 0, 0, 0]);
    assert_eq!(&bin[64 + 512 * 4..64 + 513 * 4], &[4, 1, 0, 0]);
    let h = BinHeader::parse(&bin).unwrap();
    assert_eq!(h.count, 1024);
    assert_eq!(h.file_size(), bin.len() as u64);
    assert_eq!(
        BinRecord::parse(&bin[64..68]),
        Ok(BinRecord {
            state: State::Present(Sizes::One(PageSize::Size4K)),
            accessed: Some(2),
            dirty: Some(1),
        })
    );
    let mut bad = bin.clone();
    bad[0] = b'X';
    assert_eq!(BinHeader::parse(&bad), Err(FormatError::Bad("magic")));
    bad = bin.clone();
    bad[8] = 2;
    assert_eq!(BinHeader::parse(&bad), Err(FormatError::Version(2)));
    assert_eq!(
        BinHeader::parse(&bin[..20]),
        Err(FormatError::Missing("header"))
    );
}

// ---------------------------------------------------------------------------
// Random contents.

#[derive(Clone, Debug)]
enum V {
    Leaf(u64, u8, bool, bool),
    Idle(u64, u64),
    Hole(u64, u64),
    Skip(u64, u64),
}

/// A generated heat map: span pages, granule shift above 4K, window,
/// history rounds, and rounds of (track code, visits).
type GenMap = (u64, u32, u8, u16, Vec<(u8, Vec<V>)>);

fn gen_map() -> impl Strategy<Value = GenMap> {
    (1u64..5000, 0u32..5, 1u16..6).prop_flat_map(|(span, gshift, k)| {
        let max = StoreLayout::max_window(Granule::from_shift(12 + gshift).unwrap());
        let visit = prop_oneof![
            (0..span, 0u8..2, any::<bool>(), any::<bool>()).prop_map(|(g, s, a, d)| {
                let p = [1u64, 512][s as usize];
                V::Leaf(g / p * p, s, a, d)
            }),
            (0..span, 1u64..400).prop_map(|(s, n)| V::Idle(s, s + n)),
            (0..span, 1u64..400).prop_map(|(s, n)| V::Hole(s, s + n)),
            (0..span, 1u64..20).prop_map(|(s, n)| V::Skip(s, s + n)),
        ];
        (
            Just(span),
            Just(gshift),
            1..=max,
            Just(k),
            vec((0u8..3, vec(visit, 0..30)), 0..6),
        )
    })
}

fn build((span, gshift, window, k, rounds): GenMap) -> Map {
    let granule = Granule::from_shift(12 + gshift).unwrap();
    let mut m = new_map(span, granule, window, k);
    for (n, (track, visits)) in rounds.iter().enumerate() {
        m.begin_round(
            n as u64 * 1000,
            [Track::Accessed, Track::Dirty, Track::Both][*track as usize],
        );
        m.begin_root();
        let mut v = m.visitor();
        for visit in visits {
            match *visit {
                V::Leaf(g, s, a, d) => v.leaf(wleaf(
                    g,
                    [PageSize::Size4K, PageSize::Size2M][s as usize],
                    a,
                    d,
                )),
                V::Idle(s, e) => v.idle(r(s, e)),
                V::Hole(s, e) => v.hole(r(s, e)),
                V::Skip(s, e) => v.skipped(r(s, e), ept_core::ept_walk::Skip::Frozen),
            }
        }
        m.end_round(&end(n as u64));
    }
    m
}

fn gen_slots() -> impl Strategy<Value = Vec<Memslot>> {
    vec(
        (0u16..2, 0u16..5, 0u64..5000, 0u64..2000, any::<bool>()),
        0..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(a, i, b, n, d)| slot(a, i, b, n, d))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn heatmap_text_round_trips(case in gen_map(), slots in gen_slots()) {
        let m = build(case);
        let view = m.view();
        let mut out = String::new();
        heatmap::render(&mut out, &view, VM, &slots).unwrap();
        let (header, runs) = heatmap::parse(&out).unwrap();
        let layout = *view.store.layout();
        prop_assert_eq!(header.granule, layout.granule());
        prop_assert_eq!(header.window, layout.window());
        prop_assert_eq!(header.rounds, view.store.rounds());
        // The runs tile the span, and every granule in a run has the run's
        // values (computed here from the cells, the slot by a linear scan).
        let span = layout.span();
        let mut next = span.start.gpa();
        let mut prev: Option<Run> = None;
        for run in runs {
            let run = run.unwrap();
            prop_assert_eq!(run.start, next);
            prop_assert!(run.end > run.start);
            next = run.end;
            let first = (run.start >> 12) / layout.granule().pages();
            let last = ((run.end >> 12) - 1) / layout.granule().pages();
            for i in first..=last {
                let cell = view.store.cell(i as usize).unwrap();
                let gfn = i * layout.granule().pages();
                let slot = slots.iter()
                    .filter(|s| gfn >= s.base_gfn && gfn < s.base_gfn + s.npages)
                    .min_by_key(|s| (s.as_id, s.id))
                    .map(|s| s.slot());
                prop_assert_eq!(cell.current(), run.state);
                prop_assert_eq!(
                    run.accessed,
                    view.track.accessed().then(|| cell.accessed_rounds(layout.window()))
                );
                prop_assert_eq!(
                    run.dirty,
                    view.track.dirty().then(|| cell.dirty_rounds(layout.window()))
                );
                prop_assert_eq!(run.slot, slot);
                let (w, win) = (layout.width(), layout.window());
                // Ages of mapped granules only.
                let present = matches!(cell.current(), State::Present(_));
                prop_assert_eq!(
                    run.idle,
                    (present && view.track.accessed())
                        .then(|| view.clock.idle_age(cell.accessed.idle(w, win), false))
                        .flatten()
                );
                prop_assert_eq!(
                    run.unwritten,
                    (present && view.track.dirty())
                        .then(|| view.clock.idle_age(cell.dirty.idle(w, win), true))
                        .flatten()
                );
            }
            // Runs are maximal: neighbours differ.
            if let Some(p) = prev {
                prop_assert!(
                    (p.state, p.accessed, p.dirty, p.slot, p.idle, p.unwritten)
                        != (run.state, run.accessed, run.dirty, run.slot, run.idle, run.unwritten)
                );
            }
            prev = Some(run);
        }
        prop_assert_eq!(next, span.end.gpa());
        // The item renderer agrees.
        let mut items = String::new();
        let mut pos = Some(0);
        while let Some(p) = pos {
            pos = heatmap::render_item(&mut items, &view, VM, &slots, p).unwrap();
        }
        prop_assert_eq!(items, out);
    }

    #[test]
    fn bin_at_any_offset_is_the_slice(
        case in gen_map(),
        reads in vec((0u64..30_000, 0usize..200), 1..20),
    ) {
        let m = build(case);
        let view = m.view();
        let all = render_bin_all(&m);
        for (offset, len) in reads {
            let mut buf = vec![0x55u8; len];
            let n = heatmap_bin::render(&view, offset, &mut buf);
            let from = (offset as usize).min(all.len());
            let want = &all[from..(from + len).min(all.len())];
            prop_assert_eq!(n, want.len());
            prop_assert_eq!(&buf[..n], want);
            // Nothing past what was written is touched.
            prop_assert!(buf[n..].iter().all(|&b| b == 0x55));
        }
        // Each record decodes to its cell.
        let h = BinHeader::parse(&all).unwrap();
        for i in 0..h.count as usize {
            let at = 64 + i * 4;
            let rec = BinRecord::parse(&all[at..at + 4]).unwrap();
            let want = BinRecord::of(&view.store.cell(i).unwrap(), h.window, h.mode);
            prop_assert_eq!(rec, want);
        }
    }

    #[test]
    fn history_round_trips(case in gen_map()) {
        let m = build(case);
        let view = m.view();
        let mut out = String::new();
        history::render(&mut out, &view, VM).unwrap();
        let (header, lines) = history::parse(&out).unwrap();
        let h = view.history;
        prop_assert_eq!(header.kept as usize, h.kept());
        prop_assert_eq!(header.regions as usize, h.layout().regions());
        let mut age = usize::MAX;
        let mut seen = 0;
        for line in lines {
            match line.unwrap() {
                history::Line::Round(rec) => {
                    age = age.wrapping_add(1);
                    prop_assert_eq!(Some(rec), h.record(age));
                    seen += 1;
                }
                history::Line::Shares { dirty, round, gpa, hex } => {
                    let rec = h.record(age).unwrap();
                    prop_assert_eq!(round, rec.round);
                    let recorded = if dirty { rec.track.dirty() } else { rec.track.accessed() };
                    prop_assert!(recorded);
                    let first = ((gpa >> 12) / h.layout().region().pages()) as usize;
                    for (i, s) in history::shares(hex).enumerate() {
                        let (a, d) = h.shares(age, first + i).unwrap();
                        prop_assert_eq!(s, Some(if dirty { d } else { a }));
                    }
                }
            }
        }
        prop_assert_eq!(seen, h.kept());
        let mut items = String::new();
        let mut pos = Some(0);
        while let Some(p) = pos {
            pos = history::render_item(&mut items, &view, VM, p).unwrap();
        }
        prop_assert_eq!(items, out);
    }

    #[test]
    fn stats_round_trip(
        n in vec(any::<u64>(), 32), totals in proptest::option::of((any::<u64>(), any::<u64>())), flush_last in proptest::option::of(any::<bool>()),
        interval in proptest::option::of(any::<u64>()), dirty in 0usize..3,
    ) {
        let s = StatsFile {
            rounds: n[0], leaves: n[1], leaves_last: n[2], bits_cleared: n[3],
            walk_ns_last: n[4], walk_ns_avg: n[5], walk_ns_max: n[6], flushes: n[7],
            unflushed_rounds: n[8], flush_last, yields: n[9], cas_retries: n[10],
            frozen: n[11], untracked: n[12], unreachable: n[13], malformed: n[14],
            cold_tables: n[15], store_bytes: n[16], history_bytes: n[17],
            accessed_pages_last: n[18], dirty_pages_last: n[19],
            roots_last: n[20], roots_walked: n[21], roots_lost: n[22], roots_over_limit: n[23],
            roots_invalid: n[24], roots_mirror: n[25], roots_guest_mode: n[26],
            hold_entries_max: n[27], accessed_passed: n[28],
            flush_ns_last: n[29], flush_ns_avg: n[30], dirty_partial_rounds: n[31],
            walk_ns_total: totals.map(|t| t.0), flush_ns_total: totals.map(|t| t.1),
            interval_ns_last: interval,
            dirty: [DirtyStatus::Tracked, DirtyStatus::Off, DirtyStatus::DirtyLogging][dirty],
        };
        prop_assert_eq!(StatsFile::parse(&s.to_string()), Ok(s));
    }

    #[test]
    fn tables_round_trip(
        rows in vec((1u32..5_000_000, any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>(),
                     0usize..4, any::<bool>(), 0usize..11), 0..10),
        slots in vec((any::<u16>(), any::<u16>(), 0u64..(1 << 40), 0u64..(1 << 40), any::<bool>(), any::<bool>()), 0..10),
    ) {
        let rows: Vec<VmRow> = rows.into_iter().map(|(pid, fd, vcpus, memslots, mem, tdp, dl, st)| VmRow {
            vm: VmId { pid: pid.min(4_194_304), fd: fd & 0x7fff_ffff },
            vcpus, memslots, memory_bytes: mem,
            tdp: [TdpKind::EptAd, TdpKind::Ept, TdpKind::Npt, TdpKind::Shadow][tdp],
            dirty_logging: dl,
            state: [
                VmState::Detached, VmState::Attached, VmState::Sampling,
                VmState::Refused(Refusal::ShadowPaging), VmState::Refused(Refusal::TdpMmuOff),
                VmState::Refused(Refusal::NoAdBits), VmState::Refused(Refusal::NoTlbFlush),
                VmState::Refused(Refusal::ConfidentialVm), VmState::Refused(Refusal::PrivateMemory),
                VmState::Refused(Refusal::UnknownVmType), VmState::Refused(Refusal::Other),
            ][st],
        }).collect();
        let mut out = String::new();
        vms::render(&mut out, &rows).unwrap();
        let back: Vec<VmRow> = vms::parse(&out).map(Result::unwrap).collect();
        prop_assert_eq!(back, rows);

        let slots: Vec<Memslot> = slots.into_iter().map(|(a, i, b, n, d, ro)| Memslot {
            as_id: a, id: i, base_gfn: b, npages: n,
            flags: MemslotFlags { dirty_log: d, readonly: ro },
        }).collect();
        let mut out = String::new();
        memslots::render(&mut out, &slots).unwrap();
        let back: Vec<Memslot> = memslots::parse(&out).map(Result::unwrap).collect();
        prop_assert_eq!(back, slots);
    }

    #[test]
    fn parsers_never_panic(text in "\\PC{0,400}", bytes in vec(any::<u8>(), 0..200)) {
        let _ = heatmap::parse(&text).map(|(_, runs)| runs.count());
        let _ = history::parse(&text).map(|(_, lines)| lines.count());
        let _ = StatsFile::parse(&text);
        let _ = Config::parse(&text);
        let _ = vms::parse(&text).count();
        let _ = memslots::parse(&text).count();
        let _ = last_error::parse(&text);
        let _ = BinHeader::parse(&bytes);
        let _ = BinRecord::parse(&bytes);
        let _ = history::shares(&text).count();
        let _ = Centi::parse(&text);
    }

    #[test]
    fn round_records_encode(
        n in vec(any::<u64>(), 7), yields in any::<u32>(), flushed in any::<bool>(), t in 0usize..3,
    ) {
        let rec = RoundRecord {
            round: n[0], start_ns: n[1], walk_ns: n[2], leaves: n[3],
            accessed_pages: n[4], dirty_pages: n[5], cleared: n[6], yields, flushed,
            track: [Track::Accessed, Track::Dirty, Track::Both][t],
        };
        prop_assert_eq!(RoundRecord::decode(&rec.encode()), rec);
    }
}

#[test]
fn centi() {
    assert_eq!(Centi(0).to_string(), "0.00");
    assert_eq!(Centi(5).to_string(), "0.05");
    assert_eq!(Centi(1234).to_string(), "12.34");
    assert_eq!(Centi::parse("12.34"), Some(Centi(1234)));
    assert_eq!(Centi::parse("0.05"), Some(Centi(5)));
    assert_eq!(Centi::parse("0.00"), Some(Centi(0)));
    assert_eq!(Centi::parse("1.5"), None);
    assert_eq!(Centi::parse("01.50"), None);
}

#[test]
fn visitor_trait_object_works() {
    // The glue may hold the visitor as `&mut dyn Visitor`.
    let mut m = new_map(8, Granule::SIZE_4K, 5, 1);
    m.begin_round(0, Track::Accessed);
    m.begin_root();
    let mut v = m.visitor();
    let dynv: &mut dyn Visitor = &mut v;
    dynv.hole(r(0, 8));
    m.end_round(&end(0));
    assert_eq!(m.view().store.cell(7).unwrap().current(), State::Hole);
}

#[test]
fn version_text_exactly_and_back() {
    use ept_core::ept_walk::KvmBits;
    use ept_core::procfs::version::{HostTdp, Version, VersionError};
    let v = Version {
        module: "0.1.0",
        kernel: "7.3.4",
        tdp: HostTdp::EptAd,
        tdp_mmu: Some(true),
        vm_files: "anon-inode-name+fops-owner",
        tlb_flush: "symbol_get:kvm_flush_remote_tlbs",
        kvm_bits: Some(KvmBits::LINUX_7_3),
    };
    let text = v.to_string();
    assert_eq!(
        text,
        "module 0.1.0\nkernel 7.3.4\ntdp ept+ad\ntdp_mmu yes\n\
         vm_files anon-inode-name+fops-owner\ntlb_flush symbol_get:kvm_flush_remote_tlbs\n\
         spte_ad_shift 60\nfrozen_spte 0x80000000000001a0\n"
    );
    assert_eq!(Version::parse(&text), Ok(v));
    let six = Version {
        kernel: "6.12.117",
        tdp: HostTdp::Npt,
        kvm_bits: Some(KvmBits::LINUX_6_12),
        ..v
    };
    assert!(six
        .to_string()
        .ends_with("spte_ad_shift 52\nfrozen_spte 0x80000000000005a0\n"));
    assert_eq!(Version::parse(&six.to_string()), Ok(six));
    // A module from before the layout lines: no layout, not an error.
    let old = "module 0.1.0\nkernel 7.3.4\ntdp npt\ntdp_mmu yes\n";
    assert_eq!(Version::parse(old).map(|v| v.kvm_bits), Ok(None));
    // Half a layout, or one the walker could not use, is.
    let half = format!("{old}spte_ad_shift 60\n");
    assert_eq!(
        Version::parse(&half),
        Err(VersionError::Missing("frozen_spte"))
    );
    let half = format!("{old}frozen_spte 0x80000000000001a0\n");
    assert_eq!(
        Version::parse(&half),
        Err(VersionError::Missing("spte_ad_shift"))
    );
    let bad = format!("{old}spte_ad_shift 62\nfrozen_spte 0x80000000000001a0\n");
    assert_eq!(
        Version::parse(&bad),
        Err(VersionError::BadValue("spte_ad_shift"))
    );
    let bad = format!("{old}spte_ad_shift 60\nfrozen_spte 1a0\n");
    assert_eq!(
        Version::parse(&bad),
        Err(VersionError::BadValue("frozen_spte"))
    );
}

/// Which VM types are refused, against the uapi numbers (a test of the
/// table, not of the numbers: those are KVM's ABI).
#[test]
fn vm_types_refused_by_type() {
    use ept_core::procfs::vms::{vm_type, vm_type_refusal};
    assert_eq!(vm_type_refusal(vm_type::DEFAULT, false), None);
    assert_eq!(vm_type_refusal(vm_type::SEV, false), None);
    assert_eq!(vm_type_refusal(vm_type::SEV_ES, false), None);
    assert_eq!(
        vm_type_refusal(vm_type::SW_PROTECTED, true),
        Some(Refusal::PrivateMemory)
    );
    // Whatever KVM says of its memory, the type decides.
    assert_eq!(
        vm_type_refusal(vm_type::SW_PROTECTED, false),
        Some(Refusal::PrivateMemory)
    );
    assert_eq!(
        vm_type_refusal(vm_type::SNP, true),
        Some(Refusal::ConfidentialVm)
    );
    assert_eq!(
        vm_type_refusal(vm_type::TDX, true),
        Some(Refusal::ConfidentialVm)
    );
    // A default VM that may have private memory (a future kernel) is refused too.
    assert_eq!(
        vm_type_refusal(vm_type::DEFAULT, true),
        Some(Refusal::PrivateMemory)
    );
    for t in 6..=u8::MAX {
        assert_eq!(
            vm_type_refusal(t, false),
            Some(Refusal::UnknownVmType),
            "type {t}"
        );
    }
    for r in [
        Refusal::ConfidentialVm,
        Refusal::PrivateMemory,
        Refusal::UnknownVmType,
        Refusal::NoTlbFlush,
    ] {
        assert_eq!(Refusal::parse(r.as_str()), r);
    }
}
