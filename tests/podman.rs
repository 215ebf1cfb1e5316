//! grace-init under a real container engine: Podman (Debian's 4.3) as root, with images built here from a
//! Containerfile (no registry: `FROM scratch`, the static grace-init and a static busybox), stopped with
//! `podman stop -t`, signalled with `podman kill -s`, entered with `podman exec`, read with `podman inspect` and
//! `podman logs` — side by side with `podman run --init` (catatonit) and with no init at all.
//!
//! Podman runs with storage of its own under target/ (`--root`, `--runroot`) and a containers.conf named by
//! CONTAINERS_CONF (nothing in /etc is read for the engine or written): runc as the runtime (crun refuses this
//! machine's hybrid cgroups), explicit rlimits (without CAP_SYS_RESOURCE podman's defaults fail with "error setting
//! rlimit type 7"), file logs and events. Every container runs with `--network none` and is removed by the test that
//! started it. Where podman is missing the tests skip with a message, except under CI (`CI` set): a failure.

mod common;

use common::host::{
    COOPERATIVE_APP, DOUBLE_FORK, GRACEFUL_APP, NO_HANDLER, PROC_TABLE, Proc, SERVER, STUBBORN_APP,
    build_static_grace_init, has_interpreter, parse_proc_table, run_bounded, under_ci,
    wait_processes, which, zombies,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Bound for every wait the tests do not mean to time: podman commands, handshakes.
const PATIENCE: Duration = Duration::from_secs(30);
/// The test image: busybox, grace-init at /usr/local/bin, the shell apps under /app; no ENTRYPOINT.
const IMAGE: &str = "localhost/grace-init-e2e:test";
const GRACE_INIT: &str = "/usr/local/bin/grace-init";

// ---------------------------------------------------------------------------------------------------------
// The engine: podman with test-owned storage and configuration.

struct Podman {
    podman: PathBuf,
    /// Everything podman keeps: storage, run state, containers.conf, build contexts.
    home: PathBuf,
    grace_init: PathBuf,
}

/// The engine with the test image built, or `None` (with a message) where podman is missing outside CI.
fn podman() -> Option<&'static Podman> {
    static PODMAN: OnceLock<Result<Podman, String>> = OnceLock::new();
    match PODMAN.get_or_init(set_up) {
        Ok(p) => Some(p),
        Err(why) if under_ci() => panic!("podman tests cannot run under CI: {why}"),
        Err(why) => {
            eprintln!("skipping podman test: {why}");
            None
        }
    }
}

fn set_up() -> Result<Podman, String> {
    let podman = which("podman").ok_or("podman is not installed (Debian package `podman`)")?;
    which("runc").ok_or("runc is not installed (Debian package `runc`)")?;
    let busybox =
        which("busybox").ok_or("busybox is not installed (Debian package `busybox-static`)")?;
    if has_interpreter(&busybox)? {
        return Err("busybox is dynamically linked: install `busybox-static`".into());
    }
    // Ours: a failure wherever it happens.
    let grace_init = build_static_grace_init().unwrap_or_else(|e| panic!("{e}"));
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("podman");
    fs::create_dir_all(home.join("run")).expect("create the podman directory");
    let conf = format!(
        r#"# Written by tests/podman.rs: this machine's podman, with nothing taken from /etc/containers.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{run}/libpod"
"#,
        run = home.join("run").display()
    );
    fs::write(home.join("containers.conf"), conf).expect("write containers.conf");
    let p = Podman {
        podman,
        home,
        grace_init,
    };
    let version = p.podman(&["version", "--format", "{{.Client.Version}}"]);
    if !version.status.success() {
        return Err(format!(
            "podman does not work here: {}",
            String::from_utf8_lossy(&version.stderr)
        ));
    }
    // Containers left by an interrupted run, and images the rebuild below leaves untagged.
    p.podman(&["rm", "--all", "--force", "--time", "0"]);
    let context = p.context(
        "base",
        &[("busybox", &busybox), ("grace-init", &p.grace_init)],
    );
    for (name, script) in [
        ("graceful.sh", GRACEFUL_APP),
        ("stubborn.sh", STUBBORN_APP),
        ("server.sh", SERVER),
        ("cooperative.sh", COOPERATIVE_APP),
        ("signals.sh", SIGNAL_REPORTER),
    ] {
        write_executable(&context.join("app").join(name), script);
    }
    fs::write(
        context.join("Containerfile"),
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox --install -s /bin && mkdir -p /tmp /etc\"]\n\
         COPY grace-init /usr/local/bin/grace-init\n\
         COPY app/ /app/\n",
    )
    .expect("write the Containerfile");
    let started = Instant::now();
    p.ok(&[
        "build",
        "--network",
        "none",
        "--tag",
        IMAGE,
        &context.to_string_lossy(),
    ]);
    p.podman(&["image", "prune", "--force"]);
    eprintln!(
        "podman {}: test image built in {:.1}s",
        String::from_utf8_lossy(&version.stdout).trim(),
        started.elapsed().as_secs_f64()
    );
    Ok(p)
}

