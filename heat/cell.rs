// SPDX-License-Identifier: GPL-2.0

//! One granule's record: what it is ([`State`]), what the running round has
//! seen of it, and in which of the last rounds it was accessed and dirtied.
//!
//! # Layout
//!
//! A cell is 16, 32 or 64 bits ([`Width`]), stored as 1, 2 or 4 `u16` words,
//! least significant word first:
//!
//! ```text
//! bits 0-2         state: the granule as of the last finished round
//! bits 3-5         round: what the running round has seen (0 = nothing yet)
//! bits 6..6+h      accessed history, bit 6 = the latest round
//! bits 6+h..6+2h   dirty history, same order
//! ```
//!
//! with `h` = 5, 13 or 29 history bits for 16, 32 or 64-bit cells. A heat
//! map with a window of `w` rounds keeps the `w` low bits of each history.
//!
//! State codes are 0 to 6 ([`State::code`]); code 7 never comes out of
//! [`Cell::pack`]. The store uses it to mark a block of equal cells kept as
//! one (see [`store`](super::store), "Uniform blocks"); [`Cell::unpack`]
//! reads it as [`State::Unknown`] wherever else it appears.
//!
//! Every operation on a cell ([`Cell::observe`], [`Cell::next_round`]) is a
//! function of the cell and its arguments only, never of its neighbours or
//! its position: that is what lets the store apply one operation to a whole
//! block of equal cells at once.
//!
//! Keeping the round's observations apart from the state (rather than
//! overwriting the state as visits come in) is what makes the result
//! independent of the order of visits: a granule seen as a hole in one root
//! and as a leaf in another is present whichever root is walked first, and
//! a granule seen only through cold tables keeps its state. It costs three
//! bits per cell, which is why a 16-bit cell has a window of 5, not 6.
//!
//! # Rules
//!
//! Within a round, every visit that says something about a granule is
//! combined with [`State::combine`] (present beats unknown beats hole; leaf
//! sizes merge, different sizes giving [`Sizes::Mixed`]). Cold visits say
//! nothing. At the end of the round [`State::resolve`] turns the previous
//! state and the round's combination into the new state: nothing seen keeps
//! the previous state; present leaves all reported idle (the walker does not
//! say their size) keep the previous size if it was known.

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
    /// a hole. Commutative and associative, so the order of visits does not
    /// matter.
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

/// Bits taken by the state and round fields, below the histories.
const HEADER_BITS: u32 = 6;

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

    /// History bits of each kind (accessed, dirty): the largest window.
    #[inline]
    pub const fn history_bits(self) -> u32 {
        self.bits().wrapping_sub(HEADER_BITS) / 2
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

/// The state a state field holds (code 7, unused by cells, reads as
/// unknown, as in [`Cell::unpack`]).
const fn state_of(code: usize) -> State {
    match State::from_code(code as u8) {
        Some(s) => s,
        None => State::Unknown,
    }
}

/// What a round field holds: 0 nothing, 1 to 7 a state code plus one.
const fn round_of(code: usize) -> Option<State> {
    if code == 0 {
        None
    } else {
        State::from_code((code as u8).wrapping_sub(1))
    }
}

/// `ROUND_SEEN[round][seen]`: the round field after a visit saying state
/// code `seen`, from [`State::combine`].
const ROUND_SEEN: [[u8; 7]; 8] = {
    let mut t = [[0u8; 7]; 8];
    let mut r = 0;
    while r < 8 {
        let mut seen = 0;
        while seen < 7 {
            let now = match round_of(r) {
                None => state_of(seen),
                Some(before) => before.combine(state_of(seen)),
            };
            t[r][seen] = now.code() + 1;
            seen += 1;
        }
        r += 1;
    }
    t
};

/// `SETTLED[state][round]`: the state field once the round closes, from
/// [`State::resolve`].
const SETTLED: [[u8; 8]; 8] = {
    let mut t = [[0u8; 8]; 8];
    let mut st = 0;
    while st < 8 {
        let mut r = 0;
        while r < 8 {
            t[st][r] = State::resolve(state_of(st), round_of(r)).code();
            r += 1;
        }
        st += 1;
    }
    t
};

/// One granule's record, unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell {
    /// The state as of the last finished round.
    pub state: State,
    /// What the running round has seen so far, if anything.
    pub round: Option<State>,
    /// Accessed history: bit 0 is the latest (or running) round.
    pub accessed: u32,
    /// Dirty history, same order.
    pub dirty: u32,
}

impl Cell {
    /// A granule nothing is known about: what every cell starts as, and
    /// what all-zero storage words mean.
    pub const EMPTY: Cell = Cell {
        state: State::Unknown,
        round: None,
        accessed: 0,
        dirty: 0,
    };

    /// The granule's state now: the last round's state updated with what
    /// the running round has seen (the same thing between rounds).
    #[inline]
    pub const fn current(&self) -> State {
        State::resolve(self.state, self.round)
    }

