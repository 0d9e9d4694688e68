//! Compute devices and how busy they are: `system.devices`, the device
//! series of `/metrics`, and the busy fraction recorded with a trained
//! model.
//!
//! ```text
//! readings ── cpu: /proc/stat (busy and idle jiffies), /proc/meminfo
//!          └─ cuda:N: NVML (loaded with dlopen at run time: a machine
//!             without NVIDIA's driver just has no GPU rows)
//!   Devices::sample ── accumulates busy/idle seconds per device,
//!                      feeds Metrics::device with the deltas
//!   taken by: the sampler `autolake serve` runs (every second),
//!             each read of system.devices and scrape of /metrics,
//!             and a Work's own sampler while it runs (every 100 ms)
//! ```
//!
//! A device's busy seconds are wall seconds times its busy fraction:
//! busy plus idle is the time the process has watched it, whatever the
//! number of cores. The CPU's fraction is exact between two readings (the
//! kernel counts jiffies); a GPU's is NVML's utilisation over its own
//! short window, so it is only as good as the sampling — hence the fast
//! sampler while training runs, as `nvidia-smi dmon` samples.
//!
//! [`Work`] marks what the engine runs on a device (`current_work`), and
//! [`Work::finish`] gives the device's busy fraction while it ran: the
//! `device_busy_ratio` of `system.models`. Readings closer together than
//! [`MIN_INTERVAL`] reuse the last one, so frequent readers never turn
//! jiffy noise into figures.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nvml_wrapper::Nvml;

use crate::metrics::{DeviceDelta, Metrics};

/// Readings closer together than this reuse the previous one.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// How often a [`Work`] samples its device while it runs.
const WORK_INTERVAL: Duration = Duration::from_millis(100);

/// The kernel's clock ticks per second in `/proc/stat` (USER_HZ, 100 on
/// every Linux architecture).
const USER_HZ: f64 = 100.0;

/// One device, as `system.devices` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The model name.
    pub name: String,
    /// Memory of the device (the machine's, for the CPU).
    pub memory_total_bytes: u64,
    /// Memory in use.
    pub memory_used_bytes: u64,
    /// Busy fraction over the last sampling interval.
    pub utilization: f64,
    /// Seconds busy since `since`.
    pub busy_seconds: f64,
    /// Seconds idle since `since`.
    pub idle_seconds: f64,
    /// When this process started watching the device.
    pub since: DateTime<Utc>,
    /// What the engine runs on it now (`training model m`, …), if anything.
    pub current_work: Option<String>,
}

/// Cumulative CPU jiffies of the whole machine.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    busy: u64,
    idle: u64,
    cpus: u32,
}

/// Reads the first line of `/proc/stat`; `None` where there is none.
fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_times(&stat)
}

fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let mut lines = stat.lines();
    let first = lines.next()?;
    let mut fields = first.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.map(|f| f.parse().unwrap_or(0)).collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    let idle = at(3) + at(4);
    let cpus = lines
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count()
        .max(1) as u32;
    Some(CpuTimes { busy, idle, cpus })
}

/// Total and available memory from `/proc/meminfo`.
fn machine_memory() -> (u64, u64) {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> Option<u64> {
        let line = info.lines().find(|l| l.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    let total = field("MemTotal:").unwrap_or(0);
    let available = field("MemAvailable:").unwrap_or(total);
    (total, total.saturating_sub(available))
}

/// The CPU's model name and core count.
fn cpu_name(cpus: u32) -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{model} ({cpus} cores)")
}

/// NVML, when the driver's library can be loaded (`libnvidia-ml.so`, or
/// the versioned name a driver install without development links has).
fn load_nvml() -> Option<Nvml> {
    let tried = Nvml::init().or_else(|_| {
        Nvml::builder()
            .lib_path(std::ffi::OsStr::new("libnvidia-ml.so.1"))
            .init()
    });
    match tried {
        Ok(nvml) => Some(nvml),
        Err(e) => {
            tracing::debug!("no NVIDIA GPUs listed: NVML is not available ({e})");
            None
        }
    }
}

/// A device's running totals.
#[derive(Debug, Clone)]
struct Tally {
    row: DeviceRow,
    work: BTreeMap<u64, String>,
    /// When this process started watching it.
    from: Instant,
}

#[derive(Debug)]
struct State {
    cpu: Option<CpuTimes>,
    last: Instant,
    devices: Vec<Tally>,
    /// Recent readings, oldest first (see [`Devices::history`]).
    history: VecDeque<DeviceSample>,
    /// When the newest reading joined `history`.
    recorded: Option<Instant>,
}

/// How far apart the readings kept in the history are, at least.
const HISTORY_STEP: Duration = Duration::from_secs(1);

/// How much history is kept: an hour at one reading a second.
const HISTORY_SPAN: Duration = Duration::from_secs(3600);

/// One device at one reading, as `system.device_history` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSample {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// When the reading was taken.
    pub at: DateTime<Utc>,
    /// Busy fraction over the interval before it.
    pub utilization: f64,
    /// Memory in use.
    pub memory_used_bytes: u64,
    /// Seconds busy since the device was first watched (running total).
    pub busy_seconds: f64,
    /// Seconds idle since the device was first watched (running total).
    pub idle_seconds: f64,
}