fn write_executable(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("create a directory");
    fs::write(path, contents).expect("write a file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

impl Podman {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.podman);
        // Podman's conmon leaves a file named `oom` in its working directory when a container's cgroup sees an
        // OOM kill: that is the test's own directory, not the repository.
        c.current_dir(&self.home)
            .env("CONTAINERS_CONF", self.home.join("containers.conf"))
            .arg("--root")
            .arg(self.home.join("root"))
            .arg("--runroot")
            .arg(self.home.join("run/storage"));
        c
    }

    /// `podman ARGS`, bounded.
    fn podman(&self, args: &[&str]) -> Output {
        run_bounded(self.command().args(args), PATIENCE * 4)
    }

    /// `podman ARGS`, which must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A fresh build context directory holding copies of `files` (name in the context, host path).
    fn context(&self, name: &str, files: &[(&str, &Path)]) -> PathBuf {
        let dir = self.home.join("contexts").join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a build context");
        for (to, from) in files {
            fs::copy(from, dir.join(to)).unwrap_or_else(|e| panic!("copy {from:?}: {e}"));
        }
        dir
    }
}

// ---------------------------------------------------------------------------------------------------------
// Containers: `podman run -d`, removed (`podman rm -f`) on drop.

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Who is PID 1 of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pid1 {
    /// The app itself.
    App,
    /// `podman run --init`: catatonit.
    Catatonit,
    /// grace-init, with these flags.
    GraceInit(&'static [&'static str]),
}

struct Container {
    p: &'static Podman,
    name: String,
}

/// What `podman stop` did.
#[derive(Debug)]
struct Stopped {
    /// The wall time of `podman stop -t N`.
    took: Duration,
    /// The container's exit code from `podman inspect`.
    code: i32,
}

impl Container {
    /// `podman run -d` of `args` in the test image with `init` as PID 1 and extra `podman run` flags.
    fn run(p: &'static Podman, init: Pid1, flags: &[&str], args: &[&str]) -> Container {
        let mut all = flags.to_vec();
        if init == Pid1::Catatonit {
            all.push("--init");
        }
        all.push(IMAGE);
        if let Pid1::GraceInit(gi_flags) = init {
            all.push(GRACE_INIT);
            all.extend_from_slice(gi_flags);
            all.push("--");
        }
        all.extend_from_slice(args);
        Container::start(p, &all)
    }

