//! Inline SVG charts for the HTML report: time on x, one polyline per series, optional bands,
//! vertical marks (decisions). A series with more points than the chart has pixel columns is
//! downsampled: the time axis is cut into buckets of 4 pixels, and each bucket keeps its
//! first, lowest, highest and last point, so the drawn shape is the data's (peaks and the
//! last value kept) at about one point per pixel column, a size a browser opens at once.

use std::fmt::Write;

/// A series of (time, value) points, sorted by time.
pub struct Series<'a> {
    /// Its name (legend, `data-series`).
    pub name: &'a str,
    /// The points.
    pub points: Vec<(i64, f64)>,
    /// A band around it (time, low, high), if any.
    pub band: Option<Vec<(i64, f64, f64)>>,
}

/// Colours of the series, in order (then again).
const PALETTE: [&str; 10] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// The points to draw of `points` (sorted by time) on a chart `columns` pixels wide over
/// `[t0, t1]`: all of them when there are few; else per column its first, lowest, highest
/// and last point, in time order. The last point is always kept.
pub fn downsample(points: &[(i64, f64)], t0: i64, t1: i64, columns: usize) -> Vec<(i64, f64)> {
    if points.len() <= 4 * columns.max(1) {
        return points.to_vec();
    }
    let span = (t1 - t0).max(1) as f64;
    let column = |t: i64| (((t - t0) as f64 / span) * columns as f64).floor().clamp(0.0, columns as f64 - 1.0) as usize;
    let mut out = Vec::with_capacity(4 * columns);
    let mut start = 0;
    while start < points.len() {
        let c = column(points[start].0);
        let mut end = start;
        while end < points.len() && column(points[end].0) == c {
            end += 1;
        }
        let run = &points[start..end];
        let lowest = run.iter().enumerate().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map_or(0, |(i, _)| i);
        let highest = run.iter().enumerate().max_by(|a, b| a.1 .1.total_cmp(&b.1 .1)).map_or(0, |(i, _)| i);
        let mut keep = vec![0, lowest, highest, run.len() - 1];
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|i| run[i]));
        start = end;
    }
    out
}

/// A chart's frame: its size, its axes' ranges.
pub struct Frame {
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// Time range shown.
    pub time: (i64, i64),
    /// Value range shown.
    pub value: (f64, f64),
}

const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;

impl Frame {
    fn x(&self, t: i64) -> f64 {
        let width = f64::from(self.size.0) - LEFT - RIGHT;
        LEFT + (t - self.time.0) as f64 / (self.time.1 - self.time.0).max(1) as f64 * width
    }

    fn y(&self, v: f64) -> f64 {
        let height = f64::from(self.size.1) - TOP - BOTTOM;
        let (lo, hi) = self.value;
        TOP + (1.0 - (v - lo) / (hi - lo).max(f64::MIN_POSITIVE)) * height
    }

    /// Buckets of the downsampling: one per 4 pixels, so a series draws at most about one
    /// point per pixel column however long it is.
    fn columns(&self) -> usize {
        ((f64::from(self.size.0) - LEFT - RIGHT) / 4.0).max(1.0) as usize
    }
}

