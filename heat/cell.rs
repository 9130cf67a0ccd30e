// SPDX-License-Identifier: GPL-2.0

//! One granule's record: what it is ([`State`]), whether the running round
//! has visited it, and for each of the accessed and dirty bits either the
//! last rounds it was found set in or how long it has been idle.
//!
//! # Layout
//!
//! A cell is 16, 32 or 64 bits ([`Width`]), stored as 1, 2 or 4 `u16` words,
//! least significant word first:
//!
//! ```text
//! bits 0-3           header: the state, and what the running round has seen
//! bits 4..5+h        accessed trace: h value bits, then the aged flag
//! bits 5+h..6+2h     dirty trace, the same
//! ```
//!
//! with `h` = 5, 13 or 29 for 16, 32 or 64-bit cells. A trace ([`Trace`])
//! is one of three things, told apart by its aged flag and value:
//!
//! - flag clear, value 0: [`Trace::Never`], the bit was never found set
//!   since the cell was created ("idle since start", not "idle for 0
//!   rounds");
//! - flag clear, value not 0: [`Trace::Recent`], the window's history, bit
//!   0 the running round: the bit was found set within the window, and the
//!   lowest set bit is exactly how many rounds ago;
//! - flag set: [`Trace::Aged`], not found set within the window, and the
//!   value is a log-scaled count of the rounds since (see "Idle age").
//!
//! The history and the age never need to be kept at once: a history that
//! slides to zero becomes an age, and a bit found set turns an age back
//! into a history. So an age costs one flag bit per trace, and a heat map
//! still keeps windows of up to `h` rounds: 5 at 4 KiB, as before ages
//! existed (see [`store`](super::store), "Memory bound"). The two flag
//! bits come from the header, which used to take six bits (see "Rules").
//!
//! Every operation on a cell ([`Cell::observe`], [`Cell::next_round`]) is a
//! function of the cell and its arguments only (the round number is one),
//! never of its neighbours or its position: that is what lets the store
//! apply one operation to a whole block of equal cells at once. The store
//! marks such a block with a value no cell takes ([`Cell::UNIFORM_MARK`]).
//!
//! # Rules
//!
//! Within a round, every visit that says something about a granule is
//! combined with [`State::combine`] (present beats unknown beats hole; leaf
//! sizes merge, different sizes giving [`Sizes::Mixed`]). Cold visits say
//! nothing. At the end of the round [`State::resolve`] turns the previous
//! state and the round's combination into the new state: nothing seen keeps
//! the previous state; present leaves all reported idle (the walker does not
//! say their size) keep the previous size if it was known. Kept apart, the
//! previous state and the round's combination would make the result
//! independent of the order of visits.
//!
//! They would take 7 x 8 values; the [`Header`] keeps them in 16 by
//! forgetting the previous state where the round has made it irrelevant or
//! nearly so, which costs two losses, both of the size word only and both
//! depending on the order of visits within a round (presence, the traces
//! and everything else never do):
//!
//! - a granule previously of a known size whose round sees a hole or an
//!   unknown entry and then idle leaves is present with its size not seen
//!   (`?`); idle leaves first keep the size;
//! - a granule previously `mixed` whose round sees idle leaves and then a
//!   leaf of one size stays `mixed`; the sized leaf first gives its size.
//!
//! Everything else is exact: the previous state is kept while the round has
//! seen nothing, or only idle leaves (so that a huge page split into idle
//! 4 KiB leaves and one accessed leaf is `4K`, not `mixed`), and forgotten
//! once the round has seen a leaf with its size (it no longer matters). The
//! heat map's visitor hands the store its visits in the walker's order.
//!
//! # Idle age
//!
//! An aged trace counts rounds on a log scale, so that 5 bits reach hours:
//! its level is a float, an exponent `e` over [`Width::age_mantissa_bits`]
//! mantissa bits (`m` = 2 levels per exponent in 16-bit cells, 4 in wider
//! ones). Level 0 is "the set bit has just slid out of the window" (`w`
//! rounds ago); each round, a level steps up by one if the new round's
//! number is a multiple of `2^e` ([`Width::age_step`]), and stays at the
//! highest level ([`Width::max_level`]) once there. Exponent 0 counts every
//! round, exactly; a higher exponent counts every `2^e` rounds, the first of
//! its levels after `2^(e-1)` or `2^e` of them depending on the round it was
//! entered in. So a level says the age within bounds
//! ([`Width::level_ages`]): exact below `w + m` rounds, then within a
//! factor of 2 for 16-bit cells and of 1.5 for wider ones. A 16-bit cell
//! saturates once surely idle for `w + 65535` rounds (1 h 49 min at 100
//! ms and a window of 5); wider cells stop at exponent
//! [`AGE_MAX_EXPONENT`], thousands of years. Readers count a granule by the
//! lower bound ([`Idle::at_least`]), so that memory is never called idle
//! for longer than it has been.
//!
//! Steps on multiples of the round number, rather than after so many
//! rounds in the level, is what lets cells that became idle in nearby
//! rounds end up equal: a block whose pages were all touched during a
//! burst of `S` rounds becomes uniform again (one cell for the block) about
//! `2.5 S` to `4.5 S` rounds after the burst in 16-bit cells, `5 S` to `7
//! S` in wider ones (few mantissa bits merge sooner), instead of staying
//! dense for hours.