    /// `podman run -d --network none ARGS` (flags, image, command).
    fn start(p: &'static Podman, args: &[&str]) -> Container {
        let name = format!(
            "grace-init-e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut all = vec!["run", "--detach", "--name", &name, "--network", "none"];
        all.extend_from_slice(args);
        p.ok(&all);
        Container { p, name }
    }

    /// `podman logs` (stdout and stderr, in order).
    fn logs(&self) -> String {
        let out = self.p.podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits (bounded) until the logs hold `needle`.
    fn wait_log(&self, needle: &str) {
        let until = Instant::now() + PATIENCE;
        loop {
            if self.logs().contains(needle) {
                return;
            }
            assert!(
                Instant::now() < until,
                "{}: no {needle:?} in the logs within {PATIENCE:?}:\n{}",
                self.name,
                self.logs()
            );
            // Nothing tells the outside a log line was written: poll, at a bounded rate.
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `podman stop -t TIMEOUT`, timed, then the exit code from `podman inspect`.
    fn stop(&self, timeout: u32) -> Stopped {
        let began = Instant::now();
        self.p
            .ok(&["stop", "--time", &timeout.to_string(), &self.name]);
        let took = began.elapsed();
        Stopped {
            took,
            code: self.exit_code(),
        }
    }

    fn exit_code(&self) -> i32 {
        let out = self.inspect("{{.State.Status}} {{.State.ExitCode}}");
        let (status, code) = out.trim().split_once(' ').expect("status and code");
        assert_eq!(status, "exited", "{}: {out}", self.name);
        code.parse().expect("an exit code")
    }

    fn inspect(&self, format: &str) -> String {
        self.p.ok(&[
            "inspect",
            "--type",
            "container",
            "--format",
            format,
            &self.name,
        ])
    }

    /// `podman exec NAME ARGS`.
    fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        self.p.podman(&all)
    }

    fn processes(&self) -> Vec<Proc> {
        parse_proc_table(&String::from_utf8_lossy(&self.exec(&PROC_TABLE).stdout))
    }

    /// Polls (bounded) the process table until `done` holds for it.
    fn wait_processes(&self, done: impl Fn(&[Proc]) -> bool) -> Result<Vec<Proc>, Vec<Proc>> {
        wait_processes(PATIENCE, || self.processes(), done)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.p.podman(&["rm", "--force", "--time", "0", &self.name]);
    }
}

/// Runs `scenario` once per init at the same time (the containers are independent), returning the results in order.
fn side_by_side<T: Send>(inits: &[Pid1], scenario: impl Fn(Pid1) -> T + Sync) -> Vec<T> {
    let scenario = &scenario;
    thread::scope(|s| {
        let handles: Vec<_> = inits
            .iter()
            .map(|&init| s.spawn(move || scenario(init)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Prints `ready`, then one line per USR1, HUP or WINCH it receives; exits 0 on TERM.
const SIGNAL_REPORTER: &str = r#"#!/bin/sh
for s in USR1 HUP WINCH; do trap "echo got $s" $s; done
trap 'echo bye; exit 0' TERM
echo ready
while :; do sleep 1000 & wait $!; done
"#;

// ---------------------------------------------------------------------------------------------------------
// The scenarios.

#[test]
fn pid1_problem_the_bare_app_ignores_podman_stop_and_an_init_fixes_it() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::App, Pid1::Catatonit, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        let c = Container::run(p, init, &[], NO_HANDLER);
        c.wait_log("ready");
        let stopped = c.stop(2);
        (stopped, c.logs())
    });
    let (bare, bare_logs) = &results[0];
    assert_eq!(bare.code, 137, "{bare:?}\n{bare_logs}");
    assert!(
        bare.took >= Duration::from_secs(2),
        "the bare PID 1 should have ignored TERM until podman's SIGKILL: {bare:?}"
    );
    for (init, (stopped, logs)) in inits.iter().zip(&results).skip(1) {
        assert_eq!(stopped.code, 143, "{init:?}: {stopped:?}\n{logs}");
        assert!(
            stopped.took < Duration::from_millis(1500),
            "{init:?} was not prompt: {stopped:?}\n{logs}"
        );
    }
    let (_, gi_logs) = &results[2];
    assert!(
        gi_logs.contains("exiting after stop signal SIGTERM") && gi_logs.contains("exit code 143"),
        "no summary line in `podman logs`:\n{gi_logs}"
    );
    eprintln!(
        "podman stop -t 2, app without a TERM handler: no init {} (137), podman --init {} (143), grace-init {} (143)",
        ms(bare.took),
        ms(results[1].0.took),
        ms(results[2].0.took)
    );
}

#[test]
fn cooperative_app_finishes_its_work_and_its_exit_code_reaches_podman_inspect() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::Catatonit, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        let c = Container::run(p, init, &[], &["/app/graceful.sh"]);
        c.wait_log("ready");
        (c.stop(10), c.logs())
    });
    for (init, (stopped, logs)) in inits.iter().zip(&results) {
        assert_eq!(stopped.code, 7, "{init:?}: {stopped:?}\n{logs}");
        assert!(logs.contains("app: finished"), "{init:?}:\n{logs}");
        assert!(
            stopped.took >= Duration::from_millis(900) && stopped.took < Duration::from_secs(8),
            "{init:?}: {stopped:?}"
        );
    }
    let (_, logs) = &results[1];
    assert!(
        logs.contains("child exited with code 7") && logs.contains("exit code 7"),
        "{logs}"
    );
    eprintln!(
        "cooperative app (1 s of work on TERM): podman --init {} (7), grace-init {} (7)",
        ms(results[0].0.took),
        ms(results[1].0.took)
    );
}

#[test]
fn term_ignoring_app_is_killed_at_grace_init_timeout_well_before_podman_stop_timeout() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::Catatonit, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        // The timeout comes from the environment, as an image's `ENV GRACE_INIT_TIMEOUT=1` sets it.
        let c = Container::run(
            p,
            init,
            &["--env", "GRACE_INIT_TIMEOUT=1"],
            &["/app/stubborn.sh"],
        );
        c.wait_log("ready");
        (c.stop(3), c.logs())
    });
    let (catatonit, logs) = &results[0];
    assert_eq!(catatonit.code, 137, "{catatonit:?}\n{logs}");
    assert!(
        catatonit.took >= Duration::from_secs(3),
        "under --init only podman's SIGKILL at 3 s ends it: {catatonit:?}"
    );
    let (grace, logs) = &results[1];
    assert_eq!(grace.code, 137, "{grace:?}\n{logs}");
    assert!(
        grace.took >= Duration::from_millis(950) && grace.took < Duration::from_millis(2500),
        "grace-init should SIGKILL at its 1 s timeout: {grace:?}\n{logs}"
    );
    assert!(logs.contains("escalated: SIGKILL"), "{logs}");
    eprintln!(
        "TERM-ignoring app, podman stop -t 3: podman --init {} (137, podman's SIGKILL); grace-init with \
         GRACE_INIT_TIMEOUT=1 {} (137, its own SIGKILL, logged)",
        ms(catatonit.took),
        ms(grace.took)
    );
}

