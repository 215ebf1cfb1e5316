//! The metrics of issue 5 (and the soak of issue 6). Every init runs as PID 1 of a fresh PID namespace, and
//! the inits take turns round by round, in a new random order each round, so drift on a busy machine hits
//! them alike.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Command;

use crate::ktrace::SigkillTrace;
use crate::model::{Init, Metric, Row};
use crate::stats::Rng;
use crate::sys::{
    self, IdleCrowd, Launcher, Started, now_ns, sleep_ms, sleep_ns, sleep_us, wait_readable,
};

/// How much of everything to do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub startup_rounds: usize,
    pub supervise_rounds: usize,
    pub forwards_per_round: usize,
    pub idle_secs: u64,
    pub orphans: usize,
    pub reap_rounds: usize,
    pub storm_ms: u64,
    pub storm_rounds: usize,
    pub storm_signals: usize,
    pub signal_storm_rounds: usize,
    pub escalation_rounds: usize,
    pub soak_signals: usize,
    pub soak_orphan_batches: usize,
    pub soak_orphans_per_batch: usize,
    pub soak_mixed_signals: usize,
    /// Issue 10's system-call counts: traced sessions per init, and SIGUSR1 forwarded in each.
    pub syscall_rounds: usize,
    pub syscall_signals: usize,
    /// Shutdown on a busy host: sessions per init, and the idle processes outside the namespaces.
    pub busy_rounds: usize,
    pub busy_processes: usize,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            startup_rounds: 500,
            supervise_rounds: 100,
            forwards_per_round: 10,
            idle_secs: 10,
            orphans: 10_000,
            reap_rounds: 15,
            storm_ms: 5_000,
            storm_rounds: 1,
            storm_signals: 10_000,
            signal_storm_rounds: 12,
            escalation_rounds: 10,
            soak_signals: 1_000_000,
            soak_orphan_batches: 100,
            soak_orphans_per_batch: 1_000,
            soak_mixed_signals: 50_000,
            syscall_rounds: 10,
            syscall_signals: 100,
            busy_rounds: 30,
            busy_processes: 2_000,
        }
    }

    pub fn quick() -> Plan {
        Plan {
            startup_rounds: 60,
            supervise_rounds: 12,
            forwards_per_round: 5,
            idle_secs: 2,
            reap_rounds: 2,
            storm_ms: 1_000,
            signal_storm_rounds: 3,
            escalation_rounds: 3,
            soak_signals: 100_000,
            soak_orphan_batches: 20,
            soak_mixed_signals: 50_000,
            syscall_rounds: 3,
            busy_rounds: 5,
            ..Plan::full()
        }
    }
}

impl Plan {
    /// Multiplies every round count by `f` (at least one round each).
    pub fn scaled(mut self, f: f64) -> Plan {
        let sc = |n: usize| ((n as f64 * f).round() as usize).max(1);
        self.startup_rounds = sc(self.startup_rounds);
        self.supervise_rounds = sc(self.supervise_rounds);
        self.reap_rounds = sc(self.reap_rounds);
        self.storm_rounds = sc(self.storm_rounds);
        self.signal_storm_rounds = sc(self.signal_storm_rounds);
        self.escalation_rounds = sc(self.escalation_rounds);
        self.syscall_rounds = sc(self.syscall_rounds);
        self.busy_rounds = sc(self.busy_rounds);
        self
    }
}

/// What every metric needs.
pub struct Ctx {
    pub launcher: Launcher,
    pub helper: String,
    pub plan: Plan,
    pub rng: Rng,
    /// The run's temporary directory (strace's output files go there).
    pub tmp: std::path::PathBuf,
    /// Where to keep strace's raw output of every traced session (`--traces DIR`); deleted when `None`.
    pub traces: Option<std::path::PathBuf>,
}

impl Ctx {
    fn helper(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![self.helper.clone()];
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// Starts `init` supervising the helper and waits for the helper's ready message.
    pub(crate) fn start_ready(&self, init: &Init, args: &[&str]) -> Result<Started, String> {
        let argv = init.argv(&self.helper(args));
        self.start_argv_ready(&argv)
    }

    fn start_argv_ready(&self, argv: &[String]) -> Result<Started, String> {
        let mut s = self
            .launcher
            .start(argv, true)
            .map_err(|e| format!("cannot start: {e}"))?;
        match s.expect('R' as i32, 5_000) {
            Some(_) => Ok(s),
            None => {
                let status = s.wait_exit(0).map(|(_, st)| describe_status(st));
                s.kill_and_reap();
                Err(match status {
                    Some(st) => format!("the init exited ({st}) before its child was ready"),
                    None => "the child never reported ready".to_string(),
                })
            }
        }
    }
}

/// A progress line on stderr: rewritten in place on a terminal, otherwise only at 25% steps.
pub(crate) fn progress(what: &str, done: usize, total: usize) {
    let mut e = std::io::stderr();
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(2) } == 0 {
        let step = (total / 4).max(1);
        if done.is_multiple_of(step) || done == total {
            let _ = writeln!(e, "  {what}: {done}/{total}");
        }
        return;
    }
    let _ = write!(e, "\r  {what}: {done}/{total}   ");
    if done == total {
        let _ = writeln!(e);
    }
    let _ = e.flush();
}

pub fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status:#x}")
    }
}

fn rows(inits: &[Init]) -> Vec<Row> {
    inits.iter().map(|i| Row::new(&i.name)).collect()
}

