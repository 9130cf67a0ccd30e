// SPDX-License-Identifier: GPL-2.0

//! Drawing an [`App`]: a title bar, one row per VM, a panel per attached
//! VM (heat strip and working-set sparkline) or the detail pane of the
//! selected VM, a status line and the keys.
//!
//! Everything is plain lines of text so that it reads the same without
//! colour (heat is a character ramp, colour only doubles it) and degrades
//! by dropping columns and panels, not by wrapping, in a small terminal.

use ept_core::procfs::vms::VmState;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};
use ratatui::Frame;

use super::app::{App, SourceKind};
use crate::axis::{self, Axis, Row, Rows};
use crate::bins::{self, Bin, ColorBy};
use crate::model::{slot_bytes, VmSnapshot};
use crate::render::size_label;

// The characters and colours of `heatmap` in the terminal, so that both
// views read alike: `.` mapped and idle in the window .. `@` accessed in
// every round; unmapped is blank.
use crate::render::term::{ansi256, ramp_char};

/// Terminal width from which the VM table shows the settings columns.
pub const WIDE: u16 = 115;

/// Lines a VM panel takes: title, heat strip, sparkline.
const PANEL_LINES: u16 = 3;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    if area.height < 3 || area.width < 20 {
        frame.render_widget(Paragraph::new("ept-sampler top: terminal too small"), area);
        return;
    }
    let mut lines_left = area.height;
    let title = Rect { height: 1, ..area };
    frame.render_widget(Paragraph::new(title_line(app, area.width)), title);
    lines_left -= 1;

    let bottom = 2.min(lines_left);
    let keys = Rect {
        y: area.y + area.height - 1,
        height: 1,
        ..area
    };
    let status = Rect {
        y: area.y + area.height.saturating_sub(2),
        height: 1,
        ..area
    };
    frame.render_widget(Paragraph::new(keys_line(app)), keys);
    if bottom == 2 {
        frame.render_widget(Paragraph::new(status_line(app)), status);
    }
    lines_left -= bottom;

    let table_lines = table_lines(app, area.width);
    // A long table (many VMs) leaves room below it: for one panel, or
    // for half the screen when the detail pane is open.
    let reserve = if app.detail {
        lines_left / 2
    } else if lines_left >= PANEL_LINES + 3 {
        PANEL_LINES
    } else {
        0
    };
    let table_height = (table_lines.len() as u16).min(lines_left - reserve);
    // Keep the selected row on screen when the table is taller than the
    // space (many VMs in a small terminal): scroll it under the header.
    let scroll = app
        .selected_index()
        .map_or(0, |i| (i as u16 + 2).saturating_sub(table_height));
    let table = Rect {
        y: area.y + 1,
        height: table_height,
        ..area
    };
    let mut shown: Vec<Line<'_>> = table_lines.into_iter().collect();
    if scroll > 0 && shown.len() > 1 {
        let header = shown.remove(0);
        shown.drain(..(scroll as usize).min(shown.len()));
        shown.insert(0, header);
    }
    frame.render_widget(Paragraph::new(shown), table);
    lines_left -= table_height;

    let rest = Rect {
        y: table.y + table_height,
        height: lines_left,
        ..area
    };
    if rest.height == 0 {
        return;
    }
    if app.detail {
        if let Some(vm) = app.selected_vm() {
            draw_detail(frame, app, vm, rest);
            return;
        }
    }
    draw_panels(frame, app, rest);
}

