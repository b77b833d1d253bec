//! Axis ranges, ticks and text layout of the SVG charts.

use super::{Axis, Scale, CHAR_W};

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Splits `text` into lines of at most `width` px at font size `size`.
pub(super) fn wrap(text: &str, width: f64, size: f64) -> Vec<String> {
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
pub(super) fn nice_ticks(lo: f64, hi: f64, want: usize, integer: bool) -> Vec<f64> {
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

pub(super) fn fmt_tick(v: f64) -> String {
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
pub(super) fn axis_range(axis: &Axis, lo: f64, hi: f64) -> (f64, f64) {
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

pub(super) struct Map {
    pub(super) scale: Scale,
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) a: f64,
    pub(super) b: f64,
}

impl Map {
    pub(super) fn at(&self, v: f64) -> Option<f64> {
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

    pub(super) fn ticks(&self) -> Vec<(f64, String)> {
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
    fn log_axes_round_out_to_one_two_five_steps() {
        assert_eq!(axis_range(&Axis::log("n"), 10.0, 200.0), (10.0, 200.0));
        assert_eq!(axis_range(&Axis::log("t"), 0.013, 370.0), (0.01, 500.0));
    }
}