    /// In how many of the last `window` rounds the granule was accessed.
    #[inline]
    pub const fn accessed_rounds(&self, window: u8) -> u8 {
        (self.accessed & low_bits(window as u32)).count_ones() as u8
    }

    /// In how many of the last `window` rounds the granule was dirtied.
    #[inline]
    pub const fn dirty_rounds(&self, window: u8) -> u8 {
        (self.dirty & low_bits(window as u32)).count_ones() as u8
    }

    /// Records one visit of the running round.
    #[inline]
    pub fn observe(&mut self, obs: Observation) {
        if let Some(seen) = obs.state() {
            self.round = Some(match self.round {
                None => seen,
                Some(before) => before.combine(seen),
            });
        }
        if let Observation::Leaf {
            accessed, dirty, ..
        } = obs
        {
            self.accessed |= u32::from(accessed);
            self.dirty |= u32::from(dirty);
        }
    }

    /// Closes the previous round and opens a new one whose history slot is
    /// bit 0, keeping `window` rounds.
    #[inline]
    pub fn next_round(&mut self, window: u8) {
        let mask = low_bits(u32::from(window));
        self.state = self.current();
        self.round = None;
        self.accessed = self.accessed.wrapping_shl(1) & mask;
        self.dirty = self.dirty.wrapping_shl(1) & mask;
    }

    /// [`Cell::observe`] on a packed cell: `pack(unpack(raw).observe(obs))`
    /// computed on the bits (a table lookup and two ORs), for the store's
    /// loops. `raw` holds `width` bits.
    #[inline]
    pub fn observe_packed(raw: u64, width: Width, obs: Observation) -> u64 {
        // State code 7 unpacks as unknown, code 0.
        let raw = if raw & 7 == 7 { raw & !7 } else { raw };
        let Some(seen) = obs.state() else {
            return raw;
        };
        let round = ROUND_SEEN
            .get(((raw >> 3) & 7) as usize)
            .and_then(|row| row.get(usize::from(seen.code())))
            .copied()
            .unwrap_or(0);
        let mut out = (raw & !0x38) | (u64::from(round) << 3);
        if let Observation::Leaf {
            accessed, dirty, ..
        } = obs
        {
            out |= u64::from(accessed) << HEADER_BITS;
            out |= u64::from(dirty).wrapping_shl(HEADER_BITS.wrapping_add(width.history_bits()));
        }
        out
    }

    /// [`Cell::next_round`] on a packed cell, as
    /// [`Cell::observe_packed`].
    #[inline]
    pub fn next_round_packed(raw: u64, width: Width, window: u8) -> u64 {
        let h = width.history_bits();
        let hist = u64::from(low_bits(h));
        let keep = u64::from(low_bits(u32::from(window)));
        let state = SETTLED
            .get((raw & 7) as usize)
            .and_then(|row| row.get(((raw >> 3) & 7) as usize))
            .copied()
            .unwrap_or(0);
        let dirty_at = HEADER_BITS.wrapping_add(h);
        let accessed = ((raw >> HEADER_BITS) & hist).wrapping_shl(1) & keep;
        let dirty = (raw.wrapping_shr(dirty_at) & hist).wrapping_shl(1) & keep;
        u64::from(state) | (accessed << HEADER_BITS) | dirty.wrapping_shl(dirty_at)
    }

    /// The cell as `width` bits (in the low bits of the result). History
    /// bits beyond the width's are dropped.
    #[inline]
    pub const fn pack(&self, width: Width) -> u64 {
        let h = width.history_bits();
        let mask = low_bits(h) as u64;
        let round = match self.round {
            None => 0,
            // Codes are 0 to 6, so this is 1 to 7 and fits the field.
            Some(s) => (s.code() as u64).wrapping_add(1),
        };
        (self.state.code() as u64)
            | (round << 3)
            | ((self.accessed as u64 & mask) << HEADER_BITS)
            | ((self.dirty as u64 & mask).wrapping_shl(HEADER_BITS.wrapping_add(h)))
    }

    /// The cell in the low `width` bits of `raw`. Never fails: the unused
    /// state code 7 reads as [`State::Unknown`].
    #[inline]
    pub const fn unpack(raw: u64, width: Width) -> Cell {
        let h = width.history_bits();
        let mask = low_bits(h) as u64;
        let state = match State::from_code((raw & 7) as u8) {
            Some(s) => s,
            None => State::Unknown,
        };
        // Round codes 1 to 7 are state codes 0 to 6, all valid.
        let round = match (raw >> 3) & 7 {
            0 => None,
            code => State::from_code((code as u8).wrapping_sub(1)),
        };
        Cell {
            state,
            round,
            accessed: ((raw >> HEADER_BITS) & mask) as u32,
            dirty: (raw.wrapping_shr(HEADER_BITS.wrapping_add(h)) & mask) as u32,
        }
    }
}
