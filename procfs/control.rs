// SPDX-License-Identifier: GPL-2.0

//! The command language of `/proc/ept_sampler/control`: one command per
//! `write`, words separated by one space or tab, `key=value` after the
//! command word.
//!
//! ```text
//! attach pid=P [fd=F]
//! detach vm=P-F
//! detach all
//! start vm=P-F [period_ms=N] [mode=accessed|dirty|both] [granule=G]
//!       [window=N] [flush=round|none] [walk=leaf|upper] [history=K]
//!       [idle=AGE,AGE...]
//! stop vm=P-F
//! tune [walk_budget=N] [pass_accessed=yes|no]
//! ```
//!
//! `tune` sets the module-wide settings, the module parameters of the same
//! names (`/sys/module/ept_sampler/parameters/`, `/etc/modprobe.d`), and
//! takes at least one key: how many entries a round examines per hold of
//! `mmu_lock`, for every VM (default [`DEFAULT_WALK_BUDGET`]; a small
//! budget makes every round drop and retake the lock hundreds of times,
//! which is how the e2e suite exercises the yield path on small guests),
//! and whether accessed bits the sampler clears are handed on to the host's
//! pages (`yes` by default; `no` shows what the host loses without it, and
//! what handing them on costs).
//!
//! [`Command::parse`] checks every byte: printable ASCII only, single
//! separators, at most one trailing newline, at most [`MAX_LINE`] bytes, no
//! unknown or repeated key, numbers in their one canonical spelling (no
//! sign, no leading zero) and in range. Anything else is a [`ControlError`]
//! whose `Display` names the problem for `last_error`; every one of them
//! means `-EINVAL` and changes nothing.
//!
//! [`Command`]'s `Display` writes the canonical line, with every setting
//! spelt out, and parsing it gives the same command back: the tool builds
//! commands as values and formats them, never by hand.

use core::fmt;

use super::fields::{yes_no, yes_no_str};
use crate::ept_walk::Descent;
use crate::heat::idle::BinsError;
use crate::heat::{
    parse_decimal, DecimalError, Granule, GranuleError, IdleBins, StoreLayout, Track,
    DEFAULT_HISTORY_ROUNDS, DEFAULT_WINDOW, MAX_HISTORY_ROUNDS,
};

/// The longest command accepted, in bytes, newline included: room for the
/// longest canonical `start` (about 320 bytes with 16 idle bins).
pub const MAX_LINE: usize = 512;
/// The largest pid Linux hands out (`PID_MAX_LIMIT` on 64-bit).
pub const PID_MAX: u64 = 4_194_304;
/// The largest file descriptor (`INT_MAX`).
pub const FD_MAX: u64 = i32::MAX as u64;
/// The shortest sampling period, ms.
pub const PERIOD_MS_MIN: u64 = 10;
/// The longest sampling period, ms.
pub const PERIOD_MS_MAX: u64 = 60_000;
/// The period unless told otherwise, ms.
pub const DEFAULT_PERIOD_MS: u32 = 100;
/// Entries a round examines per hold of `mmu_lock` unless the module
/// parameter `walk_budget` (or `tune`) says otherwise: tens of
/// microseconds of work, so that writers (vCPU faults, memslot changes)
/// and the scheduler never wait long behind a round.
pub const DEFAULT_WALK_BUDGET: u32 = 8192;
/// The smallest walk budget `tune` and the module parameter accept.
pub const WALK_BUDGET_MIN: u64 = 16;
/// The largest walk budget `tune` and the module parameter accept.
pub const WALK_BUDGET_MAX: u64 = 1 << 20;

/// A VM as KVM names it in `/proc/<pid>/fd` and as `/proc/ept_sampler/`
/// names its directory: the pid of the process that owns it and the file
/// descriptor of its VM file there. Shown `P-F`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmId {
    /// Owner's pid, in the pid namespace of the reader or writer.
    pub pid: u32,
    /// The VM file's descriptor in that process.
    pub fd: u32,
}

/// Why a `P-F` word is not a [`VmId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmIdError {
    /// Not two numbers joined by `-`.
    Shape,
    /// The pid is not a canonical number in `1..=PID_MAX`.
    Pid,
    /// The fd is not a canonical number in `0..=FD_MAX`.
    Fd,
}

impl fmt::Display for VmIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmIdError::Shape => f.write_str("not <pid>-<fd>"),
            VmIdError::Pid => write!(f, "the pid is not a number in 1..={PID_MAX}"),
            VmIdError::Fd => write!(f, "the fd is not a number in 0..={FD_MAX}"),
        }
    }
}