use crate::ept_walk::PageSize;

/// The sizes of the present leaves in a granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sizes {
    /// Present, but no leaf of it was reported with its size: the walker
    /// reports idle leaves as ranges, without sizes.
    Unseen,
    /// Every leaf seen has this size.
    One(PageSize),
    /// Leaves of several sizes: a granule larger than a leaf, or two roots
    /// mapping the same frames differently.
    Mixed,
}

impl Sizes {
    /// The merge of two observations of the same granule.
    #[inline]
    pub const fn merge(self, other: Sizes) -> Sizes {
        match (self, other) {
            (Sizes::Unseen, x) | (x, Sizes::Unseen) => x,
            (Sizes::One(a), Sizes::One(b)) => {
                if a as u8 == b as u8 {
                    Sizes::One(a)
                } else {
                    Sizes::Mixed
                }
            }
            _ => Sizes::Mixed,
        }
    }
}

/// What is known about a granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Nothing: never walked, or the walk could not judge it (a frozen or
    /// untracked entry, an unreachable table).
    Unknown,
    /// Not mapped: no present entry in any root. Not the same as idle.
    Hole,
    /// Mapped by present leaves in at least one root.
    Present(Sizes),
}

impl State {
    /// The combination of two observations made in the same round.
    ///
    /// Present beats unknown beats hole: a frame mapped in any root is
    /// mapped, and a frame that one root could not judge is not known to be
    /// a hole. Commutative and associative: what a round's visits combine
    /// to does not depend on their order (what the [`Header`] keeps of it
    /// does, in two cases: module docs, "Rules").
    #[inline]
    pub const fn combine(self, other: State) -> State {
        match (self, other) {
            (State::Present(a), State::Present(b)) => State::Present(a.merge(b)),
            (State::Present(a), _) | (_, State::Present(a)) => State::Present(a),
            (State::Unknown, _) | (_, State::Unknown) => State::Unknown,
            (State::Hole, State::Hole) => State::Hole,
        }
    }

    /// The state after a round whose observations combine to `round`
    /// (`None`: the round said nothing, e.g. only cold tables).
    #[inline]
    pub const fn resolve(prev: State, round: Option<State>) -> State {
        match (prev, round) {
            (prev, None) => prev,
            // Idle leaves only: their size was not reported, the previous
            // one still holds unless KVM replaced them, which it does only
            // through a fault that sets A and so reports the leaf.
            (State::Present(prev), Some(State::Present(Sizes::Unseen))) => State::Present(prev),
            (_, Some(now)) => now,
        }
    }