/// 1. Binary size of the static build and `file`'s verdict.
pub fn size(
    inits: &[Init],
    extra: &[(String, std::path::PathBuf)],
    root: &std::path::Path,
) -> Metric {
    let mut m = Metric::new("size", "1", "binary size", "B");
    m.method = "Size of the binary a container image would ship (the static build where there is one), and \
                what `file` says about it."
        .to_string();
    m.chart = Some("binary size");
    m.decimals = 0;
    let all: Vec<(String, std::path::PathBuf)> = inits
        .iter()
        .map(|i| (i.name.clone(), i.size_file.clone()))
        .chain(extra.iter().cloned())
        .collect();
    for (name, path) in all {
        let mut row = Row::new(&name);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                row.samples.push(meta.len() as f64);
                let verdict = Command::new("file")
                    .arg("-b")
                    .arg(&path)
                    .output()
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_else(|| "file(1) not available".to_string());
                let shown = path.strip_prefix(root).unwrap_or(&path);
                row.note = format!("{}: {}", shown.display(), short_verdict(&verdict));
            }
            Err(e) => row.fail(format!("{}: {e}", path.display())),
        }
        m.rows.push(row);
    }
    m
}

/// `file`'s verdict without the BuildID noise.
fn short_verdict(v: &str) -> String {
    v.split(", ")
        .filter(|p| {
            !p.starts_with("BuildID")
                && !p.starts_with("interpreter")
                && !p.starts_with("for GNU/Linux")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// 2. Startup overhead: `INIT -- /bin/true` minus `/bin/true`, both as PID 1, in adjacent pairs.
pub fn startup(ctx: &mut Ctx, inits: &[Init]) -> Metric {
    let mut m = Metric::new("startup", "2", "startup overhead as PID 1", "µs");
    m.chart = Some("startup");
    let mut rows = rows(inits);
    let mut baseline_times = Vec::new();
    let truth = vec!["/bin/true".to_string()];
    let run = |ctx: &Ctx, argv: &[String]| -> Result<f64, String> {
        let mut s = ctx.launcher.start(argv, false).map_err(|e| e.to_string())?;
        let (end, status) = s.wait_exit_blocking();
        let begin = ctx.launcher.exec_ns();
        if status != 0 {
            return Err(format!("ended with {}", describe_status(status)));
        }
        Ok(end.saturating_sub(begin) as f64 / 1_000.0)
    };
    // Warm up: page cache, dentries, the first namespace setups.
    for init in inits {
        for _ in 0..5 {
            let _ = run(ctx, &init.argv(&truth));
            let _ = run(ctx, &truth);
        }
    }
    let total = ctx.plan.startup_rounds;
    for round in 0..total {
        for i in ctx.rng.order(inits.len()) {
            let argv = inits[i].argv(&truth);
            let base_first = ctx.rng.coin();
            let (b, t) = if base_first {
                let b = run(ctx, &truth);
                (b, run(ctx, &argv))
            } else {
                let t = run(ctx, &argv);
                (run(ctx, &truth), t)
            };
            match (b, t) {
                (Ok(b), Ok(t)) => {
                    rows[i].samples.push(t - b);
                    baseline_times.push(b);
                }
                (_, Err(e)) | (Err(e), _) => rows[i].fail(e),
            }
        }
        progress("startup", round + 1, total);
    }
    let base = crate::stats::summarize(&baseline_times);
    m.method = format!(
        "Wall time from the execve of PID 1 (stamped in the child of clone3(CLONE_NEWPID|CLONE_NEWNS), after \
         /proc is mounted) to the harness's waitpid returning, for `INIT [--] /bin/true` minus an adjacent run of \
         `/bin/true` alone as PID 1 (median of {} paired deltas per init; /bin/true alone took {} µs median).",
        total,
        base.map_or("?".to_string(), |b| format!("{:.0}", b.median))
    );
    m.rows = rows;
    m
}

/// 3, 5, 6: one supervision session per init per round: memory while it supervises a sleeping child,
/// then SIGUSR1 forwarding latency, then SIGTERM → init reaped.
pub fn supervise(ctx: &mut Ctx, inits: &[Init]) -> Vec<Metric> {
    let mut hwm = rows(inits);
    let mut pss = rows(inits);
    let mut fwd = rows(inits);
    let mut stop = rows(inits);
    let mut statuses: Vec<std::collections::BTreeMap<String, usize>> =
        vec![Default::default(); inits.len()];
    let total = ctx.plan.supervise_rounds;
    for round in 0..total {
        for i in ctx.rng.order(inits.len()) {
            let mut s = match ctx.start_ready(&inits[i], &["wait", "reply"]) {
                Ok(s) => s,
                Err(e) => {
                    for r in [&mut hwm[i], &mut pss[i], &mut fwd[i], &mut stop[i]] {
                        r.fail(e.clone());
                    }
                    continue;
                }
            };
            sleep_ms(30);
            match (sys::status_field(s.pid, "VmHWM"), sys::pss_kb(s.pid)) {
                (Some(h), Some(p)) => {
                    hwm[i].samples.push(h as f64);
                    pss[i].samples.push(p as f64);
                }
                _ => hwm[i].fail("cannot read /proc/PID/status or smaps_rollup"),
            }
            for _ in 0..ctx.plan.forwards_per_round {
                sleep_ms(2);
                let t0 = now_ns();
                sys::kill(s.pid, libc::SIGUSR1);
                match s.expect(libc::SIGUSR1, 2_000) {
                    Some(msg) => fwd[i]
                        .samples
                        .push(msg.ns.saturating_sub(t0) as f64 / 1_000.0),
                    None => {
                        fwd[i].fail("a SIGUSR1 was not forwarded within 2 s");
                        break;
                    }
                }
            }
            sleep_ms(5);
            let t0 = now_ns();
            sys::kill(s.pid, libc::SIGTERM);
            match s.wait_exit(5_000) {
                Some((t1, status)) => {
                    stop[i].samples.push(t1.saturating_sub(t0) as f64 / 1_000.0);
                    *statuses[i].entry(describe_status(status)).or_default() += 1;
                }
                None => stop[i].fail("still running 5 s after SIGTERM"),
            }
            s.kill_and_reap();
        }
        progress("supervise", round + 1, total);
    }
    for (i, st) in statuses.iter().enumerate() {
        stop[i].note = st
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect::<Vec<_>>()
            .join(", ");
    }
    let mut m_hwm = Metric::new("peak_rss", "3", "peak RSS of the init (VmHWM)", "KiB");
    m_hwm.method = format!(
        "VmHWM from /proc/PID/status of the init, 30 ms after its child (the helper, asleep in poll) reported \
         ready; {total} sessions."
    );
    m_hwm.chart = Some("peak RSS");
    m_hwm.decimals = 0;
    m_hwm.rows = hwm;
    let mut m_pss = Metric::new("pss", "3b", "PSS of the init", "KiB");
    m_pss.method =
        "Pss from /proc/PID/smaps_rollup at the same moment (shared library pages divided among their users)."
            .to_string();
    m_pss.chart = Some("PSS");
    m_pss.decimals = 0;
    m_pss.rows = pss;
    let mut m_fwd = Metric::new("forward", "6", "forwarding latency, SIGUSR1", "µs");
    m_fwd.method = format!(
        "CLOCK_MONOTONIC before kill(init, SIGUSR1) in the harness → CLOCK_MONOTONIC when the child's signalfd \
         read returns; {} signals per session, 2 ms apart, {} sessions.",
        ctx.plan.forwards_per_round, total
    );
    m_fwd.chart = Some("forwarding");
    m_fwd.rows = fwd;
    let mut m_stop = Metric::new("shutdown", "5", "shutdown latency, cooperative child", "µs");
    m_stop.method = format!(
        "kill(init, SIGTERM) → the init's pidfd reports it exited (after the kernel has ended its namespace); \
         the child exits 0 as soon as it reads SIGTERM; {total} sessions."
    );
    m_stop.chart = Some("shutdown");
    m_stop.rows = stop;
    vec![m_hwm, m_pss, m_stop, m_fwd]
}

/// How long an init sits idle before the SIGTERM of metric 5b: long enough for the host to let its memory,
/// and the other processes' kernel structures it may touch, go cold, as in a container stopped after a quiet
/// spell.
const BUSY_IDLE_MS: u64 = 100;

/// 5b: shutdown as in 5, with `busy_processes` idle processes on the host outside the init's namespace, and
/// after the init sat idle for `BUSY_IDLE_MS`. The kernel's kill(-1, …) walks every process of the host,
/// whatever the caller's namespace: an init that uses it on the way out pays for the whole node.
pub fn busy_shutdown(ctx: &mut Ctx, inits: &[Init]) -> Metric {
    let mut stop = rows(inits);
    let crowd = match IdleCrowd::start(ctx.plan.busy_processes) {
        Ok(c) => c,
        Err(e) => {
            for r in &mut stop {
                r.fail(format!("cannot start the idle processes: {e}"));
            }
            let mut m = Metric::new(
                "shutdown_busy",
                "5b",
                "shutdown latency on a busy host, after 100 ms idle",
                "µs",
            );
            m.rows = stop;
            return m;
        }
    };
    let total = ctx.plan.busy_rounds;
    for round in 0..total {
        for i in ctx.rng.order(inits.len()) {
            let mut s = match ctx.start_ready(&inits[i], &["wait", "reply"]) {
                Ok(s) => s,
                Err(e) => {
                    stop[i].fail(e);
                    continue;
                }
            };
            sleep_ms(BUSY_IDLE_MS);
            let t0 = now_ns();
            sys::kill(s.pid, libc::SIGTERM);
            match s.wait_exit(5_000) {
                Some((t1, _)) => stop[i].samples.push(t1.saturating_sub(t0) as f64 / 1_000.0),
                None => stop[i].fail("still running 5 s after SIGTERM"),
            }
            s.kill_and_reap();
        }
        progress("busy host", round + 1, total);
    }
    let mut m = Metric::new(
        "shutdown_busy",
        "5b",
        "shutdown latency on a busy host, after 100 ms idle",
        "µs",
    );
    m.method = format!(
        "As 5 (kill(init, SIGTERM) → the init's pidfd reports it exited; the child exits 0 as soon as it reads \
         SIGTERM), with {} idle processes of the harness's own on the host, outside the init's namespace, and \
         the SIGTERM sent {BUSY_IDLE_MS} ms after the child reported ready; {total} sessions.",
        crowd.len()
    );
    m.chart = Some("shutdown, busy host");
    m.rows = stop;
    m
}

/// 4. Idle wake-ups: all inits side by side, each with a sleeping child; context switches over the window.
pub fn idle(ctx: &mut Ctx, inits: &[Init]) -> Metric {
    let secs = ctx.plan.idle_secs;
    let mut m = Metric::new("idle_wakeups", "4", "idle wake-ups per 10 s", "wake-ups");
    m.method = format!(
        "voluntary + involuntary context switches of the init (all its threads) over {secs} s while its child \
         sleeps, scaled to 10 s; all inits measured at the same time, side by side."
    );
    m.chart = Some("idle wake-ups");
    m.decimals = 0;
    let mut rows = rows(inits);
    let mut sessions: Vec<Option<Started>> = Vec::new();
    for (i, init) in inits.iter().enumerate() {
        match ctx.start_ready(init, &["wait"]) {
            Ok(s) => sessions.push(Some(s)),
            Err(e) => {
                rows[i].fail(e);
                sessions.push(None);
            }
        }
    }
    sleep_ms(300);
    let before: Vec<Option<u64>> = sessions
        .iter()
        .map(|s| s.as_ref().and_then(|s| sys::context_switches(s.pid)))
        .collect();
    for k in 0..secs {
        sleep_ms(1_000);
        progress("idle", k as usize + 1, secs as usize);
    }
    for (i, s) in sessions.iter_mut().enumerate() {
        let Some(s) = s else { continue };
        match (before[i], sys::context_switches(s.pid)) {
            (Some(a), Some(b)) => {
                rows[i].samples.push((b - a) as f64 * 10.0 / secs as f64);
                rows[i].note = format!("{} in {secs} s", b - a);
            }
            _ => rows[i].fail("cannot read /proc/PID/task/*/status"),
        }
        s.stop(2_000);
    }
    m.rows = rows;
    m
}

/// Waits until the init has no child left but the helper's controller; returns when that was seen.
fn wait_single_child(pid: i32, timeout_ns: u64) -> Option<u64> {
    let path = CString::new(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let start = now_ns();
    loop {
        if !sys::has_more_than_one_child(&path) {
            return Some(now_ns());
        }
        if now_ns() - start > timeout_ns {
            return None;
        }
        sleep_us(100);
    }
}

/// Zombie children of the init (its controller child excluded).
fn zombies(pid: i32, controller: i32) -> (usize, usize) {
    let kids = sys::children(pid);
    let others: Vec<i32> = kids.into_iter().filter(|&k| k != controller).collect();
    let z = others
        .iter()
        .filter(|&&k| sys::state(k) == Some('Z'))
        .count();
    (z, others.len())
}

/// Triggers the middle process of `helper orphans` and measures until the init has reaped them all.
/// What one release of orphans came to.
struct Released {
    /// From the go to the init having no child but the helper.
    ms: f64,
    /// Processes left besides the helper (0 when all were reaped).
    left: usize,
    /// From the go until the middle process was seen gone (the kernel's re-parenting included).
    middle_ms: f64,
    /// The init's VmRSS growth across the release, KiB.
    rss_growth: f64,
}

fn release_orphans(s: &Started) -> Result<Released, String> {
    let controller = *sys::children(s.pid).first().ok_or("no controller child")?;
    let middle = *sys::children(controller)
        .first()
        .ok_or("no middle process")?;
    let middle_fd = sys::pidfd_open(middle).ok_or("cannot open a pidfd for the middle process")?;
    let rss_before = rss(s.pid);
    let t0 = now_ns();
    if !s.command(b"g") {
        return Err("cannot write to the helper".to_string());
    }
    // The middle process's pidfd turns readable once it has exited, i.e. after the kernel re-parented its children.
    if !wait_readable(middle_fd.as_raw_fd(), 20_000) {
        return Err("the middle process did not exit".to_string());
    }
    let t_middle = now_ns();
    match wait_single_child(s.pid, 20_000_000_000) {
        Some(t1) => Ok(Released {
            ms: t1.saturating_sub(t0) as f64 / 1e6,
            left: zombies(s.pid, controller).1,
            middle_ms: t_middle.saturating_sub(t0) as f64 / 1e6,
            rss_growth: match (rss_before, rss(s.pid)) {
                (Some(b), Some(a)) => a - b,
                _ => f64::NAN,
            },
        }),
        None => Err(format!(
            "orphans still not reaped after 20 s ({} left)",
            zombies(s.pid, controller).1
        )),
    }
}

/// 7a. 10,000 zombie orphans re-parented to the init at once → time until none is left.
/// 7b. A fork storm of orphans → zombies left at the end.
pub fn reaping(ctx: &mut Ctx, inits: &[Init]) -> Vec<Metric> {
    let n = ctx.plan.orphans;
    let mut reap = rows(inits);
    let mut growth = rows(inits);
    let mut left_total = vec![0usize; inits.len()];
    let mut middle_ms: Vec<Vec<f64>> = vec![Vec::new(); inits.len()];
    let total = ctx.plan.reap_rounds;
    let n_arg = n.to_string();
    for round in 0..total {
        for i in ctx.rng.order(inits.len()) {
            let s = match ctx.start_orphans(&inits[i], &n_arg, "1") {
                Ok(s) => s,
                Err(e) => {
                    reap[i].fail(e);
                    continue;
                }
            };
            match release_orphans(&s) {
                Ok(r) => {
                    reap[i].samples.push(r.ms);
                    left_total[i] += r.left;
                    middle_ms[i].push(r.middle_ms);
                    growth[i].samples.push(r.rss_growth);
                }
                Err(e) => {
                    growth[i].fail(e.clone());
                    reap[i].fail(e);
                }
            }
            let mut s = s;
            s.stop(2_000);
        }
        progress("reap", round + 1, total);
    }
    for (i, r) in reap.iter_mut().enumerate() {
        let m = crate::stats::summarize(&middle_ms[i]).map_or(0.0, |s| s.median);
        r.note = format!(
            "{} left; of which the middle process's exit (the kernel re-parenting) took {m:.1} ms median",
            left_total[i]
        );
    }
    let mut m_reap = Metric::new("reap_orphans", "7a", "10,000 orphans reaped", "ms");
    m_reap.method = format!(
        "A middle process forks {n} children that exit at once and stay zombies; on the harness's go it exits, so \
         the kernel re-parents all {n} to the init together. Time from the go until the init has no child left \
         but the helper (the head of /proc/PID/task/PID/children polled every 100 µs); {total} rounds."
    );
    m_reap.chart = Some("reap 10k");
    m_reap.decimals = 2;
    m_reap.rows = reap;

    let mut m_growth = Metric::new(
        "reap_rss_growth",
        "7c",
        "VmRSS growth of the init over the 10,000-orphan reap",
        "KiB",
    );
    m_growth.method = "The init's VmRSS right after all the orphans were reaped minus just before the go (same runs as \
                       7a): memory an init keeps after a burst of orphans."
        .to_string();
    m_growth.decimals = 0;
    m_growth.rows = growth;
    // The fork storm.
    let storm = fork_storm(ctx, inits);
    vec![m_reap, m_growth, storm]
}

impl Ctx {
    fn start_orphans(&self, init: &Init, n: &str, batches: &str) -> Result<Started, String> {
        let argv = init.argv(&self.helper(&["orphans", n, batches]));
        let mut s = self
            .launcher
            .start(&argv, true)
            .map_err(|e| format!("cannot start: {e}"))?;
        match s.expect('O' as i32, 120_000) {
            Some(_) => Ok(s),
            None => {
                s.kill_and_reap();
                Err("the orphan maker never reported".to_string())
            }
        }
    }
}

fn fork_storm(ctx: &mut Ctx, inits: &[Init]) -> Metric {
    let ms = ctx.plan.storm_ms;
    let mut rows = rows(inits);
    let mut notes: Vec<Vec<String>> = vec![Vec::new(); inits.len()];
    let total = ctx.plan.storm_rounds * inits.len();
    let mut done = 0;
    for _ in 0..ctx.plan.storm_rounds {
        for i in ctx.rng.order(inits.len()) {
            done += 1;
            let argv = inits[i].argv(&ctx.helper(&["storm", &ms.to_string()]));
            let mut s = match ctx.launcher.start(&argv, true) {
                Ok(s) => s,
                Err(e) => {
                    rows[i].fail(format!("cannot start: {e}"));
                    continue;
                }
            };
            let t0 = now_ns();
            let mut peak = 0;
            let made = loop {
                match s.read_msg(500) {
                    Some(msg) if msg.kind == 'S' as i32 => break Some(msg.value),
                    Some(_) => {}
                    None => {
                        if !s.alive() || now_ns() - t0 > (ms + 30_000) * 1_000_000 {
                            break None;
                        }
                        peak = peak.max(sys::children(s.pid).len().saturating_sub(1));
                    }
                }
            };
            let failed = s.expect('F' as i32, 1_000).map_or(0, |m| m.value);
            let Some(made) = made else {
                rows[i].fail("the storm did not finish");
                continue;
            };
            let controller = sys::children(s.pid).first().copied().unwrap_or(0);
            let (z_now, _) = zombies(s.pid, controller);
            sleep_ms(100);
            let (z_left, others) = zombies(s.pid, controller);
            rows[i].samples.push(z_left as f64);
            notes[i].push(format!(
                "{made} orphans in {:.1} s ({:.0}/s){}, {z_now} zombies at the storm's end, peak {peak} children \
                 sampled; {others} processes besides the helper left after 100 ms",
                ms as f64 / 1_000.0,
                made as f64 * 1_000.0 / ms as f64,
                if failed > 0 { format!(", {failed} forks failed") } else { String::new() }
            ));
            if !s.alive() {
                rows[i].fail("the init died during the storm");
            }
            s.stop(2_000);
            progress("fork storm", done, total);
        }
    }
    for (i, r) in rows.iter_mut().enumerate() {
        r.note = notes[i].join(" | ");
    }
    let mut m = Metric::new("storm_zombies", "7b", "fork storm: zombies left", "zombies");
    m.method = format!(
        "The child double-forks for {:.0} s as fast as it can (each grandchild exits at once, an orphan of the \
         init); zombies among the init's children 100 ms after the storm ends.",
        ms as f64 / 1_000.0
    );
    m.decimals = 0;
    m.rows = rows;
    m
}

/// 8. A storm of SIGUSR1 at the init: it must survive and still forward.
pub fn signal_storm(ctx: &mut Ctx, inits: &[Init]) -> Metric {
    let count = ctx.plan.storm_signals;
    let mut rows = rows(inits);
    let mut notes: Vec<Vec<String>> = vec![Vec::new(); inits.len()];
    let mut firsts: Vec<Vec<f64>> = vec![Vec::new(); inits.len()];
    let total = ctx.plan.signal_storm_rounds;
    for round in 0..total {
        for i in ctx.rng.order(inits.len()) {
            let mut s = match ctx.start_ready(&inits[i], &["wait"]) {
                Ok(s) => s,
                Err(e) => {
                    rows[i].fail(e);
                    continue;
                }
            };
            sleep_ms(20);
            let t0 = now_ns();
            let mut sent = 0;
            for _ in 0..count {
                if !sys::kill(s.pid, libc::SIGUSR1) {
                    break;
                }
                sent += 1;
            }
            let send_ms = (now_ns() - t0) as f64 / 1e6;
            if !s.alive() || sent < count {
                rows[i].fail(format!(
                    "the init died during the storm after {sent} signals"
                ));
                continue;
            }
            // Then it must still forward: five probes, 2 ms apart, the first right away.
            let mut probes = Vec::new();
            let mut seen = 0;
            for _ in 0..5 {
                let t1 = now_ns();
                sys::kill(s.pid, libc::SIGUSR2);
                match s.expect(libc::SIGUSR2, 5_000) {
                    Some(msg) => {
                        probes.push(msg.ns.saturating_sub(t1) as f64 / 1_000.0);
                        seen = msg.value;
                    }
                    None => {
                        rows[i].fail("a probe signal after the storm was not forwarded");
                        break;
                    }
                }
                sleep_ms(2);
            }
            if let Some(first) = probes.first() {
                firsts[i].push(*first);
            }
            if let Some(p) = crate::stats::summarize(&probes) {
                rows[i].samples.push(p.median);
            }
            notes[i].push(format!("{seen}"));
            if !s.alive() {
                rows[i].fail("the init died after the storm");
            }
            s.stop(2_000);
            if let Some(n) = notes[i].last_mut() {
                n.push_str(&format!(" (sent in {send_ms:.0} ms)"));
            }
        }
        progress("signal storm", round + 1, total);
    }
    for (i, r) in rows.iter_mut().enumerate() {
        if r.error.is_none() {
            let first = crate::stats::summarize(&firsts[i]).map_or(0.0, |s| s.median);
            r.note = format!(
                "survived every round and still forwards; first probe right after the storm {first:.1} µs median; \
                 SIGUSR1 seen by the child per round: {}",
                notes[i].join(", ")
            );
        }
    }
    let mut m = Metric::new(
        "signal_storm",
        "8",
        "10,000-signal storm: forwarding after it",
        "µs",
    );
    m.method = format!(
        "{count} SIGUSR1 sent to the init as fast as kill(2) goes; then the init must be alive and forward five \
         SIGUSR2 probes (2 ms apart): the value is the median probe latency of each round. Standard signals \
         coalesce, so the child sees far fewer SIGUSR1 than were sent. {total} rounds."
    );
    m.rows = rows;
    m
}

/// Escalation, metric 9 (grace-init only): the child ignores SIGTERM; with `--timeout 1`, how far from the
/// deadline the SIGKILL lands and the init is gone.
pub fn escalation(ctx: &mut Ctx, inits: &[Init]) -> Vec<Metric> {
    let graces: Vec<Init> = inits.iter().filter(|i| i.is_grace).cloned().collect();
    let mut sent_rows = rows(&graces);
    let mut kill_rows = rows(&graces);
    let mut exit_rows = rows(&graces);
    let trace = SigkillTrace::open();
    let mut statuses: Vec<std::collections::BTreeMap<String, usize>> =
        vec![Default::default(); graces.len()];
    let total = ctx.plan.escalation_rounds;
    for round in 0..total {
        for i in ctx.rng.order(graces.len()) {
            let init = &graces[i];
            let mut argv = vec![init.exe.to_string_lossy().into_owned()];
            argv.extend(init.prefix.iter().filter(|a| *a != "--").cloned());
            argv.extend(["--timeout".to_string(), "1".to_string(), "--".to_string()]);
            argv.extend(ctx.helper(&["wait", "ignore-term"]));
            let mut s = match ctx.start_argv_ready(&argv) {
                Ok(s) => s,
                Err(e) => {
                    kill_rows[i].fail(e);
                    continue;
                }
            };
            let Some(child) = sys::children(s.pid).first().copied() else {
                kill_rows[i].fail("no child found");
                continue;
            };
            let Some(child_fd) = sys::pidfd_open(child) else {
                kill_rows[i].fail("cannot open a pidfd for the child");
                continue;
            };
            sleep_ms(20);
            if let Some(trace) = &trace {
                trace.clear();
            }
            let t0 = now_ns();
            let deadline = t0 + 1_000_000_000;
            sys::kill(s.pid, libc::SIGTERM);
            // The harness itself must not be late: on a VM a 1 s sleep ends ~1 ms late and wakes on cold
            // memory, which would be counted against the init. So it sleeps to 20 ms before the deadline
            // (the child cannot die before it: it ignores SIGTERM) and waits on the pidfd only from there.
            let early = deadline.saturating_sub(20_000_000);
            sleep_ns(early.saturating_sub(now_ns()));
            if !wait_readable(child_fd.as_raw_fd(), 5_000) {
                kill_rows[i].fail("the child was not killed within 5 s");
                continue;
            }
            let t_kill = now_ns();
            match trace.as_ref().map(|t| t.first_sigkill_to(child)) {
                Some(Some(t_sent)) => sent_rows[i]
                    .samples
                    .push((t_sent as f64 - deadline as f64) / 1e6),
                Some(None) => sent_rows[i].fail("no SIGKILL to the child in the kernel's trace"),
                None => sent_rows[i].fail("tracefs unavailable (signal_generate)"),
            }
            match s.wait_exit(5_000) {
                Some((t_exit, status)) => {
                    kill_rows[i]
                        .samples
                        .push((t_kill as f64 - deadline as f64) / 1e6);
                    exit_rows[i]
                        .samples
                        .push((t_exit as f64 - deadline as f64) / 1e6);
                    *statuses[i].entry(describe_status(status)).or_default() += 1;
                }
                None => exit_rows[i].fail("the init did not exit within 5 s"),
            }
        }
        progress("escalation", round + 1, total);
    }
    for (i, st) in statuses.iter().enumerate() {
        exit_rows[i].note = st
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect::<Vec<_>>()
            .join(", ");
    }
    let mut m_sent = Metric::new(
        "escalation_sent",
        "9",
        "escalation: SIGKILL sent after the deadline",
        "ms",
    );
    m_sent.method = format!(
        "`grace-init --timeout 1 -- CHILD` where CHILD ignores SIGTERM: the deadline is kill(init, SIGTERM) + 1 s; \
         the SIGKILL is dated when the kernel generated it for the child (tracefs event signal/signal_generate, \
         CLOCK_MONOTONIC, 1 µs resolution): the init's own part, apart from how long the child then takes to die; \
         {total} rounds."
    );
    m_sent.decimals = 2;
    m_sent.rows = sent_rows;
    let mut m_kill = Metric::new(
        "escalation_kill",
        "9a",
        "escalation: child dead after the deadline",
        "ms",
    );
    m_kill.method = format!(
        "`grace-init --timeout 1 -- CHILD` where CHILD ignores SIGTERM: the deadline is kill(init, SIGTERM) + 1 s; \
         the SIGKILL is dated by the child's pidfd turning readable (it died), which the harness waits for from 20 ms \
         before the deadline (a 1 s sleep of its own would end late and on cold memory; a kill more than 20 ms early \
         would show as -20 ms); {total} rounds. grace-init only \
         (the peers have no grace period)."
    );
    m_kill.decimals = 2;
    m_kill.rows = kill_rows;
    let mut m_exit = Metric::new(
        "escalation_exit",
        "9b",
        "escalation: init gone after the deadline",
        "ms",
    );
    m_exit.method =
        "Same runs: the init's pidfd turning readable, against the same deadline.".to_string();
    m_exit.decimals = 2;
    m_exit.rows = exit_rows;
    vec![m_sent, m_kill, m_exit]
}

/// Issue 6's long variants: 1,000,000 forwarded signals, 100,000 reaped orphans and a 50,000-signal mixed storm,
/// with the init's RSS sampled along the way. Rows hold the VmRSS samples (KiB).
pub fn soak(ctx: &mut Ctx, inits: &[Init]) -> Vec<Metric> {
    let mut sig_rows = rows(inits);
    let mut orphan_rows = rows(inits);
    let mut mixed_rows = rows(inits);
    for (i, init) in inits.iter().enumerate() {
        soak_signals(ctx, init, &mut sig_rows[i]);
        soak_orphans(ctx, init, &mut orphan_rows[i]);
        soak_mixed(ctx, init, &mut mixed_rows[i]);
    }
    let mut a = Metric::new(
        "soak_signals",
        "S1",
        "soak: forwarded signals, VmRSS samples",
        "KiB",
    );
    a.method = format!(
        "{} SIGUSR1 sent one at a time, each acknowledged by the child before the next (so none coalesces); \
         VmRSS sampled every 10%.",
        ctx.plan.soak_signals
    );
    a.decimals = 0;
    a.rows = sig_rows;
    let mut b = Metric::new(
        "soak_orphans",
        "S2",
        "soak: reaped orphans, VmRSS samples",
        "KiB",
    );
    b.method = format!(
        "{} batches of {} zombie orphans re-parented at once, each batch reaped before the next; VmRSS sampled \
         every 10%.",
        ctx.plan.soak_orphan_batches, ctx.plan.soak_orphans_per_batch
    );
    b.decimals = 0;
    b.rows = orphan_rows;
    let mut c = Metric::new(
        "soak_mixed",
        "S3",
        "soak: mixed signal storm, VmRSS before/after",
        "KiB",
    );
    c.method = format!(
        "{} signals cycling through HUP, USR1, QUIT, WINCH, ALRM, URG, CONT and SIGRTMIN+2 as fast as kill(2) \
         goes; then one more of each kind must reach the child; VmRSS before and after.",
        ctx.plan.soak_mixed_signals
    );
    c.decimals = 0;
    c.rows = mixed_rows;
    vec![a, b, c]
}

fn rss(pid: i32) -> Option<f64> {
    sys::status_field(pid, "VmRSS").map(|v| v as f64)
}

fn soak_signals(ctx: &mut Ctx, init: &Init, row: &mut Row) {
    let n = ctx.plan.soak_signals;
    let mut s = match ctx.start_ready(init, &["wait", "reply"]) {
        Ok(s) => s,
        Err(e) => return row.fail(e),
    };
    sleep_ms(20);
    row.samples.extend(rss(s.pid));
    let t0 = now_ns();
    let mut delivered = 0;
    let mut lat = Vec::with_capacity(n);
    for k in 0..n {
        let t = now_ns();
        sys::kill(s.pid, libc::SIGUSR1);
        match s.expect(libc::SIGUSR1, 2_000) {
            Some(msg) => {
                delivered += 1;
                lat.push(msg.ns.saturating_sub(t) as f64 / 1_000.0);
            }
            None => {
                row.fail(format!("signal {k} not forwarded within 2 s"));
                break;
            }
        }
        if (k + 1) % (n / 10).max(1) == 0 {
            row.samples.extend(rss(s.pid));
            progress(&format!("soak signals {}", init.name), k + 1, n);
        }
    }
    let secs = (now_ns() - t0) as f64 / 1e9;
    let lat = crate::stats::summarize(&lat);
    row.note = format!(
        "{delivered}/{n} forwarded in {secs:.1} s (latency median {:.1} µs, max {:.0} µs); VmRSS {}",
        lat.map_or(0.0, |l| l.median),
        lat.map_or(0.0, |l| l.max),
        rss_trend(&row.samples)
    );
    if s.stop(2_000).is_none() {
        row.fail("did not stop on SIGTERM after the soak");
    }
}

fn soak_orphans(ctx: &mut Ctx, init: &Init, row: &mut Row) {
    let batches = ctx.plan.soak_orphan_batches;
    let per = ctx.plan.soak_orphans_per_batch;
    let argv = init.argv(&ctx.helper(&["orphans", &per.to_string(), &batches.to_string()]));
    let mut s = match ctx.launcher.start(&argv, true) {
        Ok(s) => s,
        Err(e) => return row.fail(format!("cannot start: {e}")),
    };
    let t0 = now_ns();
    let mut reaped = 0;
    for b in 0..batches {
        if s.expect('O' as i32, 60_000).is_none() {
            row.fail(format!("batch {b}: the orphan maker never reported"));
            break;
        }
        if b == 0 {
            row.samples.extend(rss(s.pid));
        }
        match release_orphans(&s) {
            Ok(r) if r.left == 0 => reaped += per,
            Ok(r) => row.fail(format!("batch {b}: {} left", r.left)),
            Err(e) => {
                row.fail(format!("batch {b}: {e}"));
                break;
            }
        }
        if (b + 1) % (batches / 10).max(1) == 0 {
            row.samples.extend(rss(s.pid));
            progress(&format!("soak orphans {}", init.name), b + 1, batches);
        }
    }
    let secs = (now_ns() - t0) as f64 / 1e9;
    row.note = format!(
        "{reaped}/{} orphans reaped in {secs:.1} s; VmRSS {}",
        batches * per,
        rss_trend(&row.samples)
    );
    if s.stop(2_000).is_none() {
        row.fail("did not stop on SIGTERM after the soak");
    }
}

fn soak_mixed(ctx: &mut Ctx, init: &Init, row: &mut Row) {
    let n = ctx.plan.soak_mixed_signals;
    let kinds = [
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGQUIT,
        libc::SIGWINCH,
        libc::SIGALRM,
        libc::SIGURG,
        libc::SIGCONT,
        libc::SIGRTMIN() + 2,
    ];
    let mut s = match ctx.start_ready(init, &["wait"]) {
        Ok(s) => s,
        Err(e) => return row.fail(e),
    };
    sleep_ms(50);
    let before = rss(s.pid);
    for k in 0..n {
        if !sys::kill(s.pid, kinds[k % kinds.len()]) {
            row.fail(format!("the init died after {k} signals"));
            return;
        }
    }
    // Let the init drain what is pending, then one more of each kind must reach the child.
    sleep_ms(200);
    let mut missing = Vec::new();
    for &sig in &kinds {
        let count = |s: &Started| -> Option<u64> {
            s.command(&[b'c', sig as u8]);
            s.expect('C' as i32, 2_000).map(|m| m.value)
        };
        let Some(c0) = count(&s) else {
            row.fail("the child does not answer");
            break;
        };
        sys::kill(s.pid, sig);
        let mut ok = false;
        for _ in 0..200 {
            if count(&s).is_some_and(|c| c > c0) {
                ok = true;
                break;
            }
            sleep_ms(5);
        }
        if !ok {
            missing.push(sig);
        }
    }
    let after = rss(s.pid);
    row.samples.extend(before);
    row.samples.extend(after);
    if !missing.is_empty() {
        row.fail(format!(
            "signals not delivered after the storm: {missing:?}"
        ));
    }
    row.note = match (before, after) {
        (Some(b), Some(a)) => format!(
            "VmRSS {b:.0} → {a:.0} KiB ({:+.0} KiB); {} of {} kinds delivered after the storm",
            a - b,
            kinds.len() - missing.len(),
            kinds.len()
        ),
        _ => "VmRSS not readable".to_string(),
    };
    if s.stop(2_000).is_none() {
        row.fail("did not stop on SIGTERM after the storm");
    }
}

fn rss_trend(samples: &[f64]) -> String {
    match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => {
            let max = samples.iter().copied().fold(f64::MIN, f64::max);
            format!(
                "{f:.0} → {l:.0} KiB (max {max:.0}, {} samples)",
                samples.len()
            )
        }
        _ => "not sampled".to_string(),
    }
}
