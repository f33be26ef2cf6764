//! The regret plot: cumulative regret against steps (log scale) for the weights, the uniform
//! split and the oracle, each mean with a band of ±1.96 standard errors over repetitions.

use std::path::Path;

use plotters::prelude::*;

use plotters::coord::Shift;

use super::Report;

/// The three policies' legend labels and colours, in the order of every plot.
const SERIES: [(&str, RGBColor); 3] =
    [("banditflow weights", RGBColor(31, 119, 180)), ("uniform split", RGBColor(214, 39, 40)), ("oracle at each refresh", RGBColor(44, 160, 44))];

/// Why the plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the plot {path}: {message}")]
pub struct PlotError {
    /// The file.
    pub path: String,
    /// What the drawing library said.
    pub message: String,
}

/// Draws `report` as an SVG at `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), PlotError> {
    let error = |e: &dyn std::fmt::Display| PlotError { path: path.display().to_string(), message: e.to_string() };
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let steps: Vec<f64> = report.steps.iter().map(|s| *s as f64).collect();
    let top = [&report.weights, &report.uniform, &report.oracle]
        .iter()
        .flat_map(|p| p.regret_mean.iter().zip(&p.regret_se).map(|(m, se)| m + 1.96 * se))
        .fold(1.0, f64::max);
    let last = steps.last().copied().unwrap_or(1.0).max(2.0);
    let caption = format!("{}: cumulative regret, {} reps, refresh every {} steps", report.scenario, report.reps, report.refresh_every);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d((1.0..last).log_scale(), 0.0..top * 1.05)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("steps (units served per entity)")
        .y_desc("cumulative expected regret")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| error(&e))?;
    for (label, policy, color) in [(SERIES[0], &report.weights), (SERIES[1], &report.uniform), (SERIES[2], &report.oracle)].map(|((l, c), p)| (l, p, c)) {
        let points: Vec<(f64, f64, f64)> = steps.iter().zip(policy.regret_mean.iter().zip(&policy.regret_se)).map(|(s, (m, se))| (*s, *m, *se)).collect();
        draw_policy(&mut chart, label, &points, 0.0, color, false).map_err(|e| error(&e))?;
    }
    finish(&mut chart, &root).map_err(|e| error(&e))?;
    Ok(())
}

/// Draws a sweep over `refresh_every` as an SVG at `path`: final regret (mean, with a band
/// of ±1.96 standard errors) against the refresh interval, both on log scales.
pub fn write_sweep_svg(sweep: &super::Sweep, path: &Path) -> Result<(), PlotError> {
    let error = |e: &dyn std::fmt::Display| PlotError { path: path.display().to_string(), message: e.to_string() };
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let xs: Vec<f64> = sweep.points.iter().map(|p| p.refresh_every as f64).collect();
    let (x0, x1) = (xs.first().copied().unwrap_or(1.0), xs.last().copied().unwrap_or(10.0).max(xs.first().copied().unwrap_or(1.0) * 10.0));
    let values = sweep.points.iter().flat_map(|p| [p.weights, p.uniform, p.oracle]).map(|[m, se]| m + 1.96 * se);
    let top = values.fold(1.0, f64::max);
    let positive = sweep.points.iter().flat_map(|p| [p.weights[0], p.uniform[0], p.oracle[0]]).filter(|v| *v > 0.0).fold(top, f64::min);
    let caption = format!("{}: final regret after {} steps against the refresh interval ({} reps)", sweep.scenario, sweep.total_steps, sweep.reps);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d((x0 / 1.5..x1 * 1.5).log_scale(), (positive / 2.0..top * 2.0).log_scale())
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("refresh every (steps)")
        .y_desc("final cumulative regret")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| error(&e))?;
    let pick: [fn(&super::SweepPoint) -> [f64; 2]; 3] = [|p| p.weights, |p| p.uniform, |p| p.oracle];
    for ((label, color), of) in SERIES.into_iter().zip(pick) {
        // A point at 0 (the oracle on a stationary world) has no place on a log scale.
        let points: Vec<(f64, f64, f64)> = sweep.points.iter().map(|p| (p.refresh_every as f64, of(p)[0], of(p)[1])).filter(|(_, m, _)| *m > 0.0).collect();
        if !points.is_empty() {
            draw_policy(&mut chart, label, &points, positive / 2.0, color, true).map_err(|e| error(&e))?;
        }
    }
    finish(&mut chart, &root).map_err(|e| error(&e))?;
    Ok(())
}

/// One policy: its band of ±1.96 standard errors (not below `floor`), its mean as a line
/// (with dots when `dots`), and its legend entry. `points` are (x, mean, standard error).
fn draw_policy<Y>(chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<LogCoord<f64>, Y>>, label: &str, points: &[(f64, f64, f64)], floor: f64, color: RGBColor, dots: bool) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    let upper = points.iter().map(|(x, m, se)| (*x, m + 1.96 * se));
    let lower = points.iter().map(|(x, m, se)| (*x, (m - 1.96 * se).max(floor)));
    let band: Vec<(f64, f64)> = upper.chain(lower.rev()).collect();
    chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.18)))).map_err(|e| e.to_string())?;
    if dots {
        chart.draw_series(points.iter().map(|(x, m, _)| Circle::new((*x, *m), 4, color.filled()))).map_err(|e| e.to_string())?;
    }
    chart
        .draw_series(LineSeries::new(points.iter().map(|(x, m, _)| (*x, *m)), color.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

/// The legend, then the file written.
fn finish<'a, Y>(chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<LogCoord<f64>, Y>>, root: &DrawingArea<SVGBackend<'a>, Shift>) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).position(SeriesLabelPosition::UpperLeft).draw().map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
