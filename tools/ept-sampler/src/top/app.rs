// SPDX-License-Identifier: GPL-2.0

//! The state of `top` and what a key does to it: pure, so that every key
//! is tested without a terminal. The loop in [`super::run`] turns the
//! [`Effect`]s returned here into writes to `control`, and the view in
//! [`super::view`] draws an [`App`].

use std::collections::{BTreeMap, VecDeque};

use ept_core::procfs::control::{Command, VmId, PERIOD_MS_MAX, PERIOD_MS_MIN};
use ept_core::procfs::vms::VmState;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::error::Error;
use crate::model::{Snapshot, VmSnapshot};

/// The periods `+` and `-` step through, ms: round numbers a person would
/// pick, within the module's bounds (checked in the tests).
pub const PERIOD_STEPS: [u32; 12] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];

/// Points of working-set size kept per VM across refreshes (a wide
/// terminal shows at most this many).
pub const WSS_POINTS: usize = 1024;

/// What a key asks for, before looking at the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave `top`.
    Quit,
    /// Close the detail pane if it is open, otherwise leave.
    Back,
    /// Select the VM above.
    Up,
    /// Select the VM below.
    Down,
    /// Open or close the detail pane of the selected VM.
    Detail,
    /// Lengthen the selected VM's period (sample less often).
    Slower,
    /// Shorten the selected VM's period (sample more often).
    Faster,
    /// Stop or resume refreshing.
    Pause,
    /// Nothing.
    None,
}

/// Maps a key to an [`Action`]. Only presses count (terminals that report
/// releases would otherwise act twice).
pub fn action(key: KeyEvent) -> Action {
    if key.kind != KeyEventKind::Press {
        return Action::None;
    }
    // Raw mode turns Ctrl-C into a key rather than SIGINT: it must still
    // leave (through the normal path, which restores the terminal).
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('c') | KeyCode::Char('d') => Action::Quit,
            _ => Action::None,
        };
    }
    match key.code {
        KeyCode::Char('q') | KeyCode::Char('Q') => Action::Quit,
        KeyCode::Esc => Action::Back,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Enter | KeyCode::Char('d') => Action::Detail,
        // `=` and `_` are `+` and `-` without shift on most layouts.
        KeyCode::Char('+') | KeyCode::Char('=') => Action::Slower,
        KeyCode::Char('-') | KeyCode::Char('_') => Action::Faster,
        KeyCode::Char('p') | KeyCode::Char(' ') => Action::Pause,
        _ => Action::None,
    }
}

/// What the loop must do after an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond redrawing.
    None,
    /// Leave `top`.
    Quit,
    /// Write this command to `control`, then report the outcome with
    /// [`App::command_done`].
    Write(Command),
}

/// Where the snapshots come from (shown in the title; decides whether
/// the period can be changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The module's directory (or a copy of it), read every refresh.
    Live(String),
    /// A recording, one snapshot per refresh.
    Replay(String),
}

/// A line for the status bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The text.
    pub text: String,
    /// Whether it reports a failure (drawn in red).
    pub error: bool,
}

/// Working-set sizes of one VM by round, merged from every `history`
/// read, so that the sparkline grows beyond the ring's length.
#[derive(Clone, Debug, Default)]
pub struct WssSeries {
    points: VecDeque<(u64, u64)>,
}

impl WssSeries {
    /// Adds the rounds of `vm`'s history that are newer than the last one
    /// kept. A history whose newest round is older than the last kept one
    /// belongs to a new heat map (new settings): the series starts over.
    pub fn merge(&mut self, vm: &VmSnapshot) {
        let Some(history) = &vm.history else {
            return;
        };
        let newest = history.rounds.last().map(|r| r.record.round);
        let last = self.points.back().map(|p| p.0);
        if let (Some(newest), Some(last)) = (newest, last) {
            if newest < last {
                self.points.clear();
            }
        }
        let last = self.points.back().map(|p| p.0);
        for r in &history.rounds {
            if last.is_none_or(|l| r.record.round > l) {
                self.points
                    .push_back((r.record.round, r.record.accessed_pages));
            }
        }
        while self.points.len() > WSS_POINTS {
            self.points.pop_front();
        }
    }

