//! Processes grace-init cannot see, parse or signal: whatever it cannot reach, it exits no later than the grace
//! period plus a small fixed bound after the SIGKILL, and its log names what it could not reach. And what it
//! can reach, it reaches: a leftover with an odd name, or found while descriptors run short, still gets SIGTERM.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

/// The reporter fixture copied to `scratch` as `name`, executable, its interpreter named in the first line (not
/// through `env`, which would exec python3 and rename the process): run by that path, the kernel names its process
/// after the file, cut to 15 bytes.
fn reporter_as(scratch: &Scratch, name: &str) -> String {
    // The interpreter itself: `python3` on PATH may be a wrapper script (pyenv's shims are).
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    let python = String::from_utf8(python.stdout).expect("a path");
    let source = std::fs::read_to_string(reporter()).expect("the reporter");
    let body = source.split_once('\n').expect("a first line").1;
    let path = scratch.path(name);
    std::fs::write(&path, format!("#!{}\n{body}", python.trim())).expect("write the copy");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A shell command that starts `leftover` (a reporter command line) in a session of its own, waits until it is
/// ready, and exits 0: the app is gone, the leftover remains.
fn app_leaving(leftover: &str, scratch: &Scratch) -> String {
    let ready = scratch.path("leftover-ready");
    format!(
        "setsid {leftover} --ready-file {ready} & \
         i=0; while [ ! -e {ready} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; exit 0"
    )
}

/// Whether some process on the machine has this name (the kernel's `comm`, as bytes).
fn someone_named(name: &[u8]) -> bool {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries.into_iter().any(|e| {
        std::fs::read(e.path().join("comm")).is_ok_and(|c| c.strip_suffix(b"\n") == Some(name))
    })
}

// A leftover whose name is not UTF-8 (the kernel cut a script named worker_数据同步.py to 15 bytes, inside a
// character), or holds ')', a space and a newline (prctl(PR_SET_NAME)), gets SIGTERM when the app exits, and
// grace-init exits as soon as it is gone, its log whole lines. Main: /proc/<pid>/stat read as a string failed, the
// process was invisible: as PID 1 it got no SIGTERM and was SIGKILLed at the deadline; as a subreaper grace-init
// swept every 100 ms past the deadline and never exited.
per_mode!(a_leftover_with_an_odd_name_gets_sigterm, |mode| {
    let scratch = Scratch::new(&format!("odd-name-{mode:?}"));
    let script = reporter_as(&scratch, "worker_数据同步.py");
    // The command, the name the kernel keeps, and the name as the log shows it (--warn-reap names what it reaps).
    let leftovers = [
        (
            format!("{script} --tag worker --exit-on TERM=0"),
            &b"worker_\xe6\x95\xb0\xe6\x8d\xae\xe5\x90"[..],
            "(worker_数据\\xe5\\x90)",
        ),
        (
            format!(
                "{} --tag worker --exit-on TERM=0 --comm 612920620a63e695",
                reporter()
            ),
            &b"a) b\nc\xe6\x95"[..],
            "(a) b\\x0ac\\xe6\\x95)",
        ),
    ];
    for (leftover, name, shown) in leftovers {
        let _ = std::fs::remove_file(scratch.path("leftover-ready"));
        let app = app_leaving(&leftover, &scratch);
        let mut run = Run::start(mode, &["-t", "10", "--warn-reap", "--", "sh", "-c", &app]);
        run.expect_stdout("worker ready", secs(10.0));
        let named = someone_named(name);
        run.expect_stdout("worker got SIGTERM", secs(8.0));
        let done = run.wait(secs(10.0));
        let text = done.stderr_text();
        assert!(named, "{mode:?}: no process was named {name:?}");
        done.assert_exit_for(0, shown);
        done.assert_log_lacks("grace period over");
        done.assert_log_contains("sent SIGTERM to 1 process");
        done.check(text.contains(shown), format!("{shown} not named"));
        assert!(
            done.stderr.iter().all(|l| l.starts_with("grace-init: ")),
            "{mode:?}: a name broke a log line: {:#?}",
            done.stderr
        );
    }
});

/// A uid of this file's own for the runs as a non-root user.
const HIDDEN_UID: u32 = 64020;

/// grace-init as the non-root `HIDDEN_UID`, with /proc mounted `hidepid=N`: a process of that same user that
/// made itself non-dumpable (as ssh-agent and gpg-agent do) is hidden from it (2), or listed but unreadable (1).
/// As PID 1, in a PID namespace whose /proc is remounted so; as a subreaper, in a mount namespace of its own
/// with a new /proc so mounted.
fn under_hidepid(mode: Mode, hidepid: u8) -> Launch {
    let remount = format!("mount -o remount,hidepid={hidepid} /proc && exec \"$0\" \"$@\"");
    let mount = format!("mount -t proc -o hidepid={hidepid} proc /proc && exec \"$0\" \"$@\"");
    let mut launcher = match mode {
        Mode::Pid1 => strings(&[&PID1_LAUNCHER[..], &["sh", "-c", &remount]].concat()),
        Mode::Subreaper => strings(&[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &mount,
        ]),
    };
    launcher.extend(as_user(HIDDEN_UID));
    Launch {
        launcher: Some(launcher),
        ..Launch::default()
    }
}

/// Ends a process this test started, by pid, unless it is already gone.
struct Leftover(Option<i32>);

impl Drop for Leftover {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            send_signal(pid, libc::SIGKILL);
        }
    }
}

