// SPDX-License-Identifier: GPL-2.0

//! `top`: a live full-screen view of every VM (ratatui).
//!
//! [`app`] holds the state and what each key does (pure), [`view`] draws
//! it, [`feed`] gives the snapshots (the module's directory or a
//! recording) and writes period changes; this file is the terminal and
//! the loop.

pub mod app;
pub mod feed;
pub mod tty;
pub mod view;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use self::app::{App, Effect, SourceKind};
use self::feed::{Feed, Step};
use crate::cli::ColorWhen;
use crate::error::Error;
use crate::source::ProcRoot;

/// How long the loop may wait before it looks at the signal flag.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// `ept-sampler top`.
#[derive(Clone, Debug, clap::Args)]
#[command(after_help = "\
Keys: Up/Down or j/k select a VM; Enter or d opens its detail pane (memslots, \
a larger heat map, the history as address x time); + and - lengthen or shorten \
the selected VM's sampling period (a `start` command keeping its other \
settings); p pauses refreshing; q, Esc or Ctrl-C quits.

Columns: HOT MiB is mapped memory accessed in at least one round of the heat \
map's window, DIRTY MiB the same for dirty bits (`-` when the mode does not \
track them); DIRTY MB/s is the last round's dirty pages over its interval; \
WALK ms l/a the last and the mean walk of a round; COST the mean walk as a \
share of the period. Under each VM: its heat strip over its whole address \
span and `wss`, the pages accessed per round (newest right, across \
refreshes). Not-attached VMs are listed dim.

Heat is shown as a character ramp, coldest first: `.` mapped but not accessed \
in the window, then `:-=+*#%` up to `@` accessed in every round; blank is a \
hole (not mapped). Colour doubles the ramp on a terminal unless NO_COLOR is \
set or --color never is given.")]
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
    /// Colour: `auto` (unless NO_COLOR is set or TERM is dumb),
    /// `always` or `never`; without colour the heat ramp and the dimmed
    /// rows still show everything.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Print N screens as plain text, one per interval, instead of the
    /// full-screen view (like `top -b`): for logs, pipes and scripts; needs
    /// no terminal, takes no keys, never colours.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: Option<u32>,
    /// The size of a --batch screen, COLUMNSxROWS (20x5 to 1000x1000).
    #[arg(long, value_name = "COLSxROWS", default_value = "80x24", value_parser = parse_size, requires = "batch")]
    pub size: (u16, u16),
}

/// Parses `--size`: `COLSxROWS`.
fn parse_size(text: &str) -> Result<(u16, u16), String> {
    let bad = || {
        format!("`{text}` is not COLSxROWS with 20..=1000 columns and 5..=1000 rows, e.g. 80x24")
    };
    let (w, h) = text.split_once('x').ok_or_else(bad)?;
    let w: u16 = w.parse().map_err(|_| bad())?;
    let h: u16 = h.parse().map_err(|_| bad())?;
    if !(20..=1000).contains(&w) || !(5..=1000).contains(&h) {
        return Err(bad());
    }
    Ok((w, h))
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
    // The file's name: a long path would crowd out the title at 80
    // columns.
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    run_feed(Feed::replay(path)?, SourceKind::Replay(name), args)
}