    /// Code 0 to 6 for bit fields and binary records.
    #[inline]
    pub const fn code(self) -> u8 {
        match self {
            State::Unknown => 0,
            State::Hole => 1,
            State::Present(Sizes::Unseen) => 2,
            State::Present(Sizes::One(PageSize::Size4K)) => 3,
            State::Present(Sizes::One(PageSize::Size2M)) => 4,
            State::Present(Sizes::One(PageSize::Size1G)) => 5,
            State::Present(Sizes::Mixed) => 6,
        }
    }

    /// The inverse of [`State::code`]; `None` for 7 and above.
    #[inline]
    pub const fn from_code(code: u8) -> Option<State> {
        Some(match code {
            0 => State::Unknown,
            1 => State::Hole,
            2 => State::Present(Sizes::Unseen),
            3 => State::Present(Sizes::One(PageSize::Size4K)),
            4 => State::Present(Sizes::One(PageSize::Size2M)),
            5 => State::Present(Sizes::One(PageSize::Size1G)),
            6 => State::Present(Sizes::Mixed),
            _ => return None,
        })
    }

    /// The word for this state in the text heat map's `leaf` column:
    /// `unknown`, `hole`, `?` (present, size not seen), `4K`, `2M`, `1G`,
    /// `mixed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Hole => "hole",
            State::Present(Sizes::Unseen) => "?",
            State::Present(Sizes::One(PageSize::Size4K)) => "4K",
            State::Present(Sizes::One(PageSize::Size2M)) => "2M",
            State::Present(Sizes::One(PageSize::Size1G)) => "1G",
            State::Present(Sizes::Mixed) => "mixed",
        }
    }

    /// Parses [`State::as_str`]'s words.
    pub fn parse(word: &str) -> Option<State> {
        (0..7u8)
            .filter_map(State::from_code)
            .find(|s| s.as_str() == word)
    }
}

/// What one visit of the walker says about the frames it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// A present leaf of this size, with the bits the round records (the
    /// caller has already dropped the bits it does not track).
    Leaf {
        /// The leaf's size.
        size: PageSize,
        /// Record an access.
        accessed: bool,
        /// Record a write.
        dirty: bool,
    },
    /// Present leaves, neither accessed nor dirty, size not reported.
    Idle,
    /// No present entry.
    Hole,
    /// Under a table whose accessed bit was clear: nothing accessed, and
    /// nothing learnt about presence.
    Cold,
    /// Could not be judged (frozen, untracked, unreachable, malformed).
    Unknown,
}

impl Observation {
    /// What the observation says about presence: `None` for cold.
    #[inline]
    pub const fn state(self) -> Option<State> {
        match self {
            Observation::Leaf { size, .. } => Some(State::Present(Sizes::One(size))),
            Observation::Idle => Some(State::Present(Sizes::Unseen)),
            Observation::Hole => Some(State::Hole),
            Observation::Cold => None,
            Observation::Unknown => Some(State::Unknown),
        }
    }
}

/// How many bits a cell has. Chosen per heat map as the narrowest that
/// holds the window ([`Width::for_window`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// 16 bits, windows up to 5.
    W16,
    /// 32 bits, windows up to 13.
    W32,
    /// 64 bits, windows up to 29.
    W64,
}

/// Bits taken by the header, below the traces.
const HEADER_BITS: u32 = 4;

/// The header's bits.
const HEADER_MASK: u64 = 15;

/// The highest exponent of an aged trace's level in 32 and 64-bit cells
/// (module docs, "Idle age"); 16-bit cells stop at 15.
pub const AGE_MAX_EXPONENT: u32 = 40;

impl Width {
    /// The largest window any cell can hold (that of [`Width::W64`]).
    pub const MAX_WINDOW: u8 = 29;

    /// Number of bits.
    #[inline]
    pub const fn bits(self) -> u32 {
        match self {
            Width::W16 => 16,
            Width::W32 => 32,
            Width::W64 => 64,
        }
    }