#[test]
fn shell_entrypoint_background_server_finishes_under_grace_init_and_is_cut_off_under_init() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::Catatonit, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        let c = Container::run(p, init, &[], &["sh", "-c", "/app/server.sh & wait"]);
        c.wait_log("server: ready");
        (c.stop(10), c.logs())
    });
    let (catatonit, logs) = &results[0];
    // catatonit signals its child only: the shell dies of TERM, catatonit exits with it, and the kernel kills
    // the server before it has even heard of the stop.
    assert_eq!(catatonit.code, 143, "{catatonit:?}\n{logs}");
    assert!(
        !logs.contains("server: finished"),
        "under --init the server should have been cut off:\n{logs}"
    );
    let (grace, logs) = &results[1];
    assert_eq!(grace.code, 143, "{grace:?}\n{logs}");
    assert!(
        logs.contains("server: finished"),
        "the server was not let finish:\n{logs}"
    );
    assert!(grace.took >= Duration::from_millis(900), "{grace:?}");
    eprintln!(
        "shell entrypoint with a background server (1 s of work): podman --init {} (143, work lost); \
         grace-init {} (143, work finished)",
        ms(catatonit.took),
        ms(grace.took)
    );
}

#[test]
fn zombies_from_podman_exec_pile_up_without_init_and_are_reaped_by_grace_init() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::App, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        let c = Container::run(p, init, &[], DOUBLE_FORK);
        c.wait_log("ready");
        for _ in 0..2 {
            let out = c.exec(&["sh", "-c", "sleep 0.2 & exit 0"]);
            assert!(out.status.success(), "podman exec failed: {out:?}");
        }
        let table = match init {
            // The control: the check sees zombies where there are some.
            Pid1::App => c.wait_processes(|t| zombies(t).len() >= 3),
            _ => c.wait_processes(|t| {
                zombies(t).is_empty() && t.iter().filter(|p| p.comm == "sleep").count() == 1
            }),
        };
        (table, c.stop(5))
    });
    let (bare, _) = &results[0];
    let bare = bare
        .as_ref()
        .unwrap_or_else(|t| panic!("expected 3 zombies under a bare PID 1: {t:?}"));
    assert!(zombies(bare).iter().all(|p| p.comm == "sleep"), "{bare:?}");
    let (table, stopped) = &results[1];
    let table = table
        .as_ref()
        .unwrap_or_else(|t| panic!("orphans from podman exec not reaped: {t:?}"));
    assert!(
        table.iter().any(|p| p.pid == 1 && p.comm == "grace-init"),
        "{table:?}"
    );
    assert_eq!(stopped.code, 143, "{stopped:?}");
}

