// SPDX-License-Identifier: GPL-2.0

//! The `control` command language: accepted lines with the commands they
//! mean (written out), refused lines with the exact message, random bytes
//! (never a panic, never a command out of range), random valid commands
//! (parse(display(c)) == c), and lines mutated from valid ones.

use proptest::prelude::*;

use ept_core::heat::idle::IDLE_BIN_MAX_MS;
use ept_core::heat::{DecimalError, Granule, GranuleError, IdleBins, StoreLayout, Track};
use ept_core::procfs::control::{
    Command, ControlError, Flush, Settings, VmId, VmIdError, Walk, MAX_LINE,
};

fn parse(s: &str) -> Result<Command, String> {
    Command::parse(s.as_bytes()).map_err(|e| e.to_string())
}

fn vm(pid: u32, fd: u32) -> VmId {
    VmId { pid, fd }
}

fn settings() -> Settings {
    Settings {
        period_ms: 100,
        track: Track::Accessed,
        granule: Granule::from_bytes(4096).unwrap(),
        window: 5,
        flush: Flush::Round,
        walk: Walk::Leaf,
        history: 64,
        idle: IdleBins::DEFAULT,
    }
}

#[test]
fn accepted() {
    let cases: Vec<(&str, Command)> = vec![
        ("attach pid=1234", Command::Attach { pid: 1234, fd: None }),
        ("attach pid=1234\n", Command::Attach { pid: 1234, fd: None }),
        ("attach pid=1234 fd=12", Command::Attach { pid: 1234, fd: Some(12) }),
        ("attach\tfd=0\tpid=1", Command::Attach { pid: 1, fd: Some(0) }),
        ("attach pid=4194304 fd=2147483647", Command::Attach { pid: 4_194_304, fd: Some(2_147_483_647) }),
        ("detach vm=1234-12", Command::Detach(vm(1234, 12))),
        ("detach all", Command::DetachAll),
        ("detach all\n", Command::DetachAll),
        ("stop vm=9-0", Command::Stop(vm(9, 0))),
        ("tune walk_budget=64", Command::Tune { walk_budget: Some(64), pass_accessed: None }),
        ("tune walk_budget=16\n", Command::Tune { walk_budget: Some(16), pass_accessed: None }),
        ("tune walk_budget=1048576", Command::Tune { walk_budget: Some(1_048_576), pass_accessed: None }),
        ("tune pass_accessed=no", Command::Tune { walk_budget: None, pass_accessed: Some(false) }),
        ("tune pass_accessed=yes", Command::Tune { walk_budget: None, pass_accessed: Some(true) }),
        ("tune pass_accessed=no walk_budget=64", Command::Tune { walk_budget: Some(64), pass_accessed: Some(false) }),
        ("start vm=1-3", Command::Start { vm: vm(1, 3), settings: settings() }),
        ("start vm=1-3 period_ms=100", Command::Start { vm: vm(1, 3), settings: settings() }),
        ("start vm=1-3 idle=1s,10s,1m,10m,1h", Command::Start { vm: vm(1, 3), settings: settings() }),
        (
            "start vm=1-3 idle=100ms,90s,2h",
            Command::Start {
                vm: vm(1, 3),
                settings: Settings { idle: IdleBins::new(&[100, 90_000, 7_200_000]).unwrap(), ..settings() },
            },
        ),
        (
            "start vm=1-3 period_ms=10 mode=both granule=2M window=29 flush=none walk=upper history=1024",
            Command::Start {
                vm: vm(1, 3),
                settings: Settings {
                    period_ms: 10,
                    track: Track::Both,
                    granule: Granule::from_bytes(2 << 20).unwrap(),
                    window: 29,
                    flush: Flush::None,
                    walk: Walk::Upper,
                    history: 1024,
                    idle: IdleBins::DEFAULT,
                },
            },
        ),
        (
            "start history=1 window=13 granule=8192 mode=dirty period_ms=60000 vm=7-8",
            Command::Start {
                vm: vm(7, 8),
                settings: Settings {
                    period_ms: 60_000,
                    track: Track::Dirty,
                    granule: Granule::from_bytes(8192).unwrap(),
                    window: 13,
                    history: 1,
                    idle: IdleBins::DEFAULT,
                    ..settings()
                },
            },
        ),
        (
            "start vm=7-8 granule=1G",
            Command::Start {
                vm: vm(7, 8),
                settings: Settings { granule: Granule::from_bytes(1 << 30).unwrap(), ..settings() },
            },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse(line), Ok(want), "{line:?}");
    }
}