    /// Number of `u16` storage words.
    #[inline]
    pub const fn words(self) -> usize {
        match self {
            Width::W16 => 1,
            Width::W32 => 2,
            Width::W64 => 4,
        }
    }

    /// Number of bytes.
    #[inline]
    pub const fn bytes(self) -> usize {
        self.words().wrapping_mul(2)
    }

    /// Value bits of a trace: the largest window, and the bits of an aged
    /// trace's level.
    #[inline]
    pub const fn history_bits(self) -> u32 {
        // Two traces of a value and an aged flag each.
        (self.bits().wrapping_sub(HEADER_BITS) / 2).wrapping_sub(1)
    }

    /// The history bits a window of `window` rounds keeps (no more than
    /// the width holds).
    #[inline]
    pub const fn window_mask(self, window: u8) -> u32 {
        let h = self.history_bits();
        let w = window as u32;
        low_bits(if w < h { w } else { h })
    }

    /// Mantissa bits of an aged trace's level: 1 in 16-bit cells (whose
    /// other 4 are the exponent), 2 in wider ones. Few, so that ages merge
    /// (module docs, "Idle age").
    #[inline]
    pub const fn age_mantissa_bits(self) -> u32 {
        match self {
            Width::W16 => 1,
            Width::W32 | Width::W64 => 2,
        }
    }

    /// The highest level of an aged trace, where it saturates: the most
    /// the value bits hold, exponent at most [`AGE_MAX_EXPONENT`].
    #[inline]
    pub const fn max_level(self) -> u32 {
        let bits = low_bits(self.history_bits());
        let exponents = ((AGE_MAX_EXPONENT + 1) << self.age_mantissa_bits()).wrapping_sub(1);
        if bits < exponents {
            bits
        } else {
            exponents
        }
    }

    /// The level an aged trace at `level` has once round number `round`
    /// begins: one more if `round` is a multiple of `2^e` (`e` the level's
    /// exponent), unless it is the highest.
    #[inline]
    pub const fn age_step(self, level: u32, round: u64) -> u32 {
        let max = self.max_level();
        if level >= max {
            return max;
        }
        // `level < max_level`, so `e <= AGE_MAX_EXPONENT`.
        let e = level.wrapping_shr(self.age_mantissa_bits());
        let due = (1u64.wrapping_shl(e)).wrapping_sub(1);
        if round & due == 0 {
            level.wrapping_add(1)
        } else {
            level
        }
    }

    /// The rounds since the bit was last found set, for an aged trace at
    /// `level` in a heat map of window `window`: at least the first, at
    /// most the second (`u64::MAX` at the highest level, which stays).
    ///
    /// Level 0 is entered `window` rounds after the bit was last set; each
    /// later level after as many rounds as the one below it lasted: one
    /// round at exponent 0, `2^(e-1)` or `2^e` for the first level of
    /// exponent `e`, `2^e` for the others (module docs, "Idle age").
    pub const fn level_ages(self, level: u32, window: u8) -> (u64, u64) {
        let max = self.max_level();
        let level = if level > max { max } else { level };
        let mb = self.age_mantissa_bits();
        let m = 1u64 << mb;
        let e = level >> mb;
        let s = (level as u64) & (m - 1);
        let w = window as u64;
        // Nothing below comes near overflowing (`m * 2^e <= 2^42`), but
        // the arithmetic saturates rather than trust that.
        let (lo, hi, dwell) = if e == 0 {
            (w.saturating_add(s), w.saturating_add(s), 1)
        } else {
            let p = 1u64 << e;
            let half = p >> 1;
            // Every level of the exponents below `e`.
            let below_lo = m
                .saturating_add(half - 1)
                .saturating_add((m - 1).saturating_mul(p - 2));
            let below_hi = m.saturating_add(m.saturating_mul(p - 2));
            // The `s` levels of exponent `e` below this one.
            let here_lo = if s == 0 {
                0
            } else {
                half.saturating_add((s - 1).saturating_mul(p))
            };
            let here_hi = s.saturating_mul(p);
            (
                w.saturating_add(below_lo).saturating_add(here_lo),
                w.saturating_add(below_hi).saturating_add(here_hi),
                p,
            )
        };
        if level == max {
            (lo, u64::MAX)
        } else {
            (lo, hi.saturating_add(dwell - 1))
        }
    }