#[test]
fn podman_kill_signals_are_forwarded_to_the_app() {
    let Some(p) = podman() else { return };
    let c = Container::run(p, Pid1::GraceInit(&[]), &[], &["/app/signals.sh"]);
    c.wait_log("ready");
    for signal in ["USR1", "HUP", "WINCH"] {
        c.p.ok(&["kill", "--signal", signal, &c.name]);
        c.wait_log(&format!("got {signal}"));
    }
    // A stop signal sent with `podman kill` starts the shutdown as `podman stop` does.
    c.p.ok(&["kill", "--signal", "TERM", &c.name]);
    c.wait_log("bye");
    let code = c.p.ok(&["wait", &c.name]);
    assert_eq!(code.trim(), "0", "{}", c.logs());
    assert_eq!(c.exit_code(), 0);
    assert!(
        c.logs().contains("exiting after stop signal SIGTERM"),
        "{}",
        c.logs()
    );
}

#[test]
fn as_a_non_root_user_grace_init_still_forwards_waits_and_reaps() {
    let Some(p) = podman() else { return };
    let c = Container::run(
        p,
        Pid1::GraceInit(&["-t", "5"]),
        &["--user", "65534:65534"],
        &["sh", "-c", "echo uid=$(id -u); /app/server.sh & wait"],
    );
    c.wait_log("server: ready");
    let logs = c.logs();
    assert!(logs.contains("uid=65534"), "not running as 65534:\n{logs}");
    let stopped = c.stop(10);
    let logs = c.logs();
    assert_eq!(stopped.code, 143, "{stopped:?}\n{logs}");
    assert!(logs.contains("server: finished"), "{logs}");
    assert!(
        !logs.contains("warning"),
        "nothing that works as root should warn as nobody:\n{logs}"
    );
    let user = c.inspect("{{.Config.User}}");
    assert_eq!(user.trim(), "65534:65534");
}

// ---------------------------------------------------------------------------------------------------------
// Dockerfile.example, built for real on local bases, and examples/kubernetes/ played with `podman kube play`.

/// A Debian bookworm rootfs from Debian's own packages (no registry): Python with pip for the runtime stage, gcc
/// for the build stage's proc macros. Imported once per storage; the tarball is cached under target/.
const DEBIAN: &str = "localhost/grace-init-e2e/bookworm:base";
/// Dockerfile.example's image, built with both bases swapped for local ones.
const EXAMPLE: &str = "localhost/grace-init-e2e/hello-gunicorn:test";

