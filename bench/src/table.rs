//! The result table: one row per measurement, each target marked met or missed.
//!
//! Targets are reported, never asserted: a missed target is a finding to explain, not a
//! broken bench, so nothing here fails.

use std::fmt::Write as _;
use std::time::Duration;

/// A goal a measurement is held to, and whether it was reached.
#[derive(Debug, Clone)]
pub struct Target {
    pub goal: String,
    pub met: bool,
}

impl Target {
    pub fn new(goal: impl Into<String>, met: bool) -> Self {
        Self {
            goal: goal.into(),
            met,
        }
    }
}

#[derive(Debug, Clone)]
struct Row {
    section: &'static str,
    what: String,
    value: String,
    target: Option<Target>,
}

/// Rows in the order they were measured.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// A measurement without a target.
    pub fn info(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        value: impl Into<String>,
    ) {
        self.push(section, what.into(), value.into(), None);
    }

    /// A measurement held to `target`.
    pub fn check(
        &mut self,
        section: &'static str,
        what: impl Into<String>,
        value: impl Into<String>,
        target: Target,
    ) {
        self.push(section, what.into(), value.into(), Some(target));
    }

    fn push(&mut self, section: &'static str, what: String, value: String, target: Option<Target>) {
        eprintln!(
            "[bench] {section} | {what} | {value}{}",
            target
                .as_ref()
                .map(|t| format!(" | {} {}", t.goal, status(t)))
                .unwrap_or_default()
        );
        self.rows.push(Row {
            section,
            what,
            value,
            target,
        });
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| section | measurement | value | target | status |\n| --- | --- | --- | --- | --- |\n",
        );
        // Sections in order; rows within one in the order they were measured.
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|r| r.section);
        for row in rows {
            let (goal, met) = match &row.target {
                Some(t) => (t.goal.as_str(), status(t)),
                None => ("", ""),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {goal} | {met} |",
                row.section,
                escape(&row.what),
                escape(&row.value)
            );
        }
        out
    }

    /// `bench: N measurements, M targets met, K missed`: the line CI and people read last.
    pub fn summary(&self) -> String {
        let targets: Vec<&Target> = self.rows.iter().filter_map(|r| r.target.as_ref()).collect();
        let met = targets.iter().filter(|t| t.met).count();
        format!(
            "bench: {} measurements, {met} targets met, {} missed",
            self.rows.len(),
            targets.len() - met
        )
    }
}

fn status(target: &Target) -> &'static str {
    if target.met {
        "met"
    } else {
        "**missed**"
    }
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Milliseconds with one decimal, the unit of every latency in the table.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Bytes as KiB or MiB with one decimal.
pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let n = n as f64;
    if n >= KIB * KIB {
        format!("{:.1} MiB", n / KIB / KIB)
    } else {
        format!("{:.1} KiB", n / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_rows_and_targets() {
        let mut table = Table::default();
        table.info("a", "x", "1");
        table.check("a", "y", "2", Target::new("< 3", true));
        table.check("a", "z", "4", Target::new("< 3", false));
        assert_eq!(
            table.summary(),
            "bench: 3 measurements, 1 targets met, 1 missed"
        );
        let md = table.markdown();
        assert!(md.contains("| a | z | 4 | < 3 | **missed** |"), "{md}");
    }

    #[test]
    fn pipes_in_values_do_not_break_the_table() {
        assert_eq!(escape("a|b"), "a\\|b");
    }
}