/// An SVG chart of `series` in `frame`, with a vertical mark at each time of `marks`;
/// `chart` names it (`data-chart`). Each polyline carries `data-series` and `data-last`
/// (its last value, as drawn), so a reader of the page can check it against the records.
pub fn chart(chart: &str, frame: &Frame, series: &[Series<'_>], marks: &[(i64, String)]) -> String {
    let (w, h) = frame.size;
    let mut out = String::new();
    let _ = write!(out, r#"<svg class="chart" data-chart="{chart}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">"#);
    // Axes: value ticks at the ends and the middle; time below.
    let (lo, hi) = frame.value;
    for v in [lo, (lo + hi) / 2.0, hi] {
        let y = frame.y(v);
        let _ = write!(out, r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##, f64::from(w) - RIGHT, LEFT - 4.0, y + 4.0, axis_number(v));
    }
    // Time at the ends and the quarters, to the minute (the header has the exact range),
    // with a faint grid line inside.
    let base = f64::from(h) - BOTTOM + 14.0;
    for quarter in 0..=4 {
        let t = frame.time.0 + (frame.time.1 - frame.time.0) * quarter / 4;
        let x = frame.x(t);
        let anchor = ["start", "middle", "middle", "middle", "end"][quarter as usize];
        let minute: String = super::markdown::time(t).chars().take(16).collect::<String>().replace('T', " ");
        if (1..4).contains(&quarter) {
            let _ = write!(out, r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#eee"/>"##, f64::from(h) - BOTTOM);
        }
        let _ = write!(out, r#"<text x="{x:.1}" y="{base:.1}" font-size="11" text-anchor="{anchor}">{minute}</text>"#);
    }
    for mark in marks {
        let x = frame.x(mark.0);
        let _ = write!(out, r##"<line class="mark" x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="#444" stroke-dasharray="3 3"><title>{}</title></line>"##, f64::from(h) - BOTTOM, escape(&mark.1));
    }
    let columns = frame.columns();
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        if let Some(band) = &s.band {
            let upper: Vec<(i64, f64)> = downsample(&band.iter().map(|(t, _, hi)| (*t, *hi)).collect::<Vec<_>>(), frame.time.0, frame.time.1, columns);
            let lower: Vec<(i64, f64)> = downsample(&band.iter().map(|(t, lo, _)| (*t, *lo)).collect::<Vec<_>>(), frame.time.0, frame.time.1, columns);
            let mut path = String::new();
            for (t, v) in upper.iter().chain(lower.iter().rev()) {
                let _ = write!(path, "{:.0},{:.1} ", frame.x(*t), frame.y(*v));
            }
            let _ = write!(out, r#"<polygon class="band" data-series="{}" points="{}" fill="{colour}" fill-opacity="0.15" stroke="none"/>"#, escape(s.name), path.trim_end());
        }
        let drawn = downsample(&s.points, frame.time.0, frame.time.1, columns);
        let mut path = String::new();
        for (t, v) in &drawn {
            let _ = write!(path, "{:.0},{:.1} ", frame.x(*t), frame.y(*v));
        }
        let last = drawn.last().map_or(f64::NAN, |p| p.1);
        let _ = write!(
            out,
            r#"<polyline class="series" data-series="{}" data-last="{last}" data-points="{}" points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
            escape(s.name),
            drawn.len(),
            path.trim_end()
        );
    }
    // Legend along the bottom.
    let mut x = LEFT;
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let _ = write!(out, r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#, f64::from(h) - 14.0, x + 14.0, f64::from(h) - 5.0, escape(s.name));
        x += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
    out.push_str("</svg>");
    out
}

fn axis_number(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// `text` safe inside HTML text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_each_columns_extremes_and_the_last_point() {
        let points: Vec<(i64, f64)> = (0..10_000).map(|t| (t, ((t * 7919) % 1000) as f64)).collect();
        let drawn = downsample(&points, 0, 9_999, 100);
        assert!(drawn.len() <= 400, "{}", drawn.len());
        assert_eq!(drawn.last(), points.last());
        assert_eq!(drawn.first(), points.first());
        // Every column's highest value survives.
        let column = |t: i64| (t as f64 / 9_999.0 * 100.0).floor().min(99.0) as usize;
        for c in 0..100 {
            let highest = points.iter().filter(|p| column(p.0) == c).map(|p| p.1).fold(f64::MIN, f64::max);
            assert!(drawn.iter().any(|p| column(p.0) == c && p.1 == highest), "column {c}");
        }
        let few = &points[..50];
        assert_eq!(downsample(few, 0, 49, 100), few.to_vec());
    }

    #[test]
    fn a_chart_names_its_series_and_their_last_values_and_escapes_names() {
        let frame = Frame { size: (400, 200), time: (0, 10), value: (0.0, 1.0) };
        let series = [Series { name: "arm <a>", points: vec![(0, 0.5), (10, 0.75)], band: Some(vec![(0, 0.4, 0.6), (10, 0.7, 0.8)]) }];
        let svg = chart("weights", &frame, &series, &[(5, "arm <a>: winner".into())]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"data-series="arm &lt;a&gt;" data-last="0.75""#), "{svg}");
        assert!(svg.contains(r#"class="band""#) && svg.contains(r#"class="mark""#));
        assert!(!svg.contains("<a>"));
    }
}
