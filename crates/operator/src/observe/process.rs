//! The standard `process_*` metrics of a Linux process, read from `/proc/self` at each scrape:
//! CPU seconds, resident and virtual memory, open and maximum file descriptors, start time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads `/proc/self` when scraped; a value that cannot be read is left out.
#[derive(Debug, Default)]
pub struct Process;

/// One scrape's readings.
#[derive(Debug, Default, PartialEq)]
struct Readings {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<usize>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

fn read() -> Readings {
    let Ok(me) = procfs::process::Process::myself() else {
        return Readings::default();
    };
    let mut r = Readings::default();
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        r.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
        r.resident_bytes = Some(stat.rss * procfs::page_size());
        r.virtual_bytes = Some(stat.vsize);
        if let Ok(boot) = procfs::boot_time_secs() {
            r.start_time_seconds = Some(boot as f64 + stat.starttime as f64 / ticks);
        }
    }
    r.open_fds = me.fd_count().ok();
    if let Ok(limits) = me.limits()
        && let procfs::process::LimitValue::Value(n) = limits.max_open_files.soft_limit
    {
        r.max_fds = Some(n);
    }
    r
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: Option<f64>,
) -> std::fmt::Result {
    let Some(value) = value else { return Ok(()) };
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let r = read();
        if let Some(cpu) = r.cpu_seconds {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        let e = &mut encoder;
        let as_f64 = |v: Option<u64>| v.map(|v| v as f64);
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            as_f64(r.resident_bytes),
        )?;
        gauge(
            e,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            as_f64(r.virtual_bytes),
        )?;
        gauge(
            e,
            "process_open_fds",
            "Number of open file descriptors",
            r.open_fds.map(|n| n as f64),
        )?;
        gauge(
            e,
            "process_max_fds",
            "Maximum number of open file descriptors",
            as_f64(r.max_fds),
        )?;
        gauge(
            e,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            r.start_time_seconds,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        // Other tests of this process open and close files meanwhile: the count can only be
        // held to the descriptors this test keeps open, plus the three standard ones.
        let held: Vec<std::fs::File> = (0..8)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let after = read();
        assert!(after.open_fds.unwrap() >= held.len() + 3);
        assert!(after.resident_bytes.unwrap() > 1 << 20);
        assert!(after.virtual_bytes.unwrap() >= after.resident_bytes.unwrap());
        assert!(after.max_fds.unwrap() >= after.open_fds.unwrap() as u64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let started = after.start_time_seconds.unwrap();
        assert!(
            started <= now + 1.0 && started > now - 24.0 * 3600.0,
            "{started} vs {now}"
        );
    }
}
