//! Line and dot charts with interval bars, written as plain SVG.
//!
//! Drawn by hand rather than through a plotting crate so that the layout is under control: the
//! figure title wraps instead of being clipped, legends sit below each plot instead of over the
//! data, axes are linear, logarithmic, integer or categorical (configurations are categories,
//! not points on an index line), and series at the same x can be spread apart so that no line
//! hides another.

use std::fmt::Write as _;
use std::path::Path;

/// How an axis maps values.
#[derive(Debug, Clone, PartialEq)]
pub enum Scale {
    /// Linear, ticks at round numbers.
    Linear,
    /// Linear, ticks at integers only (counts: W, failed nodes, N).
    Integer,
    /// Base-10 logarithmic; values at or below 0 are not drawn.
    Log,
    /// Named categories at x = 0, 1, 2...; points are drawn as dots with their intervals and are
    /// not joined by lines.
    Categories(Vec<String>),
}

/// One axis: label, scale and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Description under (or beside) the axis.
    pub label: String,
    /// The mapping.
    pub scale: Scale,
    /// Hard limits: the automatic range never goes beyond them (probabilities: `(0, 1)`).
    pub limits: (f64, f64),
    /// Whether the automatic range starts at 0 (linear scales of non-negative quantities).
    pub zero: bool,
}

impl Axis {
    /// A linear axis whose range covers the data and 0.
    pub fn linear(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            scale: Scale::Linear,
            limits: (f64::NEG_INFINITY, f64::INFINITY),
            zero: true,
        }
    }

    /// A linear axis of a non-negative quantity: from 0, never below.
    pub fn non_negative(label: impl Into<String>) -> Self {
        Self {
            limits: (0.0, f64::INFINITY),
            ..Self::linear(label)
        }
    }

    /// A linear axis of a quantity in percent: within [0, 100].
    pub fn percent(label: impl Into<String>) -> Self {
        Self {
            limits: (0.0, 100.0),
            ..Self::linear(label)
        }
    }

    /// A probability axis: within [0, 1], from the data's minimum (rounded down) to 1.
    pub fn probability(label: impl Into<String>) -> Self {
        Self {
            limits: (0.0, 1.0),
            zero: false,
            ..Self::linear(label)
        }
    }

    /// A linear x axis: covers the data with a margin on both sides.
    pub fn x(label: impl Into<String>) -> Self {
        Self {
            zero: false,
            ..Self::linear(label)
        }
    }

    /// An integer axis (ticks at whole numbers only).
    pub fn integer(label: impl Into<String>) -> Self {
        Self {
            scale: Scale::Integer,
            zero: false,
            ..Self::linear(label)
        }
    }

    /// A logarithmic axis.
    pub fn log(label: impl Into<String>) -> Self {
        Self {
            scale: Scale::Log,
            zero: false,
            limits: (0.0, f64::INFINITY),
            ..Self::linear(label)
        }
    }

    /// A categorical axis with these names (x = index).
    pub fn categories(label: impl Into<String>, names: Vec<String>) -> Self {
        Self {
            scale: Scale::Categories(names),
            zero: false,
            ..Self::linear(label)
        }
    }
}

/// A point with its interval (`lo`, `hi`; NaN when there is none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pt {
    /// Position on the x axis (the index for categories).
    pub x: f64,
    /// Value; NaN is not drawn.
    pub y: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
}

impl Pt {
    /// A point without interval.
    pub fn new(x: f64, y: f64) -> Self {
        Self {
            x,
            y,
            lo: f64::NAN,
            hi: f64::NAN,
        }
    }

    /// A point with the interval `y ± half`.
    pub fn ci(x: f64, y: f64, half: f64) -> Self {
        Self {
            x,
            y,
            lo: y - half,
            hi: y + half,
        }
    }

    /// A point with the interval `[lo, hi]`.
    pub fn interval(x: f64, y: f64, lo: f64, hi: f64) -> Self {
        Self { x, y, lo, hi }
    }
}

/// Marker shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A hollow square.
    Square,
    /// A filled triangle.
    Triangle,
    /// A hollow diamond.
    Diamond,
    /// No marker.
    None,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Palette index; `None`: the series' position in its panel.
    pub color: Option<usize>,
    /// Dashed line.
    pub dashed: bool,
    /// Join the points (ignored on categorical axes).
    pub line: bool,
    /// Marker; `None` picks one by position.
    pub marker: Option<Marker>,
    /// Draw the intervals as a shaded band along the line instead of bars (dense curves).
    pub band: bool,
}

impl Default for Style {
    fn default() -> Self {
        Self {
            color: None,
            dashed: false,
            line: true,
            marker: None,
            band: false,
        }
    }
}

