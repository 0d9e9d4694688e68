//! The process's metrics, in Prometheus text at `GET /metrics` of `serve`.
//!
//! One [`Metrics`] per engine, fed from the funnel's single exit: every
//! statement's audit entry (see `governance::audit`), so statements of
//! every interface — CLI sessions, Flight SQL, jobs — count once, failed
//! and denied ones included. Built on `prometheus-client`, as InfluxDB 3
//! and Arroyo expose theirs through a registry encoded on scrape.
//!
//! Label values come from closed sets only (interface, statement kind,
//! outcome): no statement text, user name or data value is ever a label,
//! so the series stay bounded whatever users send.

use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a statement.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabels {
    interface: &'static str,
    kind: String,
    outcome: &'static str,
}

/// The metrics of one engine.
pub struct Metrics {
    registry: Registry,
    statements: Family<StatementLabels, Counter>,
    duration: Histogram,
    rows_returned: Counter<u64, AtomicU64>,
    rows_scanned: Counter<u64, AtomicU64>,
    bytes_scanned: Counter<u64, AtomicU64>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Statement kinds are the parser's names (`SELECT`, `CREATE TABLE`, …);
/// anything else is counted as `OTHER`, so no text reaches a label.
fn bounded_kind(kind: &str) -> String {
    let plain = !kind.is_empty()
        && kind.len() <= 40
        && kind
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b' ' || b == b'_');
    if plain {
        kind.to_string()
    } else {
        "OTHER".to_string()
    }
}

impl Metrics {
    /// Empty metrics, all series registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("autolake");
        let statements = Family::<StatementLabels, Counter>::default();
        registry.register(
            "statements",
            "Statements run, by interface, kind and outcome (success, failure, denied)",
            statements.clone(),
        );
        // 1 ms to ~65 s.
        let duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            65.0,
        ]);
        registry.register(
            "statement_duration_seconds",
            "Time from a statement's start to the end of its result",
            duration.clone(),
        );
        let rows_returned: Counter<u64, AtomicU64> = Counter::default();
        registry.register(
            "rows_returned",
            "Rows returned or written by statements",
            rows_returned.clone(),
        );
        let rows_scanned: Counter<u64, AtomicU64> = Counter::default();
        registry.register(
            "rows_scanned",
            "Rows read by the scans of executed plans",
            rows_scanned.clone(),
        );
        let bytes_scanned: Counter<u64, AtomicU64> = Counter::default();
        registry.register(
            "bytes_scanned",
            "Bytes read from data files by the scans of executed plans",
            bytes_scanned.clone(),
        );
        Self {
            registry,
            statements,
            duration,
            rows_returned,
            rows_scanned,
            bytes_scanned,
        }
    }

    /// Counts one statement that ended with `outcome` after `seconds`,
    /// returning or writing `rows`, having read what `stats` says.
    pub fn statement(
        &self,
        interface: &'static str,
        kind: &str,
        outcome: &'static str,
        seconds: f64,
        rows: Option<i64>,
        stats: Option<&crate::history::ScanStats>,
    ) {
        if let Some(stats) = stats {
            self.rows_scanned.inc_by(stats.rows_scanned);
            self.bytes_scanned.inc_by(stats.bytes_scanned);
        }
        self.statements
            .get_or_create(&StatementLabels {
                interface,
                kind: bounded_kind(kind),
                outcome,
            })
            .inc();
        self.duration.observe(seconds.max(0.0));
        if let Some(rows) = rows.filter(|r| *r > 0) {
            self.rows_returned.inc_by(rows as u64);
        }
    }

    /// Everything, in the Prometheus/OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_count_with_bounded_labels() {
        let m = Metrics::new();
        let scanned = crate::history::ScanStats {
            rows_scanned: 7,
            bytes_scanned: 100,
            ..Default::default()
        };
        m.statement("cli", "SELECT", "success", 0.002, Some(3), Some(&scanned));
        m.statement("cli", "SELECT", "success", 0.002, Some(2), None);
        m.statement(
            "flight_sql",
            "select 'secret' from t",
            "failure",
            0.5,
            None,
            None,
        );
        let text = m.render();
        assert!(
            text.contains(
                r#"autolake_statements_total{interface="cli",kind="SELECT",outcome="success"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"kind="OTHER",outcome="failure"} 1"#),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("autolake_rows_returned_total 5"), "{text}");
        assert!(text.contains("autolake_rows_scanned_total 7"), "{text}");
        assert!(text.contains("autolake_bytes_scanned_total 100"), "{text}");
        assert!(
            text.contains("autolake_statement_duration_seconds_count 3"),
            "{text}"
        );
    }
}
