//! Shared harness: starts the built grace-init as a real PID 1 (`unshare --pid --fork --mount-proc`) or as a
//! subreaper, reads its output line by line, and bounds every wait. Each run cleans up what it started.
#![allow(dead_code)]
// Tests send arbitrary (real-time) signals by pid, which only libc::kill can do.
#![allow(unsafe_code)]

pub mod freezer;
pub mod host;
pub mod memcg;
pub mod podman;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_grace-init");

/// The Python reporter fixture: prints `ready` and one line per signal.
pub fn reporter() -> String {
    format!("{}/tests/fixtures/reporter.py", env!("CARGO_MANIFEST_DIR"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// grace-init is PID 1 of a new PID namespace.
    Pid1,
    /// grace-init runs as an ordinary process and registers as child subreaper.
    Subreaper,
}

pub const MODES: [Mode; 2] = [Mode::Pid1, Mode::Subreaper];

/// What makes grace-init PID 1 of a new PID namespace (with its own /proc) and ends that namespace with the test.
pub const PID1_LAUNCHER: [&str; 6] = [
    "unshare",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child",
    "--",
];

/// Whether this machine lets us create PID namespaces. In CI it must: a missing unshare fails there.
pub fn pid1_available() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare --pid is required in CI"
        );
        eprintln!("SKIPPED PID-1 mode: unshare --pid --fork --mount-proc is not possible here");
    }
    ok
}

/// The modes to run a test in: both, or subreaper only where namespaces are impossible (never in CI).
pub fn modes() -> Vec<Mode> {
    if pid1_available() {
        MODES.to_vec()
    } else {
        vec![Mode::Subreaper]
    }
}

