//! Host-side helpers for the tests that run grace-init inside real containers (runc, podman, qemu): find
//! programs, run commands with a bound, build the static binary, and the busybox shell apps those containers run.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The target whose `+crt-static` build needs nothing downloaded.
pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Whether the tests run under CI (`CI` set), where a missing prerequisite is a failure, not a skip.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/sbin:/usr/bin:/sbin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Builds the static (glibc, `+crt-static`) release binary with a target dir of its own: the running
/// `cargo test` holds the lock on the usual one.
pub fn build_static_grace_init() -> Result<PathBuf, String> {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target_dir = tmp
        .parent()
        .map_or_else(|| tmp.join("e2e-static"), |t| t.join("e2e-static"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    eprintln!(
        "building the static grace-init into {} (the first build takes a while)",
        target_dir.display()
    );
    let started = Instant::now();
    let output = run_bounded(
        Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--release", "--offline", "--bin", "grace-init"])
            .args(["--target", TRIPLE])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            // These would override RUSTFLAGS, or hand the build a jobserver that is not ours.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS"),
        Duration::from_secs(900),
    );
    if !output.status.success() {
        return Err(format!(
            "building the static grace-init failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let binary = target_dir.join(TRIPLE).join("release").join("grace-init");
    if has_interpreter(&binary)? {
        return Err(format!("{} is not statically linked", binary.display()));
    }
    eprintln!(
        "static grace-init ready in {:.1}s: {} ({} bytes)",
        started.elapsed().as_secs_f64(),
        binary.display(),
        fs::metadata(&binary).map(|m| m.len()).unwrap_or(0)
    );
    Ok(binary)
}

/// Whether a 64-bit little-endian ELF executable (x86-64, aarch64) asks for a dynamic loader (has a PT_INTERP program header).
pub fn has_interpreter(path: &Path) -> Result<bool, String> {
    const PT_INTERP: u32 = 3;
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    // 64-bit, little-endian ELF.
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(format!(
            "{} is not a 64-bit little-endian ELF",
            path.display()
        ));
    }
    let bad = || format!("{}: truncated ELF header", path.display());
    let phoff = usize::try_from(u64_at(0x20).ok_or_else(bad)?).map_err(|_| bad())?;
    let phentsize = usize::from(u16_at(0x36).ok_or_else(bad)?);
    let phnum = usize::from(u16_at(0x38).ok_or_else(bad)?);
    for i in 0..phnum {
        if u32_at(phoff.saturating_add(i.saturating_mul(phentsize))).ok_or_else(bad)? == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Runs a command to completion, or kills it (only it) and panics after `limit`.
pub fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("waiting for {command:?}: {e}"),
        Err(_) => {
            kill_pid(pid);
            panic!("{command:?} did not finish within {limit:?}: killed it");
        }
    }
}

/// SIGKILL to one process this test started and has not reaped yet.
pub fn kill_pid(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Busybox shell apps. Each prints `ready` once its traps are in place.

/// Installs no handler and waits forever.
pub const NO_HANDLER: &[&str] = &["sh", "-c", "echo ready; exec sleep 1000"];

/// Leaves an orphan behind (double fork), which dies shortly after, then waits forever.
pub const DOUBLE_FORK: &[&str] = &["sh", "-c", "(sleep 0.3 &); echo ready; exec sleep 1000"];

/// Finishes its work on TERM (about a second), then exits with its own code, 7.
pub const GRACEFUL_APP: &str = r#"#!/bin/sh
trap 'echo "app: finishing"; sleep 1; echo "app: finished"; exit 7' TERM
echo ready
while :; do sleep 1000 & wait $!; done
"#;

/// Ignores TERM, as do the processes it starts.
pub const STUBBORN_APP: &str = r#"#!/bin/sh
trap '' TERM
echo ready
while :; do sleep 1000 & wait $!; done
"#;

/// A server that takes about a second to finish its requests after TERM.
pub const SERVER: &str = r#"#!/bin/sh
trap 'echo "server: finishing"; sleep 1; echo "server: finished"; exit 0' TERM
echo "server: ready"
while :; do sleep 1000 & wait $!; done
"#;

/// Exits at once, with 0, on TERM.
pub const COOPERATIVE_APP: &str = r#"#!/bin/sh
trap 'exit 0' TERM
echo ready
while :; do sleep 1000 & wait $!; done
"#;

// ---------------------------------------------------------------------------------------------------------
// The process table inside a container, as `docker exec` shows it.

/// One process seen in the container's /proc.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: u32,
    pub state: char,
    pub comm: String,
}

/// The command that prints a container's process table (run it with the engine's `exec`). A process may vanish
/// between the glob and cat: cat then complains and exits 1, which is fine.
pub const PROC_TABLE: [&str; 3] = ["sh", "-c", "cat /proc/[0-9]*/stat"];

/// Parses what `PROC_TABLE` printed.
pub fn parse_proc_table(text: &str) -> Vec<Proc> {
    text.lines()
        .filter_map(|line| {
            let open = line.find(" (")?;
            let close = line.rfind(") ")?;
            Some(Proc {
                pid: line[..open].parse().ok()?,
                state: line[close + 2..].chars().next()?,
                comm: line[open + 2..close].to_string(),
            })
        })
        .collect()
}

/// Polls (bounded) a container's process table, read by `table`, until `done` holds for it: the last table
/// seen, as `Ok` when it did. Nothing signals "a zombie appeared or went away" to the outside: poll, at a
/// bounded rate.
pub fn wait_processes(
    limit: Duration,
    mut table: impl FnMut() -> Vec<Proc>,
    done: impl Fn(&[Proc]) -> bool,
) -> Result<Vec<Proc>, Vec<Proc>> {
    let until = Instant::now() + limit;
    loop {
        let seen = table();
        if done(&seen) {
            return Ok(seen);
        }
        if Instant::now() >= until {
            return Err(seen);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn zombies(table: &[Proc]) -> Vec<&Proc> {
    table.iter().filter(|p| p.state == 'Z').collect()
}