    /// Accessed 4 KiB pages per round, oldest first.
    pub fn pages(&self) -> impl DoubleEndedIterator<Item = u64> + ExactSizeIterator + '_ {
        self.points.iter().map(|p| p.1)
    }

    /// How many rounds are kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no round is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// Everything `top` shows.
#[derive(Debug)]
pub struct App {
    /// Where snapshots come from.
    pub source: SourceKind,
    /// Refresh interval, ms.
    pub interval_ms: u64,
    /// The latest snapshot (none before the first read succeeds).
    pub snapshot: Option<Snapshot>,
    /// The selected VM, by id, so that it stays selected when VMs come
    /// and go.
    pub selected: Option<VmId>,
    /// Whether the detail pane is open.
    pub detail: bool,
    /// Whether refreshing is paused.
    pub paused: bool,
    /// Whether to use colour (off with `NO_COLOR`).
    pub color: bool,
    /// The status bar.
    pub status: Option<Status>,
    /// Working-set series by VM.
    pub wss: BTreeMap<VmId, WssSeries>,
    /// The command being written, for [`App::command_done`].
    pending: Option<Command>,
    /// Whether the status line says that the last refresh failed (the
    /// next good one clears it).
    refresh_failing: bool,
}

impl App {
    /// An empty state.
    pub fn new(source: SourceKind, interval_ms: u64) -> App {
        App {
            source,
            interval_ms,
            snapshot: None,
            selected: None,
            detail: false,
            paused: false,
            color: true,
            status: None,
            wss: BTreeMap::new(),
            pending: None,
            refresh_failing: false,
        }
    }

    /// Takes a new snapshot: keeps the selection on the same VM (or the
    /// first VM if it went away) and extends the working-set series.
    pub fn update(&mut self, snapshot: Snapshot) {
        for vm in &snapshot.vms {
            self.wss.entry(vm.row.vm).or_default().merge(vm);
        }
        self.wss
            .retain(|id, _| snapshot.vms.iter().any(|v| v.row.vm == *id));
        let still_there = self
            .selected
            .is_some_and(|id| snapshot.vms.iter().any(|v| v.row.vm == id));
        if !still_there {
            self.selected = snapshot.vms.first().map(|v| v.row.vm);
        }
        self.snapshot = Some(snapshot);
        if std::mem::take(&mut self.refresh_failing) {
            self.status = None;
        }
    }

    /// Reports a failed refresh; the last snapshot stays on screen.
    pub fn refresh_failed(&mut self, what: String) {
        self.set_error(format!("refresh failed: {what}"));
        self.refresh_failing = true;
    }

    /// Every VM of the latest snapshot.
    pub fn vms(&self) -> &[VmSnapshot] {
        self.snapshot.as_ref().map_or(&[], |s| s.vms.as_slice())
    }

    /// Index of the selected VM in [`App::vms`].
    pub fn selected_index(&self) -> Option<usize> {
        let id = self.selected?;
        self.vms().iter().position(|v| v.row.vm == id)
    }

    /// The selected VM.
    pub fn selected_vm(&self) -> Option<&VmSnapshot> {
        self.selected_index().and_then(|i| self.vms().get(i))
    }

    /// Sets an informational status line.
    pub fn set_info(&mut self, text: impl Into<String>) {
        self.refresh_failing = false;
        self.status = Some(Status {
            text: text.into(),
            error: false,
        });
    }

    /// Sets an error status line.
    pub fn set_error(&mut self, text: impl Into<String>) {
        self.refresh_failing = false;
        self.status = Some(Status {
            text: text.into(),
            error: true,
        });
    }

