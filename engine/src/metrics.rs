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
//! so the series stay bounded whatever users send. Jobs and models are
//! named by the lake's own objects (a job's or model's name, a model
//! version, a device), which only their owners create: bounded by what
//! the lake holds, as Arroyo labels its series by pipeline.
//!
//! Besides statements, three producers feed it:
//! - the scheduler, one `job_runs` count per finished run (skipped checks
//!   included) and, at each scrape, every job's lag
//!   (`crate::scheduler::job_lags`);
//! - `predict`, through the model registry: rows and batch times per
//!   model version and device;
//! - the device sampler (`crate::devices`): busy and idle seconds,
//!   utilisation and memory per device.

use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a statement.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabels {
    interface: &'static str,
    kind: String,
    outcome: &'static str,
}

/// Labels of a job's run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobRunLabels {
    job: String,
    status: &'static str,
}

/// Labels of a job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
}

/// Labels of a model version on a device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PredictLabels {
    model: String,
    version: String,
    device: String,
}

/// Labels of a device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    device: String,
}

type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// The metrics of one engine.
pub struct Metrics {
    registry: Registry,
    statements: Family<StatementLabels, Counter>,
    duration: Histogram,
    rows_returned: Counter<u64, AtomicU64>,
    rows_scanned: Counter<u64, AtomicU64>,
    bytes_scanned: Counter<u64, AtomicU64>,
    job_runs: Family<JobRunLabels, Counter>,
    job_lag: Family<JobLabels, FloatGauge>,
    predict_rows: Family<PredictLabels, Counter>,
    predict_batch: Histogram,
    device_busy: Family<DeviceLabels, FloatCounter>,
    device_idle: Family<DeviceLabels, FloatCounter>,
    device_utilization: Family<DeviceLabels, FloatGauge>,
    device_memory: Family<DeviceLabels, Gauge>,
}