impl VmId {
    /// Parses `P-F`.
    pub fn parse(word: &str) -> Result<VmId, VmIdError> {
        let (pid, fd) = word.split_once('-').ok_or(VmIdError::Shape)?;
        let pid = parse_decimal(pid)
            .ok()
            .filter(|p| (1..=PID_MAX).contains(p))
            .ok_or(VmIdError::Pid)?;
        let fd = parse_decimal(fd)
            .ok()
            .filter(|f| *f <= FD_MAX)
            .ok_or(VmIdError::Fd)?;
        Ok(VmId {
            pid: pid as u32,
            fd: fd as u32,
        })
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.pid, self.fd)
    }
}

/// Whether the guest's TLBs are flushed after each round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flush {
    /// Once per round, after the bits are cleared, so that a page touched
    /// in a round is seen in that round.
    Round,
    /// Never: cheaper for the guest, but accesses through cached
    /// translations go unseen.
    None,
}

impl Flush {
    /// The word for this value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Flush::Round => "round",
            Flush::None => "none",
        }
    }

    /// Parses [`Flush::as_str`]'s words.
    pub fn parse(word: &str) -> Option<Flush> {
        match word {
            "round" => Some(Flush::Round),
            "none" => Some(Flush::None),
            _ => None,
        }
    }
}

/// Which tables a round enters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Walk {
    /// Every table: every leaf is read each round.
    Leaf,
    /// Only tables whose parent's accessed bit is set; needs a flush per
    /// round to be exact ([`Descent::AccessedTables`]).
    Upper,
}

impl Walk {
    /// The word for this value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Walk::Leaf => "leaf",
            Walk::Upper => "upper",
        }
    }

    /// Parses [`Walk::as_str`]'s words.
    pub fn parse(word: &str) -> Option<Walk> {
        match word {
            "leaf" => Some(Walk::Leaf),
            "upper" => Some(Walk::Upper),
            _ => None,
        }
    }

    /// The walker's descent for this value.
    pub const fn descent(self) -> Descent {
        match self {
            Walk::Leaf => Descent::EveryTable,
            Walk::Upper => Descent::AccessedTables,
        }
    }
}

/// How a VM is sampled: the `start` command's settings, and `config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// Time between the starts of two rounds, ms
    /// ([`PERIOD_MS_MIN`]..=[`PERIOD_MS_MAX`]).
    pub period_ms: u32,
    /// Which bits are sampled.
    pub track: Track,
    /// The heat store's granule.
    pub granule: Granule,
    /// The heat store's window, 1 to [`StoreLayout::max_window`] of the
    /// granule.
    pub window: u8,
    /// Whether TLBs are flushed per round.
    pub flush: Flush,
    /// Which tables are entered.
    pub walk: Walk,
    /// Rounds the history ring keeps (1 to [`MAX_HISTORY_ROUNDS`]).
    pub history: u16,
    /// The ages the `idle` file counts memory against.
    pub idle: IdleBins,
}

impl Default for Settings {
    /// Period 100 ms, accessed bits, 4 KiB granule, window 5, flush every
    /// round, every table, 64 rounds of history, idle bins 1s, 10s, 1m, 10m
    /// and 1h.
    fn default() -> Self {
        Settings {
            period_ms: DEFAULT_PERIOD_MS,
            track: Track::Accessed,
            granule: Granule::SIZE_4K,
            window: DEFAULT_WINDOW,
            flush: Flush::Round,
            walk: Walk::Leaf,
            history: DEFAULT_HISTORY_ROUNDS,
            idle: IdleBins::DEFAULT,
        }
    }
}

/// One command of the `control` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach to the VM file `fd` of process `pid`, or to every VM file of
    /// `pid` when `fd` is not given.
    Attach {
        /// The process.
        pid: u32,
        /// The VM file, if one.
        fd: Option<u32>,
    },
    /// Detach from a VM (stopping its sampling).
    Detach(VmId),
    /// Detach from every VM.
    DetachAll,
    /// Start sampling an attached VM, or change the settings of one being
    /// sampled (from its next round).
    Start {
        /// The VM.
        vm: VmId,
        /// How.
        settings: Settings,
    },
    /// Stop sampling a VM (it stays attached and keeps its heat map).
    Stop(VmId),
    /// Settings for every VM, for tests and measurements; at least one is
    /// given, and those not given stay as they are.
    Tune {
        /// Entries examined per hold of `mmu_lock`:
        /// [`WALK_BUDGET_MIN`]..=[`WALK_BUDGET_MAX`].
        walk_budget: Option<u32>,
        /// Whether cleared accessed bits are handed on to the host's pages.
        pass_accessed: Option<bool>,
    },
}