fn title_line(app: &App, width: u16) -> Line<'static> {
    let vms = app.vms();
    let attached = vms.iter().filter(|v| v.config.is_some()).count();
    let mut text = String::from("ept-sampler top");
    if let Some(s) = &app.snapshot {
        text.push_str(&format!(" {}", clock(s.unix_ms)));
    }
    // Most important first: what is cut at 80 columns is the tail.
    if app.paused {
        text.push_str(" | PAUSED");
    }
    match &app.source {
        SourceKind::Live(path) => text.push_str(&format!(" | {path}")),
        SourceKind::Replay(path) => text.push_str(&format!(" | replay {path}")),
    }
    let interval = if app.interval_ms.is_multiple_of(1000) {
        format!("{}s", app.interval_ms / 1000)
    } else {
        format!("{}ms", app.interval_ms)
    };
    text.push_str(&format!(
        " | {} VMs, {attached} attached | every {interval}",
        vms.len()
    ));
    Line::from(Span::styled(
        pad_with(&text, width as usize, ' '),
        Style::default().add_modifier(Modifier::REVERSED),
    ))
}

fn keys_line(app: &App) -> Line<'static> {
    let text = if app.detail {
        "Up/Down/j/k select  Enter/d/Esc close  +/- period  p pause  q quit"
    } else {
        "Up/Down/j/k select  Enter/d detail  +/- period  p pause  q quit"
    };
    Line::from(Span::styled(
        text,
        Style::default().add_modifier(Modifier::DIM),
    ))
}

fn status_line(app: &App) -> Line<'static> {
    match &app.status {
        Some(s) if s.error => Line::from(Span::styled(
            s.text.clone(),
            color(app, Color::Red).add_modifier(Modifier::BOLD),
        )),
        Some(s) => Line::from(s.text.clone()),
        None if app.snapshot.is_none() => Line::from("reading..."),
        None => Line::default(),
    }
}

/// A style with a foreground colour, unless colour is off.
fn color(app: &App, c: Color) -> Style {
    if app.color {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

/// The VM table: a header, then one line per VM.
fn table_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let wide = width >= WIDE;
    let mut header = format!(
        "  {:<10} {:<9} {:>8} {:>9} {:>10} {:>12} {:>6} {:>7}",
        "VM", "STATE", "HOT MiB", "DIRTY MiB", "DIRTY MB/s", "WALK ms l/a", "COST", "IDLE>1m"
    );
    if wide {
        header.push_str(&format!(
            " {:>8} {:<8} {:<5} {:<10}",
            "PERIOD", "MODE", "GRAN", "FLUSH"
        ));
    }
    let mut lines = vec![Line::from(Span::styled(
        fit(&header, width as usize),
        Style::default().add_modifier(Modifier::BOLD),
    ))];
    let selected = app.selected_index();
    for (i, vm) in app.vms().iter().enumerate() {
        let mark = if selected == Some(i) { "> " } else { "  " };
        let mut text = format!("{mark}{:<10} ", vm.row.vm.to_string());
        let mut style = Style::default();
        if vm.config.is_none() {
            // Not attached: only `vms` knows it.
            text.push_str(&not_attached(vm));
            style = style.add_modifier(Modifier::DIM);
        } else {
            let m = Metrics::of(vm);
            text.push_str(&format!(
                "{:<9} {:>8} {:>9} {:>10} {:>12} {:>6} {:>7}",
                vm.row.state.to_string(),
                opt(m.hot_mib, |v| format!("{v:.1}")),
                opt(m.dirty_mib, |v| format!("{v:.1}")),
                opt(m.dirty_mb_s, |v| format!("{v:.2}")),
                match (m.walk_ms_last, m.walk_ms_avg) {
                    (Some(l), Some(a)) => format!("{l:.2}/{a:.2}"),
                    _ => "-".into(),
                },
                opt(m.cost_pct, |v| format!("{v:.1}%")),
                opt(m.idle_1m_mib, |v| format!("{v:.1}")),
            ));
            if wide {
                let s = vm.config.as_ref().and_then(|c| c.settings);
                text.push_str(&format!(
                    " {:>8} {:<8} {:<5} {:<10}",
                    opt(s.map(|s| s.period_ms), |p| format!("{p} ms")),
                    opt(s.map(|s| s.track.as_str()), str::to_string),
                    opt(s.map(|s| s.granule), |g| g.to_string()),
                    flush_text(vm),
                ));
            }
        }
        if selected == Some(i) {
            style = style.add_modifier(Modifier::REVERSED);
        }
        lines.push(Line::from(Span::styled(fit(&text, width as usize), style)));
    }
    if app.vms().is_empty() && app.snapshot.is_some() {
        lines.push(Line::from("  no KVM VM on this host"));
    }
    lines
}

/// The table text of a VM without a directory.
fn not_attached(vm: &VmSnapshot) -> String {
    let what = match vm.row.state {
        VmState::Refused(why) => format!("cannot be sampled: {}", why.as_str()),
        _ => "not attached".to_string(),
    };
    format!(
        "{what} ({}, {} vCPU, {})",
        size_label(vm.row.memory_bytes),
        vm.row.vcpus,
        vm.row.tdp.as_str()
    )
}

/// `round (last yes)`: the flush setting and whether the last round
/// flushed.
fn flush_text(vm: &VmSnapshot) -> String {
    let setting = vm
        .config
        .as_ref()
        .and_then(|c| c.settings)
        .map(|s| s.flush.as_str());
    let last = vm.stats.as_ref().and_then(|s| s.flush_last);
    match (setting, last) {
        (Some(s), Some(true)) => format!("{s} ok"),
        (Some(s), Some(false)) => format!("{s} MISSED"),
        (Some(s), None) => s.to_string(),
        (None, _) => "-".to_string(),
    }
}

/// The figures of one attached VM.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metrics {
    /// MiB of mapped memory accessed in at least one round of the window.
    pub hot_mib: Option<f64>,
    /// MiB dirtied in at least one round of the window.
    pub dirty_mib: Option<f64>,
    /// MB/s dirtied in the last round (`stats`).
    pub dirty_mb_s: Option<f64>,
    /// Last round's walk, ms.
    pub walk_ms_last: Option<f64>,
    /// Mean walk, ms.
    pub walk_ms_avg: Option<f64>,
    /// A round's mean cost (its walk and its flush) as a share of the
    /// period, %.
    pub cost_pct: Option<f64>,
    /// MiB of mapped memory not accessed for at least a minute (the
    /// `idle` file's 1m bin, if the VM has one).
    pub idle_1m_mib: Option<f64>,
}