fn run_feed(mut feed: Feed, source: SourceKind, args: &TopArgs) -> Result<(), Error> {
    if let Some(frames) = args.batch {
        return run_batch(feed, source, args, frames);
    }
    if !std::io::stdout().is_terminal() {
        return Err(Error::Other(
            "top draws a full-screen view and needs a terminal on stdout (for data, use `ept-sampler list --json` or `heatmap --format json`)".into(),
        ));
    }
    let mut app = App::new(source, args.interval_ms);
    app.color = match args.color {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => crate::render::term::color_wanted(),
    };
    // The first snapshot is taken before the screen is switched, so that
    // "module not loaded" and the like are printed as ordinary errors
    // with their exit codes.
    refresh(&mut feed, &mut app, true)?;

    // try_init installs a panic hook that restores the terminal; the
    // guard restores it on every other way out of this function.
    // SIGTERM, SIGHUP and SIGINT (from `kill`; Ctrl-C is a key in raw
    // mode) would end the process without restoring the terminal: they
    // only raise a flag, and the loop leaves through the normal path.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGHUP, SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::Other(format!("cannot handle signal {signal}: {e}")))?;
    }
    let tty = tty::Tty::open().map_err(terminal_error)?;
    let mut terminal = ratatui::try_init().map_err(terminal_error)?;
    let _restore = RestoreOnDrop;
    let interval = Duration::from_millis(args.interval_ms);
    let mut next = Instant::now() + interval;
    while !stop.load(Ordering::Relaxed) {
        terminal
            .draw(|frame| view::draw(frame, &app))
            .map_err(terminal_error)?;
        // Wake at least this often to see a signal's flag.
        let timeout = next
            .saturating_duration_since(Instant::now())
            .min(SIGNAL_CHECK);
        let input = match tty.wait(timeout).map_err(terminal_error)? {
            tty::Wait::HangUp => break,
            tty::Wait::Timeout => false,
            tty::Wait::Input => true,
        };
        // Every event crossterm can hand out without waiting: one read of
        // the terminal may hold several keys.
        let mut quit = false;
        while input && !quit && event::poll(Duration::ZERO).map_err(terminal_error)? {
            // Resizes and anything else only need the redraw above.
            let Event::Key(key) = event::read().map_err(terminal_error)? else {
                continue;
            };
            match app.apply(app::action(key)) {
                Effect::Quit => quit = true,
                Effect::Write(command) => {
                    let result = feed.control(&command);
                    let ok = result.is_ok();
                    app.command_done(result);
                    if ok {
                        // Show the new settings now, not an interval
                        // later.
                        next = Instant::now();
                    }
                }
                Effect::None => {}
            }
        }
        if quit {
            break;
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

/// `top --batch N`: N screens drawn by the same view code into a buffer of
/// `--size`, printed as text, one per interval.
fn run_batch(mut feed: Feed, source: SourceKind, args: &TopArgs, frames: u32) -> Result<(), Error> {
    let mut app = App::new(source, args.interval_ms);
    app.color = false;
    let (width, height) = args.size;
    let mut out = std::io::stdout().lock();
    for i in 0..frames {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
        if i == 0 {
            refresh(&mut feed, &mut app, true)?;
        } else {
            // Later failures (a VM gone, the module unloaded) are shown on
            // the status line, as in the full-screen view.
            let _ = refresh(&mut feed, &mut app, false);
        }
        let lines = screen_lines(&app, width, height)?;
        let write = |out: &mut std::io::StdoutLock<'_>| -> std::io::Result<()> {
            for line in &lines {
                writeln!(out, "{}", line.trim_end())?;
            }
            writeln!(out)?;
            out.flush()
        };
        write(&mut out).map_err(|e| Error::Other(format!("stdout: {e}")))?;
    }
    Ok(())
}

/// The screen `app` draws at `width` x `height`, as lines of text.
pub fn screen_lines(app: &App, width: u16, height: u16) -> Result<Vec<String>, Error> {
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height))
        .map_err(|e| Error::Other(format!("screen buffer: {e}")))?;
    terminal
        .draw(|frame| view::draw(frame, app))
        .map_err(|e| Error::Other(format!("screen buffer: {e}")))?;
    let buf = terminal.backend().buffer();
    Ok((0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect())
}

/// Takes the next snapshot into `app`. With `first`, an error is
/// returned; otherwise it goes to the status line.
fn refresh(feed: &mut Feed, app: &mut App, first: bool) -> Result<(), Error> {
    match feed.step() {
        Ok(Step::Snapshot(s)) => {
            app.update(s);
            if let Some((n, _)) = feed.position() {
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
