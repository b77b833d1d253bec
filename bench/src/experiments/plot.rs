//! Line and dot charts with interval bars, written as plain SVG.
//!
//! Drawn by hand rather than through a plotting crate so that the layout is under control: the
//! figure title wraps instead of being clipped, legends sit below each plot instead of over the
//! data, axes are linear, logarithmic, integer or categorical (configurations are categories,
//! not points on an index line), and series at the same x can be spread apart so that no line
//! hides another.

mod panel;
mod scale;

use std::fmt::Write as _;
use std::path::Path;

use panel::{panel_height, panel_svg};
use scale::{esc, wrap};

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
    /// Spread the series sideways at each x, so that equal values stay visible: the spread of
    /// all series together, in x units (categories and integers are one unit apart; not
    /// applied on log axes nor to series without markers).
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
