//! What the tool reads about processes and servers: the open-file limit,
//! a server's resident memory and CPU time from /proc, and counters from a
//! Prometheus text endpoint (Roost's `/metrics`) over plain HTTP/1.1.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft
/// limit. Every connection is one descriptor.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    }
}

/// A process's resident set in KiB (`VmRSS` in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_vmrss(&text).context("no VmRSS line")
}

pub fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU seconds (user + system, all threads) a process has used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&text).context("malformed /proc/<pid>/stat")?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// utime + stime, fields 14 and 15 of /proc/<pid>/stat; the command name
/// (field 2) may contain spaces and parentheses, so count from the last ')'.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) is the 12th here.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Our own CPU seconds, to show how much the load generator itself used.
pub fn self_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// A snapshot of a server process, if we were given its pid.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kib: Option<u64>,
    pub cpu_s: Option<f64>,
}

pub fn sample(pid: Option<u32>) -> ProcSample {
    match pid {
        None => ProcSample::default(),
        Some(pid) => ProcSample {
            rss_kib: rss_kib(pid).ok(),
            cpu_s: cpu_seconds(pid).ok(),
        },
    }
}

/// Fetch a Prometheus text endpoint: `host:port` or `host:port/path`
/// (default path `/metrics`), optionally prefixed with `http://`.
pub async fn fetch_metrics(target: &str) -> anyhow::Result<HashMap<String, f64>> {
    let t = target.strip_prefix("http://").unwrap_or(target);
    let (hostport, path) = match t.find('/') {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "/metrics"),
    };
    let body = tokio::time::timeout(Duration::from_secs(5), async {
        let mut s = tokio::net::TcpStream::connect(hostport).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .context("metrics endpoint timed out")??;
    let text = String::from_utf8_lossy(&body);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("no HTTP response from {target}");
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "{target}: {}",
            head.lines().next().unwrap_or("no status line")
        );
    }
    Ok(parse_prometheus(body))
}

/// `name{labels} value` lines; comments and malformed lines are skipped.
/// The key keeps the labels, as written: `roost_stanzas_in_total{kind="message"}`.
pub fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.trim().rsplit_once(' ')?;
            Some((name.trim().to_string(), value.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmrss_is_read_in_kib() {
        let status = "Name:\tbeam.smp\nVmPeak:\t 9000 kB\nVmRSS:\t   123456 kB\nThreads: 3\n";
        assert_eq!(parse_vmrss(status), Some(123_456));
        assert_eq!(parse_vmrss("Name: x\n"), None);
    }

    #[test]
    fn stat_ticks_survive_odd_command_names() {
        let stat = "4242 (lua5.4 (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
        assert!(raise_nofile() >= 256);
    }

    #[test]
    fn prometheus_lines_with_labels() {
        let m = parse_prometheus(
            "# HELP x y\n# TYPE roost_sessions gauge\nroost_sessions 3\nroost_stanzas_in_total{kind=\"message\"} 17\nbad line here x\n",
        );
        assert_eq!(m["roost_sessions"], 3.0);
        assert_eq!(m["roost_stanzas_in_total{kind=\"message\"}"], 17.0);
        assert_eq!(m.len(), 2);
    }
}