    /// The narrowest width holding a window of `window` rounds; `None` if
    /// `window` is 0 or above [`Width::MAX_WINDOW`].
    pub const fn for_window(window: u8) -> Option<Width> {
        let w = window as u32;
        if w == 0 {
            None
        } else if w <= Width::W16.history_bits() {
            Some(Width::W16)
        } else if w <= Width::W32.history_bits() {
            Some(Width::W32)
        } else if w <= Width::W64.history_bits() {
            Some(Width::W64)
        } else {
            None
        }
    }

    /// Where the accessed trace starts.
    #[inline]
    const fn accessed_at(self) -> u32 {
        HEADER_BITS
    }

    /// Where the dirty trace starts.
    #[inline]
    const fn dirty_at(self) -> u32 {
        HEADER_BITS
            .wrapping_add(self.history_bits())
            .wrapping_add(1)
    }
}

/// A mask of the `n` low bits, `n <= 32`.
#[inline]
pub const fn low_bits(n: u32) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n).wrapping_sub(1)
    }
}

/// How long a granule has gone without a bit found set, as far as its
/// trace says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Idle {
    /// Never found set since the cell was created: idle at least as long
    /// as the heat map has sampled.
    SinceStart,
    /// Last found set between `min` and `max` rounds ago (0: in the running
    /// round; `max` is `u64::MAX` once the count saturates).
    Rounds {
        /// At least this many rounds.
        min: u64,
        /// At most this many.
        max: u64,
    },
}

impl Idle {
    /// The fewest rounds the granule has surely been idle, given that the
    /// heat map has begun `rounds` rounds: what "idle for at least" counts.
    #[inline]
    pub const fn at_least(self, rounds: u64) -> u64 {
        match self {
            Idle::SinceStart => rounds,
            Idle::Rounds { min, .. } => min,
        }
    }
}

/// What a cell knows about one bit (accessed or dirty) over the rounds
/// (module docs, "Layout").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trace {
    /// Never found set.
    Never,
    /// Found set within the window: the history, bit 0 the running round.
    /// Not 0 (that is [`Trace::Never`] once packed).
    Recent(u32),
    /// Not found set within the window: the log-scaled age level.
    Aged(u32),
}

impl Trace {
    /// In how many of the last `window` rounds the bit was found set.
    #[inline]
    pub const fn rounds(self, window: u8) -> u8 {
        match self {
            Trace::Recent(h) => (h & low_bits(window as u32)).count_ones() as u8,
            Trace::Never | Trace::Aged(_) => 0,
        }
    }

    /// The trace once the bit is found set in the running round.
    #[inline]
    pub const fn set(self) -> Trace {
        match self {
            Trace::Recent(h) => Trace::Recent(h | 1),
            Trace::Never | Trace::Aged(_) => Trace::Recent(1),
        }
    }

    /// The trace once round number `round` begins, in a heat map keeping
    /// `window` rounds in cells of `width`: a history slides by one (and
    /// becomes an age when its last set bit slides out), an age steps.
    #[inline]
    pub const fn next_round(self, width: Width, window: u8, round: u64) -> Trace {
        match self {
            Trace::Never => Trace::Never,
            Trace::Recent(h) => {
                let h = h.wrapping_shl(1) & width.window_mask(window);
                if h == 0 {
                    Trace::Aged(0)
                } else {
                    Trace::Recent(h)
                }
            }
            Trace::Aged(level) => Trace::Aged(width.age_step(level, round)),
        }
    }