/// The compute devices of this machine and their running totals.
pub struct Devices {
    nvml: OnceLock<Option<Nvml>>,
    state: Mutex<State>,
    metrics: Option<Arc<Metrics>>,
    next_work: AtomicU64,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("nvml", &self.nvml.get().is_some_and(Option::is_some))
            .finish_non_exhaustive()
    }
}

impl Devices {
    /// Starts watching the machine's devices; readings feed `metrics`
    /// when given.
    pub fn new(metrics: Option<Arc<Metrics>>) -> Arc<Self> {
        let since = Utc::now();
        let cpu = cpu_times();
        let devices = vec![Tally::new(
            "cpu".to_string(),
            cpu_name(cpu.map_or(1, |c| c.cpus)),
            machine_memory(),
            since,
        )];
        Arc::new(Self {
            nvml: OnceLock::new(),
            state: Mutex::new(State {
                cpu,
                last: Instant::now(),
                devices,
                history: VecDeque::new(),
                recorded: None,
            }),
            metrics,
            next_work: AtomicU64::new(1),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// NVML, loaded at the first reading rather than when the engine
    /// opens (its start costs a CLI run that never looks at devices); the
    /// GPUs it lists join the devices then.
    fn nvml(&self) -> Option<&Nvml> {
        self.nvml
            .get_or_init(|| {
                let nvml = load_nvml()?;
                let since = Utc::now();
                let mut state = self.state();
                for i in 0..nvml.device_count().unwrap_or(0) {
                    let Ok(gpu) = nvml.device_by_index(i) else {
                        continue;
                    };
                    let memory = gpu.memory_info().ok();
                    state.devices.push(Tally::new(
                        format!("cuda:{i}"),
                        gpu.name().unwrap_or_else(|_| "NVIDIA GPU".to_string()),
                        memory.as_ref().map_or((0, 0), |m| (m.total, m.used)),
                        since,
                    ));
                }
                Some(nvml)
            })
            .as_ref()
    }

    /// Takes a reading of every device (unless the last one is under
    /// [`MIN_INTERVAL`] old) and adds it to the totals and the metrics.
    pub fn sample(&self) {
        self.read(false);
    }

    /// Takes a reading; unless `always`, only if the last one is at least
    /// [`MIN_INTERVAL`] old.
    fn read(&self, always: bool) {
        let nvml = self.nvml();
        let mut state = self.state();
        let now = Instant::now();
        let elapsed = now.duration_since(state.last);
        if elapsed < MIN_INTERVAL && !always {
            return;
        }
        let seconds = elapsed.as_secs_f64();
        let previous = state.last;
        state.last = now;
        let mut deltas = Vec::with_capacity(state.devices.len());
        // The CPU: exact, from the kernel's counters.
        let cpu_now = cpu_times();
        let (busy, idle, utilization) = match (state.cpu, cpu_now) {
            (Some(before), Some(after)) => {
                let busy = after.busy.saturating_sub(before.busy) as f64;
                let idle = after.idle.saturating_sub(before.idle) as f64;
                let fraction = if busy + idle > 0.0 {
                    busy / (busy + idle)
                } else {
                    // Within one clock tick: nothing to add, the last
                    // utilisation stands.
                    state.devices.first().map_or(0.0, |c| c.row.utilization)
                };
                // Jiffies of all cores, as wall seconds of the device.
                let cores = f64::from(after.cpus.max(1));
                let watched = (busy + idle) / USER_HZ / cores;
                (watched * fraction, watched * (1.0 - fraction), fraction)
            }
            _ => (0.0, seconds, 0.0),
        };
        if cpu_now.is_some() {
            state.cpu = cpu_now;
        }
        let (_, used) = machine_memory();
        if let Some(cpu) = state.devices.first_mut() {
            deltas.push(cpu.add(busy, idle, utilization, used));
        }
        // GPUs: NVML's utilisation over its own window, times the interval.
        if let Some(nvml) = nvml {
            for tally in state.devices.iter_mut().skip(1) {
                let index = tally
                    .row
                    .device
                    .strip_prefix("cuda:")
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(0);
                let Ok(gpu) = nvml.device_by_index(index) else {
                    continue;
                };
                let fraction = gpu
                    .utilization_rates()
                    .map_or(0.0, |u| f64::from(u.gpu.min(100)) / 100.0);
                // A GPU listed since the previous reading counts from then.
                let seconds = now.duration_since(previous.max(tally.from)).as_secs_f64();
                let used = gpu
                    .memory_info()
                    .map_or(tally.row.memory_used_bytes, |m| m.used);
                deltas.push(tally.add(
                    seconds * fraction,
                    seconds * (1.0 - fraction),
                    fraction,
                    used,
                ));
            }
        }
        state.remember(now);
        drop(state);
        if let Some(metrics) = &self.metrics {
            for delta in &deltas {
                metrics.device(delta);
            }
        }
    }

    /// Every device, after a fresh reading.
    pub fn rows(&self) -> Vec<DeviceRow> {
        self.sample();
        self.state()
            .devices
            .iter()
            .map(|t| {
                let mut row = t.row.clone();
                row.current_work = (!t.work.is_empty())
                    .then(|| t.work.values().cloned().collect::<Vec<_>>().join("; "));
                row
            })
            .collect()
    }

    /// The readings of the last hour, oldest first, at most one a second:
    /// what `serve`'s sampler took (and any reading in between), so a
    /// process that samples only when asked has a sparse history.
    /// A process that has taken no reading yet (one that just started)
    /// takes one now, so the history is never empty.
    pub fn history(&self) -> Vec<DeviceSample> {
        if self.state().history.is_empty() {
            self.read(true);
        }
        self.state().history.iter().cloned().collect()
    }

    /// Samples every `interval` until the task is aborted (`autolake serve`).
    pub fn spawn_sampler(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let devices = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let devices = Arc::clone(&devices);
                // NVML calls block briefly: off the async workers.
                let _ = tokio::task::spawn_blocking(move || devices.sample()).await;
            }
        })
    }

