// SPDX-License-Identifier: GPL-2.0

//! `top --replay`: the fixture recording (phase1 then phase2, see
//! fixtures/recordings/README.md) is stepped one snapshot at a time, then
//! stays on the last one.

mod top_support;

use std::path::PathBuf;

use ept_sampler::top::app::{App, SourceKind};
use ept_sampler::top::feed::{Feed, Step};
use top_support::*;

fn recording() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recordings/npt-7.3.rec.gz")
}

/// `rounds` of VM 72-4's stats file in a fixture phase.
fn rounds(phase: &str) -> u64 {
    let text = std::fs::read_to_string(fixtures().join(phase).join("72-4/stats")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("rounds "))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_replay_steps_through_the_recording_then_stays() {
    let mut feed = Feed::replay(&recording()).expect("open the recording");
    let mut app = App::new(SourceKind::Replay("npt-7.3.rec.gz".into()), 1000);
    let mut seen = Vec::new();
    for _ in 0..4 {
        match feed.step().expect("step") {
            Step::Snapshot(s) => {
                let vm = s.vm("72-4").expect("72-4 in the recording");
                seen.push(vm.stats.as_ref().unwrap().rounds);
                app.update(s);
            }
            Step::Ended => seen.push(0),
        }
    }
    assert_eq!(seen, [rounds("phase1"), rounds("phase2"), 0, 0]);
    assert_eq!(feed.position().map(|p| (p.0, p.1)), Some((2, true)));
    // What is on screen is the last snapshot, with the series of both.
    let text = lines(&screen(&app, 80, 24)).join("\n");
    assert!(
        text.contains(&format!("| {} rounds", rounds("phase2"))),
        "{text}"
    );
    assert!(text.contains("replay npt-7.3.rec.gz"), "{text}");
}

#[test]
fn a_missing_recording_is_an_error_before_the_screen() {
    assert!(Feed::replay(&recording().with_extension("nope")).is_err());
}
