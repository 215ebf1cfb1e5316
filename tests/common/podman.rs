//! Podman with storage of its own under target/ (`--root`, `--runroot`) and a containers.conf named by
//! CONTAINERS_CONF (nothing in /etc is read for the engine or written): runc as the runtime (crun refuses this
//! machine's hybrid cgroups), explicit rlimits (without CAP_SYS_RESOURCE podman's defaults fail with "error setting
//! rlimit type 7"), file logs and events. The test image (busybox, grace-init, shell apps), Dockerfile.example
//! built on local bases (no registry), and containers removed when dropped. Where podman is missing the tests
//! skip with a message, except under CI (`CI` set): a failure.

use super::host::{
    COOPERATIVE_APP, GRACEFUL_APP, PROC_TABLE, Proc, SERVER, STUBBORN_APP, build_static_grace_init,
    has_interpreter, parse_proc_table, run_bounded, under_ci, wait_processes, which,
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
pub const PATIENCE: Duration = Duration::from_secs(30);
/// The test image: busybox, grace-init at /usr/local/bin, the shell apps under /app; no ENTRYPOINT.
pub const IMAGE: &str = "localhost/grace-init-e2e:test";
pub const GRACE_INIT: &str = "/usr/local/bin/grace-init";

// ---------------------------------------------------------------------------------------------------------
// The engine: podman with test-owned storage and configuration.

pub struct Podman {
    pub podman: PathBuf,
    /// Everything podman keeps: storage, run state, containers.conf, build contexts.
    pub home: PathBuf,
    pub grace_init: PathBuf,
}

/// The engine with the test image built, or `None` (with a message) where podman is missing outside CI.
pub fn podman() -> Option<&'static Podman> {
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

pub fn set_up() -> Result<Podman, String> {
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

pub fn write_executable(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("create a directory");
    fs::write(path, contents).expect("write a file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

impl Podman {
    pub fn command(&self) -> Command {
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
    pub fn podman(&self, args: &[&str]) -> Output {
        run_bounded(self.command().args(args), PATIENCE * 4)
    }

    /// `podman ARGS`, which must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_within(args, PATIENCE * 4)
    }

    /// `podman ARGS` given `limit`, which must succeed: for builds that compile (Dockerfile.example's build
    /// stage builds the standard library, minutes on a busy machine).
    pub fn ok_within(&self, args: &[&str], limit: Duration) -> String {
        let out = run_bounded(self.command().args(args), limit);
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
    pub fn context(&self, name: &str, files: &[(&str, &Path)]) -> PathBuf {
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

pub static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Who is PID 1 of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pid1 {
    /// The app itself.
    App,
    /// `podman run --init`: catatonit.
    Catatonit,
    /// grace-init, with these flags.
    GraceInit(&'static [&'static str]),
}

pub struct Container {
    pub p: &'static Podman,
    pub name: String,
}

/// What `podman stop` did.
#[derive(Debug)]
pub struct Stopped {
    /// The wall time of `podman stop -t N`.
    pub took: Duration,
    /// The container's exit code from `podman inspect`.
    pub code: i32,
}

impl Container {
    /// `podman run -d` of `args` in the test image with `init` as PID 1 and extra `podman run` flags.
    pub fn run(p: &'static Podman, init: Pid1, flags: &[&str], args: &[&str]) -> Container {
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
    pub fn start(p: &'static Podman, args: &[&str]) -> Container {
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
    pub fn logs(&self) -> String {
        let out = self.p.podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits (bounded) until the logs hold `needle`.
    pub fn wait_log(&self, needle: &str) {
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
    pub fn stop(&self, timeout: u32) -> Stopped {
        let began = Instant::now();
        self.p
            .ok(&["stop", "--time", &timeout.to_string(), &self.name]);
        let took = began.elapsed();
        Stopped {
            took,
            code: self.exit_code(),
        }
    }

    pub fn exit_code(&self) -> i32 {
        let out = self.inspect("{{.State.Status}} {{.State.ExitCode}}");
        let (status, code) = out.trim().split_once(' ').expect("status and code");
        assert_eq!(status, "exited", "{}: {out}", self.name);
        code.parse().expect("an exit code")
    }

    pub fn inspect(&self, format: &str) -> String {
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
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        self.p.podman(&all)
    }

    pub fn processes(&self) -> Vec<Proc> {
        parse_proc_table(&String::from_utf8_lossy(&self.exec(&PROC_TABLE).stdout))
    }

    /// Polls (bounded) the process table until `done` holds for it.
    pub fn wait_processes(&self, done: impl Fn(&[Proc]) -> bool) -> Result<Vec<Proc>, Vec<Proc>> {
        wait_processes(PATIENCE, || self.processes(), done)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.p.podman(&["rm", "--force", "--time", "0", &self.name]);
    }
}

/// Prints `ready`, then one line per USR1, HUP or WINCH it receives; exits 0 on TERM.
pub const SIGNAL_REPORTER: &str = r#"#!/bin/sh
for s in USR1 HUP WINCH; do trap "echo got $s" $s; done
trap 'echo bye; exit 0' TERM
echo ready
while :; do sleep 1000 & wait $!; done
"#;

/// A Debian bookworm rootfs from Debian's own packages (no registry): Python with pip for the runtime stage, gcc
/// for the build stage's proc macros. Imported once per storage; the tarball is cached under target/.
pub const DEBIAN: &str = "localhost/grace-init-e2e/bookworm:base";
/// Dockerfile.example's image, built with both bases swapped for local ones.
pub const EXAMPLE: &str = "localhost/grace-init-e2e/hello-gunicorn:test";
/// Bound for a build that compiles grace-init.
pub const BUILD_PATIENCE: Duration = Duration::from_secs(1200);
/// Its build stage (`--target build`).
pub const EXAMPLE_BUILD: &str = "localhost/grace-init-e2e/hello-gunicorn-build:test";

pub fn debian_base(p: &'static Podman) -> &'static str {
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

/// The local stand-ins for Dockerfile.example's two bases, and the volumes its build needs: the builder is the
/// Debian base with the host's rustup toolchain and cargo registry mounted where the official rust image keeps them
/// (and cargo offline); the runtime is the Debian base with a local pip index of gunicorn. Returns the rust image,
/// the python image and the `--volume` values.
pub fn example_bases(p: &'static Podman) -> (&'static str, &'static str, Vec<String>) {
    static DONE: OnceLock<()> = OnceLock::new();
    let rust_image = "localhost/grace-init-e2e/rust:local";
    let python_image = "localhost/grace-init-e2e/python:local";
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let rustup =
        std::env::var_os("RUSTUP_HOME").map_or_else(|| home.join(".rustup"), PathBuf::from);
    let cargo = std::env::var_os("CARGO_HOME").map_or_else(|| home.join(".cargo"), PathBuf::from);
    DONE.get_or_init(|| {
        let base = debian_base(p);
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
        p.ok(&["build", "--network", "none", "-t", rust_image, &rust.to_string_lossy()]);
        p.ok(&["build", "--network", "none", "-t", python_image, &python.to_string_lossy()]);
    });
    let volumes = vec![
        format!("{}:/usr/local/rustup", rustup.display()),
        format!("{}:/usr/local/cargo", cargo.display()),
    ];
    (rust_image, python_image, volumes)
}

/// Builds Dockerfile.example, every instruction, on the local bases of `example_bases`. Its build stage is
/// tagged too, so pruning untagged images keeps it cached for other builds of the same file (`--target`).
pub fn example_image(p: &'static Podman) -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let (rust_image, python_image, volumes) = example_bases(p);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let started = Instant::now();
        let dockerfile = root
            .join("Dockerfile.example")
            .to_string_lossy()
            .into_owned();
        let (rust_arg, python_arg) = (
            format!("RUST_IMAGE={rust_image}"),
            format!("PYTHON_IMAGE={python_image}"),
        );
        let context = root.to_string_lossy().into_owned();
        for (target, tag) in [("runtime", EXAMPLE), ("build", EXAMPLE_BUILD)] {
            let mut args = vec!["build", "--network", "none", "--file", &dockerfile];
            args.extend(["--build-arg", &rust_arg, "--build-arg", &python_arg]);
            for v in &volumes {
                args.extend(["--volume", v.as_str()]);
            }
            args.extend(["--target", target, "--tag", tag, &context]);
            p.ok_within(&args, BUILD_PATIENCE);
        }
        p.podman(&["image", "prune", "--force"]);
        eprintln!(
            "Dockerfile.example built in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    });
    EXAMPLE
}