    /// How long the bit has not been found set, for a heat map of window
    /// `window` in cells of `width`.
    #[inline]
    pub const fn idle(self, width: Width, window: u8) -> Idle {
        match self {
            Trace::Never => Idle::SinceStart,
            Trace::Recent(h) => {
                let n = h.trailing_zeros() as u64;
                Idle::Rounds { min: n, max: n }
            }
            Trace::Aged(level) => {
                let (min, max) = width.level_ages(level, window);
                Idle::Rounds { min, max }
            }
        }
    }

    /// The trace as `width`'s value bits and aged flag (in the low bits of
    /// the result). Value bits beyond the width's are dropped.
    #[inline]
    pub const fn pack(self, width: Width) -> u64 {
        let h = width.history_bits();
        let mask = low_bits(h) as u64;
        match self {
            Trace::Never => 0,
            Trace::Recent(v) => v as u64 & mask,
            Trace::Aged(level) => (1u64 << h) | (level as u64 & mask),
        }
    }

    /// The trace in the low bits of `raw` (value bits and aged flag).
    #[inline]
    pub const fn unpack(raw: u64, width: Width) -> Trace {
        let h = width.history_bits();
        let value = (raw & low_bits(h) as u64) as u32;
        if raw & (1u64 << h) != 0 {
            Trace::Aged(value)
        } else if value == 0 {
            Trace::Never
        } else {
            Trace::Recent(value)
        }
    }
}

/// A cell's state and what the running round has seen of it, in 16 values
/// (module docs, "Rules"): code 0 to 6 is a state (as [`State::code`]) the
/// round has said nothing about, or, for code 1, a hole the round has seen
/// too; codes 7 to 15 are states the round has changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header(u8);

/// A header as the pair it stands for: (previous state, round so far).
type Pair = (State, Option<State>);

/// The pair header code `code` stands for (the low 4 bits are read).
const fn pair_of(code: u8) -> Pair {
    const P4K: State = State::Present(Sizes::One(PageSize::Size4K));
    const P2M: State = State::Present(Sizes::One(PageSize::Size2M));
    const P1G: State = State::Present(Sizes::One(PageSize::Size1G));
    const IDLE: State = State::Present(Sizes::Unseen);
    const MIXED: State = State::Present(Sizes::Mixed);
    match code & 15 {
        7 => (State::Unknown, Some(State::Unknown)),
        8 => (State::Unknown, Some(IDLE)),
        9 => (State::Unknown, Some(P4K)),
        10 => (State::Unknown, Some(P2M)),
        11 => (State::Unknown, Some(P1G)),
        12 => (State::Unknown, Some(MIXED)),
        13 => (P4K, Some(IDLE)),
        14 => (P2M, Some(IDLE)),
        15 => (P1G, Some(IDLE)),
        c => match State::from_code(c) {
            Some(s) => (s, None),
            // Not reached: 0 to 6 are state codes.
            None => (State::Unknown, None),
        },
    }
}

/// The header code keeping as much of `pair` as 16 values can (module
/// docs, "Rules").
const fn code_of(pair: Pair) -> u8 {
    match pair {
        (prev, None) => prev.code(),
        (_, Some(State::Hole)) => 1,
        (_, Some(State::Unknown)) => 7,
        (prev, Some(State::Present(Sizes::Unseen))) => match prev {
            State::Present(Sizes::One(PageSize::Size4K)) => 13,
            State::Present(Sizes::One(PageSize::Size2M)) => 14,
            State::Present(Sizes::One(PageSize::Size1G)) => 15,
            State::Present(Sizes::Mixed) => 12,
            _ => 8,
        },
        (_, Some(State::Present(Sizes::One(PageSize::Size4K)))) => 9,
        (_, Some(State::Present(Sizes::One(PageSize::Size2M)))) => 10,
        (_, Some(State::Present(Sizes::One(PageSize::Size1G)))) => 11,
        (_, Some(State::Present(Sizes::Mixed))) => 12,
    }
}