fn debian_base(p: &'static Podman) -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target/tmp has a parent")
            .join("podman-rootfs");
        let tarball = dir.join("bookworm-pip-gcc.tar");
        if !tarball.is_file() {
            let mmdebstrap = which("mmdebstrap").unwrap_or_else(|| {
                panic!("mmdebstrap is not installed: run scripts/setup-test-deps.sh")
            });
            fs::create_dir_all(&dir).expect("create the rootfs cache");
            let partial = dir.join("partial.tar");
            let started = Instant::now();
            let out = run_bounded(
                Command::new(mmdebstrap)
                    .args(["--variant=essential", "--include=python3-pip,gcc,libc6-dev"])
                    .args(["bookworm"])
                    .arg(&partial),
                Duration::from_secs(600),
            );
            assert!(
                out.status.success(),
                "mmdebstrap failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            fs::rename(&partial, &tarball).expect("keep the rootfs tarball");
            eprintln!(
                "mmdebstrap: Debian bookworm rootfs in {:.0}s ({} MB), cached at {}",
                started.elapsed().as_secs_f64(),
                fs::metadata(&tarball).map_or(0, |m| m.len() >> 20),
                tarball.display()
            );
        }
        if !p.podman(&["image", "exists", DEBIAN]).status.success() {
            p.ok(&["import", &tarball.to_string_lossy(), DEBIAN]);
        }
    });
    DEBIAN
}

