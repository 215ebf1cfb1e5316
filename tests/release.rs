//! The release artifacts, as users download them: `scripts/release.sh`'s static musl binaries for amd64 and arm64
//! and their SHA256SUMS. Each binary runs as PID 1 of a PID namespace (`unshare --pid --fork --mount-proc`): amd64
//! natively, arm64 under qemu-user (`qemu-aarch64-static`, Debian's `qemu-user-static`; the programs it starts
//! are the host's own).
//!
//! Left out under qemu-user: everything where grace-init is *not* PID 1. qemu-user rejects
//! PR_SET_CHILD_SUBREAPER (EINVAL: grace-init warns "cannot register as child subreaper" and carries on), so the
//! subreaper mode cannot be tested there; and what reads grace-init's own /proc status (its signal mask) would
//! read qemu's, not the guest's. PID 1 needs no subreaper, so the container case is covered.
//!
//! The binaries come from dist/ (`.ci/run` runs `scripts/release.sh --check` first); where dist/ has none, this
//! test builds them itself into target/release-test, except under CI, where their absence is a failure.

mod common;

use common::host::{has_interpreter, run_bounded, under_ci, which};
use common::{Launch, Mode, Run, descendants, reporter, secs, state, strings};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// What users download must be the small build (stable's plain musl build is ~737 KB).
const MAX_SIZE: u64 = 650_000;

struct Artifact {
    name: &'static str,
    path: PathBuf,
    /// qemu-user for a foreign architecture.
    emulator: Option<PathBuf>,
}

fn dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
        if dist.join("SHA256SUMS").is_file() {
            return dist;
        }
        assert!(
            !under_ci(),
            "no release artifacts in {}: .ci/run runs scripts/release.sh --check before the tests",
            dist.display()
        );
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("release-test");
        eprintln!(
            "no dist/: building the release binaries into {} (a few minutes)",
            out.display()
        );
        let built = run_bounded(
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/release.sh"))
                .arg("--out")
                .arg(&out)
                .env_remove("CARGO_MAKEFLAGS")
                .env_remove("CARGO_TARGET_DIR"),
            Duration::from_secs(1200),
        );
        assert!(
            built.status.success(),
            "scripts/release.sh failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        out
    })
}

/// Both artifacts; the arm64 one only where qemu-user is installed (always under CI).
fn artifacts() -> Vec<Artifact> {
    let mut all = vec![Artifact {
        name: "grace-init-linux-amd64",
        path: dist().join("grace-init-linux-amd64"),
        emulator: None,
    }];
    match which("qemu-aarch64-static") {
        Some(qemu) => all.push(Artifact {
            name: "grace-init-linux-arm64",
            path: dist().join("grace-init-linux-arm64"),
            emulator: Some(qemu),
        }),
        None if under_ci() => panic!("qemu-aarch64-static is required in CI (qemu-user-static)"),
        None => eprintln!("SKIPPED arm64: qemu-aarch64-static is not installed (qemu-user-static)"),
    }
    all
}

/// Starts the artifact as PID 1 of a new PID namespace, with `args`.
fn start(a: &Artifact, args: &[&str]) -> Run {
    let launch = Launch {
        prefix: a
            .emulator
            .iter()
            .map(|q| q.to_string_lossy().into_owned())
            .collect(),
        binary: Some(a.path.to_string_lossy().into_owned()),
        ..Launch::default()
    };
    Run::launch(Mode::Pid1, &launch, args)
}

#[test]
fn artifacts_are_small_static_binaries_for_their_architecture_and_match_sha256sums() {
    let check = run_bounded(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(dist()),
        Duration::from_secs(30),
    );
    assert!(check.status.success(), "sha256sum -c: {check:?}");
    let listed = fs::read_to_string(dist().join("SHA256SUMS")).expect("read SHA256SUMS");
    for name in ["grace-init-linux-amd64", "grace-init-linux-arm64"] {
        let path = dist().join(name);
        assert!(listed.contains(name), "{name} not in SHA256SUMS:\n{listed}");
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let machine = u16::from_le_bytes([bytes[0x12], bytes[0x13]]);
        let want = if name.ends_with("amd64") { 0x3e } else { 0xb7 };
        assert_eq!(machine, want, "{name}: ELF machine");
        assert!(
            !has_interpreter(&path).expect("an ELF"),
            "{name} needs a loader"
        );
        assert!(
            (bytes.len() as u64) < MAX_SIZE,
            "{name} is {} bytes: not the small build",
            bytes.len()
        );
        eprintln!("{name}: {} bytes", bytes.len());
    }
}

