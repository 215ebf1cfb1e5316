//! Issue 10: the system calls an init makes on its two hot paths, counted with strace attached to the init's own
//! thread (`strace -p PID`, no `-f`: the child's system calls are not the init's). Counts are deterministic where
//! latencies are not.
//!
//! One traced session per init per round:
//! 1. the init starts supervising the helper (`helper wait reply`) and the helper reports ready;
//! 2. `strace -ttt -o FILE -p PID` attaches (PTRACE_SEIZE); the harness waits until /proc/PID/status shows the
//!    tracer and the init sleeps again (state S) in its wait, restarted under the tracer;
//! 3. three SIGUSR1 warm up (outside the window: the first wake-up after a start may differ), then N SIGUSR1 go
//!    to the init one at a time, each after the helper reported the previous one and the init is asleep again;
//! 4. once the init sleeps again, SIGTERM; the helper exits 0 at once; strace ends with the init.
//!
//! strace's `-ttt` stamps each call's entry with CLOCK_REALTIME, and the harness reads the same clock just before
//! its first SIGUSR1 (t1) and before the SIGTERM (t2). Per forwarded signal: the calls entered in [t1, t2) divided
//! by N. That window holds N whole cycles of "wake up, forward, wait again": the wait that was in progress at t1 is
//! left out and the wait entered after the last forward, which is in progress at t2, is in. SIGTERM → exit: that
//! wait (the one the SIGTERM ends) and every call entered from t2 on, `exit_group` included.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::metrics::{Ctx, progress};
use crate::model::{Init, Metric, Row};
use crate::sys::{self, now_ns, sleep_ms, sleep_us};

/// SIGUSR1 forwarded after strace attached and before the window opens.
const WARMUP: usize = 3;

/// One system call as strace printed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// Entry time, CLOCK_REALTIME in microseconds (strace -ttt).
    pub ts_us: u64,
    /// A short label: the name, the arguments of signal-sending calls, "→ERRNO" for a failure, "→0" for a
    /// wait that reaped nothing.
    pub label: String,
}

/// CLOCK_REALTIME in microseconds: the clock of strace's -ttt stamps.
fn realtime_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Parses strace output of one process with `-ttt`: one call per line; signal (`---`), exit (`+++`) and
/// continuation (`<... resumed>`) lines are not calls.
pub fn parse(text: &str) -> Vec<Call> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Call> {
    let (ts, rest) = line.trim_start().split_once(' ')?;
    let (sec, usec) = ts.split_once('.')?;
    let ts_us =
        sec.parse::<u64>().ok()? * 1_000_000 + format!("{usec:0<6}")[..6].parse::<u64>().ok()?;
    let rest = rest.trim_start();
    if rest.starts_with("---") || rest.starts_with("+++") || rest.starts_with("<...") {
        return None;
    }
    let open = rest.find('(')?;
    let name = &rest[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let mut label = name.to_string();
    if matches!(
        name,
        "kill" | "tkill" | "tgkill" | "rt_sigqueueinfo" | "rt_tgsigqueueinfo" | "pidfd_send_signal"
    ) {
        // The arguments say who was signalled and with what: "kill(-2, SIGTERM)".
        if let Some(close) = rest[open..].find(')') {
            label = rest[..open + close + 1].to_string();
        }
    }
    // The result: after the last " = " (arguments may contain " = " in strings, results never do).
    if let Some(eq) = rest.rfind(" = ") {
        let result = rest[eq + 3..].trim();
        let mut words = result.split_whitespace();
        match words.next() {
            Some("-1") => {
                if let Some(errno) = words.next() {
                    label.push('→');
                    label.push_str(errno);
                }
            }
            Some("0") if matches!(name, "wait4" | "waitid" | "waitpid") => label.push_str("→0"),
            _ => {}
        }
    }
    Some(Call { ts_us, label })
}

/// Labels with runs of the same label collapsed: "write ×2".
pub fn collapse(labels: &[String]) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for l in labels {
        match out.last_mut() {
            Some((last, n)) if last == l => *n += 1,
            _ => out.push((l.clone(), 1)),
        }
    }
    out.into_iter()
        .map(|(l, n)| if n > 1 { format!("{l} ×{n}") } else { l })
        .collect()
}

