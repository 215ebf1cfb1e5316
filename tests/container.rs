//! End-to-end tests in a real OCI runtime: grace-init as the PID 1 of `runc` containers, stopped the way
//! `docker stop` stops them and inspected the way `docker exec` does.
//!
//! Each test builds a bundle whose read-only rootfs holds busybox (static) and a static grace-init built by the
//! test itself, starts it with `runc run` as a background child (so its stdout, stderr and exit status are
//! ours), and always removes it with `runc delete --force`. Apps are busybox shell scripts that print `ready`
//! once their traps are installed and one line per step of their shutdown, so the tests wait on handshakes.
//!
//! Needs root, `runc` and a static busybox (Debian: `runc`, `busybox-static`). Where they are missing the tests
//! skip with a message, except under CI (`CI` set), where that is a failure.

mod common;

use common::host::{
    COOPERATIVE_APP, DOUBLE_FORK, GRACEFUL_APP, NO_HANDLER, PROC_TABLE, Proc, SERVER, STUBBORN_APP,
    build_static_grace_init, has_interpreter, kill_pid, parse_proc_table, run_bounded,
    wait_processes, which, zombies,
};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Where grace-init sits in every rootfs.
const GRACE_INIT: &str = "/usr/local/bin/grace-init";
/// Bound for every wait the tests do not mean to time: container start, exec, delete.
const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------------------
// The environment: runc, busybox and a static grace-init, found or built once per test process.

struct Env {
    runc: PathBuf,
    busybox: PathBuf,
    applets: Vec<String>,
    grace_init: PathBuf,
}

/// Why the environment is not there.
enum Missing {
    /// A prerequisite of the machine (root, runc, busybox): skip, except under CI.
    Prerequisite(String),
    /// Something of ours (the static build): always a failure.
    Broken(String),
}

/// The environment, or `None` (with a message) where these tests cannot run. Under CI that is a failure.
fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Result<Env, Missing>> = OnceLock::new();
    match ENV.get_or_init(find_env) {
        Ok(env) => Some(env),
        Err(Missing::Broken(why)) => panic!("{why}"),
        Err(Missing::Prerequisite(why)) if std::env::var_os("CI").is_some() => {
            panic!("container tests cannot run under CI: {why}")
        }
        Err(Missing::Prerequisite(why)) => {
            eprintln!("skipping container test: {why}");
            None
        }
    }
}

fn find_env() -> Result<Env, Missing> {
    let (runc, busybox, applets) = find_prerequisites().map_err(Missing::Prerequisite)?;
    let grace_init = build_static_grace_init().map_err(Missing::Broken)?;
    Ok(Env {
        runc,
        busybox,
        applets,
        grace_init,
    })
}

/// Root, runc, and a static busybox with its applet list.
fn find_prerequisites() -> Result<(PathBuf, PathBuf, Vec<String>), String> {
    let uid = fs::metadata("/proc/self")
        .map_err(|e| format!("cannot read /proc/self: {e}"))?
        .uid();
    if uid != 0 {
        return Err(format!("runc needs root (running as uid {uid})"));
    }
    let runc = which("runc").ok_or("runc is not installed (Debian package `runc`)")?;
    let busybox =
        which("busybox").ok_or("busybox is not installed (Debian package `busybox-static`)")?;
    if has_interpreter(&busybox)? {
        return Err(format!(
            "{} is dynamically linked: install the Debian package `busybox-static`",
            busybox.display()
        ));
    }
    let list = run_bounded(Command::new(&busybox).arg("--list"), PATIENCE);
    let applets = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
        .map(String::from)
        .collect::<Vec<_>>();
    for needed in ["sh", "sleep", "cat", "echo"] {
        if !applets.iter().any(|a| a == needed) {
            return Err(format!("busybox has no `{needed}` applet"));
        }
    }
    Ok((runc, busybox, applets))
}

