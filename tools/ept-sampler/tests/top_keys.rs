// SPDX-License-Identifier: GPL-2.0

//! `top`'s keys as a pure state machine (key -> action -> state and
//! effect), and the period change written to a stand-in `control` file.

mod top_support;

use clap::Parser;
use ept_core::procfs::control::{Command, PERIOD_MS_MAX, PERIOD_MS_MIN};
use ept_sampler::control::send as write_control;
use ept_sampler::error::Error;
use ept_sampler::source::ProcRoot;
use ept_sampler::top::app::{self, next_period, Action, App, Effect, SourceKind, PERIOD_STEPS};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use top_support::*;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::from(code)
}

fn press(app: &mut App, code: KeyCode) -> Effect {
    app.apply(app::action(key(code)))
}

#[test]
fn keys_map_to_actions() {
    let cases = [
        (KeyCode::Char('q'), Action::Quit),
        (KeyCode::Esc, Action::Back),
        (KeyCode::Up, Action::Up),
        (KeyCode::Char('k'), Action::Up),
        (KeyCode::Down, Action::Down),
        (KeyCode::Char('j'), Action::Down),
        (KeyCode::Enter, Action::Detail),
        (KeyCode::Char('d'), Action::Detail),
        (KeyCode::Char('+'), Action::Slower),
        (KeyCode::Char('='), Action::Slower),
        (KeyCode::Char('-'), Action::Faster),
        (KeyCode::Char('p'), Action::Pause),
        (KeyCode::Char('x'), Action::None),
        (KeyCode::Left, Action::None),
    ];
    for (code, want) in cases {
        assert_eq!(app::action(key(code)), want, "{code:?}");
    }
    // Raw mode delivers Ctrl-C as a key: it quits.
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app::action(ctrl_c), Action::Quit);
    // Ctrl-D quits too; Ctrl-J is not Down.
    let ctrl_d = KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL);
    assert_eq!(app::action(ctrl_d), Action::Quit);
    let ctrl_j = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::CONTROL);
    assert_eq!(app::action(ctrl_j), Action::None);
    // Releases do nothing (terminals that report them would act twice).
    let release = KeyEvent::new_with_kind(KeyCode::Down, KeyModifiers::NONE, KeyEventKind::Release);
    assert_eq!(app::action(release), Action::None);
}

#[test]
fn selection_moves_and_stops_at_the_ends() {
    let mut app = app("phase2");
    let sel = |app: &App| app.selected.map(|v| v.to_string());
    assert_eq!(sel(&app).as_deref(), Some("72-4"));
    assert_eq!(press(&mut app, KeyCode::Up), Effect::None);
    assert_eq!(sel(&app).as_deref(), Some("72-4"));
    press(&mut app, KeyCode::Char('j'));
    assert_eq!(sel(&app).as_deref(), Some("85-4"));
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert_eq!(sel(&app).as_deref(), Some("96-4"));
    press(&mut app, KeyCode::Char('k'));
    assert_eq!(sel(&app).as_deref(), Some("85-4"));
    // A refresh keeps the selection on the same VM.
    app.update(snapshot("phase1"));
    assert_eq!(sel(&app).as_deref(), Some("85-4"));
}

#[test]
fn detail_pause_and_quit() {
    let mut app = app("phase2");
    assert!(!app.detail);
    press(&mut app, KeyCode::Enter);
    assert!(app.detail);
    press(&mut app, KeyCode::Char('d'));
    assert!(!app.detail);
    press(&mut app, KeyCode::Enter);
    // Esc closes the pane first, then quits.
    assert_eq!(press(&mut app, KeyCode::Esc), Effect::None);
    assert!(!app.detail);
    assert_eq!(press(&mut app, KeyCode::Esc), Effect::Quit);
    // q quits from the pane too.
    press(&mut app, KeyCode::Enter);
    assert_eq!(press(&mut app, KeyCode::Char('q')), Effect::Quit);

    assert!(!app.paused);
    press(&mut app, KeyCode::Char('p'));
    assert!(app.paused);
    press(&mut app, KeyCode::Char('p'));
    assert!(!app.paused);
}

#[test]
fn period_steps_are_within_the_module_bounds() {
    assert!(PERIOD_STEPS.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(u64::from(PERIOD_STEPS[0]), PERIOD_MS_MIN);
    assert_eq!(u64::from(*PERIOD_STEPS.last().unwrap()), PERIOD_MS_MAX);
    assert_eq!(next_period(100, true), Some(200));
    assert_eq!(next_period(100, false), Some(50));
    assert_eq!(next_period(150, true), Some(200));
    assert_eq!(next_period(150, false), Some(100));
    assert_eq!(next_period(60_000, true), None);
    assert_eq!(next_period(10, false), None);
}

/// The fixture config of `vm` as the `start` command's words, with
/// `period_ms` replaced: what a period change must write.
fn expected_start(phase: &str, vm: &str, period_ms: u32) -> String {
    let config = std::fs::read_to_string(fixtures().join(phase).join(vm).join("config")).unwrap();
    let find = |k: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .map(str::to_string)
    };
    let get = |k: &str| find(k).unwrap();
    // The fixtures come from a module without idle bins: the default ones.
    let idle = find("idle").unwrap_or_else(|| "1s,10s,1m,10m,1h".into());
    format!(
        "start vm={vm} period_ms={period_ms} mode={} granule={} window={} flush={} walk={} history={} idle={idle}",
        get("mode"),
        get("granule"),
        get("window"),
        get("flush"),
        get("walk"),
        get("history")
    )
}