/// A `key=value` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Pid,
    Fd,
    Vm,
    PeriodMs,
    Mode,
    Granule,
    Window,
    Flush,
    Walk,
    History,
    WalkBudget,
    PassAccessed,
    Idle,
}

const KEYS: [Key; 13] = [
    Key::Pid,
    Key::Fd,
    Key::Vm,
    Key::PeriodMs,
    Key::Mode,
    Key::Granule,
    Key::Window,
    Key::Flush,
    Key::Walk,
    Key::History,
    Key::WalkBudget,
    Key::PassAccessed,
    Key::Idle,
];

impl Key {
    const fn name(self) -> &'static str {
        match self {
            Key::Pid => "pid",
            Key::Fd => "fd",
            Key::Vm => "vm",
            Key::PeriodMs => "period_ms",
            Key::Mode => "mode",
            Key::Granule => "granule",
            Key::Window => "window",
            Key::Flush => "flush",
            Key::Walk => "walk",
            Key::History => "history",
            Key::WalkBudget => "walk_budget",
            Key::PassAccessed => "pass_accessed",
            Key::Idle => "idle",
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A command word and the keys it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Attach,
    Detach,
    Start,
    Stop,
    Tune,
}

impl Verb {
    fn parse(word: &str) -> Option<Verb> {
        Some(match word {
            "attach" => Verb::Attach,
            "detach" => Verb::Detach,
            "start" => Verb::Start,
            "stop" => Verb::Stop,
            "tune" => Verb::Tune,
            _ => return None,
        })
    }

    const fn name(self) -> &'static str {
        match self {
            Verb::Attach => "attach",
            Verb::Detach => "detach",
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Tune => "tune",
        }
    }

    /// The keys the command takes, as shown in errors.
    const fn keys_text(self) -> &'static str {
        match self {
            Verb::Attach => "pid, fd",
            Verb::Detach => "vm, or the word all",
            Verb::Start => "vm, period_ms, mode, granule, window, flush, walk, history, idle",
            Verb::Stop => "vm",
            Verb::Tune => "walk_budget, pass_accessed",
        }
    }

    const fn takes(self, key: Key) -> bool {
        match self {
            Verb::Attach => matches!(key, Key::Pid | Key::Fd),
            Verb::Detach | Verb::Stop => matches!(key, Key::Vm),
            Verb::Start => !matches!(
                key,
                Key::Pid | Key::Fd | Key::WalkBudget | Key::PassAccessed
            ),
            Verb::Tune => matches!(key, Key::WalkBudget | Key::PassAccessed),
        }
    }
}

