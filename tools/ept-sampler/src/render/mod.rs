// SPDX-License-Identifier: GPL-2.0

//! What the tool prints: tables and status text ([`text`]), the terminal
//! heat map ([`term`]) and heat map data ([`data`]). Each function takes
//! parsed files and returns a string, so tests check them against the
//! fixture files without a terminal.

pub mod data;
pub mod term;
pub mod text;

/// A size in bytes for a person: `256 MiB`, `1.5 GiB`, `4 KiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut value = bytes as f64;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        let s = format!("{value:.1}");
        format!("{} {}", s.trim_end_matches(".0"), UNITS[unit])
    }
}

/// A duration in nanoseconds for a person: `850 ns`, `3.70 ms`, `1.20 s`.
pub fn human_ns(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(268_435_456), "256 MiB");
        assert_eq!(human_bytes(1_610_612_736), "1.5 GiB");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(22_528), "22 KiB");
    }

    #[test]
    fn durations() {
        assert_eq!(human_ns(850), "850 ns");
        assert_eq!(human_ns(3_704_293), "3.70 ms");
        assert_eq!(human_ns(1_200_000_000), "1.20 s");
    }
}