    /// Marks `label` as running on `device` (`cpu`, `cuda:N`) until the
    /// returned [`Work`] is finished or dropped, sampling the device
    /// meanwhile.
    pub fn begin(self: &Arc<Self>, device: &str, label: impl Into<String>) -> Work {
        // Also loads NVML, so a GPU is listed before its work is marked.
        self.read(true);
        let id = self.next_work.fetch_add(1, Ordering::Relaxed);
        let start = {
            let mut state = self.state();
            state
                .devices
                .iter_mut()
                .find(|t| t.row.device == device)
                .map(|t| {
                    t.work.insert(id, label.into());
                    (t.row.busy_seconds, t.row.idle_seconds)
                })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = start.is_some().then(|| {
            let devices = Arc::clone(self);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("autolake-device-sampler".to_string())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(WORK_INTERVAL);
                        devices.sample();
                    }
                })
                .ok()
        });
        Work {
            devices: Arc::clone(self),
            device: device.to_string(),
            id,
            start,
            stop,
            sampler: sampler.flatten(),
        }
    }

    /// A device's busy and idle totals and last utilisation.
    fn totals(&self, device: &str) -> Option<(f64, f64, f64)> {
        self.state()
            .devices
            .iter()
            .find(|t| t.row.device == device)
            .map(|t| (t.row.busy_seconds, t.row.idle_seconds, t.row.utilization))
    }

    fn end_work(&self, device: &str, id: u64) {
        if let Some(t) = self
            .state()
            .devices
            .iter_mut()
            .find(|t| t.row.device == device)
        {
            t.work.remove(&id);
        }
    }
}

impl State {
    /// Adds the devices' current figures to the history, unless the last
    /// ones are under [`HISTORY_STEP`] old, and forgets what is older than
    /// [`HISTORY_SPAN`].
    fn remember(&mut self, now: Instant) {
        if self
            .recorded
            .is_some_and(|at| now.duration_since(at) < HISTORY_STEP)
        {
            return;
        }
        self.recorded = Some(now);
        let at = Utc::now();
        for tally in &self.devices {
            self.history.push_back(DeviceSample {
                device: tally.row.device.clone(),
                at,
                utilization: tally.row.utilization,
                memory_used_bytes: tally.row.memory_used_bytes,
                busy_seconds: tally.row.busy_seconds,
                idle_seconds: tally.row.idle_seconds,
            });
        }
        let oldest = at - chrono::Duration::from_std(HISTORY_SPAN).unwrap_or_default();
        while self.history.front().is_some_and(|s| s.at < oldest) {
            self.history.pop_front();
        }
    }
}