/// One test per mode: `per_mode! { fn name(mode: Mode) { ... } }` defines the scenario once and two tests,
/// `name::pid1` and `name::subreaper`, so a failure as PID 1 never hides the subreaper's result and the two run
/// in parallel. The PID-1 test fails in CI where unshare is impossible, and elsewhere says it is skipped.
/// Attributes (`///` lines, `#[ignore]`) go on both tests. `per_mode!(name, |mode| { ... })` is the same.
#[allow(unused_macros)]
macro_rules! per_mode {
    ($name:ident, |$mode:ident| $body:block) => {
        per_mode! { fn $name($mode: Mode) $body }
    };
    ($($(#[$attr:meta])* fn $name:ident($mode:ident: Mode) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn scenario($mode: $crate::common::Mode) $body

                $(#[$attr])*
                #[test]
                fn pid1() {
                    if $crate::common::pid1_available() {
                        scenario($crate::common::Mode::Pid1);
                    }
                }

                $(#[$attr])*
                #[test]
                fn subreaper() {
                    scenario($crate::common::Mode::Subreaper);
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use per_mode;

/// How a finished run ended.
#[derive(Debug)]
pub struct Finished {
    pub mode: Mode,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub elapsed: Duration,
}

impl Finished {
    pub fn stderr_text(&self) -> String {
        self.stderr.join("\n")
    }

    /// Panics with `what`, how the run ended and everything it printed (the whole log, then stdout).
    #[track_caller]
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "{:?}: {what}\nexit code {:?}, signal {:?}, after {:?}\n--- stderr (the log) ---\n{}\n--- stdout ---\n{}",
            self.mode,
            self.code,
            self.signal,
            self.elapsed,
            self.stderr.join("\n"),
            self.stdout.join("\n")
        )
    }

    /// Asserts `ok`; on failure says `what` and prints the whole log.
    #[track_caller]
    pub fn check(&self, ok: bool, what: impl std::fmt::Display) {
        if !ok {
            self.fail(&what.to_string());
        }
    }

    /// Asserts that grace-init exited with `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32) {
        if self.code != Some(code) {
            self.fail(&format!("want exit code {code}"));
        }
    }

    /// Asserts that grace-init exited with `code` in the case `what` (one of several in a test).
    #[track_caller]
    pub fn assert_exit_for(&self, code: i32, what: impl std::fmt::Display) {
        if self.code != Some(code) {
            self.fail(&format!("{what}: want exit code {code}"));
        }
    }

    /// Asserts that some line of the log contains `needle`.
    #[track_caller]
    pub fn assert_log_contains(&self, needle: &str) {
        if !self.stderr.iter().any(|l| l.contains(needle)) {
            self.fail(&format!("no log line contains {needle:?}"));
        }
    }

    /// Asserts that no line of the log contains `needle`.
    #[track_caller]
    pub fn assert_log_lacks(&self, needle: &str) {
        if let Some(line) = self.stderr.iter().find(|l| l.contains(needle)) {
            self.fail(&format!("a log line contains {needle:?}: {line:?}"));
        }
    }

    /// The log lines that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<&str> {
        self.stderr
            .iter()
            .filter(|l| l.contains(needle))
            .map(String::as_str)
            .collect()
    }
}

/// One running grace-init.
pub struct Run {
    pub mode: Mode,
    process: Option<Child>,
    init_pid: i32,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    seen_stdout: Vec<String>,
    seen_stderr: Vec<String>,
    /// Stdout lines received but not yet matched by `expect_stdout`.
    pending: std::collections::VecDeque<String>,
    started: Instant,
    /// With `StderrTo::Stalled`: the unread read end of the full stderr pipe.
    stalled: Option<std::os::fd::OwnedFd>,
}

/// Reads `stream` line by line on a thread, so a test can wait for lines with a bound.
pub fn pump(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Run {
    /// Starts `grace-init ARGS` in `mode`: `Run::launch` with the default `Launch`.
    pub fn start(mode: Mode, args: &[&str]) -> Run {
        Run::launch(mode, &Launch::default(), args)
    }

    /// Starts `grace-init ARGS` in `mode` with extra environment variables: `Run::launch` with `Launch::env`.
    pub fn start_env(mode: Mode, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::launch(mode, &Launch::with_env(env), args)
    }

    /// Starts `grace-init INIT_ARGS -- reporter.py REPORTER_ARGS` in `mode` and waits (at most 10 s) for the
    /// reporter's `child ready`: its signal handlers are in place from then on.
    pub fn start_reporter(mode: Mode, init_args: &[&str], reporter_args: &[&str]) -> Run {
        let reporter = reporter();
        let args: Vec<&str> = init_args
            .iter()
            .copied()
            .chain(["--", reporter.as_str()])
            .chain(reporter_args.iter().copied())
            .collect();
        let mut run = Run::start(mode, &args);
        run.expect_stdout("child ready", secs(10.0));
        run
    }

    /// Wraps a started launcher: finds grace-init's pid (for PID 1, the launcher's child; a quick command
    /// may have come and gone before we look, and then there is nothing to signal).
    fn adopt(
        mode: Mode,
        mut process: Child,
        stdout: Receiver<String>,
        stderr: Receiver<String>,
    ) -> Run {
        let outer = process.id() as i32;
        let init_pid = match mode {
            Mode::Subreaper => outer,
            Mode::Pid1 => wait_for(Duration::from_secs(5), || match children(outer).first() {
                Some(pid) => Some(*pid),
                None => process.try_wait().ok().flatten().map(|_| -1),
            })
            .expect("the launcher's child (grace-init) did not appear within 5 s"),
        };
        Run {
            mode,
            process: Some(process),
            init_pid,
            stdout,
            stderr,
            seen_stdout: vec![],
            seen_stderr: vec![],
            pending: Default::default(),
            started: Instant::now(),
            stalled: None,
        }
    }

    /// When this run was started; `started_at() + Finished::elapsed` is when grace-init's exit was seen.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// grace-init's pid as seen from the test (outside its namespace).
    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }

    /// Sends `signal` to grace-init.
    pub fn signal(&self, signal: i32) {
        assert!(self.init_pid > 0, "grace-init already exited");
        let rc = unsafe { libc::kill(self.init_pid, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.init_pid);
    }

    /// Waits (bounded) for a stdout line starting with `needle`, returning it. Panics with all output on timeout.
    /// Lines that arrived earlier without being matched are searched first, in order.
    pub fn expect_stdout(&mut self, needle: &str, within: Duration) -> String {
        if let Some(i) = self.pending.iter().position(|l| l.starts_with(needle)) {
            if let Some(line) = self.pending.remove(i) {
                return line;
            }
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.seen_stdout.push(line.clone());
                    if line.starts_with(needle) {
                        return line;
                    }
                    self.pending.push_back(line);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    self.drain_stderr();
                    panic!(
                        "no stdout line with {needle:?} within {within:?}\nstdout: {:#?}\nstderr: {:#?}",
                        self.seen_stdout, self.seen_stderr
                    );
                }
            }
        }
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    pub fn expect_stderr(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen_stderr.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with {needle:?} within {within:?}\nstderr: {:#?}",
                    self.seen_stderr
                ),
            }
        }
    }

    /// Every stdout line that arrives within `within`, without waiting for anything in particular.
    pub fn stdout_for(&mut self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut lines = vec![];
        while let Ok(line) = self
            .stdout
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen_stdout.push(line.clone());
            lines.push(line);
        }
        lines
    }

    fn drain_stderr(&mut self) {
        while let Ok(line) = self.stderr.try_recv() {
            self.seen_stderr.push(line);
        }
    }

    /// Every live process below grace-init (its children, their children, ...), by outside pid.
    pub fn descendants(&self) -> Vec<i32> {
        if self.init_pid <= 0 {
            return vec![];
        }
        descendants(self.init_pid)
    }

    /// Waits (at most `within`) until the only process below grace-init is its child and no zombie is left;
    /// otherwise returns what is there (pid and state letter).
    pub fn only_the_child_left(&self, within: Duration) -> Result<(), Vec<(i32, Option<char>)>> {
        let settled = wait_for(within, || {
            let live = self.descendants();
            let zombies = live.iter().filter(|p| state(**p) == Some('Z')).count();
            (live.len() == 1 && zombies == 0).then_some(())
        });
        match settled {
            Some(()) => Ok(()),
            None => Err(self
                .descendants()
                .into_iter()
                .map(|p| (p, state(p)))
                .collect()),
        }
    }

    /// Waits for grace-init to exit, at most `within`; panics (after killing it) when it does not.
    pub fn wait(mut self, within: Duration) -> Finished {
        let mut process = self.process.take().expect("process");
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = process.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let left = descendants(self.init_pid);
                kill_tree(self.init_pid, process.id() as i32);
                let _ = process.wait();
                self.drain_stderr();
                panic!(
                    "grace-init did not exit within {within:?}; live descendants {left:?}\nstdout: {:#?}\nstderr: {:#?}",
                    self.seen_stdout, self.seen_stderr
                );
            }
            thread::sleep(Duration::from_millis(2));
        };
        let elapsed = self.started.elapsed();
        // The pipes close when every writer is gone; collect what is left, bounded.
        let collect = |rx: &Receiver<String>, seen: &mut Vec<String>| {
            let until = Instant::now() + Duration::from_secs(2);
            while let Ok(line) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                seen.push(line);
            }
        };
        collect(&self.stdout, &mut self.seen_stdout);
        collect(&self.stderr, &mut self.seen_stderr);
        use std::os::unix::process::ExitStatusExt;
        Finished {
            mode: self.mode,
            code: status.code(),
            signal: status.signal(),
            stdout: std::mem::take(&mut self.seen_stdout),
            stderr: std::mem::take(&mut self.seen_stderr),
            elapsed,
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            kill_tree(self.init_pid, process.id() as i32);
            let _ = process.wait();
        }
    }
}

