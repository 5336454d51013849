//! The summary table and the statistics the sections share.

use std::fmt::Write as _;
use std::time::Duration;

use super::{FsInfo, Plan};

pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) store: String,
    pub(crate) reference: String,
    pub(crate) value: String,
    pub(crate) target: String,
    /// None: no target, shown for information.
    pub(crate) pass: Option<bool>,
    /// Measures the disk (meaningless on tmpfs).
    pub(crate) disk: bool,
}

/// Prints the table; true when a target was missed.
pub(crate) fn summary(rows: &[Row], plan: &Plan, fs: &FsInfo, took: Duration) -> bool {
    let mut out = String::new();
    let header = [
        "figure",
        "store",
        "reference",
        "ratio / n",
        "target",
        "result",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let result = match r.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "info",
            };
            let result = if r.disk && fs.fake {
                format!("{result} ({} - meaningless)", fs.name)
            } else {
                result.to_owned()
            };
            [
                r.name.clone(),
                r.store.clone(),
                r.reference.clone(),
                r.value.clone(),
                r.target.clone(),
                result,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c) {
            *w = (*w).max(s.len());
        }
    }
    let line = |out: &mut String, c: &[&str]| {
        let cols: Vec<String> = c
            .iter()
            .zip(widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", cols.join(" | "));
    };
    let _ = writeln!(
        out,
        "\nvigil-store summary ({} mode, {} bytes per fragment, data on {}, {:.0} s)",
        plan.mode,
        plan.fragment_bytes,
        fs.describe,
        took.as_secs_f64()
    );
    line(&mut out, &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for c in &cells {
        line(&mut out, &c.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let missed = rows.iter().any(|r| r.pass == Some(false));
    if missed {
        let _ = writeln!(
            out,
            "MISSED: {}",
            rows.iter()
                .filter(|r| r.pass == Some(false))
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    print!("{out}");
    missed
}

/// The median; the mean of the middle two for an even count.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match (
        v.len() % 2,
        mid.checked_sub(1).and_then(|i| v.get(i)),
        v.get(mid),
    ) {
        (0, Some(a), Some(b)) => (a + b) / 2.0,
        (_, _, Some(m)) => *m,
        _ => 0.0,
    }
}

/// The `q` quantile of sorted durations (nearest rank).
pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