/// One series of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points in x order.
    pub points: Vec<Pt>,
    /// Drawing style.
    pub style: Style,
}

impl Series {
    /// A series with a label, the default style and no points yet.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            points: Vec::new(),
            style: Style::default(),
        }
    }

    /// The same series with another style.
    pub fn styled(mut self, style: Style) -> Self {
        self.style = style;
        self
    }
}

/// One panel of a figure.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Panel caption.
    pub title: String,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// The series.
    pub series: Vec<Series>,
    /// Spread the series sideways at each x (a fraction of the spacing between x values), so
    /// that equal values stay visible.
    pub dodge: f64,
}

impl Panel {
    /// A panel without series.
    pub fn new(title: impl Into<String>, x: Axis, y: Axis) -> Self {
        Self {
            title: title.into(),
            x,
            y,
            series: Vec::new(),
            dodge: 0.0,
        }
    }
}

/// Error while writing a figure.
#[derive(Debug, thiserror::Error)]
#[error("drawing {path}: {message}")]
pub struct PlotError {
    /// The SVG file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];
const MARKERS: [Marker; 4] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
];
const PANEL_W: f64 = 500.0;
const PLOT_H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const CHAR_W: f64 = 0.6;

/// The palette colour of index `i`.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Splits `text` into lines of at most `width` px at font size `size`.
fn wrap(text: &str, width: f64, size: f64) -> Vec<String> {
    let max = ((width / (size * CHAR_W)) as usize).max(8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > max {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Round tick positions covering `[lo, hi]`, about `want` of them.
fn nice_ticks(lo: f64, hi: f64, want: usize, integer: bool) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / want.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    if integer {
        step = step.max(1.0).round();
    }
    let start = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut t = start;
    while t <= hi + step * 1e-9 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    ticks
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// The range an axis shows for data spanning `[lo, hi]`.
fn axis_range(axis: &Axis, lo: f64, hi: f64) -> (f64, f64) {
    let (lmin, lmax) = axis.limits;
    match &axis.scale {
        Scale::Categories(names) => (-0.5, names.len().max(1) as f64 - 0.5),
        Scale::Log => {
            let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1.0 };
            let hi = if hi.is_finite() && hi > lo {
                hi
            } else {
                lo * 10.0
            };
            // Round outwards to 1-2-5 steps.
            let down = |v: f64| {
                let d = 10f64.powf(v.log10().floor());
                [5.0, 2.0, 1.0]
                    .iter()
                    .map(|m| m * d)
                    .find(|t| *t <= v * 1.000_001)
                    .unwrap_or(d)
            };
            let up = |v: f64| {
                let d = 10f64.powf(v.log10().floor());
                [1.0, 2.0, 5.0, 10.0]
                    .iter()
                    .map(|m| m * d)
                    .find(|t| *t >= v * 0.999_999)
                    .unwrap_or(10.0 * d)
            };
            (down(lo), up(hi))
        }
        Scale::Integer => {
            let lo = if lo.is_finite() { lo } else { 0.0 };
            let hi = if hi.is_finite() { hi } else { lo + 1.0 };
            (lo.floor() - 0.3, hi.ceil() + 0.3)
        }
        Scale::Linear => {
            let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
                (lo, hi)
            } else {
                (0.0, 1.0)
            };
            if axis.zero {
                lo = lo.min(0.0);
                hi = hi.max(0.0);
            }
            if lmin == 0.0 && lmax == 1.0 && !axis.zero {
                // Probabilities: from the minimum rounded down to a tenth, up to 1.
                lo = (lo * 10.0).floor() / 10.0;
                hi = 1.0;
            }
            if hi - lo < 1e-9 {
                let pad = if lo.abs() > 1e-9 { lo.abs() * 0.1 } else { 1.0 };
                lo -= pad;
                hi += pad;
            }
            let pad = (hi - lo) * 0.05;
            let lo = if axis.zero && lo >= 0.0 { lo } else { lo - pad };
            ((lo).max(lmin), (hi + pad).min(lmax.max(lmin + 1e-9)))
        }
    }
}

struct Map {
    scale: Scale,
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
}

impl Map {
    fn at(&self, v: f64) -> Option<f64> {
        let (v, lo, hi) = if self.scale == Scale::Log {
            if v <= 0.0 {
                return None;
            }
            (v.log10(), self.lo.log10(), self.hi.log10())
        } else {
            (v, self.lo, self.hi)
        };
        v.is_finite()
            .then(|| self.a + (v - lo) / (hi - lo) * (self.b - self.a))
    }

    fn ticks(&self) -> Vec<(f64, String)> {
        match &self.scale {
            Scale::Categories(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| (i as f64, n.clone()))
                .collect(),
            Scale::Log => {
                let (a, b) = (
                    self.lo.log10().floor() as i32,
                    self.hi.log10().ceil() as i32,
                );
                let decades = b - a;
                let mut v = Vec::new();
                for e in a..=b {
                    for m in [1.0, 2.0, 5.0] {
                        if m != 1.0 && decades > 3 {
                            continue;
                        }
                        let t = m * 10f64.powi(e);
                        if t >= self.lo * 0.999 && t <= self.hi * 1.001 {
                            v.push((t, fmt_tick(t)));
                        }
                    }
                }
                v
            }
            Scale::Integer => nice_ticks(self.lo, self.hi, 8, true)
                .into_iter()
                .map(|t| (t, format!("{t:.0}")))
                .collect(),
            Scale::Linear => nice_ticks(self.lo, self.hi, 6, false)
                .into_iter()
                .map(|t| (t, fmt_tick(t)))
                .collect(),
        }
    }
}

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

/// Draws one panel at `(ox, oy)` with `legend_rows` rows reserved for legends.
fn panel_svg(out: &mut String, panel: &Panel, id: usize, ox: f64, oy: f64) {
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
        Scale::Categories(_) | Scale::Integer => 1.0,
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

fn panel_height(panel: &Panel) -> f64 {
    let title = wrap(&panel.title, PANEL_W - 40.0, 15.0).len() as f64;
    let (_, rows) = legend_layout(panel, PANEL_W - LEFT - RIGHT);
    18.0 + 18.0 * title + PLOT_H + 50.0 + 17.0 * rows as f64 + 8.0
}

/// Renders a figure as an SVG document.
pub fn render(caption: &str, panels: &[Panel], columns: usize) -> String {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let width = PANEL_W * columns as f64;
    let caption_lines = wrap(caption, width - 40.0, 17.0);
    let head = 14.0 + 22.0 * caption_lines.len() as f64;
    let row_h: Vec<f64> = (0..rows)
        .map(|r| {
            panels
                .iter()
                .skip(r * columns)
                .take(columns)
                .map(panel_height)
                .fold(0.0, f64::max)
        })
        .collect();
    let height = head + row_h.iter().sum::<f64>() + 6.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Arial, Helvetica, sans-serif">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    for (i, line) in caption_lines.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="17" text-anchor="middle">{}</text>"#,
            width / 2.0,
            24.0 + 22.0 * i as f64,
            esc(line)
        );
    }
    let mut oy = head;
    for (r, h) in row_h.iter().enumerate() {
        for (c, panel) in panels.iter().skip(r * columns).take(columns).enumerate() {
            panel_svg(&mut out, panel, r * columns + c, c as f64 * PANEL_W, oy);
        }
        oy += h;
    }
    out.push_str("</svg>\n");
    out
}