/// Why a control command was refused. Every one means `-EINVAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError<'a> {
    /// Nothing but possibly a newline.
    Empty,
    /// Longer than [`MAX_LINE`] bytes.
    TooLong {
        /// The length written.
        len: usize,
    },
    /// A byte that is not printable ASCII, a space or a tab.
    BadByte {
        /// The byte.
        byte: u8,
        /// Its offset in the write.
        at: usize,
    },
    /// A newline before the end: one command per write.
    MisplacedNewline {
        /// Its offset.
        at: usize,
    },
    /// Two separators in a row, or one at the start or end.
    EmptyWord {
        /// Offset where a word was expected.
        at: usize,
    },
    /// The first word is not a command.
    UnknownCommand(&'a str),
    /// A word without `=` where `key=value` was expected.
    UnknownWord(&'a str),
    /// A key the command does not take.
    UnknownKey {
        /// The command.
        command: &'static str,
        /// The key as written.
        key: &'a str,
        /// The keys it takes.
        expected: &'static str,
    },
    /// `=value` with no key.
    EmptyKey(&'a str),
    /// A key given twice.
    DuplicateKey(&'static str),
    /// A required key is missing.
    Missing {
        /// The command.
        command: &'static str,
        /// The key.
        key: &'static str,
    },
    /// `key=` with nothing after it.
    EmptyValue(&'static str),
    /// A value that is not a canonical decimal number.
    BadNumber {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: &'a str,
        /// What is wrong with it.
        why: DecimalError,
    },
    /// A number below its range.
    BelowMin {
        /// The key.
        key: &'static str,
        /// The value.
        value: u64,
        /// The smallest allowed.
        min: u64,
    },
    /// A number above its range.
    AboveMax {
        /// The key.
        key: &'static str,
        /// The value.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A word value not among the choices.
    BadChoice {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: &'a str,
        /// The choices.
        choices: &'static str,
    },
    /// A `vm=` value that is not `P-F`.
    BadVm {
        /// The value as written.
        value: &'a str,
        /// What is wrong with it.
        why: VmIdError,
    },
    /// A `granule=` value that is not a granule.
    BadGranule {
        /// The value as written.
        value: &'a str,
        /// What is wrong with it.
        why: GranuleError,
    },
    /// A window larger than the granule allows (2 bytes per 4 KiB page).
    WindowTooLarge {
        /// The window.
        window: u64,
        /// The most allowed at `granule`.
        max: u8,
        /// The granule.
        granule: Granule,
    },
    /// An `idle=` value that is not a list of bins.
    BadBins {
        /// The value as written.
        value: &'a str,
        /// What is wrong with it.
        why: BinsError,
    },
    /// `detach all` followed by another word.
    AllNotAlone(&'a str),
    /// `tune` without a setting.
    NothingToTune,
}

impl fmt::Display for ControlError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ControlError::Empty => f.write_str("empty command"),
            ControlError::TooLong { len } => {
                write!(f, "command too long: {len} bytes, at most {MAX_LINE}")
            }
            ControlError::BadByte { byte, at } => write!(
                f,
                "byte 0x{byte:02x} at offset {at} is not printable ASCII, space or tab"
            ),
            ControlError::MisplacedNewline { at } => write!(
                f,
                "newline at offset {at}: one command per write, newline only at the end"
            ),
            ControlError::EmptyWord { at } => write!(
                f,
                "empty word at offset {at}: separate words with a single space or tab"
            ),
            ControlError::UnknownCommand(w) => write!(
                f,
                "unknown command '{w}' (expected attach, detach, start, stop or tune)"
            ),
            ControlError::UnknownWord(w) => write!(f, "unknown word '{w}' (expected key=value)"),
            ControlError::UnknownKey {
                command,
                key,
                expected,
            } => write!(f, "unknown key '{key}' for {command} (expected {expected})"),
            ControlError::EmptyKey(w) => write!(f, "no key before '=' in '{w}'"),
            ControlError::DuplicateKey(k) => write!(f, "duplicate key '{k}'"),
            ControlError::Missing { command, key } => write!(f, "{command}: missing {key}="),
            ControlError::NothingToTune => f.write_str(
                "tune: nothing to set (expected walk_budget=N, pass_accessed=yes|no or both)",
            ),
            ControlError::EmptyValue(k) => write!(f, "{k}: empty value"),
            ControlError::BadNumber { key, value, why } => {
                let what = match why {
                    DecimalError::Empty | DecimalError::NotDigits => "is not a decimal number",
                    DecimalError::LeadingZero => "has a leading zero",
                    DecimalError::Overflow => "is too large",
                };
                write!(f, "{key}: '{value}' {what}")
            }
            ControlError::BelowMin { key, value, min } => {
                write!(f, "{key}: {value} is below {min}")
            }
            ControlError::AboveMax { key, value, max } => {
                write!(f, "{key}: {value} is above {max}")
            }
            ControlError::BadChoice {
                key,
                value,
                choices,
            } => write!(f, "{key}: '{value}' is not one of {choices}"),
            ControlError::BadVm { value, why } => write!(f, "vm: '{value}': {why}"),
            ControlError::BadGranule { value, why } => write!(f, "granule: '{value}': {why}"),
            ControlError::BadBins { value, why } => write!(
                f,
                "idle: '{value}': {why} (expected up to 16 increasing ages such as 1s,10s,1m,10m,1h)"
            ),
            ControlError::WindowTooLarge {
                window,
                max,
                granule,
            } => write!(
                f,
                "window: {window} is above {max}, the most a {granule} granule allows"
            ),
            ControlError::AllNotAlone(w) => {
                write!(f, "detach all takes no other word, got '{w}'")
            }
        }
    }
}

/// Checks every byte of a write and returns the command text without its
/// newline.
fn check_bytes(input: &[u8]) -> Result<&str, ControlError<'_>> {
    if input.len() > MAX_LINE {
        return Err(ControlError::TooLong { len: input.len() });
    }
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    for (at, &byte) in body.iter().enumerate() {
        if byte == b'\n' {
            return Err(ControlError::MisplacedNewline { at });
        }
        if !(byte == b'\t' || (0x20..0x7f).contains(&byte)) {
            return Err(ControlError::BadByte { byte, at });
        }
    }
    if body.is_empty() {
        return Err(ControlError::Empty);
    }
    // Only ASCII is left, which is UTF-8.
    core::str::from_utf8(body).map_err(|_| ControlError::BadByte { byte: 0, at: 0 })
}

/// The words of a checked line with their offsets, refusing empty ones.
struct Words<'a> {
    text: &'a str,
    at: usize,
    done: bool,
}

impl<'a> Iterator for Words<'a> {
    type Item = Result<&'a str, ControlError<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.text.get(self.at..).unwrap_or("");
        let len = rest.find([' ', '\t']).unwrap_or(rest.len());
        let word = rest.get(..len).unwrap_or("");
        if word.is_empty() {
            self.done = true;
            return Some(Err(ControlError::EmptyWord { at: self.at }));
        }
        self.at = self.at.saturating_add(len);
        if self.at >= self.text.len() {
            self.done = true;
        } else {
            // Skip the one separator; another right after it is an empty
            // word, reported by the next call.
            self.at = self.at.saturating_add(1);
        }
        Some(Ok(word))
    }
}