/// SIGKILLs grace-init's descendants, grace-init itself and the outer process: only what this run started.
fn kill_tree(init_pid: i32, outer: i32) {
    if init_pid > 0 {
        for pid in descendants(init_pid) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        unsafe { libc::kill(init_pid, libc::SIGKILL) };
    }
    unsafe { libc::kill(outer, libc::SIGKILL) };
}

/// Direct children of `pid`, from /proc.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = vec![];
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Every descendant of `pid`.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut found = vec![];
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for c in children(p) {
            found.push(c);
            stack.push(c);
        }
    }
    found
}

/// The state letter of a process (`R`, `S`, `Z`, ...), if it exists.
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// A field of /proc/PID/status, e.g. `SigBlk`.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

/// Processes a test started that may outlive a failed grace-init run: SIGKILLed on drop if still a reporter.
pub struct Stray(pub Vec<i32>);

impl Drop for Stray {
    fn drop(&mut self) {
        for pid in &self.0 {
            // Any thread's command line: a process whose main thread has exited shows an empty one.
            let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten();
            let is_reporter = threads.flatten().any(|t| {
                let cmdline = std::fs::read(t.path().join("cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains("reporter.py")
            });
            if is_reporter {
                send_signal(*pid, libc::SIGKILL);
            }
        }
    }
}

/// The pid at the end of a reporter's ready line (its own view: the test's only in subreaper mode).
pub fn ready_pid(line: &str) -> i32 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Voluntary plus involuntary context switches of `pid`: how often it has woken up.
pub fn wakeups(pid: i32) -> u64 {
    ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
        .iter()
        .filter_map(|f| status_field(pid, f)?.parse::<u64>().ok())
        .sum()
}

/// The signals a fault raises (and a core dump follows by default): tested apart from the ones `kill` sends.
pub const FAULTS: [i32; 7] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// Polls `probe` every 5 ms until it returns Some, at most `within`.
pub fn wait_for<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

pub fn secs(n: f64) -> Duration {
    Duration::from_secs_f64(n)
}

// ---- Custom starts, raw signals and memory: used by the hardening tests (bad_input, faults, load). ----

/// Where grace-init's stderr goes in `Run::launch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StderrTo {
    /// A pipe the test reads (the default).
    Piped,
    /// A pipe whose read end is already closed: every write to stderr fails with EPIPE (`2>&1 | head -c0`).
    BrokenPipe,
    /// A regular file (created or truncated), which never refuses a write: for tests that count log lines in a
    /// storm, where a pipe read by the test could fill up and grace-init would (rightly) drop lines.
    File(std::path::PathBuf),
    /// A pipe already full when grace-init starts, whose reader has stalled: every write to stderr would block
    /// (a stuck log driver, `| less` never scrolled). The read end stays open and unread until
    /// `Run::unstall_stderr`, which starts reading it (the filler lines come first).
    Stalled,
    /// The same pipe with this many bytes read back out of it, so a write up to that size fits and a longer
    /// one would block (a slow reader that is a little behind).
    StalledWithRoom(usize),
    /// A stalled pipe whose every slot holds one byte spliced in from a file, as `sendfile(2)` (busybox `cat`)
    /// leaves it: FIONREAD says a few bytes are queued, yet no slot is free and any write would block.
    StalledSlots,
}

/// How to start grace-init: `Launch::default()` is the mode's launcher, a piped stdout and stderr, and nothing else
/// inherited than fds 0, 1 and 2 (cargo's jobserver pipes would otherwise reach grace-init).
pub struct Launch {
    /// Replaces the mode's launcher (`unshare --pid --fork --mount-proc --kill-child --` for PID 1; nothing for
    /// a subreaper). In PID-1 mode grace-init must end up the launcher's child; in subreaper mode the launcher
    /// must exec in place (same pid).
    pub launcher: Option<Vec<String>>,
    /// Programs that exec grace-init in place, between the launcher and grace-init: `setpriv ... --`,
    /// `prlimit --nofile=4:4 --`, `sh -c 'exec "$0" "$@" 2>&-'`.
    pub prefix: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stderr: StderrTo,
    /// Descriptors the launcher is started with besides 0, 1 and 2: `(target, source)`, targets ascending and
    /// above 2; the source stays the test's own (drop it after the start to leave grace-init the only holder).
    pub inherit: Vec<(i32, i32)>,
    /// The grace-init to start instead of the one cargo built (a release binary), after `prefix`.
    pub binary: Option<String>,
}

impl Default for Launch {
    fn default() -> Launch {
        Launch {
            launcher: None,
            prefix: vec![],
            env: vec![],
            stderr: StderrTo::Piped,
            inherit: vec![],
            binary: None,
        }
    }
}

/// A `Launch::prefix` that runs grace-init as uid/gid `id`, no supplementary groups.
pub fn as_user(id: u32) -> Vec<String> {
    strings(&[
        "setpriv",
        &format!("--reuid={id}"),
        &format!("--regid={id}"),
        "--clear-groups",
        "--",
    ])
}

/// Turns a list of string slices into owned strings, for `Launch`.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `kill(pid, signal)` for any signal number; returns 0 or the errno.
pub fn send_signal(pid: i32, signal: i32) -> i32 {
    if unsafe { libc::kill(pid, signal) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `RssAnon`), in KiB.
pub fn status_kib(pid: i32, field: &str) -> Option<u64> {
    status_field(pid, field)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether a process has nothing pending: neither its own (SigPnd) nor its thread group's (ShdPnd) signals.
pub fn nothing_pending(pid: i32) -> bool {
    ["SigPnd", "ShdPnd"]
        .iter()
        .all(|f| status_field(pid, f).is_some_and(|v| v.trim_start_matches('0').is_empty()))
}

impl Run {
    /// Starts `grace-init ARGS` in `mode` the way `launch` says. Every wait stays bounded and `Drop` still ends
    /// what was started.
    pub fn launch(mode: Mode, launch: &Launch, args: &[&str]) -> Run {
        let launcher = launch.launcher.clone().unwrap_or_else(|| match mode {
            Mode::Pid1 => strings(&PID1_LAUNCHER),
            Mode::Subreaper => vec![],
        });
        let argv: Vec<String> = launcher
            .iter()
            .chain(launch.prefix.iter())
            .cloned()
            .chain(std::iter::once(
                launch.binary.clone().unwrap_or_else(|| BIN.to_string()),
            ))
            .chain(args.iter().map(|s| s.to_string()))
            .collect();
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut broken_read_end = None;
        let mut stalled = None;
        match &launch.stderr {
            StderrTo::File(path) => {
                command.stderr(std::fs::File::create(path).expect("create the stderr file"));
            }
            StderrTo::Piped => {
                command.stderr(Stdio::piped());
            }
            StderrTo::BrokenPipe => {
                let mut fds = [0; 2];
                assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
                use std::os::fd::FromRawFd;
                // SAFETY: both descriptors were just created by pipe2 and are owned here.
                let (read, write) = unsafe {
                    (
                        std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                        std::os::fd::OwnedFd::from_raw_fd(fds[1]),
                    )
                };
                command.stderr(Stdio::from(write));
                broken_read_end = Some(read);
            }
            StderrTo::Stalled => {
                let (read, write) = full_pipe();
                command.stderr(Stdio::from(write));
                stalled = Some(read);
            }
            StderrTo::StalledSlots => {
                let (read, write) = slot_filled_pipe();
                command.stderr(Stdio::from(write));
                stalled = Some(read);
            }
            StderrTo::StalledWithRoom(room) => {
                use std::io::Read;
                let (read, write) = full_pipe();
                let mut read = std::fs::File::from(read);
                let mut taken = vec![0u8; *room];
                read.read_exact(&mut taken).expect("make room in the pipe");
                command.stderr(Stdio::from(write));
                stalled = Some(read.into());
            }
        }
        let inherit = launch.inherit.clone();
        assert!(
            inherit.len() <= 8 && inherit.windows(2).all(|w| w[0].0 < w[1].0),
            "at most 8 inherited descriptors, targets ascending"
        );
        assert!(
            inherit
                .iter()
                .all(|(target, _)| *target > 2 && *target < 1000)
        );
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || {
                // Each source out of the way first (a source may sit on another's target), then onto its target;
                // then everything else above 2 is closed.
                let mut moved = [-1i32; 8];
                for (slot, (_, source)) in moved.iter_mut().zip(&inherit) {
                    *slot = libc::fcntl(*source, libc::F_DUPFD, 1000);
                }
                let mut first = 3u32;
                for (slot, (target, _)) in moved.iter().zip(&inherit) {
                    libc::dup2(*slot, *target);
                    if *target as u32 > first {
                        libc::syscall(libc::SYS_close_range, first, *target as u32 - 1, 0u32);
                    }
                    first = *target as u32 + 1;
                }
                libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32);
                Ok(())
            });
        }
        for (k, v) in &launch.env {
            command.env(k, v);
        }
        let mut process = command.spawn().expect("start grace-init");
        // The reader goes away before grace-init writes anything.
        drop(broken_read_end);
        let stdout = pump(process.stdout.take().expect("stdout"));
        let stderr = match process.stderr.take() {
            Some(stream) => pump(stream),
            None => channel().1,
        };
        let mut run = Run::adopt(mode, process, stdout, stderr);
        run.stalled = stalled;
        run
    }