impl Metrics {
    /// The figures of `vm` (all `None` when it has no files).
    pub fn of(vm: &VmSnapshot) -> Metrics {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let (hot, dirty) = match &vm.heatmap {
            Some((h, runs)) => (
                h.mode.accessed().then(|| mib(bins::hot_bytes(runs, false))),
                h.mode.dirty().then(|| mib(bins::hot_bytes(runs, true))),
            ),
            None => (None, None),
        };
        let stats = vm.stats.as_ref().filter(|s| s.rounds > 0);
        let period_ns = vm
            .config
            .as_ref()
            .and_then(|c| c.settings)
            .map(|s| f64::from(s.period_ms) * 1e6);
        let walk_avg = stats.map(|s| s.walk_ns_avg as f64);
        // flush_ns_avg is over the rounds that flushed.
        let round_avg = stats.map(|s| {
            s.walk_ns_avg as f64 + s.flush_ns_avg as f64 * s.flushes as f64 / s.rounds as f64
        });
        Metrics {
            hot_mib: hot,
            dirty_mib: dirty,
            dirty_mb_s: stats
                .and_then(|s| s.dirty_mb_s())
                .map(|c| c.0 as f64 / 100.0),
            walk_ms_last: stats.map(|s| s.walk_ns_last as f64 / 1e6),
            walk_ms_avg: walk_avg.map(|ns| ns / 1e6),
            cost_pct: round_avg
                .zip(period_ns)
                .filter(|(_, p)| *p > 0.0)
                .map(|(w, p)| 100.0 * w / p),
            idle_1m_mib: vm.idle.as_ref().and_then(|f| {
                let c = &f.counts;
                let i = c.bins.as_slice().iter().position(|&ms| ms == 60_000)?;
                Some(mib(*c.accessed.as_ref()?.bins.get(i)?))
            }),
        }
    }
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// The panels of the attached VMs, as many as fit, the selected one
/// among them.
fn draw_panels(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let attached: Vec<&VmSnapshot> = app.vms().iter().filter(|v| v.config.is_some()).collect();
    let fits = (area.height / PANEL_LINES) as usize;
    if fits == 0 || attached.is_empty() {
        return;
    }
    // Spare lines go to taller sparklines (up to 4 lines each).
    let panel_lines = if attached.len() <= fits {
        (area.height / attached.len() as u16).clamp(PANEL_LINES, PANEL_LINES + 3)
    } else {
        PANEL_LINES
    };
    let selected = app
        .selected
        .and_then(|id| attached.iter().position(|v| v.row.vm == id))
        .unwrap_or(0);
    let first = (selected + 1).saturating_sub(fits);
    for (k, vm) in attached.iter().skip(first).take(fits).enumerate() {
        let y = area.y + k as u16 * panel_lines;
        let panel = Rect {
            y,
            height: panel_lines,
            ..area
        };
        draw_panel(frame, app, vm, panel);
    }
}

/// One VM: a title with its settings, its heat strip, its working-set
/// sparkline.
fn draw_panel(frame: &mut Frame<'_>, app: &App, vm: &VmSnapshot, area: Rect) {
    let width = area.width as usize;
    let is_selected = app.selected == Some(vm.row.vm);
    let mut title = format!("-- {} ", vm.row.vm);
    match vm.config.as_ref().and_then(|c| c.settings) {
        Some(s) => title.push_str(&format!(
            "{} | {} {} | period {} ms | flush {} | {} rounds ",
            vm.row.state,
            s.track.as_str(),
            s.granule,
            s.period_ms,
            flush_text(vm),
            vm.stats.as_ref().map_or(0, |s| s.rounds)
        )),
        None => title.push_str(&format!("{} ", vm.row.state)),
    }
    let title = pad_with(&title, width, '-');
    let title_style = if is_selected {
        Style::default().add_modifier(Modifier::BOLD)
    } else {
        Style::default().add_modifier(Modifier::DIM)
    };
    let mut lines = vec![Line::from(Span::styled(title, title_style))];
    lines.push(strip_line(app, vm, width, Bits::Heat));
    frame.render_widget(Paragraph::new(lines), Rect { height: 2, ..area });
    draw_wss(
        frame,
        app,
        vm,
        Rect {
            y: area.y + 2,
            height: area.height.saturating_sub(2).max(1),
            ..area
        },
    );
}

/// Which bits a strip shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bits {
    /// Accessed bits (dirty bits when the mode records no accessed bits).
    Heat,
    /// Dirty bits.
    Dirty,
}