#[test]
fn canonical_lines() {
    assert_eq!(
        Command::Attach { pid: 5, fd: None }.to_string(),
        "attach pid=5"
    );
    assert_eq!(
        Command::Attach {
            pid: 5,
            fd: Some(6)
        }
        .to_string(),
        "attach pid=5 fd=6"
    );
    assert_eq!(Command::DetachAll.to_string(), "detach all");
    assert_eq!(Command::Detach(vm(1, 2)).to_string(), "detach vm=1-2");
    assert_eq!(Command::Stop(vm(1, 2)).to_string(), "stop vm=1-2");
    assert_eq!(
        Command::Tune {
            walk_budget: Some(8192),
            pass_accessed: None
        }
        .to_string(),
        "tune walk_budget=8192"
    );
    assert_eq!(
        Command::Tune {
            walk_budget: None,
            pass_accessed: Some(false)
        }
        .to_string(),
        "tune pass_accessed=no"
    );
    assert_eq!(
        Command::Tune {
            walk_budget: Some(16),
            pass_accessed: Some(true)
        }
        .to_string(),
        "tune walk_budget=16 pass_accessed=yes"
    );
    assert_eq!(
        Command::Start { vm: vm(1, 2), settings: settings() }.to_string(),
        "start vm=1-2 period_ms=100 mode=accessed granule=4K window=5 flush=round walk=leaf history=64 idle=1s,10s,1m,10m,1h"
    );
}