/// Builds Dockerfile.example, every instruction, with RUST_IMAGE and PYTHON_IMAGE swapped for local bases:
/// the builder is the Debian base with the host's rustup toolchain and cargo registry mounted where the official
/// rust image keeps them (and cargo offline); the runtime is the Debian base with a local pip index of gunicorn.
fn example_image(p: &'static Podman) -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let base = debian_base(p);
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let rustup = std::env::var_os("RUSTUP_HOME").map_or_else(|| home.join(".rustup"), PathBuf::from);
        let cargo = std::env::var_os("CARGO_HOME").map_or_else(|| home.join(".cargo"), PathBuf::from);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let wheels = root.join(".venv/wheels");
        assert!(
            wheels.is_dir(),
            "no {}: run scripts/setup-test-deps.sh",
            wheels.display()
        );

        let rust = p.context("rust-base", &[]);
        fs::write(
            rust.join("Containerfile"),
            format!(
                "FROM {base}\n\
                 ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo CARGO_NET_OFFLINE=true \
                 PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            ),
        )
        .expect("write a Containerfile");
        let python = p.context("python-base", &[]);
        fs::create_dir_all(python.join("wheels")).expect("create the wheel directory");
        for wheel in fs::read_dir(&wheels).expect("read the wheels").flatten() {
            fs::copy(wheel.path(), python.join("wheels").join(wheel.file_name()))
                .expect("copy a wheel");
        }
        fs::write(
            python.join("pip.conf"),
            "[global]\nno-index = true\nfind-links = /wheels\nbreak-system-packages = true\n",
        )
        .expect("write pip.conf");
        fs::write(
            python.join("Containerfile"),
            format!("FROM {base}\nCOPY wheels /wheels\nCOPY pip.conf /etc/pip.conf\n"),
        )
        .expect("write a Containerfile");
        let rust_image = "localhost/grace-init-e2e/rust:local";
        let python_image = "localhost/grace-init-e2e/python:local";
        p.ok(&["build", "--network", "none", "-t", rust_image, &rust.to_string_lossy()]);
        p.ok(&["build", "--network", "none", "-t", python_image, &python.to_string_lossy()]);

        let started = Instant::now();
        let (rustup, cargo) = (
            format!("{}:/usr/local/rustup", rustup.display()),
            format!("{}:/usr/local/cargo", cargo.display()),
        );
        p.ok(&[
            "build",
            "--network",
            "none",
            "--file",
            &root.join("Dockerfile.example").to_string_lossy(),
            "--build-arg",
            &format!("RUST_IMAGE={rust_image}"),
            "--build-arg",
            &format!("PYTHON_IMAGE={python_image}"),
            "--volume",
            &rustup,
            "--volume",
            &cargo,
            "--tag",
            EXAMPLE,
            &root.to_string_lossy(),
        ]);
        p.podman(&["image", "prune", "--force"]);
        eprintln!(
            "Dockerfile.example built in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    });
    EXAMPLE
}

#[test]
fn dockerfile_example_builds_the_small_binary_and_its_image_finishes_a_request_on_podman_stop() {
    let Some(p) = podman() else { return };
    let image = example_image(p);
    // What users build is the small binary, the one the benchmarks measure.
    let size = Container::start(p, &["--entrypoint", "stat", image, "-c", "%s", GRACE_INIT]);
    let bytes: u64 = {
        p.ok(&["wait", &size.name]);
        size.logs().trim().parse().expect("a size")
    };
    assert!(bytes < 650_000, "the image's grace-init is {bytes} bytes");

    let c = Container::start(p, &[image]);
    c.wait_log("Booting worker");
    // A client inside the container (its network is loopback only); it ignores the TERM grace-init sends to
    // what is left once gunicorn is gone, so it can report the answer it got.
    let client = thread::scope(|s| {
        let request = s.spawn(|| {
            c.exec(&[
                "python3",
                "-c",
                "import signal, urllib.request; signal.signal(signal.SIGTERM, signal.SIG_IGN); \
                 print(urllib.request.urlopen('http://127.0.0.1:8000/slow', timeout=20).read().decode())",
            ])
        });
        c.wait_log("app: slow request started");
        let stopped = c.stop(10);
        (stopped, request.join().expect("the client thread"))
    });
    let (stopped, answer) = client;
    let logs = c.logs();
    assert_eq!(stopped.code, 0, "{stopped:?}\n{logs}");
    assert!(
        String::from_utf8_lossy(&answer.stdout).contains("slow request finished"),
        "the in-flight request was cut off: {answer:?}\n{logs}"
    );
    assert!(
        stopped.took >= Duration::from_millis(1000) && stopped.took < Duration::from_secs(8),
        "{stopped:?}"
    );
    assert!(logs.contains("exiting after stop signal SIGTERM"), "{logs}");
    assert_eq!(c.inspect("{{.Config.User}}").trim(), "10001:10001");
    eprintln!(
        "Dockerfile.example image ({bytes}-byte grace-init): podman stop during a 2 s request took {} and exited 0",
        ms(stopped.took)
    );
}

/// `podman kube down` of a manifest on drop: the pods the test played are gone whatever happens.
struct Played {
    p: &'static Podman,
    manifest: PathBuf,
}

impl Drop for Played {
    fn drop(&mut self) {
        let _ = self
            .p
            .podman(&["kube", "down", &self.manifest.to_string_lossy()]);
    }
}

#[test]
fn kube_play_of_the_deployment_drains_for_its_delay_and_exits_0_within_the_grace_period() {
    let Some(p) = podman() else { return };
    let image = example_image(p);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let original = fs::read_to_string(root.join("examples/kubernetes/deployment.yaml"))
        .expect("read deployment.yaml");
    let mut manifest = original.replace("registry.example.com/hello-gunicorn:0.1.0", image);
    // Podman 4.3 turns containerPort into a port mapping, which it refuses with --network none; the named port
    // the readiness probe uses goes with it (podman 4.3 does not run readiness probes anyway).
    let ports = manifest.find("          ports:\n").expect("a ports block");
    let probe = manifest
        .find("          readinessProbe:")
        .expect("a readinessProbe");
    manifest.replace_range(ports..probe, "");
    let manifest = manifest.replace("port: http", "port: 8000");
    assert_ne!(manifest, original);
    let dir = p.context("kube", &[]);
    let path = dir.join("deployment.yaml");
    fs::write(&path, manifest).expect("write the manifest");

    let played = Played {
        p,
        manifest: path.clone(),
    };
    p.ok(&["kube", "play", "--network", "none", &path.to_string_lossy()]);
    // replicas: 2 gives two pods.
    let pods: Vec<Container> = (0..2)
        .map(|i| Container {
            p,
            name: format!("hello-gunicorn-pod-{i}-app"),
        })
        .collect();
    for c in &pods {
        c.wait_log("Booting worker");
        let env = c.inspect("{{.Config.Env}}");
        for var in ["GRACE_INIT_TIMEOUT=25", "GRACE_INIT_DRAIN_DELAY=5s"] {
            assert!(env.contains(var), "{}: {var} not set: {env}", c.name);
        }
        assert_eq!(c.inspect("{{.Config.User}}").trim(), "10001:10001");
    }
    // Podman 4.3 does not carry terminationGracePeriodSeconds (30) into the container's stop timeout, and its
    // `kube down` removes pods without one: stop them as the kubelet would, with the manifest's 30 s, first.
    let podman_timeout = pods[0].inspect("{{.Config.StopTimeout}}");
    let grace = original
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
        .expect("terminationGracePeriodSeconds")
        .trim()
        .to_string();
    let began = Instant::now();
    p.ok(&["pod", "stop", "--time", &grace, "hello-gunicorn-pod-0"]);
    let took = began.elapsed();
    let c = &pods[0];
    let logs = c.logs();
    assert_eq!(c.exit_code(), 0, "{logs}");
    for needle in [
        "\"level\":\"info\"",
        "grace period 25.000s",
        "draining for 5.000s before forwarding",
        "exit code 0",
    ] {
        assert!(logs.contains(needle), "no {needle:?} in the logs:\n{logs}");
    }
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(25),
        "the 5 s drain delay, then gunicorn's prompt exit: {took:?}\n{logs}"
    );
    let began = Instant::now();
    drop(played);
    eprintln!(
        "kube play deployment.yaml: pod stop --time {grace} took {} (5 s drain, then gunicorn), exit 0; \
         podman 4.3 set the stop timeout to {}s, not terminationGracePeriodSeconds; kube down took {}",
        ms(took),
        podman_timeout.trim(),
        ms(began.elapsed())
    );
    let left = p.ok(&["pod", "ps", "--format", "{{.Name}}"]);
    assert!(!left.contains("hello-gunicorn"), "pods left: {left}");
}

/// The app asks for more memory than the container has: dd with a 300 MiB buffer it fills from /dev/zero. One
/// process, so the OOM killer has one obvious victim (with a pipeline, the processes left once the biggest is
/// killed are as small as grace-init, and a second OOM kill may take any of them).
const MEMORY_HOG: &[&str] = &["dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1"];

#[test]
fn an_app_over_podman_s_memory_limit_is_reported_as_oom_killed_in_the_log_and_the_termination_message()
 {
    let Some(p) = podman() else { return };
    // Mounted as Kubernetes mounts it: an empty file at /dev/termination-log, which grace-init writes by default.
    let dir = p
        .home
        .join("contexts")
        .join(format!("oom-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("create a directory");
    let message = dir.join("termination-log");
    fs::write(&message, "").expect("create the message file");
    let mount = format!("{}:/dev/termination-log", message.display());
    let c = Container::run(
        p,
        Pid1::GraceInit(&[]),
        &["--memory", "48m", "--memory-swap", "48m", "-v", &mount],
        MEMORY_HOG,
    );
    p.ok(&["wait", &c.name]);
    let logs = c.logs();
    assert_eq!(c.exit_code(), 137, "{logs}");
    let said = "was killed by SIGKILL from the kernel's OOM killer (memory limit 48 MiB, peak ";
    assert!(logs.contains(said), "{logs}");
    let written = fs::read_to_string(&message).expect("read the message file");
    assert!(
        written.starts_with(&format!(
            "grace-init: exiting: the child ended without a stop signal; child {said}"
        )) && written.ends_with("; leftovers: 0 sent SIGTERM, 0 SIGKILLed; exit code 137\n"),
        "{written}\n{logs}"
    );
    eprintln!(
        "podman --memory 48m: podman inspect says OOMKilled={}; the termination message: {written}",
        c.inspect("{{.State.OOMKilled}}").trim()
    );
    let _ = fs::remove_dir_all(&dir);
    // What conmon left in its working directory for the OOM kill.
    let _ = fs::remove_file(p.home.join("oom"));
}