impl Tally {
    /// A device first seen now, with its (total, used) memory.
    fn new(device: String, name: String, (total, used): (u64, u64), since: DateTime<Utc>) -> Self {
        Self {
            row: DeviceRow {
                device,
                name,
                memory_total_bytes: total,
                memory_used_bytes: used,
                utilization: 0.0,
                busy_seconds: 0.0,
                idle_seconds: 0.0,
                since,
                current_work: None,
            },
            work: BTreeMap::new(),
            from: Instant::now(),
        }
    }

    fn add(&mut self, busy: f64, idle: f64, utilization: f64, used: u64) -> DeviceDelta {
        self.row.busy_seconds += busy;
        self.row.idle_seconds += idle;
        self.row.utilization = utilization;
        self.row.memory_used_bytes = used;
        DeviceDelta {
            device: self.row.device.clone(),
            busy_seconds: busy,
            idle_seconds: idle,
            utilization,
            memory_used_bytes: used,
        }
    }
}

/// Something the engine runs on a device (training, scoring), from
/// [`Devices::begin`].
#[derive(Debug)]
pub struct Work {
    devices: Arc<Devices>,
    device: String,
    id: u64,
    /// The device's busy and idle totals when the work began; `None` for
    /// a device this process does not list.
    start: Option<(f64, f64)>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl Work {
    /// Ends the work: the device's busy fraction while it ran (`None` for
    /// a device this process does not list). Work shorter than the
    /// kernel's clock tick gets the device's utilisation at its end.
    pub fn finish(mut self) -> Option<f64> {
        self.stop_sampler();
        self.devices.read(true);
        let (busy0, idle0) = self.start?;
        let (busy1, idle1, now) = self.devices.totals(&self.device)?;
        let watched = (busy1 - busy0) + (idle1 - idle0);
        if watched <= 0.0 {
            return Some(now.clamp(0.0, 1.0));
        }
        Some(((busy1 - busy0) / watched).clamp(0.0, 1.0))
    }

    fn stop_sampler(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            sampler.thread().unpark();
            let _ = sampler.join();
        }
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        self.stop_sampler();
        self.devices.end_work(&self.device, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_read_as_busy_and_idle_jiffies() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n\
                    cpu1 50 3 25 500 10 2 1 1 0 0\nintr 1 2 3\n";
        let t = parse_cpu_times(stat).unwrap();
        assert_eq!(t.busy, 100 + 5 + 50 + 3 + 2 + 1);
        assert_eq!(t.idle, 1000 + 20);
        assert_eq!(t.cpus, 2);
        assert!(parse_cpu_times("intr 1 2").is_none());
    }

    #[test]
    fn readings_a_second_apart_join_the_history() {
        let devices = Devices::new(None);
        // A process that has read nothing yet reads once when asked.
        let first = devices.history();
        assert_eq!(first.iter().filter(|s| s.device == "cpu").count(), 1);
        // Within a second of it: not kept.
        devices.read(true);
        assert_eq!(devices.history().len(), first.len());
        std::thread::sleep(HISTORY_STEP);
        devices.read(true);
        let later = devices.history();
        assert_eq!(later.len(), 2 * first.len());
        assert!(later.last().unwrap().at > first[0].at);
        assert!(later.iter().all(|s| (0.0..=1.0).contains(&s.utilization)));
    }

    #[test]
    fn the_cpu_is_always_listed_and_busy_time_accumulates() {
        let metrics = Arc::new(Metrics::new());
        let devices = Devices::new(Some(Arc::clone(&metrics)));
        let work = devices.begin("cpu", "spinning");
        let row = devices.rows().into_iter().next().unwrap();
        assert_eq!(row.device, "cpu");
        assert_eq!(row.current_work.as_deref(), Some("spinning"));
        assert!(row.memory_total_bytes > 0, "{row:?}");
        // Keep one core busy for a while.
        let until = Instant::now() + Duration::from_millis(400);
        let mut x = 0u64;
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let ratio = work.finish().expect("a ratio for the cpu");
        assert!(ratio > 0.0 && ratio <= 1.0, "{ratio}");
        let row = devices.rows().into_iter().next().unwrap();
        assert!(row.current_work.is_none(), "{row:?}");
        assert!(row.busy_seconds > 0.0, "{row:?}");
        let watched = row.busy_seconds + row.idle_seconds;
        let wall = (Utc::now() - row.since).as_seconds_f64();
        assert!(
            watched > 0.3 && watched <= wall + 0.05,
            "{watched} vs {wall}"
        );
        let text = metrics.render();
        assert!(
            text.contains(r#"autolake_device_busy_seconds_total{device="cpu"}"#),
            "{text}"
        );
        // No device of that name: no ratio, nothing marked.
        assert_eq!(devices.begin("cuda:7", "nothing").finish(), None);
    }
}