    /// Whether grace-init has exited (without collecting its output: `wait` still does).
    pub fn has_exited(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.try_wait().ok().flatten().is_some())
    }

    /// Sends `signal` to grace-init without asserting; returns 0 or the errno.
    pub fn try_signal(&self, signal: i32) -> i32 {
        if self.init_pid <= 0 {
            return libc::ESRCH;
        }
        send_signal(self.init_pid, signal)
    }

    /// Reads stdout until no line has come for `quiet` (at most `within`), forgetting lines not yet matched,
    /// so the next `expect_stdout` only sees what comes after. Returns how many lines were read.
    pub fn settle_stdout(&mut self, quiet: Duration, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut count = self.pending.len();
        self.pending.clear();
        while Instant::now() < deadline {
            match self.stdout.recv_timeout(quiet) {
                Ok(line) => {
                    self.seen_stdout.push(line);
                    count += 1;
                }
                Err(_) => break,
            }
        }
        count
    }
}

/// Sends `signal` to `pid` (any signal number, real-time ones included).
pub fn unsafe_kill(pid: i32, signal: i32) {
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// A scratch directory anyone may write to (non-root runs create files in it), removed on drop.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        use std::os::unix::fs::PermissionsExt;
        // Unique within the process too: the two modes of a scenario run in parallel.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("grace-init-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        Scratch(dir)
    }

    /// A path in the directory, as a string for a command line.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// The marker file case `i` creates when its command runs.
    pub fn marker(&self, i: usize) -> std::path::PathBuf {
        self.0.join(format!("started-{i}"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- Robustness: a stalled stderr, fixtures, terminals, mount namespaces (robustness, stalled_stderr). ----

/// A pipe (both ends close-on-exec) whose buffer is full: a blocking write to it waits until someone reads.
/// It is filled through a second, non-blocking open file description of the write end (`/proc/self/fd/N`), so the
/// description handed to grace-init (and shared with its child) keeps its flags: blocking, as a real stalled pipe
/// would be. The filler is whole lines of `#`.
pub fn full_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created by pipe2 and are owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut filler = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", write.as_raw_fd()))
        .expect("a second, non-blocking description of the pipe's write end");
    let line = [b"#".repeat(63), b"\n".to_vec()].concat();
    let mut filled = 0usize;
    loop {
        match filler.write(&line) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the pipe: {e}"),
        }
        assert!(filled < 64 << 20, "the pipe never filled");
    }
    // 64-byte lines fill the 4 KiB pages of a pipe exactly; should any room be left, take it byte by byte (the
    // first line grace-init writes would then follow a partial filler line).
    while filler.write(b"#").is_ok() {}
    let flags = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(
        flags & libc::O_NONBLOCK,
        0,
        "grace-init's description must stay blocking"
    );
    (read, write)
}

/// A pipe (both ends close-on-exec) each of whose slots holds one byte spliced from a file: spliced pages are
/// never merged with later writes, so the pipe is full with only as many bytes queued as it has slots.
pub fn slot_filled_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created by pipe2 and are owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut source = tempfile_with(b"#");
    source.flush().unwrap();
    let slots =
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) } as usize / page_size();
    for _ in 0..slots {
        let mut offset: libc::loff_t = 0;
        let n = unsafe {
            libc::splice(
                source.as_raw_fd(),
                &mut offset,
                write.as_raw_fd(),
                std::ptr::null_mut(),
                1,
                libc::SPLICE_F_NONBLOCK,
            )
        };
        assert_eq!(
            n,
            1,
            "splice into the pipe: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut queued: libc::c_int = 0;
    assert_eq!(
        unsafe { libc::ioctl(read.as_raw_fd(), libc::FIONREAD, &mut queued) },
        0
    );
    assert_eq!(queued as usize, slots, "one byte per slot");
    (read, write)
}

/// The machine's page size: a pipe slot.
fn page_size() -> usize {
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// A temporary file (already unlinked) holding `bytes`.
fn tempfile_with(bytes: &[u8]) -> std::fs::File {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!(
        "grace-init-test-splice.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let _ = std::fs::remove_file(&path);
    file.write_all(bytes).unwrap();
    file
}

impl Run {
    /// With `StderrTo::Stalled`: the reader wakes up and drains the pipe from now on; the lines (filler first)
    /// come to `expect_stderr` and `Finished::stderr` as with a piped stderr.
    pub fn unstall_stderr(&mut self) {
        let read = self.stalled.take().expect("started with StderrTo::Stalled");
        self.stderr = pump(std::fs::File::from(read));
    }
}

impl Launch {
    /// The mode's launcher, with extra environment variables.
    pub fn with_env(env: &[(&str, &str)]) -> Launch {
        Launch {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Launch::default()
        }
    }

    /// The mode's launcher, with `prefix` exec'ing grace-init in place.
    pub fn prefixed(prefix: &[&str]) -> Launch {
        Launch {
            prefix: strings(prefix),
            ..Launch::default()
        }
    }

    /// grace-init root without CAP_KILL (a Kubernetes `drop: [ALL]`, `add: [SETUID, SETGID]`): it keeps the
    /// right to switch users, and cannot signal another user's processes.
    pub fn without_cap_kill() -> Launch {
        Launch::prefixed(&[
            "setpriv",
            "--bounding-set",
            "-kill",
            "--inh-caps",
            "-kill",
            "--",
        ])
    }

    /// grace-init as root of a user namespace of its own that maps only root and denies setgroups
    /// (`unshare --user --map-root-user`), holding the supplementary `groups` it was started with.
    pub fn in_user_namespace(groups: &[u32]) -> Launch {
        let mut prefix = vec![];
        if !groups.is_empty() {
            let list: Vec<String> = groups.iter().map(u32::to_string).collect();
            prefix.extend(strings(&[
                "setpriv",
                &format!("--groups={}", list.join(",")),
                "--",
            ]));
        }
        prefix.extend(strings(&["unshare", "--user", "--map-root-user", "--"]));
        Launch {
            prefix,
            ..Launch::default()
        }
    }

    /// The mode's launcher, with grace-init started in `dir` (the image's WORKDIR).
    pub fn in_dir(dir: &std::path::Path) -> Launch {
        Launch {
            prefix: strings(&["sh", "-c", r#"cd "$START_DIR" && exec "$0" "$@""#]),
            env: vec![("START_DIR".to_string(), dir.display().to_string())],
            ..Launch::default()
        }
    }

    /// The mode's launcher, with grace-init leading a session and process group of its own, so a signal to
    /// that group reaches grace-init and nothing of the test's (`Run::init_pid` is the group id).
    pub fn own_group() -> Launch {
        Launch::prefixed(&["setsid", "--"])
    }

    /// Subreaper mode in a mount namespace of its own where /proc has been unmounted.
    pub fn without_proc() -> Launch {
        Launch::prefixed(&[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "umount -l /proc && exec \"$0\" \"$@\"",
        ])
    }

    /// As `without_proc`, under strace, which holds grace-init for `delay_us` microseconds after each kill(2)
    /// returns: what the signal makes a process do (exit) happens before grace-init's next call.
    pub fn without_proc_pausing_after_kill(delay_us: u32) -> Launch {
        let line = format!(
            "umount -l /proc && exec strace -o /dev/null -e trace=kill -e inject=kill:delay_exit={delay_us} \"$0\" \"$@\""
        );
        Launch::prefixed(&[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &line,
        ])
    }

    /// The mode's launcher in a mount namespace of grace-init's own (PID 1 mode has one already, from
    /// `--mount-proc`), so a test may mount over its files with `Run::in_mount_namespace`.
    pub fn own_mount_namespace(mode: Mode) -> Launch {
        match mode {
            Mode::Pid1 => Launch::default(),
            Mode::Subreaper => {
                Launch::prefixed(&["unshare", "--mount", "--propagation", "private", "--"])
            }
        }
    }
}

/// A fixture script's path, `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

impl Run {
    /// grace-init's pid as it sees itself (1 as PID 1).
    pub fn inner_pid(&self) -> i32 {
        match self.mode {
            Mode::Pid1 => 1,
            Mode::Subreaper => self.init_pid,
        }
    }

    /// Runs `sh -c SCRIPT` in grace-init's mount namespace (bounded: 10 s), asserting it succeeds. `$GI` in the
    /// script is grace-init's pid as its /proc shows it.
    pub fn in_mount_namespace(&self, script: &str) {
        let target = self.init_pid.to_string();
        let mut child = Command::new("nsenter")
            .args(["--mount", "--target", &target, "--", "sh", "-c", script])
            .env("GI", self.inner_pid().to_string())
            .stdin(Stdio::null())
            .spawn()
            .expect("nsenter");
        let status = wait_for(Duration::from_secs(10), || child.try_wait().ok().flatten());
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nsenter ... {script:?} did not finish within 10 s");
        };
        assert!(
            status.success(),
            "in grace-init's mount namespace: {script:?}: {status}"
        );
    }
}

/// What a terminal session driven by `tests/fixtures/pty_script.py` showed.
#[derive(Debug)]
pub struct PtySession {
    /// Every byte the terminal showed, lossily decoded.
    pub transcript: String,
    /// Whether every `expect` step matched in time.
    pub completed: bool,
    /// The command's exit code (128+N for a signal), if it ended.
    pub exit: Option<i32>,
}

/// Runs `command` on a new pseudo-terminal (as its session leader and controlling terminal) and plays `steps`:
/// `expect:TEXT` waits (at most 5 s each) for TEXT after the previous match, `send:TEXT` types TEXT (Python
/// escapes: `\n`, `\x1a` for Ctrl-Z, `\x03` for Ctrl-C). Bounded: the whole session is SIGKILLed after a step
/// times out or 30 s, and the driver itself is given 40 s.
pub fn pty_session(steps: &[&str], command: &[&str]) -> PtySession {
    let mut child = Command::new("python3")
        .arg(fixture("pty_script.py"))
        .args(steps)
        .arg("--")
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("pty_script.py");
    let out = pump(child.stdout.take().expect("stdout"));
    let status = wait_for(Duration::from_secs(40), || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut lines = vec![];
    let until = Instant::now() + Duration::from_secs(2);
    while let Ok(line) = out.recv_timeout(until.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    let exit = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("PTY EXIT ")?.trim().parse().ok());
    PtySession {
        completed: status.is_some_and(|s| s.success()),
        exit,
        transcript: lines.join("\n"),
    }
}

/// The seccomp launcher `tests/fixtures/refuse.c`, compiled with gcc once per test binary into cargo's
/// scratch directory for integration tests: `refuse EPERM|ENOSYS SYSCALL[,SYSCALL...] -- PROGRAM [ARGS...]`
/// makes those system calls fail in PROGRAM and everything it starts, as a container's seccomp profile does.
pub fn refuse_binary() -> String {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = env!("CARGO_TARGET_TMPDIR");
            let out = format!("{dir}/refuse");
            // Built under a name of this process's own, then renamed: test binaries may build it at once.
            let partial = format!("{dir}/refuse.{}", std::process::id());
            let built = Command::new("gcc")
                .args([
                    "-O2",
                    "-Wall",
                    "-Werror",
                    "-o",
                    &partial,
                    &fixture("refuse.c"),
                ])
                .status()
                .expect("run gcc to build tests/fixtures/refuse.c");
            assert!(
                built.success(),
                "gcc could not build tests/fixtures/refuse.c"
            );
            std::fs::rename(&partial, &out).expect("move the seccomp launcher in place");
            out
        })
        .clone()
}

impl Launch {
    /// The mode's launcher, with grace-init (and so the app) run under a seccomp filter that makes `syscalls`
    /// fail with `errno` ("EPERM" or "ENOSYS").
    pub fn refusing(errno: &str, syscalls: &[&str]) -> Launch {
        Launch::default().and_refusing(errno, syscalls)
    }

    /// This launch, with the seccomp filter of `Launch::refusing` installed last, right before grace-init.
    pub fn and_refusing(mut self, errno: &str, syscalls: &[&str]) -> Launch {
        let list = syscalls.join(",");
        self.prefix
            .extend(strings(&[&refuse_binary(), errno, &list, "--"]));
        self
    }
}

/// Sends SIGTERM to a run whose child ignores it under `-t 1`, and asserts grace-init SIGKILLs it on time: exit
/// 137 within 1.5 s of the SIGTERM.
pub fn assert_killed_on_time(mut run: Run, what: &str) {
    run.expect_stdout("child ready", secs(10.0));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(5.0));
    let took = sent.elapsed();
    assert_eq!(done.code, Some(137), "{what}: {}", done.stderr_text());
    assert!(
        took < secs(1.5),
        "{what}: exited {took:?} after SIGTERM with --timeout 1"
    );
}

/// A reporter entered into a PID-1 run's namespaces from outside (`nsenter`, as `docker exec` does): not
/// grace-init's descendant, and reaped by its own parent (nsenter) the moment it dies. Killed and reaped on drop.
pub struct Entered {
    pub process: Child,
    pub lines: Receiver<String>,
}

impl Run {
    /// Enters a reporter with `args` into this PID-1 run's PID and mount namespaces.
    pub fn enter(&self, args: &[&str]) -> Entered {
        let mut process = Command::new("nsenter")
            .args(["-t", &self.init_pid.to_string(), "-p", "-m", "--"])
            .arg(reporter())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("nsenter");
        let lines = pump(process.stdout.take().expect("stdout"));
        Entered { process, lines }
    }
}

impl Entered {
    /// Waits (bounded) for a line containing `needle`.
    pub fn expect(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no line {needle:?} from the entered process within {within:?}");
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