/// `AFTER_VISIT[header][seen]`: the header after a visit saying state code
/// `seen`.
const AFTER_VISIT: [[u8; 7]; 16] = {
    let mut t = [[0u8; 7]; 16];
    let mut h = 0;
    while h < 16 {
        let (prev, round) = pair_of(h as u8);
        let mut seen = 0;
        while seen < 7 {
            let now = match State::from_code(seen as u8) {
                Some(s) => s,
                None => State::Unknown,
            };
            let round = match round {
                None => now,
                Some(before) => before.combine(now),
            };
            t[h][seen] = code_of((prev, Some(round)));
            seen += 1;
        }
        h += 1;
    }
    t
};

/// `SETTLED[header]`: the header once the round closes.
const SETTLED: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut h = 0;
    while h < 16 {
        let (prev, round) = pair_of(h as u8);
        t[h] = State::resolve(prev, round).code();
        h += 1;
    }
    t
};

impl Header {
    /// Nothing known, nothing seen: code 0.
    pub const EMPTY: Header = Header(0);

    /// The header of code `code` (its low 4 bits).
    #[inline]
    pub const fn from_code(code: u8) -> Header {
        Header(code & 15)
    }

    /// The code, 0 to 15.
    #[inline]
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The header of a granule in `state` the running round has said
    /// nothing about.
    #[inline]
    pub const fn settled(state: State) -> Header {
        Header(state.code())
    }

    /// The granule's state now, the running round's visits included.
    #[inline]
    pub const fn state(self) -> State {
        let (prev, round) = pair_of(self.0);
        State::resolve(prev, round)
    }

    /// The header after a visit saying `seen`.
    #[inline]
    pub fn observe(self, seen: State) -> Header {
        let code = AFTER_VISIT
            .get(self.0 as usize)
            .and_then(|row| row.get(seen.code() as usize))
            .copied()
            .unwrap_or(0);
        Header(code)
    }

    /// The header once the round closes: its state, nothing seen.
    #[inline]
    pub fn next_round(self) -> Header {
        Header(SETTLED.get(self.0 as usize).copied().unwrap_or(0))
    }
}

/// [`Trace::set`] on the trace at bit `at` of the packed cell `raw`.
#[inline]
fn set_packed(raw: u64, at: u32, width: Width) -> u64 {
    let h = width.history_bits();
    let field = raw.wrapping_shr(at) & u64::from(low_bits(h.wrapping_add(1)));
    if field.wrapping_shr(h) != 0 {
        // Aged: recent again, set in this round only.
        let clear = u64::from(low_bits(h.wrapping_add(1))).wrapping_shl(at);
        (raw & !clear) | 1u64.wrapping_shl(at)
    } else {
        raw | 1u64.wrapping_shl(at)
    }
}

/// [`Trace::next_round`] on a packed trace `field` (value bits and aged
/// flag).
#[inline]
fn next_round_of(field: u64, width: Width, window: u8, round: u64) -> u64 {
    let h = width.history_bits();
    let aged = 1u64.wrapping_shl(h);
    if field == 0 {
        // Never set: the common case of idle memory.
        0
    } else if field & aged != 0 {
        aged | u64::from(width.age_step((field & !aged) as u32, round))
    } else {
        let slid = field.wrapping_shl(1) & u64::from(width.window_mask(window));
        if slid == 0 {
            aged
        } else {
            slid
        }
    }
}

/// One granule's record, unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell {
    /// The state, and what the running round has seen.
    pub header: Header,
    /// The accessed bit's trace.
    pub accessed: Trace,
    /// The dirty bit's trace.
    pub dirty: Trace,
}

impl Cell {
    /// A granule nothing is known about: what every cell starts as, and
    /// what all-zero storage words mean.
    pub const EMPTY: Cell = Cell {
        header: Header::EMPTY,
        accessed: Trace::Never,
        dirty: Trace::Never,
    };

    /// The granule's state now, the running round's visits included.
    #[inline]
    pub const fn current(&self) -> State {
        self.header.state()
    }