/// One cycle of the forwarding window, when the window is `n` repetitions of the same cycle: rotated so that
/// the wait comes first (in the window it comes last: the wait in progress at t1 is not in it).
pub fn one_cycle(window: &[String], n: usize) -> Option<Vec<String>> {
    if n == 0 || window.is_empty() || !window.len().is_multiple_of(n) {
        return None;
    }
    let p = window.len() / n;
    if window.chunks(p).any(|c| c != &window[..p]) {
        return None;
    }
    let mut cycle = vec![window[p - 1].clone()];
    cycle.extend(window[..p - 1].iter().cloned());
    Some(cycle)
}

/// Every label with its count per forwarded signal, in order of first appearance: "read ×1.01".
fn per_signal_counts(window: &[String], n: usize) -> Vec<String> {
    let mut order: Vec<&String> = Vec::new();
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for l in window {
        if !counts.contains_key(l) {
            order.push(l);
        }
        *counts.entry(l).or_default() += 1;
    }
    order
        .into_iter()
        .map(|l| format!("{l} ×{:.2}", counts[l] as f64 / n.max(1) as f64))
        .collect()
}

/// What one traced session gave.
struct Traced {
    /// Calls entered in [t1, t2): N forwarding cycles.
    forward: Vec<String>,
    /// The wait the SIGTERM ended, then every call from t2 on.
    shutdown: Vec<String>,
    /// The window's boundaries: before the first SIGUSR1, and before the SIGTERM (CLOCK_REALTIME, µs).
    t1: u64,
    t2: u64,
}

/// Polls until `f` holds or `timeout_ms` passed.
fn wait_until(timeout_ms: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = now_ns() + timeout_ms * 1_000_000;
    loop {
        if f() {
            return true;
        }
        if now_ns() > end {
            return false;
        }
        sleep_us(100);
    }
}

/// The init asleep in its wait: state S, and (read twice, 1 ms apart) not just passing through a sleep.
fn wait_idle(pid: i32) -> bool {
    wait_until(2_000, || sys::state(pid) == Some('S')) && {
        sleep_ms(1);
        wait_until(2_000, || sys::state(pid) == Some('S'))
    }
}

fn end_strace(child: &mut Child) -> Result<(), String> {
    let ok = wait_until(5_000, || child.try_wait().ok().flatten().is_some());
    if !ok {
        // Only the strace this session started, by its pid.
        sys::kill(child.id() as i32, libc::SIGTERM);
        let _ = child.wait();
        return Err("strace did not end with the init".to_string());
    }
    Ok(())
}

fn traced_session(ctx: &Ctx, init: &Init, n: usize, trace: &Path) -> Result<Traced, String> {
    let mut s = ctx.start_ready(init, &["wait", "reply"])?;
    let pid = s.pid;
    let mut strace = Command::new("strace")
        .arg("-ttt")
        .arg("-o")
        .arg(trace)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run strace: {e}"))?;
    let tracer = strace.id() as u64;
    if !wait_until(5_000, || {
        sys::status_field(pid, "TracerPid") == Some(tracer)
    }) {
        sys::kill(tracer as i32, libc::SIGTERM);
        let _ = strace.wait();
        return Err("strace did not attach within 5 s".to_string());
    }
    let result = (|| {
        if !wait_idle(pid) {
            return Err("the init did not go back to sleep after strace attached".to_string());
        }
        // Warm-up, outside the window: an init's first wake-up after its start may differ from the steady cycle
        // (grace-init makes one extra wait4 then).
        for k in 0..WARMUP {
            sys::kill(pid, libc::SIGUSR1);
            if s.expect(libc::SIGUSR1, 2_000).is_none() {
                return Err(format!(
                    "warm-up SIGUSR1 number {} was not forwarded within 2 s",
                    k + 1
                ));
            }
        }
        if !wait_idle(pid) {
            return Err("the init did not go back to sleep after the warm-up signals".to_string());
        }
        let t1 = realtime_us();
        for k in 0..n {
            // Each signal finds the init asleep in its wait: one wake-up per signal, never a batch.
            if !wait_until(2_000, || sys::state(pid) == Some('S')) {
                return Err(format!(
                    "the init was not asleep again before SIGUSR1 number {}",
                    k + 1
                ));
            }
            sys::kill(pid, libc::SIGUSR1);
            if s.expect(libc::SIGUSR1, 2_000).is_none() {
                return Err(format!(
                    "SIGUSR1 number {} was not forwarded within 2 s",
                    k + 1
                ));
            }
        }
        if !wait_idle(pid) {
            return Err("the init did not go back to sleep after the last SIGUSR1".to_string());
        }
        let t2 = realtime_us();
        sys::kill(pid, libc::SIGTERM);
        if s.wait_exit(5_000).is_none() {
            return Err("the init was still running 5 s after SIGTERM".to_string());
        }
        Ok((t1, t2))
    })();
    if result.is_err() {
        s.kill_and_reap();
    }
    end_strace(&mut strace)?;
    let (t1, t2) = result?;
    let text =
        std::fs::read_to_string(trace).map_err(|e| format!("cannot read strace's output: {e}"))?;
    let calls = parse(&text);
    let forward: Vec<String> = calls
        .iter()
        .filter(|c| c.ts_us >= t1 && c.ts_us < t2)
        .map(|c| c.label.clone())
        .collect();
    let in_progress = calls.iter().rfind(|c| c.ts_us < t2);
    let shutdown: Vec<String> = in_progress
        .into_iter()
        .chain(calls.iter().filter(|c| c.ts_us >= t2))
        .map(|c| c.label.clone())
        .collect();
    if !shutdown.last().is_some_and(|l| l.starts_with("exit")) {
        return Err(format!(
            "strace's output does not end with the init's exit: {}",
            shutdown.join(", ")
        ));
    }
    Ok(Traced {
        forward,
        shutdown,
        t1,
        t2,
    })
}

