//! Drawing one panel: grid, ticks, series with their intervals, legend below the plot.

use std::fmt::Write as _;

use super::scale::{axis_range, esc, wrap, Map};
use super::{color, Marker, Panel, Pt, Scale, CHAR_W, LEFT, MARKERS, PANEL_W, PLOT_H, RIGHT};

fn marker_svg(out: &mut String, m: Marker, x: f64, y: f64, c: &str) {
    let _ = match m {
        Marker::Circle => writeln!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.2" fill="{c}"/>"#
        ),
        Marker::Square => writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="6.4" height="6.4" fill="white" stroke="{c}" stroke-width="1.6"/>"#,
            x - 3.2,
            y - 3.2
        ),
        Marker::Triangle => writeln!(
            out,
            r#"<path d="M{x:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z" fill="{c}"/>"#,
            y - 4.0,
            x + 3.8,
            y + 3.0,
            x - 3.8,
            y + 3.0
        ),
        Marker::Diamond => writeln!(
            out,
            r#"<path d="M{x:.1},{:.1} L{:.1},{y:.1} L{x:.1},{:.1} L{:.1},{y:.1} Z" fill="white" stroke="{c}" stroke-width="1.6"/>"#,
            y - 4.2,
            x + 4.2,
            y + 4.2,
            x - 4.2
        ),
        Marker::None => Ok(()),
    };
}

/// Legend entries laid out in rows that fit `width`: (row, x offset) per series.
fn legend_layout(panel: &Panel, width: f64) -> (Vec<(usize, f64)>, usize) {
    let mut pos = Vec::new();
    let (mut row, mut x) = (0usize, 0.0f64);
    for s in &panel.series {
        let w = 34.0 + s.label.chars().count() as f64 * 11.0 * CHAR_W + 14.0;
        if x > 0.0 && x + w > width {
            row += 1;
            x = 0.0;
        }
        pos.push((row, x));
        x += w;
    }
    let rows = if panel.series.is_empty() { 0 } else { row + 1 };
    (pos, rows)
}

fn data_bounds(panel: &Panel, log_x: bool, log_y: bool) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in panel.series.iter().flat_map(|s| s.points.iter()) {
        if p.x.is_finite() && !(log_x && p.x <= 0.0) {
            x0 = x0.min(p.x);
            x1 = x1.max(p.x);
        }
        for v in [p.y, p.lo, p.hi] {
            if v.is_finite() && !(log_y && v <= 0.0) {
                y0 = y0.min(v);
                y1 = y1.max(v);
            }
        }
    }
    ((x0, x1), (y0, y1))
}