/// A number for `key` within `min..=max`.
fn number<'a>(key: Key, value: &'a str, min: u64, max: u64) -> Result<u64, ControlError<'a>> {
    let key = key.name();
    let n = parse_decimal(value).map_err(|why| ControlError::BadNumber { key, value, why })?;
    if n < min {
        Err(ControlError::BelowMin { key, value: n, min })
    } else if n > max {
        Err(ControlError::AboveMax { key, value: n, max })
    } else {
        Ok(n)
    }
}

/// Values of the keys seen so far.
#[derive(Default)]
struct Seen {
    keys: u16,
    pid: Option<u32>,
    fd: Option<u32>,
    vm: Option<VmId>,
    period_ms: Option<u32>,
    track: Option<Track>,
    granule: Option<Granule>,
    window: Option<u64>,
    flush: Option<Flush>,
    walk: Option<Walk>,
    history: Option<u16>,
    idle: Option<IdleBins>,
    walk_budget: Option<u32>,
    pass_accessed: Option<bool>,
}

impl Seen {
    fn set<'a>(&mut self, key: Key, value: &'a str) -> Result<(), ControlError<'a>> {
        if self.keys & key.bit() != 0 {
            return Err(ControlError::DuplicateKey(key.name()));
        }
        self.keys |= key.bit();
        if value.is_empty() {
            return Err(ControlError::EmptyValue(key.name()));
        }
        let choice = |choices| ControlError::BadChoice {
            key: key.name(),
            value,
            choices,
        };
        match key {
            Key::Pid => self.pid = Some(number(key, value, 1, PID_MAX)? as u32),
            Key::Fd => self.fd = Some(number(key, value, 0, FD_MAX)? as u32),
            Key::Vm => {
                self.vm =
                    Some(VmId::parse(value).map_err(|why| ControlError::BadVm { value, why })?)
            }
            Key::PeriodMs => {
                self.period_ms = Some(number(key, value, PERIOD_MS_MIN, PERIOD_MS_MAX)? as u32)
            }
            Key::Mode => {
                self.track = Some(Track::parse(value).ok_or(choice("accessed, dirty, both"))?)
            }
            Key::Granule => {
                self.granule = Some(
                    Granule::parse(value).map_err(|why| ControlError::BadGranule { value, why })?,
                )
            }
            // The upper bound depends on the granule: checked at the end.
            Key::Window => self.window = Some(number(key, value, 1, u64::MAX)?),
            Key::Flush => self.flush = Some(Flush::parse(value).ok_or(choice("round, none"))?),
            Key::Walk => self.walk = Some(Walk::parse(value).ok_or(choice("leaf, upper"))?),
            Key::History => {
                self.history = Some(number(key, value, 1, u64::from(MAX_HISTORY_ROUNDS))? as u16)
            }
            Key::WalkBudget => {
                self.walk_budget =
                    Some(number(key, value, WALK_BUDGET_MIN, WALK_BUDGET_MAX)? as u32)
            }
            Key::PassAccessed => self.pass_accessed = Some(yes_no(value).ok_or(choice("yes, no"))?),
            Key::Idle => {
                self.idle = Some(
                    IdleBins::parse(value).map_err(|why| ControlError::BadBins { value, why })?,
                )
            }
        }
        Ok(())
    }
}