/// The sequences seen across rounds, most frequent first: "(k of R) a, b ×2, c".
fn variants(seqs: &[Vec<String>]) -> Vec<(usize, Vec<String>)> {
    let mut seen: Vec<(usize, Vec<String>)> = Vec::new();
    for s in seqs {
        match seen.iter_mut().find(|(_, v)| v == s) {
            Some((k, _)) => *k += 1,
            None => seen.push((1, s.clone())),
        }
    }
    seen.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.len().cmp(&b.1.len())));
    seen
}

fn describe(variants: &[(usize, Vec<String>)], rounds: usize, what: &str) -> String {
    if variants.len() == 1 {
        return format!("{what}: {}", variants[0].1.join(", "));
    }
    let shown: Vec<String> = variants
        .iter()
        .take(3)
        .map(|(k, v)| {
            format!(
                "({k} of {rounds} rounds, {} calls) {}",
                v.iter().map(|l| weight(l)).sum::<usize>(),
                v.join(", ")
            )
        })
        .collect();
    let more = if variants.len() > 3 {
        format!("; {} more variants", variants.len() - 3)
    } else {
        String::new()
    };
    format!("{what}: {}{more}", shown.join(" | "))
}

/// How many calls a collapsed label stands for ("write ×2" is 2).
fn weight(label: &str) -> usize {
    label
        .rsplit_once(" ×")
        .and_then(|(_, k)| k.parse().ok())
        .unwrap_or(1)
}