    /// The first slot of a uniform block in the store: a value no cell
    /// takes, since an accessed bit is found set in the running round only
    /// by a visit, which leaves a header of code 1 (a hole) or 7 and above
    /// (and code 1 only if no visit was a leaf).
    pub const UNIFORM_MARK: u64 = 1 << HEADER_BITS;

    /// In how many of the last `window` rounds the granule was accessed.
    #[inline]
    pub const fn accessed_rounds(&self, window: u8) -> u8 {
        self.accessed.rounds(window)
    }

    /// In how many of the last `window` rounds the granule was dirtied.
    #[inline]
    pub const fn dirty_rounds(&self, window: u8) -> u8 {
        self.dirty.rounds(window)
    }

    /// Records one visit of the running round (module docs, "Rules").
    #[inline]
    pub fn observe(&mut self, obs: Observation) {
        if let Some(now) = obs.state() {
            self.header = self.header.observe(now);
        }
        if let Observation::Leaf {
            accessed, dirty, ..
        } = obs
        {
            if accessed {
                self.accessed = self.accessed.set();
            }
            if dirty {
                self.dirty = self.dirty.set();
            }
        }
    }

    /// Closes the running round and opens round number `round`, keeping
    /// `window` rounds of history in cells of `width`.
    #[inline]
    pub fn next_round(&mut self, width: Width, window: u8, round: u64) {
        self.header = self.header.next_round();
        self.accessed = self.accessed.next_round(width, window, round);
        self.dirty = self.dirty.next_round(width, window, round);
    }

    /// [`Cell::observe`] on a packed cell, for the store's loops: the
    /// same as `pack(unpack(raw).observe(obs))`, on the bits (a table
    /// lookup for the header, a test and an OR per trace). `raw` holds
    /// `width` bits.
    #[inline]
    pub fn observe_packed(raw: u64, width: Width, obs: Observation) -> u64 {
        let Some(seen) = obs.state() else {
            return raw;
        };
        let header = AFTER_VISIT
            .get((raw & HEADER_MASK) as usize)
            .and_then(|row| row.get(seen.code() as usize))
            .copied()
            .unwrap_or(0);
        let mut out = (raw & !HEADER_MASK) | u64::from(header);
        if let Observation::Leaf {
            accessed, dirty, ..
        } = obs
        {
            if accessed {
                out = set_packed(out, width.accessed_at(), width);
            }
            if dirty {
                out = set_packed(out, width.dirty_at(), width);
            }
        }
        out
    }

    /// [`Cell::next_round`] on a packed cell, as
    /// [`Cell::observe_packed`].
    #[inline]
    pub fn next_round_packed(raw: u64, width: Width, window: u8, round: u64) -> u64 {
        let header = SETTLED
            .get((raw & HEADER_MASK) as usize)
            .copied()
            .unwrap_or(0);
        let a = width.accessed_at();
        let d = width.dirty_at();
        let fields = u64::from(low_bits(width.history_bits().wrapping_add(1)));
        let accessed = next_round_of(raw.wrapping_shr(a) & fields, width, window, round);
        let dirty = next_round_of(raw.wrapping_shr(d) & fields, width, window, round);
        u64::from(header) | accessed.wrapping_shl(a) | dirty.wrapping_shl(d)
    }

    /// The cell as `width` bits (in the low bits of the result). Value bits
    /// beyond the width's are dropped.
    #[inline]
    pub const fn pack(&self, width: Width) -> u64 {
        (self.header.code() as u64)
            | self.accessed.pack(width).wrapping_shl(width.accessed_at())
            | self.dirty.pack(width).wrapping_shl(width.dirty_at())
    }

    /// The cell in the low `width` bits of `raw`. Never fails: every value
    /// is some cell.
    #[inline]
    pub const fn unpack(raw: u64, width: Width) -> Cell {
        Cell {
            header: Header::from_code(raw as u8),
            accessed: Trace::unpack(raw.wrapping_shr(width.accessed_at()), width),
            dirty: Trace::unpack(raw.wrapping_shr(width.dirty_at()), width),
        }
    }
}