#[test]
fn refused_with_the_reason() {
    let long = format!("attach pid=1 {}", "x".repeat(MAX_LINE));
    let cases: Vec<(&str, &str)> = vec![
        ("", "empty command"),
        ("\n", "empty command"),
        (&long, "command too long: 525 bytes, at most 512"),
        ("attach pid=1\n\n", "newline at offset 12: one command per write, newline only at the end"),
        ("attach\npid=1", "newline at offset 6: one command per write, newline only at the end"),
        ("attach pid=1\r\n", "byte 0x0d at offset 12 is not printable ASCII, space or tab"),
        ("attach pid=\x001", "byte 0x00 at offset 11 is not printable ASCII, space or tab"),
        ("attach pid=1\x7f", "byte 0x7f at offset 12 is not printable ASCII, space or tab"),
        ("attach pid=\u{e9}", "byte 0xc3 at offset 11 is not printable ASCII, space or tab"),
        ("attach  pid=1", "empty word at offset 7: separate words with a single space or tab"),
        (" attach pid=1", "empty word at offset 0: separate words with a single space or tab"),
        ("attach pid=1 ", "empty word at offset 13: separate words with a single space or tab"),
        ("attach pid=1\t\tfd=2", "empty word at offset 13: separate words with a single space or tab"),
        ("foo", "unknown command 'foo' (expected attach, detach, start, stop or tune)"),
        ("ATTACH pid=1", "unknown command 'ATTACH' (expected attach, detach, start, stop or tune)"),
        ("attach foo", "unknown word 'foo' (expected key=value)"),
        ("attach pid=1 foo=2", "unknown key 'foo' for attach (expected pid, fd)"),
        ("attach vm=1-2", "unknown key 'vm' for attach (expected pid, fd)"),
        ("stop pid=1", "unknown key 'pid' for stop (expected vm)"),
        ("start vm=1-2 fd=3", "unknown key 'fd' for start (expected vm, period_ms, mode, granule, window, flush, walk, history, idle)"),
        ("start vm=1-2 idle=", "idle: empty value"),
        ("start vm=1-2 idle=1s,1s", "idle: '1s,1s': bins must increase (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
        ("start vm=1-2 idle=1d", "idle: '1d': a bin is not a number and a unit (ms, s, m, h) (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
        ("start vm=1-2 idle=0s", "idle: '0s': a bin is 0 or longer than a week (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
        ("attach =1", "no key before '=' in '=1'"),
        ("attach pid=1 pid=2", "duplicate key 'pid'"),
        ("start vm=1-2 mode=both mode=both", "duplicate key 'mode'"),
        ("attach", "attach: missing pid="),
        ("attach fd=3", "attach: missing pid="),
        ("detach", "detach: missing vm="),
        ("stop", "stop: missing vm="),
        ("start period_ms=100", "start: missing vm="),
        ("attach pid=", "pid: empty value"),
        ("attach pid=x1", "pid: 'x1' is not a decimal number"),
        ("attach pid=-1", "pid: '-1' is not a decimal number"),
        ("attach pid=+1", "pid: '+1' is not a decimal number"),
        ("attach pid=012", "pid: '012' has a leading zero"),
        ("attach pid=99999999999999999999", "pid: '99999999999999999999' is too large"),
        ("attach pid=0", "pid: 0 is below 1"),
        ("attach pid=4194305", "pid: 4194305 is above 4194304"),
        ("attach pid=1 fd=2147483648", "fd: 2147483648 is above 2147483647"),
        ("start vm=1-2 period_ms=5", "period_ms: 5 is below 10"),
        ("start vm=1-2 period_ms=60001", "period_ms: 60001 is above 60000"),
        ("start vm=1-2 mode=foo", "mode: 'foo' is not one of accessed, dirty, both"),
        ("start vm=1-2 flush=always", "flush: 'always' is not one of round, none"),
        ("start vm=1-2 walk=tree", "walk: 'tree' is not one of leaf, upper"),
        ("start vm=1-2 history=0", "history: 0 is below 1"),
        ("start vm=1-2 history=1025", "history: 1025 is above 1024"),
        ("start vm=1-2 window=0", "window: 0 is below 1"),
        ("start vm=1-2 window=6", "window: 6 is above 5, the most a 4K granule allows"),
        ("start vm=1-2 granule=8K window=14", "window: 14 is above 13, the most a 8K granule allows"),
        ("start vm=1-2 granule=2M window=300", "window: 300 is above 29, the most a 2M granule allows"),
        ("start vm=1-2 granule=3K", "granule: '3K': not a power of two"),
        ("start vm=1-2 granule=2K", "granule: '2K': below 4K"),
        ("start vm=1-2 granule=1T", "granule: '1T': not a size (digits, then K, M or G)"),
        ("start vm=1-2 granule=1024G", "granule: '1024G': above 512G"),
        ("detach vm=12", "vm: '12': not <pid>-<fd>"),
        ("detach vm=0-1", "vm: '0-1': the pid is not a number in 1..=4194304"),
        ("detach vm=1-", "vm: '1-': the fd is not a number in 0..=2147483647"),
        ("detach vm=1-2-3", "vm: '1-2-3': the fd is not a number in 0..=2147483647"),
        ("detach all vm=1-2", "detach all takes no other word, got 'vm=1-2'"),
        ("detach all all", "detach all takes no other word, got 'all'"),
        ("detach vm=1-2 all", "unknown word 'all' (expected key=value)"),
        ("attach all", "unknown word 'all' (expected key=value)"),
        ("tune", "tune: nothing to set (expected walk_budget=N, pass_accessed=yes|no or both)"),
        ("tune\n", "tune: nothing to set (expected walk_budget=N, pass_accessed=yes|no or both)"),
        ("tune pass_accessed=on", "pass_accessed: 'on' is not one of yes, no"),
        ("tune pass_accessed=", "pass_accessed: empty value"),
        ("tune pass_accessed=no pass_accessed=no", "duplicate key 'pass_accessed'"),
        ("start vm=1-2 pass_accessed=no", "unknown key 'pass_accessed' for start (expected vm, period_ms, mode, granule, window, flush, walk, history, idle)"),
        ("start vm=1-2 idle=", "idle: empty value"),
        ("start vm=1-2 idle=1s,1s", "idle: '1s,1s': bins must increase (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
        ("start vm=1-2 idle=1d", "idle: '1d': a bin is not a number and a unit (ms, s, m, h) (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
        ("start vm=1-2 idle=0s", "idle: '0s': a bin is 0 or longer than a week (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
        ("tune walk_budget=15", "walk_budget: 15 is below 16"),
        ("tune walk_budget=1048577", "walk_budget: 1048577 is above 1048576"),
        ("tune walk_budget=64 walk_budget=64", "duplicate key 'walk_budget'"),
        ("tune vm=1-2", "unknown key 'vm' for tune (expected walk_budget, pass_accessed)"),
        ("start vm=1-2 walk_budget=64", "unknown key 'walk_budget' for start (expected vm, period_ms, mode, granule, window, flush, walk, history, idle)"),
        ("start vm=1-2 idle=", "idle: empty value"),
        ("start vm=1-2 idle=1s,1s", "idle: '1s,1s': bins must increase (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
        ("start vm=1-2 idle=1d", "idle: '1d': a bin is not a number and a unit (ms, s, m, h) (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
        ("start vm=1-2 idle=0s", "idle: '0s': a bin is 0 or longer than a week (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"),
    ];
    for (line, want) in cases {
        assert_eq!(parse(line), Err(want.to_string()), "{line:?}");
    }
    // The exact values, for the glue and the tool.
    assert_eq!(
        Command::parse(b"attach pid=01"),
        Err(ControlError::BadNumber {
            key: "pid",
            value: "01",
            why: DecimalError::LeadingZero
        })
    );
    assert_eq!(
        Command::parse(b"stop vm=a-1"),
        Err(ControlError::BadVm {
            value: "a-1",
            why: VmIdError::Pid
        })
    );
    assert_eq!(
        Command::parse(b"start vm=1-1 granule=6K"),
        Err(ControlError::BadGranule {
            value: "6K",
            why: GranuleError::NotPowerOfTwo
        })
    );
}

#[test]
fn line_length_limit() {
    // The longest canonical command is well within the limit.
    let bins: Vec<String> = (0..16)
        .map(|i| format!("{}ms", IDLE_BIN_MAX_MS - 15 + i))
        .collect();
    let longest = format!(
        "start vm=4194304-2147483647 period_ms=60000 mode=accessed granule=512G \
         window=29 flush=round walk=upper history=1024 idle={}",
        bins.join(",")
    );
    assert!(longest.len() < MAX_LINE, "{}", longest.len());
    let longest = longest.as_str();
    assert!(parse(longest).is_ok());
    // MAX_LINE bytes are judged on their content, one more refused for their length,
    // a trailing newline included.
    let filler = |n: usize| format!("attach pid=1 {}", "a".repeat(n - 13));
    assert_eq!(filler(MAX_LINE).len(), MAX_LINE);
    assert!(parse(&filler(MAX_LINE))
        .unwrap_err()
        .starts_with("unknown word"));
    assert!(parse(&filler(MAX_LINE + 1))
        .unwrap_err()
        .starts_with("command too long"));
    let with_newline = format!("{}\n", filler(MAX_LINE));
    assert!(parse(&with_newline)
        .unwrap_err()
        .starts_with("command too long"));
}

fn gen_vm() -> impl Strategy<Value = VmId> {
    (1u32..=4_194_304, 0u32..=i32::MAX as u32).prop_map(|(pid, fd)| VmId { pid, fd })
}

fn gen_bins() -> impl Strategy<Value = IdleBins> {
    proptest::collection::btree_set(1u64..=IDLE_BIN_MAX_MS, 1..=16).prop_map(|set| {
        let ms: Vec<u64> = set.into_iter().collect();
        IdleBins::new(&ms).unwrap()
    })
}

fn gen_settings() -> impl Strategy<Value = Settings> {
    (12u32..=39).prop_flat_map(|shift| {
        let granule = Granule::from_shift(shift).unwrap();
        let max = StoreLayout::max_window(granule);
        (
            10u32..=60_000,
            0usize..3,
            1u8..=max,
            any::<bool>(),
            any::<bool>(),
            1u16..=1024,
            gen_bins(),
        )
            .prop_map(
                move |(period_ms, t, window, flush, walk, history, bins)| Settings {
                    period_ms,
                    track: [Track::Accessed, Track::Dirty, Track::Both][t],
                    granule,
                    window,
                    flush: if flush { Flush::Round } else { Flush::None },
                    walk: if walk { Walk::Leaf } else { Walk::Upper },
                    history,
                    idle: bins,
                },
            )
    })
}

fn gen_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            1u32..=4_194_304,
            proptest::option::of(0u32..=i32::MAX as u32)
        )
            .prop_map(|(pid, fd)| Command::Attach { pid, fd }),
        gen_vm().prop_map(Command::Detach),
        Just(Command::DetachAll),
        (gen_vm(), gen_settings()).prop_map(|(vm, settings)| Command::Start { vm, settings }),
        gen_vm().prop_map(Command::Stop),
        (
            proptest::option::of(16u32..=1 << 20),
            proptest::option::of(any::<bool>())
        )
            .prop_filter("tune sets something", |(w, p)| w.is_some() || p.is_some())
            .prop_map(|(walk_budget, pass_accessed)| Command::Tune {
                walk_budget,
                pass_accessed
            }),
    ]
}

/// What `parse` may return for any input: a command within the ranges.
fn in_range(c: &Command) -> bool {
    let vm_ok = |v: &VmId| (1..=4_194_304).contains(&v.pid) && v.fd <= i32::MAX as u32;
    match c {
        Command::Attach { pid, fd } => {
            (1..=4_194_304).contains(pid) && fd.is_none_or(|f| f <= i32::MAX as u32)
        }
        Command::Detach(v) | Command::Stop(v) => vm_ok(v),
        Command::DetachAll => true,
        Command::Tune {
            walk_budget,
            pass_accessed,
        } => {
            walk_budget.is_none_or(|w| (16..=1 << 20).contains(&w))
                && (walk_budget.is_some() || pass_accessed.is_some())
        }
        Command::Start { vm, settings: s } => {
            vm_ok(vm)
                && (10..=60_000).contains(&s.period_ms)
                && s.window >= 1
                && s.window <= StoreLayout::max_window(s.granule)
                && (1..=1024).contains(&s.history)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        match Command::parse(&bytes) {
            Ok(c) => prop_assert!(in_range(&c)),
            Err(e) => {
                // Every error has a one-line printable message.
                let msg = e.to_string();
                prop_assert!(!msg.is_empty());
                prop_assert!(msg.bytes().all(|b| (0x20..0x7f).contains(&b)));
            }
        }
    }

    #[test]
    fn random_words_never_panic(
        words in proptest::collection::vec(
            "(attach|detach|start|stop|all|pid|fd|vm|period_ms|mode|granule|window|flush|walk|history|=|-|[0-9]{1,3}|[KMG]|both|none|upper|x)*",
            0..12,
        ),
        sep in "[ \t]",
    ) {
        let line = words.join(&sep);
        if let Ok(c) = Command::parse(line.as_bytes()) {
            prop_assert!(in_range(&c));
            // Whatever was accepted has a canonical form that means the same.
            let canon = c.to_string();
            prop_assert_eq!(Command::parse(canon.as_bytes()), Ok(c));
        }
    }

    #[test]
    fn valid_commands_round_trip(c in gen_command(), newline in any::<bool>()) {
        let line = c.to_string();
        prop_assert!(line.len() < MAX_LINE);
        let line = if newline { line + "\n" } else { line };
        prop_assert_eq!(Command::parse(line.as_bytes()), Ok(c));
    }

    #[test]
    fn one_changed_byte_is_refused_or_parsed_right(
        c in gen_command(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut line = c.to_string().into_bytes();
        let i = at.index(line.len());
        line[i] = byte;
        if let Ok(d) = Command::parse(&line) {
            prop_assert!(in_range(&d));
            // An accepted mutant is canonical, or one of the few
            // non-canonical spellings (tab for space, 4096 for 4K...):
            // either way it round-trips.
            let canon = d.to_string();
            prop_assert_eq!(Command::parse(canon.as_bytes()), Ok(d));
        }
    }
}