/// Issue 10's two counts for every init: system calls per forwarded signal, and from SIGTERM to the init's exit.
pub fn syscalls(ctx: &mut Ctx, inits: &[Init]) -> Vec<Metric> {
    let n = ctx.plan.syscall_signals;
    let total = ctx.plan.syscall_rounds;
    let mut fwd_rows: Vec<Row> = inits.iter().map(|i| Row::new(&i.name)).collect();
    let mut stop_rows: Vec<Row> = inits.iter().map(|i| Row::new(&i.name)).collect();
    let mut fwd_seqs: Vec<Vec<Vec<String>>> = vec![Vec::new(); inits.len()];
    let mut stop_seqs: Vec<Vec<Vec<String>>> = vec![Vec::new(); inits.len()];
    let strace_ok = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !strace_ok {
        for r in fwd_rows.iter_mut().chain(stop_rows.iter_mut()) {
            r.fail(
                "strace is not installed (apt-get install strace, or scripts/setup-test-deps.sh)",
            );
        }
    } else {
        for round in 0..total {
            for i in ctx.rng.order(inits.len()) {
                let trace = ctx.tmp.join(format!("strace.{i}.{round}"));
                let mut window = None;
                match traced_session(ctx, &inits[i], n, &trace) {
                    Ok(t) => {
                        window = Some((t.t1, t.t2));
                        fwd_rows[i].samples.push(t.forward.len() as f64 / n as f64);
                        stop_rows[i].samples.push(t.shutdown.len() as f64);
                        fwd_seqs[i].push(match one_cycle(&t.forward, n) {
                            Some(c) => collapse(&c),
                            None => per_signal_counts(&t.forward, n),
                        });
                        stop_seqs[i].push(collapse(&t.shutdown));
                    }
                    Err(e) => {
                        fwd_rows[i].fail(e.clone());
                        stop_rows[i].fail(e);
                    }
                }
                if let Some(dir) = &ctx.traces {
                    let base = format!("{}.{round}", inits[i].name);
                    let kept = dir.join(format!("{base}.strace"));
                    if std::fs::rename(&trace, &kept).is_err() {
                        let _ = std::fs::copy(&trace, &kept);
                    }
                    if let Some((t1, t2)) = window {
                        let _ = std::fs::write(
                            dir.join(format!("{base}.window")),
                            format!(
                                "t1 {}.{:06} first SIGUSR1 ({n} signals)\nt2 {}.{:06} SIGTERM\n",
                                t1 / 1_000_000,
                                t1 % 1_000_000,
                                t2 / 1_000_000,
                                t2 % 1_000_000
                            ),
                        );
                    }
                }
                let _ = std::fs::remove_file(&trace);
            }
            progress("syscalls", round + 1, total);
        }
    }
    for i in 0..inits.len() {
        let fv = variants(&fwd_seqs[i]);
        let sv = variants(&stop_seqs[i]);
        if let Some((_, v)) = fv.first() {
            fwd_rows[i].calls = v.clone();
            fwd_rows[i].note = describe(&fv, fwd_seqs[i].len(), "one cycle");
        }
        if let Some((_, v)) = sv.first() {
            stop_rows[i].calls = v.clone();
            stop_rows[i].note = describe(&sv, stop_seqs[i].len(), "calls");
        }
    }
    let mut fwd = Metric::new(
        "syscalls_forward",
        "10",
        "system calls per forwarded signal",
        "calls",
    );
    fwd.method = format!(
        "`strace -ttt -p INIT` (the init's own thread, not its child) attached once the child is ready; after {WARMUP} warm-up \
         signals, {n} SIGUSR1 sent one at a time, each after the child reported the previous one and the init \
         sleeps again; the calls the init entered from the \
         first SIGUSR1 until the SIGTERM, divided by {n}: one cycle is the wait that wakes up, the forward and \
         whatever else the wake-up costs. {total} rounds."
    );
    fwd.decimals = 2;
    fwd.rows = fwd_rows;
    let mut stop = Metric::new(
        "syscalls_shutdown",
        "10b",
        "system calls from SIGTERM to exit",
        "calls",
    );
    stop.method = format!(
        "Same sessions: the wait the SIGTERM ends plus every call the init entered after the SIGTERM was sent, \
         `exit_group` included; the child exits 0 as soon as it reads SIGTERM; default log level, stderr on \
         /dev/null. {total} rounds."
    );
    stop.decimals = 0;
    stop.rows = stop_rows;
    vec![fwd, stop]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_lines() {
        let text = "1795946426.327780 read(3, \"\\n\\0\"..., 128) = 128\n\
                    1795946426.621229 kill(2, SIGUSR1)      = 0\n\
                    1795946426.7 read(3, 0x7ffd, 128) = -1 EAGAIN (Resource temporarily unavailable)\n\
                    1795946426.776864 wait4(-1, [{WIFSIGNALED(s) && WTERMSIG(s) == SIGTERM}], WNOHANG, NULL) = 2\n\
                    1795946426.776916 wait4(-1, 0x7ffdbbca5a2c, WNOHANG, NULL) = 0\n\
                    1795946426.776920 --- SIGCHLD {si_signo=SIGCHLD} ---\n\
                    1795946426.776930 restart_syscall(<... resuming interrupted poll ...>) = 1\n\
                    1795946426.776940 exit_group(143)       = ?\n\
                    1795946426.777107 +++ exited with 143 +++";
        let calls = parse(text);
        let labels: Vec<&str> = calls.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "read",
                "kill(2, SIGUSR1)",
                "read→EAGAIN",
                "wait4",
                "wait4→0",
                "restart_syscall",
                "exit_group"
            ]
        );
        assert_eq!(calls[0].ts_us, 1_795_946_426_327_780);
        assert_eq!(calls[2].ts_us, 1_795_946_426_700_000);
    }

    #[test]
    fn finds_one_cycle_with_the_wait_first() {
        let w: Vec<String> = ["read", "read→EAGAIN", "kill", "poll"]
            .repeat(3)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            one_cycle(&w, 3).unwrap(),
            ["poll", "read", "read→EAGAIN", "kill"]
        );
        assert_eq!(one_cycle(&w[1..], 3), None);
        let s: Vec<String> = ["a", "write", "write", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(collapse(&s), ["a", "write ×2", "b"]);
        assert_eq!(weight("write ×2"), 2);
    }
}