/// One device's figures since the previous reading, for
/// [`Metrics::device`].
#[derive(Debug, Clone, Default)]
pub struct DeviceDelta {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Seconds busy since the previous reading.
    pub busy_seconds: f64,
    /// Seconds idle since the previous reading.
    pub idle_seconds: f64,
    /// Busy fraction over the last sampling interval, 0 to 1.
    pub utilization: f64,
    /// Memory in use, in bytes.
    pub memory_used_bytes: u64,
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
        let job_runs = Family::<JobRunLabels, Counter>::default();
        registry.register(
            "job_runs",
            "Finished job runs by job and status (succeeded, failed, recovered, and skipped: a check that found nothing new)",
            job_runs.clone(),
        );
        let job_lag = Family::<JobLabels, FloatGauge>::default();
        registry.register(
            "job_lag_seconds",
            "Age of the oldest input commit a job has not consumed yet (0 when it is up to date)",
            job_lag.clone(),
        );
        let predict_rows = Family::<PredictLabels, Counter>::default();
        registry.register(
            "predict_rows",
            "Rows scored by predict and predict_proba, by model, version and device",
            predict_rows.clone(),
        );
        // 10 µs to ~10 s per batch.
        let predict_batch = Histogram::new([
            0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0,
        ]);
        registry.register(
            "predict_batch_seconds",
            "Time to score one batch with predict or predict_proba",
            predict_batch.clone(),
        );
        let device_busy = Family::<DeviceLabels, FloatCounter>::default();
        registry.register(
            "device_busy_seconds",
            "Seconds a compute device was busy, sampled while the process runs",
            device_busy.clone(),
        );
        let device_idle = Family::<DeviceLabels, FloatCounter>::default();
        registry.register(
            "device_idle_seconds",
            "Seconds a compute device sat idle, sampled while the process runs",
            device_idle.clone(),
        );
        let device_utilization = Family::<DeviceLabels, FloatGauge>::default();
        registry.register(
            "device_utilization_ratio",
            "Busy fraction of a compute device over the last sampling interval",
            device_utilization.clone(),
        );
        let device_memory = Family::<DeviceLabels, Gauge>::default();
        registry.register(
            "device_memory_used_bytes",
            "Memory in use on a compute device",
            device_memory.clone(),
        );
        Self {
            registry,
            statements,
            duration,
            rows_returned,
            rows_scanned,
            bytes_scanned,
            job_runs,
            job_lag,
            predict_rows,
            predict_batch,
            device_busy,
            device_idle,
            device_utilization,
            device_memory,
        }
    }

    /// Counts one finished run of `job` that ended as `status`.
    pub fn job_run(&self, job: &str, status: &'static str) {
        self.job_runs
            .get_or_create(&JobRunLabels {
                job: job.to_string(),
                status,
            })
            .inc();
    }

    /// Sets every job's lag at once: jobs dropped since the last call
    /// leave the series.
    pub fn job_lags(&self, lags: &[(String, f64)]) {
        self.job_lag.clear();
        for (job, seconds) in lags {
            self.job_lag
                .get_or_create(&JobLabels { job: job.clone() })
                .set(seconds.max(0.0));
        }
    }

    /// Counts one batch of `rows` scored by `model` version `version` on
    /// `device` in `seconds`.
    pub fn predict(&self, model: &str, version: u64, device: &str, rows: usize, seconds: f64) {
        self.predict_rows
            .get_or_create(&PredictLabels {
                model: model.to_string(),
                version: version.to_string(),
                device: device.to_string(),
            })
            .inc_by(rows as u64);
        self.predict_batch.observe(seconds.max(0.0));
    }

    /// Adds one device reading.
    pub fn device(&self, delta: &DeviceDelta) {
        let labels = DeviceLabels {
            device: delta.device.clone(),
        };
        self.device_busy
            .get_or_create(&labels)
            .inc_by(delta.busy_seconds.max(0.0));
        self.device_idle
            .get_or_create(&labels)
            .inc_by(delta.idle_seconds.max(0.0));
        self.device_utilization
            .get_or_create(&labels)
            .set(delta.utilization.clamp(0.0, 1.0));
        self.device_memory
            .get_or_create(&labels)
            .set(delta.memory_used_bytes.min(i64::MAX as u64) as i64);
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

    #[test]
    fn jobs_models_and_devices_have_their_series() {
        let m = Metrics::new();
        m.job_run("hourly", "skipped");
        m.job_run("hourly", "skipped");
        m.job_run("hourly", "succeeded");
        m.job_lags(&[("hourly".into(), 12.5), ("gone".into(), 3.0)]);
        m.job_lags(&[("hourly".into(), 2.0)]);
        m.predict("churn", 3, "cpu", 100, 0.002);
        m.predict("churn", 3, "cpu", 20, 0.001);
        for _ in 0..2 {
            m.device(&DeviceDelta {
                device: "cpu".into(),
                busy_seconds: 0.25,
                idle_seconds: 0.75,
                utilization: 0.25,
                memory_used_bytes: 1 << 20,
            });
        }
        let text = m.render();
        for expected in [
            r#"autolake_job_runs_total{job="hourly",status="skipped"} 2"#,
            r#"autolake_job_runs_total{job="hourly",status="succeeded"} 1"#,
            r#"autolake_job_lag_seconds{job="hourly"} 2.0"#,
            r#"autolake_predict_rows_total{model="churn",version="3",device="cpu"} 120"#,
            "autolake_predict_batch_seconds_count 2",
            r#"autolake_device_busy_seconds_total{device="cpu"} 0.5"#,
            r#"autolake_device_idle_seconds_total{device="cpu"} 1.5"#,
            r#"autolake_device_utilization_ratio{device="cpu"} 0.25"#,
            r#"autolake_device_memory_used_bytes{device="cpu"} 1048576"#,
        ] {
            assert!(text.contains(expected), "{expected} not in\n{text}");
        }
        assert!(!text.contains("gone"), "{text}");
    }
}