/// Draws `panels` in a grid of `columns` columns into the SVG file `path`.
pub fn draw(path: &Path, caption: &str, panels: &[Panel], columns: usize) -> Result<(), PlotError> {
    std::fs::write(path, render(caption, panels, columns)).map_err(|e| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ticks_are_whole_numbers() {
        for (lo, hi) in [(-0.3, 5.3), (0.7, 3.3), (-0.3, 40.3)] {
            let t = nice_ticks(lo, hi, 8, true);
            assert!(!t.is_empty());
            assert!(t.iter().all(|v| v.fract() == 0.0), "{t:?}");
        }
    }

    #[test]
    fn probability_axes_stay_within_zero_and_one() {
        let axis = Axis::probability("p");
        let (lo, hi) = axis_range(&axis, 0.999, 1.0);
        assert!(
            (0.0..=1.0).contains(&lo) && hi <= 1.0 && hi > lo,
            "{lo} {hi}"
        );
        let (lo, hi) = axis_range(&axis, 1.0, 1.0);
        assert!(
            (0.0..=1.0).contains(&lo) && hi <= 1.0 && hi > lo,
            "{lo} {hi}"
        );
    }

    #[test]
    fn non_negative_axes_start_at_zero() {
        let (lo, _) = axis_range(&Axis::non_negative("ms"), -3.0, 10.0);
        assert_eq!(lo, 0.0);
    }

    #[test]
    fn long_captions_wrap_instead_of_overflowing() {
        let caption = "a very long caption ".repeat(20);
        let svg = render(
            &caption,
            &[Panel::new("p", Axis::linear("x"), Axis::linear("y"))],
            1,
        );
        assert!(svg.matches("font-size=\"17\"").count() > 1);
    }
}
