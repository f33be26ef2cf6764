//! The evaluation as a table for the terminal: a line per (entity, candidate, window end).

use super::EvaluationRow;
use banditflow_core::evaluation::Estimate;

fn cell(e: Option<Estimate>) -> String {
    e.map_or_else(|| "-".to_owned(), |e| format!("{:.4} [{:.4}, {:.4}]", e.estimate, e.ci95[0], e.ci95[1]))
}

fn time(ms: i64) -> String {
    u64::try_from(ms).map_or_else(|_| ms.to_string(), |ms| humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string())
}

/// The rows as aligned columns, warnings on the lines after the row they concern.
pub fn render(rows: &[EvaluationRow]) -> String {
    let header = ["entity", "candidate", "window_end", "rows", "logged", "ips [95%]", "snips [95%]", "dr [95%]", "ess", ">clip"].map(str::to_owned);
    let mut lines: Vec<[String; 10]> = vec![header];
    for r in rows {
        lines.push([
            r.entity_id.clone(),
            r.candidate.clone(),
            time(r.window_end),
            r.rows.to_string(),
            r.logged_reward.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}")),
            cell(r.ips),
            cell(r.snips),
            cell(r.dr),
            format!("{:.1}", r.ess),
            format!("{:.1}%", 100.0 * r.above_clip),
        ]);
    }
    let widths: Vec<usize> = (0..10).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i > 0 {
            for warning in &rows[i - 1].warnings {
                out.push_str(&format!("  ! {warning}\n"));
            }
        }
    }
    out
}