impl Command {
    /// Parses one write to `control` (at most [`MAX_LINE`] bytes, one
    /// optional trailing newline).
    pub fn parse(input: &[u8]) -> Result<Command, ControlError<'_>> {
        let text = check_bytes(input)?;
        let mut words = Words {
            text,
            at: 0,
            done: false,
        };
        let first = match words.next() {
            Some(w) => w?,
            None => return Err(ControlError::Empty),
        };
        let verb = Verb::parse(first).ok_or(ControlError::UnknownCommand(first))?;

        let mut seen = Seen::default();
        let mut all = false;
        let mut count = 0usize;
        for word in words {
            let word = word?;
            count = count.saturating_add(1);
            if all {
                return Err(ControlError::AllNotAlone(word));
            }
            let Some((key, value)) = word.split_once('=') else {
                if verb == Verb::Detach && word == "all" {
                    if count > 1 {
                        return Err(ControlError::UnknownWord(word));
                    }
                    all = true;
                    continue;
                }
                return Err(ControlError::UnknownWord(word));
            };
            if key.is_empty() {
                return Err(ControlError::EmptyKey(word));
            }
            let Some(k) = KEYS
                .iter()
                .copied()
                .find(|k| k.name() == key && verb.takes(*k))
            else {
                return Err(ControlError::UnknownKey {
                    command: verb.name(),
                    key,
                    expected: verb.keys_text(),
                });
            };
            seen.set(k, value)?;
        }

        let missing = |key: Key| ControlError::Missing {
            command: verb.name(),
            key: key.name(),
        };
        Ok(match verb {
            Verb::Attach => Command::Attach {
                pid: seen.pid.ok_or(missing(Key::Pid))?,
                fd: seen.fd,
            },
            Verb::Detach if all => Command::DetachAll,
            Verb::Detach => Command::Detach(seen.vm.ok_or(missing(Key::Vm))?),
            Verb::Stop => Command::Stop(seen.vm.ok_or(missing(Key::Vm))?),
            Verb::Tune if seen.walk_budget.is_none() && seen.pass_accessed.is_none() => {
                return Err(ControlError::NothingToTune)
            }
            Verb::Tune => Command::Tune {
                walk_budget: seen.walk_budget,
                pass_accessed: seen.pass_accessed,
            },
            Verb::Start => {
                let vm = seen.vm.ok_or(missing(Key::Vm))?;
                let d = Settings::default();
                let granule = seen.granule.unwrap_or(d.granule);
                let max = StoreLayout::max_window(granule);
                let window = match seen.window {
                    None => DEFAULT_WINDOW.min(max),
                    Some(w) => u8::try_from(w).ok().filter(|w| *w <= max).ok_or(
                        ControlError::WindowTooLarge {
                            window: w,
                            max,
                            granule,
                        },
                    )?,
                };
                Command::Start {
                    vm,
                    settings: Settings {
                        period_ms: seen.period_ms.unwrap_or(d.period_ms),
                        track: seen.track.unwrap_or(d.track),
                        granule,
                        window,
                        flush: seen.flush.unwrap_or(d.flush),
                        walk: seen.walk.unwrap_or(d.walk),
                        history: seen.history.unwrap_or(d.history),
                        idle: seen.idle.unwrap_or(d.idle),
                    },
                }
            }
        })
    }
}

impl fmt::Display for Command {
    /// The canonical line, without a newline; every setting spelt out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Attach { pid, fd: None } => write!(f, "attach pid={pid}"),
            Command::Attach { pid, fd: Some(fd) } => write!(f, "attach pid={pid} fd={fd}"),
            Command::Detach(vm) => write!(f, "detach vm={vm}"),
            Command::DetachAll => f.write_str("detach all"),
            Command::Start { vm, settings: s } => write!(
                f,
                "start vm={vm} period_ms={} mode={} granule={} window={} flush={} walk={} history={} idle={}",
                s.period_ms,
                s.track.as_str(),
                s.granule,
                s.window,
                s.flush.as_str(),
                s.walk.as_str(),
                s.history,
                s.idle,
            ),
            Command::Stop(vm) => write!(f, "stop vm={vm}"),
            Command::Tune {
                walk_budget,
                pass_accessed,
            } => {
                f.write_str("tune")?;
                if let Some(n) = walk_budget {
                    write!(f, " walk_budget={n}")?;
                }
                if let &Some(pass) = pass_accessed {
                    write!(f, " pass_accessed={}", yes_no_str(pass))?;
                }
                Ok(())
            }
        }
    }
}
