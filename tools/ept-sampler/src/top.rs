// SPDX-License-Identifier: GPL-2.0

//! `top`: a live full-screen view of every VM (ratatui).
//!
//! [`app`] holds the state and what each key does (pure), [`view`] draws
//! it, [`feed`] gives the snapshots (the module's directory or a
//! recording) and writes period changes; this file is the terminal and
//! the loop.

pub mod app;
pub mod feed;
pub mod view;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event};

use self::app::{App, Effect, SourceKind};
use self::feed::{Feed, Step};
use crate::error::Error;
use crate::source::ProcRoot;

/// `ept-sampler top`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "\
Keys: Up/Down or j/k select a VM; Enter or d opens its detail pane (memslots, \
a larger heat map, the history as address x time); + and - lengthen or shorten \
the selected VM's sampling period (a `start` command keeping its other \
settings); p pauses refreshing; q, Esc or Ctrl-C quits.

Heat is shown as a character ramp, coldest first: `.` mapped but not accessed \
in the window, then `:-=+*#%` up to `@` accessed in every round; blank is a \
hole (not mapped). Colour doubles the ramp unless NO_COLOR is set or \
--no-color is given.")]
pub struct TopArgs {
    /// Screen refresh interval in milliseconds (with --replay: time
    /// between two recorded snapshots on screen).
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval_ms: u64,
    /// Show a recording made by `ept-sampler record` instead of the live
    /// module, one snapshot per interval (no module needed; the period
    /// cannot be changed).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// No colour: the heat ramp and the dimmed rows still show
    /// everything.
    #[arg(long)]
    pub no_color: bool,
}

/// Runs `top`: against `root`, or against the recording given with
/// `--replay` (then `root` is not read).
pub fn run(root: &ProcRoot, args: &TopArgs) -> Result<(), Error> {
    match &args.replay {
        Some(_) => run_replay(args),
        None => run_feed(
            Feed::Live(root.clone()),
            SourceKind::Live(root.path().display().to_string()),
            args,
        ),
    }
}

/// Runs `top --replay FILE` without the module's directory (a recording
/// is shown on any machine).
pub fn run_replay(args: &TopArgs) -> Result<(), Error> {
    let path = args
        .replay
        .as_ref()
        .ok_or_else(|| Error::Other("top: no recording given (--replay FILE)".into()))?;
    run_feed(
        Feed::replay(path)?,
        SourceKind::Replay(path.display().to_string()),
        args,
    )
}

fn run_feed(mut feed: Feed, source: SourceKind, args: &TopArgs) -> Result<(), Error> {
    if !std::io::stdout().is_terminal() {
        return Err(Error::Other(
            "top draws a full-screen view and needs a terminal on stdout (for data, use `ept-sampler list --json` or `heatmap --format json`)".into(),
        ));
    }
    let mut app = App::new(source, args.interval_ms);
    app.color = !args.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // The first snapshot is taken before the screen is switched, so that
    // "module not loaded" and the like are printed as ordinary errors
    // with their exit codes.
    refresh(&mut feed, &mut app, true)?;

    // try_init installs a panic hook that restores the terminal; the
    // guard restores it on every other way out of this function.
    let mut terminal = ratatui::try_init().map_err(terminal_error)?;
    let _restore = RestoreOnDrop;
    let interval = Duration::from_millis(args.interval_ms);
    let mut next = Instant::now() + interval;
    loop {
        terminal
            .draw(|frame| view::draw(frame, &app))
            .map_err(terminal_error)?;
        let timeout = next.saturating_duration_since(Instant::now());
        if event::poll(timeout).map_err(terminal_error)? {
            // Resizes and anything else only need the redraw above.
            if let Event::Key(key) = event::read().map_err(terminal_error)? {
                match app.apply(app::action(key)) {
                    Effect::Quit => break,
                    Effect::Write(command) => {
                        let result = feed.control(&command).map_err(|e| refusal_text(&e));
                        let ok = result.is_ok();
                        app.command_done(result);
                        if ok {
                            // Show the new settings now, not an
                            // interval later.
                            next = Instant::now();
                        }
                    }
                    Effect::None => {}
                }
            }
        }
        if Instant::now() >= next {
            if !app.paused {
                // A failed refresh (the module unloaded, a VM going away
                // mid-read) is shown, not fatal: the next one may work.
                let _ = refresh(&mut feed, &mut app, false);
            }
            next = Instant::now() + interval;
        }
    }
    Ok(())
}

/// Takes the next snapshot into `app`. With `first`, an error is
/// returned; otherwise it goes to the status line.
fn refresh(feed: &mut Feed, app: &mut App, first: bool) -> Result<(), Error> {
    match feed.step() {
        Ok(Step::Snapshot(s)) => {
            app.update(s);
            if let Some((n, _, _)) = feed.position() {
                // A replay shows where it is instead of an old message.
                if app.status.as_ref().is_none_or(|s| !s.error) {
                    app.set_info(format!("recorded snapshot {n}"));
                }
            }
            Ok(())
        }
        Ok(Step::Ended) => {
            if first {
                return Err(Error::Other("the recording holds no snapshot".into()));
            }
            let n = feed.position().map_or(0, |p| p.0);
            app.set_info(format!(
                "end of the recording ({n} snapshots shown): q quits"
            ));
            Ok(())
        }
        Err(e) if first => Err(e),
        Err(e) => {
            app.refresh_failed(e.to_string());
            Err(e)
        }
    }
}

/// A failed write for the one status line: the module's reason first
/// (the command is the one just asked for, and long).
fn refusal_text(e: &Error) -> String {
    match e {
        Error::Refused { reason, .. } => format!("refused by the module: {reason}"),
        e => e.to_string(),
    }
}

fn terminal_error(e: std::io::Error) -> Error {
    Error::Other(format!("terminal: {e}"))
}

/// Leaves raw mode and the alternate screen when dropped.
struct RestoreOnDrop;

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