/// A non-root grace-init under `hidepid`, whose app leaves a non-dumpable leftover that ignores SIGTERM, and exits
/// 3: grace-init exits with 3 within the 1 s grace period and the 2 s bound. Returns the log, and how long
/// grace-init took from the app's exit.
fn leave_a_hidden_leftover(mode: Mode, hidepid: u8) -> (String, std::time::Duration) {
    let scratch = Scratch::new(&format!("hidepid{hidepid}-{mode:?}"));
    let (ready, out) = (scratch.path("ready"), scratch.path("out"));
    // The leftover writes to a file: it outlives grace-init and must not hold the test's pipes open.
    let app = format!(
        "setsid /usr/bin/python3 {} --tag hidden --undumpable --ignore TERM --ready-file {ready} >{out} 2>&1 & \
         i=0; while [ ! -e {ready} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo app gone; exit 3",
        reporter()
    );
    let launch = under_hidepid(mode, hidepid);
    let mut run = Run::launch(mode, &launch, &["-t", "1", "--", "sh", "-c", &app]);
    run.expect_stdout("app gone", secs(10.0));
    // From the app's exit, grace-init has the grace period and the bound.
    let app_gone = std::time::Instant::now();
    let mut leftover = Leftover(None);
    if mode == Mode::Subreaper {
        let line = std::fs::read_to_string(&out).unwrap_or_default();
        leftover.0 = line.split_whitespace().nth(2).and_then(|p| p.parse().ok());
        assert!(
            leftover.0.is_some(),
            "no ready line from the leftover: {line:?}"
        );
    }
    let started = run.started_at();
    let done = run.wait(secs(15.0));
    let took = (started + done.elapsed).saturating_duration_since(app_gone);
    let text = done.stderr_text();
    assert_eq!(done.code, Some(3), "{mode:?} hidepid={hidepid}: {text}");
    // 1 s of grace period and the 2 s bound; the rest is slack for a busy machine.
    assert!(
        took < secs(5.5),
        "{mode:?} hidepid={hidepid}: exited {took:?} after the app: {text}"
    );
    eprintln!("{mode:?} hidepid={hidepid}: exited {took:?} after the app");
    (text, took)
}

// A non-root grace-init under hidepid=2 cannot see a non-dumpable leftover of its own user: it cannot tell it
// SIGTERM, nor SIGKILL it as a subreaper. It exits anyway, at most KILL_WAIT (2 s) after the SIGKILL at the
// deadline, with the child's code, and says what it could not reach. Main: as a subreaper, "SIGKILL to 0
// processes", then a sweep every 100 ms for ever (waitpid said a child remained).
per_mode!(
    a_leftover_hidden_by_hidepid_bounds_the_exit_and_is_reported,
    |mode| {
        let (text, took) = leave_a_hidden_leftover(mode, 2);
        if mode == Mode::Subreaper {
            assert!(
                text.contains("gave up waiting 2.")
                    && text.contains("waitpid reports children that /proc does not show"),
                "{mode:?}: {text}"
            );
            assert!(
                took >= secs(2.5),
                "{mode:?}: did not wait out the bound: {took:?}"
            );
        }
    }
);

// Under hidepid=1 /proc lists the leftover but will not show its stat file (EPERM): that is no "gone". The log
// says how many processes it could not read and why, and the exit keeps its bound.
per_mode!(
    a_leftover_listed_but_unreadable_under_hidepid_1_is_said,
    |mode| {
        let (text, _) = leave_a_hidden_leftover(mode, 1);
        assert!(
            text.contains(
                "that /proc lists (operation not permitted): not signalled or counted by name"
            ),
            "{mode:?}: {text}"
        );
    }
);

// Short of descriptors (`prlimit --nofile=N`, N = 5..10): grace-init either refuses to start, with one clear line
// and exit 1, or a leftover gets its SIGTERM when the app exits and the log counts it. Main: as PID 1 with N = 7,
// the /proc scan failed with EMFILE, taken for "gone": no SIGTERM, "SIGKILL to 0 processes" at the deadline.
per_mode!(short_of_descriptors_a_leftover_still_gets_sigterm, |mode| {
    let scratch = Scratch::new(&format!("nofile-{mode:?}"));
    let mut started = 0;
    for limit in 5..=10 {
        let ready = scratch.path(&format!("ready-{limit}"));
        let app = format!(
            "setsid {} --tag left --exit-on TERM=0 --ready-file {ready} & \
             i=0; while [ ! -e {ready} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; exit 0",
            reporter()
        );
        let nofile = format!("--nofile={limit}:{limit}");
        let launch = Launch::prefixed(&["prlimit", &nofile, "--"]);
        let mut run = Run::launch(mode, &launch, &["-t", "10", "--", "sh", "-c", &app]);
        let what = format!("{mode:?} nofile={limit}");
        // It starts the app, which starts the leftover, or refuses to start.
        let is_ready = || std::path::Path::new(&ready).exists();
        let _ = wait_for(secs(10.0), || {
            (is_ready() || run.has_exited()).then_some(())
        });
        if !is_ready() {
            let done = run.wait(secs(10.0));
            assert_eq!(done.code, Some(1), "{what}: {:?}", done.stderr);
            assert!(
                done.stderr.len() == 1 && done.stderr[0].contains("too many open files"),
                "{what}: {:?}",
                done.stderr
            );
            continue;
        }
        started += 1;
        run.expect_stdout("left got SIGTERM", secs(8.0));
        let done = run.wait(secs(10.0));
        let text = done.stderr_text();
        done.assert_exit_for(0, &what);
        done.check(
            text.contains("sent SIGTERM to 1 process"),
            format!("{what}: the leftover was told"),
        );
        done.check(
            !text.contains("grace period over"),
            format!("{what}: no deadline"),
        );
    }
    assert!(
        started >= 3,
        "{mode:?}: only {started} limits let grace-init start"
    );
});
