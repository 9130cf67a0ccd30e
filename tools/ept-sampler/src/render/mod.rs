// SPDX-License-Identifier: GPL-2.0

//! What the tool prints: tables and status text ([`text`]), the terminal
//! heat map ([`term`]) and heat map data ([`data`]). Each function takes
//! parsed files and returns a string, so tests check them against the
//! fixture files without a terminal.

pub mod data;
pub mod term;
pub mod text;

/// `bytes` in the largest binary unit it reaches: the number (whole when
/// exact, else one decimal) and the unit's letter (`""` for bytes). The
/// one scaling behind [`human_bytes`] and [`size_label`], so that the
/// table, the status and `top` never disagree on a size.
fn scaled(bytes: u64) -> (String, &'static str) {
    const UNITS: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let unit = UNITS
        .iter()
        .enumerate()
        .rev()
        .find(|(i, _)| bytes >> (10 * i) > 0)
        .map_or(0, |(i, _)| i);
    let div = 1u64 << (10 * unit);
    let number = if bytes.is_multiple_of(div) {
        (bytes / div).to_string()
    } else {
        format!("{:.1}", bytes as f64 / div as f64)
    };
    (number, UNITS[unit])
}

/// A size in bytes for a person: `256 MiB`, `1.5 GiB`, `4 KiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    match scaled(bytes) {
        (n, "") => format!("{n} B"),
        (n, unit) => format!("{n} {unit}iB"),
    }
}

/// A size as a short label where columns are few (`top`'s strips and
/// axes): `0`, `512B`, `4K`, `256M`, `1.5G`.
pub fn size_label(bytes: u64) -> String {
    match scaled(bytes) {
        _ if bytes == 0 => "0".to_string(),
        (n, "") => format!("{n}B"),
        (n, unit) => format!("{n}{unit}"),
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
        assert_eq!(human_bytes(256 << 20), "256 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(22 << 10), "22 KiB");
        // Not a whole number of the unit: one decimal, even when it
        // rounds to .0, so that it does not pass for exact.
        assert_eq!(human_bytes((1 << 30) + 1), "1.0 GiB");
        assert_eq!(human_bytes(5 << 50), "5 PiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn labels() {
        assert_eq!(size_label(0), "0");
        assert_eq!(size_label(512), "512B");
        assert_eq!(size_label(4096), "4K");
        assert_eq!(size_label(256 << 20), "256M");
        assert_eq!(size_label(3 << 29), "1.5G");
        // 4101 pages: 16.02 MiB.
        assert_eq!(size_label(4101 * 4096), "16.0M");
        assert_eq!(size_label(1 << 40), "1T");
    }

    #[test]
    fn durations() {
        assert_eq!(human_ns(850), "850 ns");
        assert_eq!(human_ns(3_704_293), "3.70 ms");
        assert_eq!(human_ns(1_200_000_000), "1.20 s");
    }
}
