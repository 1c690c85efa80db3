//! Small line charts as inline SVG, drawn on the server: a series of
//! (time, value) samples scaled into a fixed box, with the range and the
//! newest value labelled. No script and no external asset.

use maud::{Markup, html};

/// Width and height of a chart, in CSS pixels.
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 120.0;
/// Room at the bottom for the labels.
const LABEL_ROOM: f64 = 16.0;

/// A line chart of `points` (ms, value), titled `label`; a note instead
/// when there are fewer than two samples.
pub fn line(label: &str, points: &[(i64, f64)]) -> Markup {
    if points.len() < 2 {
        return html! {
            p.muted.chart-empty { (label) ": collecting samples…" }
        };
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let span_ms = (t1 - t0).max(1) as f64;
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    // Headroom above the highest sample, so a flat line is not drawn on
    // the frame.
    let top = if max <= 0.0 { 1.0 } else { max * 1.25 };
    let plot_h = HEIGHT - LABEL_ROOM - 4.0;
    let coords: Vec<String> = points
        .iter()
        .map(|&(t, v)| {
            let x = (t - t0) as f64 / span_ms * (WIDTH - 2.0) + 1.0;
            let y = 2.0 + plot_h - v / top * plot_h;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let newest = points[points.len() - 1].1;
    let seconds = (t1 - t0) / 1000;
    html! {
        svg.chart width=(WIDTH) height=(HEIGHT) viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
            role="img" aria-label=(label) {
            title { (label) }
            line x1="0" y1=(2.0 + plot_h) x2=(WIDTH) y2=(2.0 + plot_h) stroke="#dfe3ea" {}
            polyline points=(coords.join(" ")) {}
            text x="4" y="12" { "max " (fmt(max)) }
            text x="4" y=(HEIGHT - 4.0) { (label) ", last " (seconds) " s" }
            text x=(WIDTH - 4.0) y=(HEIGHT - 4.0) text-anchor="end" { "now " (fmt(newest)) }
        }
    }
}

/// A figure with at most one decimal, none when whole.
pub fn fmt(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_scales_its_samples_into_the_box() {
        let svg = line("lag", &[(0, 0.0), (1000, 5.0), (2000, 10.0)]).into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        // The first point is at the left bottom, the highest a fifth of the
        // plot below the top (headroom).
        assert!(
            svg.contains("points=\"1.0,102.0 240.0,62.0 479.0,22.0\""),
            "{svg}"
        );
        assert!(svg.contains("now 10"), "{svg}");
        let few = line("lag", &[(0, 1.0)]).into_string();
        assert!(!few.contains("<svg") && few.contains("collecting"), "{few}");
    }
}