/// `heat 0|<ramp>~<ramp>|4G`: the heat map folded across the line, the
/// VM's memslots side by side, a `~` where a long hole between them is
/// cut out ([`Axis`]).
fn strip_line(app: &App, vm: &VmSnapshot, width: usize, bits: Bits) -> Line<'static> {
    let name = match bits {
        Bits::Heat => "heat",
        Bits::Dirty => "dirty",
    };
    let Some((header, runs)) = &vm.heatmap else {
        return Line::from(format!("  {name}: no heat map yet"));
    };
    let Some(axis) = Axis::new(&axis::covered(&vm.memslots, runs)) else {
        return Line::from(format!("  {name}: empty heat map"));
    };
    let (Some(first), Some(last)) = (axis.segments.first(), axis.segments.last()) else {
        return Line::from(format!("  {name}: empty heat map"));
    };
    let left = format!("  {name} {}|", size_label(first.gpa.start));
    let right = format!("|{}", size_label(last.gpa.end));
    let n = width.saturating_sub(left.len() + right.len());
    if n == 0 {
        return Line::default();
    }
    let accessed = bits == Bits::Heat && header.mode.accessed();
    let mut spans = vec![Span::raw(left)];
    for (i, (range, k)) in axis.columns(n).into_iter().enumerate() {
        if i > 0 {
            spans.push(cut_span());
        }
        spans.extend(heat_spans(
            app,
            &bins::fold(runs, range.start, range.end, k),
            accessed,
        ));
    }
    spans.push(Span::raw(right));
    Line::from(spans)
}

