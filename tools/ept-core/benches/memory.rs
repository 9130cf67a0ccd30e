// SPDX-License-Identifier: GPL-2.0

//! What a sampled VM's heat map costs in memory, per 4 KiB page of the
//! guest: the heat store (window and idle ages, `heat/cell.rs`), the
//! history ring, and the copy an open `heatmap.bin` holds. Computed from
//! the same layouts the module allocates (`Geometry::layout`), not
//! measured: the module's `stats` shows the first two as `store_bytes`
//! and `history_bytes`.
//!
//! Not a timed test: a program that prints figures (docs/PERFORMANCE.md,
//! "Heat map memory"). Run with `cargo bench -p ept-core --bench memory`.

use ept_core::ept_walk::{Gfn, GfnRange};
use ept_core::heat::{Geometry, Granule, DEFAULT_HISTORY_ROUNDS, DEFAULT_REGION, DEFAULT_WINDOW};

fn main() {
    println!(
        "| guest | granule | window | history | store | history ring | heatmap.bin copy | bytes per 4 KiB page (store + ring) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let cases = [
        (
            256u64 << 20,
            Granule::SIZE_4K,
            DEFAULT_WINDOW,
            DEFAULT_HISTORY_ROUNDS,
        ),
        (
            1 << 30,
            Granule::SIZE_4K,
            DEFAULT_WINDOW,
            DEFAULT_HISTORY_ROUNDS,
        ),
        (
            64 << 30,
            Granule::SIZE_4K,
            DEFAULT_WINDOW,
            DEFAULT_HISTORY_ROUNDS,
        ),
        (256 << 20, Granule::SIZE_4K, DEFAULT_WINDOW, 1024),
        (64 << 30, Granule::SIZE_2M, 29, DEFAULT_HISTORY_ROUNDS),
    ];
    for (bytes, granule, window, rounds) in cases {
        let pages = bytes / 4096;
        let layout = Geometry {
            span: GfnRange::new(Gfn(0), Gfn(pages)),
            granule,
            window,
            region: DEFAULT_REGION,
            rounds,
        }
        .layout()
        .expect("layout");
        let store = layout.store.bytes() as u64;
        let ring = layout.history.bytes() as u64;
        println!(
            "| {} MiB | {granule} | {window} | {rounds} | {store} | {ring} | {store} | {:.3} |",
            bytes >> 20,
            (store + ring) as f64 / pages as f64,
        );
    }
}
