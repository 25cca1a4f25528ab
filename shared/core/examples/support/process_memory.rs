//! This process's memory as Linux reports it in `/proc/self/status`, for the benchmarks.

use anyhow::Context;

/// A `/proc/self/status` field in kB (`VmRSS`: resident now, `VmHWM`: its peak), in bytes.
pub fn status_bytes(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kilobytes: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/self/status"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kilobytes * 1024)
}