// ---------------------------------------------------------------------------------------------------------
// Processes the tests start: every wait bounded, and a process that overruns is killed by its own pid.

// ---------------------------------------------------------------------------------------------------------
// Bundles: a rootfs with busybox and grace-init, and config.json from `runc spec`.

/// A file to put into the rootfs: absolute path inside the container, contents; always executable.
type File<'a> = (&'a str, &'a str);

/// A bundle directory, removed on drop.
struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    /// A bundle running `args` as `user`, with `caps` added to the few capabilities `runc spec` grants (docker
    /// grants more, CAP_SETUID and CAP_SETGID among them).
    fn with_caps(
        env: &Env,
        id: &str,
        user: u32,
        caps: &[&str],
        args: &[&str],
        vars: &[&str],
        files: &[File],
    ) -> Bundle {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(id);
        let _ = fs::remove_dir_all(&dir);
        let bundle = Bundle { dir };
        let rootfs = bundle.dir.join("rootfs");
        for sub in ["bin", "usr/local/bin", "proc", "dev", "sys", "tmp", "etc"] {
            fs::create_dir_all(rootfs.join(sub)).expect("create the rootfs");
        }
        fs::copy(&env.busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        for applet in &env.applets {
            // `busybox --install -s` would link to the host's busybox path; relative links work inside.
            let _ = symlink("busybox", rootfs.join("bin").join(applet));
        }
        fs::copy(&env.grace_init, rootfs.join(&GRACE_INIT[1..])).expect("copy grace-init");
        for (path, contents) in files {
            let host = rootfs.join(path.trim_start_matches('/'));
            fs::create_dir_all(host.parent().expect("a file path has a parent"))
                .expect("create a fixture directory");
            fs::write(&host, contents).expect("write a fixture");
            fs::set_permissions(&host, fs::Permissions::from_mode(0o755)).expect("chmod a fixture");
        }
        let spec = run_bounded(
            Command::new(&env.runc)
                .arg("spec")
                .arg("--bundle")
                .arg(&bundle.dir),
            PATIENCE,
        );
        assert!(spec.status.success(), "runc spec failed: {spec:?}");
        let config = fs::read_to_string(bundle.dir.join("config.json")).expect("read config.json");
        let mut config = edit_spec(&config, args, vars);
        for cap in caps {
            config = config.replace("\"CAP_KILL\"", &format!("\"CAP_KILL\", \"{cap}\""));
        }
        if user != 0 {
            // `process.user`: the container's processes, grace-init first, run as this uid and gid.
            config = replace_once(&config, "\"uid\": 0", &format!("\"uid\": {user}"));
            config = replace_once(&config, "\"gid\": 0", &format!("\"gid\": {user}"));
        }
        fs::write(bundle.dir.join("config.json"), config).expect("write config.json");
        bundle
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Edits the config.json that `runc spec` writes: no terminal, our command, extra environment variables.
/// The rest (read-only rootfs, namespaces, mounts, capabilities) stays as runc generates it.
fn edit_spec(config: &str, args: &[&str], vars: &[&str]) -> String {
    let config = replace_once(config, "\"terminal\": true", "\"terminal\": false");
    let config = replace_array(&config, "\"args\"", args, false);
    replace_array(&config, "\"env\"", vars, true)
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected `{from}` once in the config.json from `runc spec`:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// Replaces (or, with `append`, extends) the JSON array of strings after `key`.
fn replace_array(text: &str, key: &str, items: &[&str], append: bool) -> String {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in the config.json from `runc spec`:\n{text}"));
    let open = at + text[at..].find('[').expect("the array opens");
    let close = open + text[open..].find(']').expect("the array closes");
    let old = text[open + 1..close].trim();
    let mut all: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    if append && !old.is_empty() {
        all.insert(0, old.to_string());
    }
    format!(
        "{}[{}]{}",
        &text[..open],
        all.join(", "),
        &text[close + 1..]
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------------------
// Containers: `runc run` in the background, its output collected line by line with the time it was read.

#[derive(Clone, Debug)]
struct Line {
    at: Instant,
    stream: &'static str,
    text: String,
}

#[derive(Default)]
struct Transcript {
    lines: Mutex<Vec<Line>>,
    grew: Condvar,
}

impl Transcript {
    fn follow(self: &Arc<Self>, stream: &'static str, pipe: impl Read + Send + 'static) {
        let transcript = Arc::clone(self);
        thread::spawn(move || {
            for text in BufReader::new(pipe).lines() {
                let Ok(text) = text else { break };
                let line = Line {
                    at: Instant::now(),
                    stream,
                    text,
                };
                transcript.lines.lock().expect("transcript lock").push(line);
                transcript.grew.notify_all();
            }
        });
    }

    fn find(&self, needle: &str) -> Option<Line> {
        let lines = self.lines.lock().expect("transcript lock");
        lines.iter().find(|l| l.text.contains(needle)).cloned()
    }

    /// Waits (bounded) for a line containing `needle`.
    fn wait_for(&self, needle: &str, limit: Duration) -> Option<Line> {
        let until = Instant::now() + limit;
        let mut lines = self.lines.lock().expect("transcript lock");
        loop {
            if let Some(line) = lines.iter().find(|l| l.text.contains(needle)) {
                return Some(line.clone());
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self
                .grew
                .wait_timeout(lines, left)
                .expect("transcript lock")
                .0;
        }
    }

    fn dump(&self) -> String {
        let lines = self.lines.lock().expect("transcript lock");
        lines
            .iter()
            .map(|l| format!("  [{}] {}\n", l.stream, l.text))
            .collect()
    }
}

/// How a container ended.
#[derive(Clone, Copy, Debug)]
struct Exit {
    /// `runc run`'s exit status: the container's (128+N when its PID 1 was killed by signal N).
    code: Option<i32>,
    at: Instant,
}

/// What `docker stop` would have seen.
#[derive(Debug)]
struct Stopped {
    code: Option<i32>,
    /// From just before `runc kill TERM` was started until `runc run` exited.
    took: Duration,
    /// Whether the stop timeout ran out, so the runtime had to send SIGKILL.
    runtime_killed: bool,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running container, force-deleted on drop.
struct Container {
    env: &'static Env,
    id: String,
    runc_pid: u32,
    exited: Receiver<Exit>,
    exit: Option<Exit>,
    transcript: Arc<Transcript>,
    // Dropped after the container is deleted (fields drop after `Drop::drop`).
    _bundle: Bundle,
}

impl Container {
    /// Starts `args` as the container's process, with extra environment `vars` and `files` in the rootfs.
    fn start(env: &'static Env, args: &[&str], vars: &[&str], files: &[File]) -> Container {
        Container::start_as(env, 0, args, vars, files)
    }

    /// Like `start`, with the container's processes running as `user` (uid and gid) instead of root.
    fn start_as(
        env: &'static Env,
        user: u32,
        args: &[&str],
        vars: &[&str],
        files: &[File],
    ) -> Container {
        Container::start_with_caps(env, user, &[], args, vars, files)
    }

    /// Like `start_as`, with extra capabilities (see `Bundle::with_caps`).
    fn start_with_caps(
        env: &'static Env,
        user: u32,
        caps: &[&str],
        args: &[&str],
        vars: &[&str],
        files: &[File],
    ) -> Container {
        let id = format!(
            "grace-init-e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let bundle = Bundle::with_caps(env, &id, user, caps, args, vars, files);
        let mut child: Child = Command::new(&env.runc)
            .arg("run")
            .arg("--bundle")
            .arg(&bundle.dir)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start runc run");
        let transcript = Arc::new(Transcript::default());
        transcript.follow("stdout", child.stdout.take().expect("piped stdout"));
        transcript.follow("stderr", child.stderr.take().expect("piped stderr"));
        let runc_pid = child.id();
        let (tx, exited) = mpsc::channel();
        thread::spawn(move || {
            let status: Option<ExitStatus> = child.wait().ok();
            let _ = tx.send(Exit {
                code: status.and_then(|s| s.code()),
                at: Instant::now(),
            });
        });
        Container {
            env,
            id,
            runc_pid,
            exited,
            exit: None,
            transcript,
            _bundle: bundle,
        }
    }

    /// Waits for the app's handshake line, failing with the transcript if it does not come.
    fn wait_line(&self, needle: &str) -> Line {
        self.transcript
            .wait_for(needle, PATIENCE)
            .unwrap_or_else(|| {
                panic!(
                    "container {}: no line containing {needle:?} within {PATIENCE:?}; output:\n{}",
                    self.id,
                    self.transcript.dump()
                )
            })
    }

    /// Waits up to `limit` for `runc run` to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<Exit> {
        if self.exit.is_none() {
            match self.exited.recv_timeout(limit) {
                Ok(exit) => self.exit = Some(exit),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => panic!("the runc waiter thread is gone"),
            }
        }
        self.exit
    }

    fn runc(&self, args: &[&str]) -> Output {
        run_bounded(Command::new(&self.env.runc).args(args), PATIENCE)
    }

    /// `runc kill ID SIGNAL`, which must succeed.
    fn kill(&self, signal: &str) {
        let out = self.runc(&["kill", &self.id, signal]);
        assert!(
            out.status.success(),
            "runc kill {} {signal} failed: {}",
            self.id,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Exactly what `docker stop -t TIMEOUT` does: the stop signal (TERM), up to `timeout` for the container
    /// to exit, then SIGKILL.
    fn docker_stop(&mut self, timeout: Duration) -> Stopped {
        let began = Instant::now();
        self.kill("TERM");
        let mut runtime_killed = false;
        let exit = match self.wait_exit(timeout.saturating_sub(began.elapsed())) {
            Some(exit) => exit,
            None => {
                runtime_killed = true;
                // It may exit on its own meanwhile; then this kill fails harmlessly.
                let _ = self.runc(&["kill", &self.id, "KILL"]);
                self.wait_exit(PATIENCE).unwrap_or_else(|| {
                    panic!("container {} survived SIGKILL for {PATIENCE:?}", self.id)
                })
            }
        };
        Stopped {
            code: exit.code,
            took: exit.at.saturating_duration_since(began),
            runtime_killed,
        }
    }

    /// `docker stop` within `timeout`, asserting that grace-init (not the runtime's SIGKILL) ended the container
    /// with `code`; prints the container's output on failure.
    #[track_caller]
    fn stop_with(&mut self, timeout: Duration, code: i32) -> Stopped {
        let stopped = self.docker_stop(timeout);
        assert!(
            !stopped.runtime_killed,
            "the runtime had to kill it: {stopped:?}; output:\n{}",
            self.output()
        );
        self.assert_exit(&stopped, code);
        stopped
    }

    /// Asserts the container exited with `code`, printing its output on failure.
    #[track_caller]
    fn assert_exit(&self, stopped: &Stopped, code: i32) {
        assert_eq!(
            stopped.code,
            Some(code),
            "{stopped:?}; output:\n{}",
            self.output()
        );
    }

    /// Asserts the container printed a line containing `needle` (`what` says what that means).
    #[track_caller]
    fn assert_shows(&self, needle: &str, what: &str) {
        assert!(
            self.transcript.find(needle).is_some(),
            "{what}: no line with {needle:?}; output:\n{}",
            self.output()
        );
    }

    /// `docker exec`: runs a command inside the running container and returns its output.
    fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec", self.id.as_str()];
        all.extend_from_slice(args);
        self.runc(&all)
    }

    /// Every process in the container, read from /proc inside it.
    fn processes(&self) -> Vec<Proc> {
        // A process may vanish between the glob and cat: cat then complains and exits 1, which is fine.
        let out = self.exec(&PROC_TABLE);
        parse_proc_table(&String::from_utf8_lossy(&out.stdout))
    }

    /// Polls (bounded) the process table until `done` holds for it; returns the last table seen.
    fn wait_processes(
        &self,
        limit: Duration,
        done: impl Fn(&[Proc]) -> bool,
    ) -> Result<Vec<Proc>, Vec<Proc>> {
        wait_processes(limit, || self.processes(), done)
    }

    fn output(&self) -> String {
        self.transcript.dump()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.runc(&["delete", "--force", &self.id]);
        if self.wait_exit(PATIENCE).is_none() {
            kill_pid(self.runc_pid);
            let _ = self.wait_exit(PATIENCE);
        }
    }
}

/// The command line of a container whose PID 1 is grace-init running `args`.
fn under_grace_init<'a>(flags: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![GRACE_INIT];
    all.extend_from_slice(flags);
    all.push("--");
    all.extend_from_slice(args);
    all
}

// ---------------------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_static_binary_needs_no_loader() {
    let Some(env) = env() else { return };
    assert!(!has_interpreter(&env.grace_init).expect("read the static binary"));
    let version = run_bounded(Command::new(&env.grace_init).arg("--version"), PATIENCE);
    assert!(version.status.success(), "{version:?}");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("grace-init "));
}

#[test]
fn pid1_problem_without_init_term_is_ignored_until_kill_and_grace_init_stops_promptly() {
    let Some(env) = env() else { return };
    let stop_timeout = Duration::from_millis(1500);

    // The app as PID 1 itself: the kernel drops TERM for a PID 1 with no handler.
    let mut bare = Container::start(env, NO_HANDLER, &[], &[]);
    bare.wait_line("ready");
    let stopped = bare.docker_stop(stop_timeout);
    assert!(
        stopped.runtime_killed,
        "expected the bare app to survive TERM; {stopped:?}; output:\n{}",
        bare.output()
    );
    assert_eq!(stopped.code, Some(137), "{stopped:?}");
    assert!(stopped.took >= stop_timeout, "{stopped:?}");

    // The same app under grace-init: TERM reaches it and it dies of it.
    let args = under_grace_init(&[], NO_HANDLER);
    let mut init = Container::start(env, &args, &[], &[]);
    init.wait_line("ready");
    let stopped = init.stop_with(Duration::from_secs(10), 143);
    assert!(
        stopped.took < Duration::from_secs(2),
        "not prompt: {stopped:?}; output:\n{}",
        init.output()
    );
    eprintln!(
        "PID-1 problem: bare app needed SIGKILL after the {:.1}s stop timeout; under grace-init it stopped in {:.0} ms",
        stop_timeout.as_secs_f64(),
        stopped.took.as_secs_f64() * 1000.0
    );
}

#[test]
fn graceful_app_finishes_its_work_and_the_container_exits_with_its_status() {
    let Some(env) = env() else { return };
    let args = under_grace_init(&[], &["/app/graceful.sh"]);
    let mut c = Container::start(env, &args, &[], &[("/app/graceful.sh", GRACEFUL_APP)]);
    c.wait_line("ready");
    let stopped = c.stop_with(Duration::from_secs(10), 7);
    c.assert_shows("app: finished", "the app did not finish its work");
    assert!(
        stopped.took >= Duration::from_millis(900),
        "exited before the app's second of work: {stopped:?}"
    );
}

#[test]
fn app_ignoring_term_is_killed_at_grace_init_timeout_before_the_runtime_timeout() {
    let Some(env) = env() else { return };
    let args = under_grace_init(&[], &["/app/stubborn.sh"]);
    // The timeout comes from the environment, as a Dockerfile `ENV GRACE_INIT_TIMEOUT=1s` would set it.
    let mut c = Container::start(
        env,
        &args,
        &["GRACE_INIT_TIMEOUT=1s"],
        &[("/app/stubborn.sh", STUBBORN_APP)],
    );
    c.wait_line("ready");
    let stopped = c.stop_with(Duration::from_secs(5), 137);
    assert!(
        stopped.took >= Duration::from_millis(950) && stopped.took < Duration::from_secs(3),
        "escalation not at the 1 s timeout: {stopped:?}; output:\n{}",
        c.output()
    );
    c.assert_shows(
        "escalated: SIGKILL",
        "grace-init did not report the escalation",
    );
    eprintln!(
        "ignore-TERM app: grace-init (--timeout 1s) escalated to SIGKILL; TERM to exit {:.0} ms (runtime stop timeout 5 s)",
        stopped.took.as_secs_f64() * 1000.0
    );
}

#[test]
fn shell_entrypoint_grace_init_waits_for_the_background_server_after_the_shell_dies() {
    let Some(env) = env() else { return };
    let args = under_grace_init(&[], &["sh", "-c", "/app/server.sh & wait"]);
    let mut c = Container::start(env, &args, &[], &[("/app/server.sh", SERVER)]);
    c.wait_line("server: ready");
    // The exit status is the shell's: it had no trap and died of TERM.
    let stopped = c.stop_with(Duration::from_secs(10), 143);
    let shell_died = c
        .transcript
        .find("was killed by SIGTERM")
        .unwrap_or_else(|| {
            panic!(
                "grace-init did not log the shell's death; output:\n{}",
                c.output()
            )
        });
    let finished = c.transcript.find("server: finished").unwrap_or_else(|| {
        panic!(
            "the server was killed mid-request instead of finishing; output:\n{}",
            c.output()
        )
    });
    // The shell died at once; the server finished about a second later, and grace-init waited for it.
    assert!(
        finished.at >= shell_died.at + Duration::from_millis(500),
        "the server finished too soon after the shell died: {:?}; output:\n{}",
        finished.at - shell_died.at,
        c.output()
    );
    assert!(
        stopped.took >= Duration::from_millis(900),
        "exited before the server's second of work: {stopped:?}"
    );
    c.assert_shows(
        "processes remain",
        "grace-init did not say it waits for the leftovers",
    );
}

/// Leaves two orphans behind in the container the way `docker exec` users do.
fn exec_orphans(c: &Container) {
    for _ in 0..2 {
        let out = c.exec(&["sh", "-c", "sleep 0.2 & exit 0"]);
        assert!(out.status.success(), "runc exec failed: {out:?}");
    }
}

#[test]
fn zombies_from_exec_and_double_fork_pile_up_without_init() {
    let Some(env) = env() else { return };
    // The control experiment: it shows the zombie check below sees zombies where there are some.
    let c = Container::start(env, DOUBLE_FORK, &[], &[]);
    c.wait_line("ready");
    exec_orphans(&c);
    let table = c
        .wait_processes(PATIENCE, |t| zombies(t).len() >= 3)
        .unwrap_or_else(|t| panic!("expected 3 zombies under a bare PID 1, saw {t:?}"));
    assert!(
        zombies(&table).iter().all(|p| p.comm == "sleep"),
        "{table:?}"
    );
}

#[test]
fn zombies_from_exec_and_double_fork_are_reaped_by_grace_init() {
    let Some(env) = env() else { return };
    let args = under_grace_init(&[], DOUBLE_FORK);
    let c = Container::start(env, &args, &[], &[]);
    c.wait_line("ready");
    exec_orphans(&c);
    // The orphans live 0.2-0.3 s; then no zombie and only the main `sleep 1000` may be left.
    let table = c
        .wait_processes(PATIENCE, |t| {
            zombies(t).is_empty() && t.iter().filter(|p| p.comm == "sleep").count() == 1
        })
        .unwrap_or_else(|t| panic!("orphans not reaped: {t:?}; output:\n{}", c.output()));
    assert!(
        table.iter().any(|p| p.pid == 1 && p.comm == "grace-init"),
        "{table:?}"
    );
}

#[test]
fn stop_time_with_a_cooperative_app_is_measured() {
    let Some(env) = env() else { return };
    let mut times = Vec::new();
    for run in 0..3 {
        let args = under_grace_init(&[], &["/app/cooperative.sh"]);
        let mut c = Container::start(env, &args, &[], &[("/app/cooperative.sh", COOPERATIVE_APP)]);
        c.wait_line("ready");
        let stopped = c.stop_with(Duration::from_secs(10), 0);
        assert!(
            stopped.took < Duration::from_secs(2),
            "run {run}: slow stop {stopped:?}; output:\n{}",
            c.output()
        );
        times.push(stopped.took);
    }
    // The same app as a bare PID 1 (it has a handler, so TERM does reach it): the runtime's own share.
    let mut bare_times = Vec::new();
    for _ in 0..3 {
        let mut c = Container::start(
            env,
            &["/app/cooperative.sh"],
            &[],
            &[("/app/cooperative.sh", COOPERATIVE_APP)],
        );
        c.wait_line("ready");
        let stopped = c.docker_stop(Duration::from_secs(10));
        c.assert_exit(&stopped, 0);
        bare_times.push(stopped.took);
    }
    let ms = |d: &Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
    times.sort();
    bare_times.sort();
    eprintln!(
        "container stop time, TERM to exit, cooperative app: under grace-init median {} ms (runs: {} ms); \
         as bare PID 1 median {} ms (runs: {} ms); includes starting `runc kill`",
        ms(&times[1]),
        times.iter().map(ms).collect::<Vec<_>>().join(", "),
        ms(&bare_times[1]),
        bare_times.iter().map(ms).collect::<Vec<_>>().join(", "),
    );
}

#[test]
fn as_a_non_root_user_grace_init_still_forwards_waits_and_reaps() {
    let Some(env) = env() else { return };
    let args = under_grace_init(&["-t", "5"], &["sh", "-c", "id -u; /app/server.sh & wait"]);
    let mut c = Container::start_as(env, 65534, &args, &[], &[("/app/server.sh", SERVER)]);
    c.wait_line("server: ready");
    c.assert_shows("65534", "not running as uid 65534");
    c.stop_with(Duration::from_secs(10), 143);
    c.assert_shows("server: finished", "the server was not let finish");
    assert!(
        c.transcript.find("warning").is_none(),
        "nothing that works as root should warn as nobody; output:\n{}",
        c.output()
    );
}

/// The image's own users: names that exist only inside the container, so only the image's files can resolve them.
const IMAGE_PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nappuser:x:1500:1500:The App:/home/appuser:/bin/sh\n";
const IMAGE_GROUP: &str = "root:x:0:\nappuser:x:1500:\nshared:x:2600:other,appuser\nlogs:x:2700:appuser\nunrelated:x:2800:root\n";

/// Shows its identity, then serves until TERM.
const SHOW_IDENTITY_APP: &str = r#"#!/bin/sh
trap 'echo "app: stopping as $(id -u)"; exit 0' TERM
grep -E '^(Uid|Gid|Groups):' /proc/self/status
echo "HOME=$HOME"
echo ready
while :; do sleep 1000 & wait $!; done
"#;

#[test]
fn user_switch_in_a_root_image_runs_the_app_as_the_images_user_with_its_groups() {
    let Some(env) = env() else { return };
    let args = under_grace_init(&["-t", "5", "-u", "appuser"], &["/app/show.sh"]);
    let files = [
        ("/etc/passwd", IMAGE_PASSWD),
        ("/etc/group", IMAGE_GROUP),
        ("/app/show.sh", SHOW_IDENTITY_APP),
    ];
    // As docker grants them: switching users needs CAP_SETUID and CAP_SETGID.
    let caps = ["CAP_SETUID", "CAP_SETGID"];
    let mut c = Container::start_with_caps(env, 0, &caps, &args, &[], &files);
    c.wait_line("ready");
    let line = |prefix: &str| -> String {
        c.transcript
            .find(prefix)
            .map(|l| {
                l.text
                    .split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| panic!("no {prefix} line; output:\n{}", c.output()))
    };
    assert_eq!(line("Uid:"), "1500 1500 1500 1500", "{}", c.output());
    assert_eq!(line("Gid:"), "1500 1500 1500 1500", "{}", c.output());
    // The primary group and the groups of /etc/group that list appuser, not root's.
    assert_eq!(line("Groups:"), "1500 2600 2700", "{}", c.output());
    c.assert_shows("HOME=/home/appuser", "the user's home");
    // grace-init itself is still root: it can signal and reap everything.
    let init = c.exec(&["cat", "/proc/1/status"]);
    let init = String::from_utf8_lossy(&init.stdout).into_owned();
    let uid = init.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert_eq!(
        uid.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["0", "0", "0", "0"],
        "grace-init's own ids: {init}"
    );
    c.stop_with(Duration::from_secs(10), 0);
    c.assert_shows("app: stopping as 1500", "the app stops as the user");
}

/// Runs grace-init with `flags` in a container with the image's users; it must refuse with a usage error (exit 2)
/// whose message contains `needle`, and start nothing.
fn assert_usage_error_in_container(flags: &[&str], needle: &str) {
    assert_usage_error_with_users(IMAGE_PASSWD, &[], flags, needle);
}

/// `assert_usage_error_in_container` with this /etc/passwd in the image and these capabilities granted.
fn assert_usage_error_with_users(passwd: &str, caps: &[&str], flags: &[&str], needle: &str) {
    let Some(env) = env() else { return };
    let args = under_grace_init(flags, &["sh", "-c", "echo started"]);
    let files = [("/etc/passwd", passwd), ("/etc/group", IMAGE_GROUP)];
    let mut c = Container::start_with_caps(env, 0, caps, &args, &[], &files);
    let exit = c
        .wait_exit(PATIENCE)
        .unwrap_or_else(|| panic!("did not exit; output:\n{}", c.output()));
    assert_eq!(exit.code, Some(2), "{}", c.output());
    assert!(c.transcript.find("started").is_none(), "{}", c.output());
    assert!(
        c.transcript.find(needle).is_some(),
        "want {needle:?}; output:\n{}",
        c.output()
    );
}

#[test]
fn a_users_home_with_a_nul_byte_is_a_usage_error_not_a_crash() {
    // Found by review: HOME was set from the passwd field as it was, and setting an environment variable that
    // holds a NUL panics: grace-init, PID 1, died of SIGABRT (exit 134) instead of refusing with exit 2.
    let passwd = format!("{IMAGE_PASSWD}broken:x:1600:1500::/home/broken\0x:/bin/sh\n");
    // With the capabilities to switch users, as docker grants them, so that the switch is really attempted.
    let caps = ["CAP_SETUID", "CAP_SETGID"];
    assert_usage_error_with_users(&passwd, &caps, &["-u", "broken"], "NUL byte");
}

#[test]
fn user_switch_without_the_capabilities_for_it_is_a_usage_error_and_nothing_starts() {
    // runc's default spec grants no CAP_SETUID/CAP_SETGID: root, but unable to switch users.
    assert_usage_error_in_container(&["-u", "appuser"], "CAP_SETUID");
}

#[test]
fn user_unknown_to_the_image_is_a_usage_error_and_nothing_starts() {
    // `nobody` exists on the host but not in this image: the image's files are what count.
    assert_usage_error_in_container(&["-u", "nobody"], "unknown user 'nobody'");
}