#[test]
fn plus_and_minus_write_start_keeping_the_other_settings() {
    let mut app = app("phase2");
    // 72-4: period 100 ms (README).
    let Effect::Write(cmd) = press(&mut app, KeyCode::Char('+')) else {
        panic!("+ on 72-4 wrote nothing: {:?}", app.status);
    };
    assert_eq!(cmd.to_string(), expected_start("phase2", "72-4", 200));
    app.command_done(Ok(()));
    let status = app.status.clone().unwrap();
    assert!(
        !status.error && status.text.contains("200 ms"),
        "{status:?}"
    );
    // 85-4: period 200 ms.
    press(&mut app, KeyCode::Down);
    let Effect::Write(cmd) = press(&mut app, KeyCode::Char('-')) else {
        panic!("- on 85-4 wrote nothing");
    };
    assert_eq!(cmd.to_string(), expected_start("phase2", "85-4", 100));
    // A refusal goes to the status line.
    app.command_done(Err(Error::Refused {
        command: cmd.to_string(),
        reason: "because (EINVAL)".into(),
    }));
    let status = app.status.clone().unwrap();
    assert!(
        status.error
            && status
                .text
                .contains("refused by the module: because (EINVAL)"),
        "{status:?}"
    );
    // 96-4 is not attached: nothing is written, the status says why.
    press(&mut app, KeyCode::Down);
    assert_eq!(press(&mut app, KeyCode::Char('+')), Effect::None);
    let status = app.status.clone().unwrap();
    assert!(status.error && status.text.contains("96-4"), "{status:?}");
    // The advice in backquotes is a command line the tool accepts.
    let advice = status
        .text
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {status:?}"));
    let words: Vec<&str> = advice.split_whitespace().collect();
    if let Err(e) = ept_sampler::cli::Cli::try_parse_from(&words) {
        panic!("`{advice}` is not a valid command line: {e}");
    }
}

#[test]
fn a_replay_does_not_change_the_period() {
    let mut app = App::new(SourceKind::Replay("rec".into()), 1000);
    app.update(snapshot("phase2"));
    assert_eq!(press(&mut app, KeyCode::Char('+')), Effect::None);
    let status = app.status.clone().unwrap();
    assert!(status.error && status.text.contains("replay"), "{status:?}");
}

#[test]
fn a_period_change_at_the_bounds_writes_nothing() {
    let mut app = app("phase2");
    let vm = &mut app.snapshot.as_mut().unwrap().vms[0];
    vm.config
        .as_mut()
        .unwrap()
        .settings
        .as_mut()
        .unwrap()
        .period_ms = 10;
    assert_eq!(press(&mut app, KeyCode::Char('-')), Effect::None);
    assert!(app.status.clone().unwrap().error);
    assert!(matches!(
        press(&mut app, KeyCode::Char('+')),
        Effect::Write(Command::Start { .. })
    ));
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ept-top-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn write_control_writes_one_canonical_line() {
    let dir = scratch("ok");
    std::fs::write(dir.join("control"), "").unwrap();
    let mut app = app("phase2");
    let Effect::Write(cmd) = press(&mut app, KeyCode::Char('+')) else {
        panic!()
    };
    write_control(&ProcRoot::open(&dir).unwrap(), &cmd).unwrap();
    let written = std::fs::read_to_string(dir.join("control")).unwrap();
    assert_eq!(
        written,
        format!("{}\n", expected_start("phase2", "72-4", 200))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_write_carries_the_module_reason() {
    // /dev/full fails every write (ENOSPC), as the module fails a bad
    // command; last_error is the fixture's (a refused period_ms=0).
    let dir = scratch("refused");
    std::os::unix::fs::symlink("/dev/full", dir.join("control")).unwrap();
    let fixture_error = fixtures().join("phase2/last_error");
    std::fs::copy(&fixture_error, dir.join("last_error")).unwrap();
    let reason_text = std::fs::read_to_string(&fixture_error).unwrap();
    let mut app = app("phase2");
    let Effect::Write(cmd) = press(&mut app, KeyCode::Char('+')) else {
        panic!()
    };
    let err = write_control(&ProcRoot::open(&dir).unwrap(), &cmd).unwrap_err();
    let Error::Refused { command, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(command, &cmd.to_string());
    // "EINVAL period_ms: 0 is below 10": the message and the errno.
    let (errno, message) = reason_text.trim().split_once(' ').unwrap();
    assert!(
        reason.contains(message) && reason.contains(errno),
        "{reason}"
    );
    // And the status line shows it.
    app.command_done(Err(err));
    let status = app.status.clone().unwrap();
    assert!(
        status.error
            && status
                .text
                .contains(&format!("refused by the module: {message}")),
        "{status:?}"
    );
    // No control file at all: an error, no file made.
    std::fs::remove_file(dir.join("control")).unwrap();
    assert!(write_control(&ProcRoot::open(&dir).unwrap(), &cmd).is_err());
    assert!(!dir.join("control").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_refresh_is_shown_until_the_next_good_one() {
    let mut app = app("phase1");
    app.refresh_failed("the module is gone".into());
    let status = app.status.clone().unwrap();
    assert!(status.error && status.text.contains("the module is gone"));
    // The last good read stays.
    assert_eq!(app.vms().len(), 3);
    app.update(snapshot("phase2"));
    assert_eq!(app.status, None);
    // Any other message is not cleared by a refresh.
    press(&mut app, KeyCode::Char('p'));
    app.update(snapshot("phase2"));
    assert!(app.status.is_some());
}