/// Draws one panel at `(ox, oy)`.
pub(super) fn panel_svg(out: &mut String, panel: &Panel, id: usize, ox: f64, oy: f64) {
    let title_lines = wrap(&panel.title, PANEL_W - 40.0, 15.0);
    let top = 10.0 + 18.0 * title_lines.len() as f64;
    for (i, line) in title_lines.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="14" text-anchor="middle" font-weight="bold">{}</text>"#,
            ox + PANEL_W / 2.0,
            oy + 22.0 + 18.0 * i as f64,
            esc(line)
        );
    }
    let (px0, px1) = (ox + LEFT, ox + PANEL_W - RIGHT);
    let (py0, py1) = (oy + top + 8.0, oy + top + 8.0 + PLOT_H);
    let log_x = panel.x.scale == Scale::Log;
    let log_y = panel.y.scale == Scale::Log;
    let ((dx0, dx1), (dy0, dy1)) = data_bounds(panel, log_x, log_y);
    let (xl, xh) = axis_range(&panel.x, dx0, dx1);
    let (yl, yh) = axis_range(&panel.y, dy0, dy1);
    let mx = Map {
        scale: panel.x.scale.clone(),
        lo: xl,
        hi: xh,
        a: px0,
        b: px1,
    };
    let my = Map {
        scale: panel.y.scale.clone(),
        lo: yl,
        hi: yh,
        a: py1,
        b: py0,
    };
    let _ = writeln!(
        out,
        r#"<clipPath id="c{id}"><rect x="{px0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/></clipPath>"#,
        py0 - 4.0,
        px1 - px0,
        py1 - py0 + 8.0
    );
    // Grid and ticks.
    for (t, label) in my.ticks() {
        if let Some(y) = my.at(t) {
            let _ = writeln!(
                out,
                r##"<line x1="{px0:.1}" y1="{y:.1}" x2="{px1:.1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                px0 - 5.0,
                y + 4.0,
                esc(&label)
            );
        }
    }
    let categories = matches!(panel.x.scale, Scale::Categories(_));
    for (t, label) in mx.ticks() {
        if let Some(x) = mx.at(t) {
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{py1:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                py1 + 4.0,
                py1 + 16.0,
                esc(&label)
            );
            if categories {
                let _ = writeln!(
                    out,
                    r##"<line x1="{x:.1}" y1="{py0:.1}" x2="{x:.1}" y2="{py1:.1}" stroke="#f0f0f0"/>"##
                );
            }
        }
    }
    let _ = writeln!(
        out,
        r##"<rect x="{px0:.1}" y="{py0:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        px1 - px0,
        py1 - py0
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
        (px0 + px1) / 2.0,
        py1 + 34.0,
        esc(&panel.x.label)
    );
    let _ = writeln!(
        out,
        r#"<text x="{0:.1}" y="{1:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 {0:.1} {1:.1})">{2}</text>"#,
        ox + 16.0,
        (py0 + py1) / 2.0,
        esc(&panel.y.label)
    );
    // Series.
    let k = panel.series.len();
    let spacing = match &panel.x.scale {
        Scale::Categories(_) | Scale::Integer | Scale::Linear => 1.0,
        _ => 0.0,
    };
    let _ = writeln!(out, r#"<g clip-path="url(#c{id})">"#);
    for (i, s) in panel.series.iter().enumerate() {
        let c = color(s.style.color.unwrap_or(i));
        let marker = s.style.marker.unwrap_or(MARKERS[i % MARKERS.len()]);
        // Pure lines (no marker) are not spread: they show a function of x, not measurements.
        let shift = if k > 1 && marker != Marker::None {
            (i as f64 - (k - 1) as f64 / 2.0) * panel.dodge * spacing / k as f64
        } else {
            0.0
        };
        let pts: Vec<(Option<(f64, f64)>, Pt)> = s
            .points
            .iter()
            .map(|p| {
                let xy = match (mx.at(p.x + shift), my.at(p.y)) {
                    (Some(x), Some(y)) if p.y.is_finite() => Some((x, y)),
                    _ => None,
                };
                (xy, *p)
            })
            .collect();
        if s.style.band && !categories {
            let edge = |v: f64, p: &Pt| {
                let x = mx.at(p.x + shift)?;
                let y = my.at(v.clamp(yl, yh))?;
                (v.is_finite() && p.y.is_finite()).then_some(format!("{x:.1},{y:.1}"))
            };
            let upper: Vec<String> = s.points.iter().filter_map(|p| edge(p.hi, p)).collect();
            let lower: Vec<String> = s
                .points
                .iter()
                .rev()
                .filter_map(|p| edge(p.lo, p))
                .collect();
            if upper.len() > 1 && lower.len() > 1 {
                let _ = writeln!(
                    out,
                    r#"<polygon points="{} {}" fill="{c}" fill-opacity="0.18" stroke="none"/>"#,
                    upper.join(" "),
                    lower.join(" ")
                );
            }
        }
        if s.style.line && !categories {
            let dash = if s.style.dashed {
                r#" stroke-dasharray="7 4""#
            } else {
                ""
            };
            for run in pts.split(|(xy, _)| xy.is_none()) {
                if run.len() < 2 {
                    continue;
                }
                let d: Vec<String> = run
                    .iter()
                    .filter_map(|(xy, _)| xy.map(|(x, y)| format!("{x:.1},{y:.1}")))
                    .collect();
                let _ = writeln!(
                    out,
                    r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"{dash}/>"#,
                    d.join(" ")
                );
            }
        }
        for (xy, p) in &pts {
            let Some((x, y)) = xy else { continue };
            if !s.style.band && p.lo.is_finite() && p.hi.is_finite() && p.hi > p.lo {
                let (Some(a), Some(b)) = (my.at(p.lo.max(yl)), my.at(p.hi.min(yh))) else {
                    continue;
                };
                let _ = writeln!(
                    out,
                    r#"<path d="M{x:.1},{a:.1} L{x:.1},{b:.1} M{:.1},{a:.1} L{:.1},{a:.1} M{:.1},{b:.1} L{:.1},{b:.1}" stroke="{c}" stroke-width="1.2" fill="none"/>"#,
                    x - 3.0,
                    x + 3.0,
                    x - 3.0,
                    x + 3.0
                );
            }
            marker_svg(out, marker, *x, *y, c);
        }
    }
    let _ = writeln!(out, "</g>");
    // Legend, below the axis label.
    let (pos, _) = legend_layout(panel, PANEL_W - LEFT - RIGHT);
    for ((row, dx), (i, s)) in pos.iter().zip(panel.series.iter().enumerate()) {
        let c = color(s.style.color.unwrap_or(i));
        let marker = s.style.marker.unwrap_or(MARKERS[i % MARKERS.len()]);
        let lx = px0 + dx;
        let ly = py1 + 54.0 + 17.0 * *row as f64;
        if s.style.line && !categories {
            let dash = if s.style.dashed {
                r#" stroke-dasharray="7 4""#
            } else {
                ""
            };
            let _ = writeln!(
                out,
                r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="2"{dash}/>"#,
                lx + 26.0
            );
        }
        marker_svg(out, marker, lx + 13.0, ly, c);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            lx + 32.0,
            ly + 4.0,
            esc(&s.label)
        );
    }
}

pub(super) fn panel_height(panel: &Panel) -> f64 {
    let title = wrap(&panel.title, PANEL_W - 40.0, 15.0).len() as f64;
    let (_, rows) = legend_layout(panel, PANEL_W - LEFT - RIGHT);
    18.0 + 18.0 * title + PLOT_H + 50.0 + 17.0 * rows as f64 + 8.0
}