/// The mark of a hole cut out of a line (between two memslots).
fn cut_span() -> Span<'static> {
    Span::styled("~", Style::default().add_modifier(Modifier::DIM))
}

/// One character of heat `level` (`None`: nothing mapped), coloured.
fn heat_span(app: &App, level: Option<f64>) -> Span<'static> {
    let ch = ramp_char(level).to_string();
    match level {
        None => Span::raw(ch),
        Some(l) => Span::styled(ch, color(app, Color::Indexed(ansi256(l)))),
    }
}

/// One styled character per bin.
fn heat_spans(app: &App, bins: &[Bin], accessed: bool) -> Vec<Span<'static>> {
    bins.iter()
        .map(|b| heat_span(app, b.level(!accessed, ColorBy::Heat)))
        .collect()
}

/// `wss 16.0M <sparkline> max 16.0M`: accessed pages per round, newest
/// right; the labels sit on the sparkline's bottom line.
fn draw_wss(frame: &mut Frame<'_>, app: &App, vm: &VmSnapshot, area: Rect) {
    let bottom = Rect {
        y: area.y + area.height.saturating_sub(1),
        height: 1,
        ..area
    };
    let series = app.wss.get(&vm.row.vm);
    let Some(series) = series.filter(|s| !s.is_empty()) else {
        frame.render_widget(Paragraph::new("  wss: no rounds yet"), bottom);
        return;
    };
    let last = series.pages().next_back().unwrap_or(0);
    let max = series.pages().max().unwrap_or(0);
    let label = format!("  wss {:>6} ", size_label(last.saturating_mul(4096)));
    let right = format!(" max {}", size_label(max.saturating_mul(4096)));
    let n = (area.width as usize).saturating_sub(label.len() + right.len());
    let data: Vec<u64> = series
        .pages()
        .skip(series.len().saturating_sub(n))
        .collect();
    let label_w = label.len() as u16;
    frame.render_widget(
        Paragraph::new(label),
        Rect {
            width: label_w.min(area.width),
            ..bottom
        },
    );
    if n > 0 {
        // Newest on the right, against the labels, however few rounds.
        let pad = (n - data.len()) as u16;
        frame.render_widget(
            Sparkline::default()
                .data(data)
                .max(max.max(1))
                .style(color(app, Color::Green)),
            Rect {
                x: area.x + label_w + pad,
                width: n as u16 - pad,
                ..area
            },
        );
    }
    let right_w = right.len() as u16;
    frame.render_widget(
        Paragraph::new(right),
        Rect {
            x: area.x + area.width.saturating_sub(right_w),
            width: right_w.min(area.width),
            ..bottom
        },
    );
}