#[test]
fn the_sizes_readme_quotes_are_the_sizes_of_these_artifacts() {
    // README.md quotes each artifact's size once, as "`grace-init-linux-amd64` (416 KiB)"; the number must be
    // this build's, within 3 %, so it is updated when the binary grows or shrinks.
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    for name in ["grace-init-linux-amd64", "grace-init-linux-arm64"] {
        let kib = fs::metadata(dist().join(name)).expect("an artifact").len() as f64 / 1024.0;
        let prefix = format!("`{name}` (");
        let quoted: Vec<f64> = readme
            .match_indices(&prefix)
            .filter_map(|(at, _)| {
                let rest = readme.get(at + prefix.len()..)?;
                rest.split_once(" KiB)")?.0.parse().ok()
            })
            .collect();
        assert!(
            !quoted.is_empty(),
            "README.md quotes no size as {prefix}N KiB)"
        );
        for q in quoted {
            assert!(
                (q - kib).abs() <= kib * 0.03,
                "README.md says {name} is {q} KiB; it is {kib:.0} KiB"
            );
        }
        eprintln!("{name}: {kib:.1} KiB, as README.md says");
    }
}

#[test]
fn as_pid1_the_stop_signal_is_forwarded_and_the_app_exit_code_passed_on() {
    let reporter = reporter();
    for a in artifacts() {
        let mut run = start(
            &a,
            &[
                "-t",
                "10",
                "--",
                &reporter,
                "--exit-on",
                "TERM=5",
                "--linger",
                "0.2",
            ],
        );
        run.expect_stdout("child ready", secs(20.0));
        for signal in [libc::SIGUSR1, libc::SIGHUP] {
            run.signal(signal);
        }
        run.expect_stdout("child got SIGUSR1", secs(10.0));
        run.expect_stdout("child got SIGHUP", secs(10.0));
        run.signal(libc::SIGTERM);
        run.expect_stdout("child got SIGTERM", secs(10.0));
        let done = run.wait(secs(20.0));
        done.assert_exit_for(5, a.name);
        done.check(
            done.stderr_text()
                .contains("exiting after stop signal SIGTERM"),
            format!("{}: want the stop signal named in the summary", a.name),
        );
    }
}

#[test]
fn as_pid1_a_term_ignoring_app_is_killed_at_the_timeout() {
    let reporter = reporter();
    for a in artifacts() {
        let mut run = start(&a, &["-t", "500ms", "--", &reporter, "--ignore", "TERM"]);
        run.expect_stdout("child ready", secs(20.0));
        let sent = std::time::Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(20.0));
        let took = sent.elapsed();
        done.assert_exit_for(137, a.name);
        assert!(
            took >= secs(0.45) && took < secs(5.0),
            "{}: SIGKILL not at the 500 ms timeout: {took:?}",
            a.name
        );
        done.check(
            done.stderr_text().contains("escalated: SIGKILL"),
            format!("{}: want the escalation in the log", a.name),
        );
        eprintln!("{}: TERM-ignoring app killed after {took:?}", a.name);
    }
}

#[test]
fn as_pid1_orphans_are_reaped_and_exit_codes_mapped() {
    for a in artifacts() {
        let mut run = start(
            &a,
            &[
                "--",
                "sh",
                "-c",
                "(sleep 0.2 &); (sleep 0.2 &); echo ready; exec sleep 1000",
            ],
        );
        run.expect_stdout("ready", secs(20.0));
        let init = run.init_pid();
        // The orphans live 0.2 s; after that only the main `sleep 1000` is left below grace-init, no zombie.
        let settled = common::wait_for(secs(15.0), || {
            let below = descendants(init);
            let zombie = below.iter().any(|&p| state(p) == Some('Z'));
            (below.len() == 1 && !zombie).then_some(())
        });
        assert!(
            settled.is_some(),
            "{}: orphans not reaped: {:?}",
            a.name,
            descendants(init)
                .iter()
                .map(|&p| (p, state(p)))
                .collect::<Vec<_>>()
        );
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(20.0));
        done.assert_exit_for(143, a.name);

        for (args, code) in [
            (strings(&["--", "sh", "-c", "exit 42"]), 42),
            (strings(&["--", "/nonexistent/app"]), 127),
            (strings(&["--timeout", "soon", "--", "true"]), 2),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let done = start(&a, &args).wait(secs(20.0));
            done.assert_exit_for(code, format!("{}: {args:?}", a.name));
        }
    }
}