    /// Applies an action; returns what the loop must do.
    pub fn apply(&mut self, action: Action) -> Effect {
        match action {
            Action::Quit => Effect::Quit,
            Action::Back if self.detail => {
                self.detail = false;
                Effect::None
            }
            Action::Back => Effect::Quit,
            Action::Up => {
                self.step_selection(-1);
                Effect::None
            }
            Action::Down => {
                self.step_selection(1);
                Effect::None
            }
            Action::Detail => {
                self.detail = !self.detail && self.selected.is_some();
                Effect::None
            }
            Action::Pause => {
                self.paused = !self.paused;
                if self.paused {
                    self.set_info("paused: p resumes");
                } else {
                    self.set_info("resumed");
                }
                Effect::None
            }
            Action::Slower => self.change_period(true),
            Action::Faster => self.change_period(false),
            Action::None => Effect::None,
        }
    }

    fn step_selection(&mut self, delta: isize) {
        let n = self.vms().len();
        if n == 0 {
            return;
        }
        let i = self.selected_index().unwrap_or(0);
        let j = i.saturating_add_signed(delta).min(n - 1);
        self.selected = self.vms().get(j).map(|v| v.row.vm);
    }

    /// Builds the `start` command that moves the selected VM's period one
    /// step, keeping every other setting as `config` shows it.
    fn change_period(&mut self, longer: bool) -> Effect {
        if let SourceKind::Replay(_) = self.source {
            self.set_error("replaying a recording: the period cannot be changed");
            return Effect::None;
        }
        let Some(vm) = self.selected_vm() else {
            self.set_error("no VM selected");
            return Effect::None;
        };
        let id = vm.row.vm;
        if vm.row.state != VmState::Sampling {
            let state = vm.row.state;
            self.set_error(format!(
                "{id} is {state}, not sampling: start it with `ept-sampler start {id}` first"
            ));
            return Effect::None;
        }
        let Some(settings) = vm.config.as_ref().and_then(|c| c.settings) else {
            self.set_error(format!("{id}: its config shows no settings"));
            return Effect::None;
        };
        let Some(period_ms) = next_period(settings.period_ms, longer) else {
            let bound = if longer { PERIOD_MS_MAX } else { PERIOD_MS_MIN };
            self.set_error(format!("{id}: the period is already at {bound} ms"));
            return Effect::None;
        };
        let command = Command::Start {
            vm: id,
            settings: ept_core::procfs::control::Settings {
                period_ms,
                ..settings
            },
        };
        self.set_info(format!("writing `{command}`"));
        self.pending = Some(command);
        Effect::Write(command)
    }

    /// Reports how the write of the last [`Effect::Write`] went; a
    /// refusal shows the module's reason first (the command is the one
    /// just asked for, and long).
    pub fn command_done(&mut self, result: Result<(), Error>) {
        let command = self.pending.take();
        let what = match command {
            Some(Command::Start { vm, settings }) => {
                format!("{vm}: period {} ms", settings.period_ms)
            }
            _ => "the command".to_string(),
        };
        match result {
            Ok(()) => self.set_info(format!("{what}: done")),
            Err(Error::Refused { reason, .. }) => {
                self.set_error(format!("{what}: refused by the module: {reason}"))
            }
            Err(Error::NoVmBecause { reason, .. }) => {
                self.set_error(format!("{what}: no such VM: {reason}"))
            }
            Err(e) => self.set_error(format!("{what}: {e}")),
        }
    }
}

/// The step after `current` in [`PERIOD_STEPS`] (up when `longer`), or
/// `None` at the end. A period between steps goes to the nearest step in
/// that direction.
pub fn next_period(current: u32, longer: bool) -> Option<u32> {
    if longer {
        PERIOD_STEPS.iter().copied().find(|&p| p > current)
    } else {
        PERIOD_STEPS.iter().copied().rev().find(|&p| p < current)
    }
}