/// The detail pane: settings and counters, memslots, a larger heat map,
/// and the history as address x time.
fn draw_detail(frame: &mut Frame<'_>, app: &App, vm: &VmSnapshot, area: Rect) {
    let width = area.width as usize;
    let mut lines: Vec<Line<'static>> = Vec::new();
    lines.push(Line::from(Span::styled(
        pad_with(
            &format!("-- {} detail (Esc closes) ", vm.row.vm),
            width,
            '-',
        ),
        Style::default().add_modifier(Modifier::BOLD),
    )));
    let Some(config) = &vm.config else {
        lines.push(Line::from(format!("  {}", not_attached(vm))));
        frame.render_widget(Paragraph::new(lines), area);
        return;
    };
    if let Some(s) = config.settings {
        lines.push(Line::from(fit(
            &format!(
                "  period {}ms mode {} granule {} window {} flush {} walk {} history {}",
                s.period_ms,
                s.track.as_str(),
                s.granule,
                s.window,
                s.flush.as_str(),
                s.walk.as_str(),
                s.history
            ),
            width,
        )));
    }
    if let Some(st) = &vm.stats {
        lines.push(Line::from(fit(
            &format!(
                "  rounds {} leaves {} walk-max {:.2}ms flushes {} unflushed {} yields {} mem {}",
                st.rounds,
                st.leaves_last,
                st.walk_ns_max as f64 / 1e6,
                st.flushes,
                st.unflushed_rounds,
                st.yields,
                size_label(st.store_bytes + st.history_bytes),
            ),
            width,
        )));
    }
    let slots: Vec<String> = vm
        .memslots
        .iter()
        .map(|m| {
            let bytes = slot_bytes(m);
            let mut flags = String::new();
            if m.flags.dirty_log {
                flags.push_str(" dirty-log");
            }
            if m.flags.readonly {
                flags.push_str(" ro");
            }
            format!(
                "{}:{}..{}{}",
                m.slot(),
                size_label(bytes.start),
                size_label(bytes.end),
                flags
            )
        })
        .collect();
    lines.push(Line::from(fit(
        &format!("  memslots {}", slots.join("  ")),
        width,
    )));
    if let Some(idle) = &vm.idle {
        for line in crate::render::text::idle_lines(&idle.counts).lines() {
            lines.push(Line::from(fit(line, width)));
        }
    }
    // Dirty bits beside the accessed ones, when the mode records both
    // (with dirty alone, the heat map is already the dirty one).
    if vm
        .heatmap
        .as_ref()
        .is_some_and(|(h, _)| h.mode.accessed() && h.mode.dirty())
    {
        lines.push(strip_line(app, vm, width, Bits::Dirty));
    }

    // Split what is left between the heat map and the history grid.
    let used = lines.len() as u16;
    let left = area.height.saturating_sub(used);
    let heat_rows = (left.saturating_sub(2) / 2).min(8);
    if heat_rows > 0 {
        heat_block(app, vm, width, heat_rows as usize, &mut lines);
    }
    // The heat map may take fewer lines than offered (round sizes a line).
    let history_rows = area.height.saturating_sub(lines.len() as u16);
    if history_rows > 0 {
        history_block(app, vm, width, history_rows as usize, &mut lines);
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// A heat map of up to `rows` lines, each line an equal address range
/// (a power of two), the VM's memslots one after the other, a `~` line
/// where a long hole between them is cut out ([`Rows`]).
fn heat_block(app: &App, vm: &VmSnapshot, width: usize, rows: usize, out: &mut Vec<Line<'static>>) {
    let Some((header, runs)) = &vm.heatmap else {
        return;
    };
    let segments = axis::segments(&axis::covered(&vm.memslots, runs));
    let label_w = 8;
    let cols = width.saturating_sub(label_w + 2);
    if cols == 0 || segments.is_empty() {
        return;
    }
    let layout = Rows::per_row(&segments, cols, u16::try_from(rows).unwrap_or(u16::MAX));
    out.push(Line::from(fit(
        &format!(
            "  heat map, {} a line: '.' idle .. '@' every round, blank hole, '^' memslot, '~' cut",
            size_label(layout.row_bytes)
        ),
        width,
    )));
    for row in &layout.rows {
        let (s, e, cells) = match *row {
            Row::Cells { start, end, cells } => (start, end, cells),
            Row::Cut(ref hole) => {
                out.push(Line::from(vec![
                    Span::raw(format!("{:>label_w$} ", "")),
                    Span::styled(
                        pad_with(
                            &format!("~ {} cut out ", size_label(hole.end - hole.start)),
                            cols,
                            '~',
                        ),
                        Style::default().add_modifier(Modifier::DIM),
                    ),
                ]));
                continue;
            }
        };
        let bins = bins::fold(runs, s, e, cells);
        let mut spans = vec![Span::raw(format!("{:>label_w$}|", size_label(s)))];
        let mut cells = heat_spans(app, &bins, header.mode.accessed());
        // Mark the memslot boundaries that fall in this line.
        for m in &vm.memslots {
            let base = slot_bytes(m).start;
            if (s..e).contains(&base) {
                let n = cells.len();
                let c = ((base - s) as f64 / (e - s) as f64 * n as f64) as usize;
                if let Some(cell) = cells.get_mut(c.min(n.saturating_sub(1))) {
                    *cell = Span::styled("^", Style::default().add_modifier(Modifier::BOLD));
                }
            }
        }
        let short = cols.saturating_sub(cells.len());
        spans.extend(cells);
        spans.push(Span::raw(" ".repeat(short)));
        spans.push(Span::raw("|"));
        out.push(Line::from(spans));
    }
}

/// The `history` ring as a grid: one line per round (newest last), one
/// column per address range, the accessed share as the ramp.
fn history_block(
    app: &App,
    vm: &VmSnapshot,
    width: usize,
    rows: usize,
    out: &mut Vec<Line<'static>>,
) {
    let Some(history) = &vm.history else {
        return;
    };
    let regions = history.header.regions as usize;
    let label_w = 8;
    let cols = width.saturating_sub(label_w + 2).min(regions.max(1) * 4);
    if cols == 0 || regions == 0 || rows < 2 {
        return;
    }
    let span = history.header.region.bytes().saturating_mul(regions as u64);
    out.push(Line::from(fit(
        &format!(
            "  history: address {}..{} across, last {} rounds down (newest last)",
            size_label(history.header.base),
            size_label(history.header.base.saturating_add(span)),
            (rows - 1).min(history.rounds.len())
        ),
        width,
    )));
    // The columns: the memslots side by side as in the heat strip (long
    // holes cut out), each column the regions under its addresses.
    let covered = if vm.memslots.is_empty() {
        let all = history.header.base..history.header.base.saturating_add(span);
        vec![all]
    } else {
        axis::covered(&vm.memslots, &[])
    };
    let columns = Axis::new(&covered)
        .map(|a| a.columns(cols))
        .unwrap_or_default();
    let region = history.header.region.bytes().max(1);
    let shown = &history.rounds[history.rounds.len().saturating_sub(rows - 1)..];
    for round in shown {
        let mut spans = vec![Span::raw(format!(
            "{:>label_w$}|",
            format!("r{}", round.record.round)
        ))];
        for (i, (range, k)) in columns.iter().enumerate() {
            if i > 0 {
                spans.push(cut_span());
            }
            let len = u128::from(range.end - range.start);
            for c in 0..*k {
                let at = |c: usize| range.start + (len * c as u128 / *k as u128) as u64;
                let (a, b) = (at(c), at(c + 1).max(at(c) + 1));
                // The regions under this column; the hottest one shows.
                let first = a.saturating_sub(history.header.base) / region;
                let end = b.saturating_sub(history.header.base).div_ceil(region);
                let share = (a >= history.header.base)
                    .then(|| usize::try_from(first).ok().zip(usize::try_from(end).ok()))
                    .flatten()
                    .and_then(|(f, e)| round.accessed.get(f..e.min(regions).max(f)))
                    .and_then(|s| s.iter().copied().max());
                spans.push(heat_span(app, share.map(|v| f64::from(v) / 255.0)));
            }
        }
        spans.push(Span::raw("|"));
        out.push(Line::from(spans));
    }
}

/// `text` cut to `width` characters.
fn fit(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// `text` cut or padded with `fill` to `width` characters.
fn pad_with(text: &str, width: usize, fill: char) -> String {
    let mut s = fit(text, width);
    let n = s.chars().count();
    s.extend(std::iter::repeat_n(fill, width.saturating_sub(n)));
    s
}

/// `HH:MM:SS` UTC of a Unix time in ms.
fn clock(unix_ms: u64) -> String {
    let s = (unix_ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}Z", s / 3600, (s / 60) % 60, s % 60)
}
