//! When the kernel generated a SIGKILL, from tracefs's `signal/signal_generate` event (root only). It dates the
//! escalation's SIGKILL at the moment the init sent it, apart from how long the killed process then takes to
//! die, which on a VM whose host let its memory go cold is milliseconds of the kernel's own work.

use std::fs;
use std::path::PathBuf;

/// The `signal_generate` event, filtered to SIGKILL, on the CLOCK_MONOTONIC trace clock; put back as it was
/// when dropped.
pub struct SigkillTrace {
    dir: PathBuf,
    clock: String,
}

impl SigkillTrace {
    /// `None` when tracefs or the event is not there (not root, no CONFIG_FTRACE) or cannot be set up.
    pub fn open() -> Option<SigkillTrace> {
        let dir = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .into_iter()
            .map(PathBuf::from)
            .find(|d| d.join("events/signal/signal_generate/enable").exists())?;
        let clocks = fs::read_to_string(dir.join("trace_clock")).ok()?;
        let clock = clocks
            .split_whitespace()
            .find_map(|c| c.strip_prefix('[')?.strip_suffix(']'))?
            .to_string();
        let trace = SigkillTrace { dir, clock };
        let event = "events/signal/signal_generate";
        let ok = trace.write("trace_clock", "mono")
            && trace.write(&format!("{event}/filter"), "sig == 9")
            && trace.write(&format!("{event}/enable"), "1")
            && trace.write("tracing_on", "1");
        ok.then_some(trace)
    }

    fn write(&self, file: &str, value: &str) -> bool {
        fs::write(self.dir.join(file), value).is_ok()
    }

    /// Empties the trace buffer, before a round.
    pub fn clear(&self) {
        self.write("trace", "");
    }

    /// CLOCK_MONOTONIC (ns, microsecond resolution) of the first SIGKILL generated for `pid` (a pid as the
    /// root namespace sees it) since the last `clear`.
    pub fn first_sigkill_to(&self, pid: i32) -> Option<u64> {
        let text = fs::read_to_string(self.dir.join("trace")).ok()?;
        let target = format!(" pid={pid} ");
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&target))
            .find_map(|l| {
                // "<task>-<pid> [cpu] flags 12345.678901: signal_generate: sig=9 ..."
                let (head, _) = l.split_once(": signal_generate:")?;
                let stamp = head.rsplit(' ').next()?.trim_end_matches(':');
                let (s, us) = stamp.split_once('.')?;
                Some(s.parse::<u64>().ok()? * 1_000_000_000 + us.parse::<u64>().ok()? * 1_000)
            })
    }
}

impl Drop for SigkillTrace {
    fn drop(&mut self) {
        let event = "events/signal/signal_generate";
        self.write(&format!("{event}/enable"), "0");
        self.write(&format!("{event}/filter"), "0");
        let clock = self.clock.clone();
        self.write("trace_clock", &clock);
    }
}
