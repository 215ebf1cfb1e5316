//! A stalled stderr (a full pipe nobody reads: a stuck log driver, `| less` never scrolled) does not delay
//! forwarding, the deadline or the exit; the lines that did not fit are dropped, counted, and the count is
//! reported once the pipe drains. As PID 1 and as a subreaper, with default and verbose logging. A grace-init that
//! blocked in write(2) would fail every test here by a bounded wait.

mod common;

use common::*;

fn stalled() -> Launch {
    Launch {
        stderr: StderrTo::Stalled,
        ..Launch::default()
    }
}

per_mode! {
    fn with_stderr_stalled_a_child_ignoring_sigterm_is_killed_on_time_and_grace_init_exits_137(mode: Mode) {
        let reporter = reporter();
        for verbose in [false, true] {
            let what = format!("{mode:?} verbose={verbose}");
            let mut args = vec!["-t", "1"];
            if verbose {
                args.push("-v");
            }
            args.extend(["--", &reporter, "--ignore", "TERM"]);
            // Main: blocked writing "received SIGTERM..." until the pipe is read: never (bound 5 s).
            assert_killed_on_time(Run::launch(mode, &stalled(), &args), &what);
        }
    }
}

per_mode! {
    fn with_stderr_stalled_a_cooperative_child_gets_sigterm_at_once_and_dropped_lines_are_counted_later(
        mode: Mode
    ) {
        let reporter = reporter();
        for verbose in [false, true] {
            let what = format!("verbose={verbose}");
            let mut args = vec!["-t", "10"];
            if verbose {
                args.push("-v");
            }
            // The child takes 1 s to finish after SIGTERM: grace-init is still running when the pipe drains.
            args.extend(["--", &reporter, "--exit-on", "TERM=0", "--linger", "1"]);
            let mut run = Run::launch(mode, &stalled(), &args);
            run.expect_stdout("child ready", secs(10.0));
            run.signal(libc::SIGUSR1);
            // Main: never (grace-init is blocked in write before the forward).
            run.expect_stdout("child got SIGUSR1", secs(0.5));
            run.signal(libc::SIGTERM);
            run.expect_stdout("child got SIGTERM", secs(0.5));
            // The child can report its SIGTERM before grace-init has tried to write that wake-up's lines: wait
            // until grace-init is asleep again in its timed wait (the write attempt is then over, and failed), so
            // that something was dropped for certain before the pipe drains.
            let init = run.init_pid();
            let asleep = wait_for(secs(2.0), || {
                let wchan =
                    std::fs::read_to_string(format!("/proc/{init}/wchan")).unwrap_or_default();
                wchan.contains("sigtimedwait").then_some(())
            });
            assert!(
                asleep.is_some(),
                "{mode:?} {what}: grace-init never went back to its timed wait"
            );
            run.unstall_stderr();
            let done = run.wait(secs(5.0));
            done.assert_exit_for(0, &what);
            let lines: Vec<&String> = done
                .stderr
                .iter()
                .filter(|l| l.contains("grace-init"))
                .collect();
            let dropped = lines.iter().position(|l| l.contains("dropped"));
            let summary = lines.iter().position(|l| l.contains("exit code 0"));
            done.check(
                matches!((dropped, summary), (Some(d), Some(s)) if d < s),
                format!("{what}: want a line counting the dropped lines, then the summary"),
            );
        }
    }
}

/// An app that ignores SIGTERM and prints `child ready`.
const NO_TERM_APP: &str = r#"trap "" TERM; echo child ready; exec sleep 1000"#;

#[test]
fn a_pipe_that_cannot_be_reopened_never_takes_a_write_it_has_no_room_for() {
    // Without /proc grace-init cannot open a private non-blocking description of its stderr pipe. Found by review:
    // it then polled for room and wrote with the shared, blocking description, and a pipe with some room (8 KiB
    // here) but less than a long line (a 12 KB pre-stop command line is logged) held it in write(2): the app never
    // got its SIGTERM and the deadline's SIGKILL never came. Now the pipe's free room is measured and lines are cut
    // to one atomic write. Subreaper mode: /proc is unmounted in a mount namespace of its own.
    let reporter = reporter();
    let long = format!(": {}", "x".repeat(12_000));
    let launch = Launch {
        stderr: StderrTo::StalledWithRoom(8192),
        ..Launch::without_proc()
    };
    let run = Run::launch(
        Mode::Subreaper,
        &launch,
        &[
            "-t",
            "1",
            "--pre-stop",
            &long,
            "--",
            &reporter,
            "--ignore",
            "TERM",
        ],
    );
    assert_killed_on_time(run, "a long line into 8 KiB of room");
}

#[test]
fn a_pipe_that_cannot_be_reopened_and_has_no_free_slot_never_takes_a_write_as_a_subreaper() {
    // Found by review: when grace-init cannot reopen its stderr pipe (no /proc, or the pipe is another user's:
    // `exec gosu app grace-init ...`), it wrote with the shared, blocking description once FIONREAD and
    // F_GETPIPE_SZ said there was room. But a pipe is full when its slots are, and data spliced in (sendfile, as
    // busybox `cat >&2` does) takes a whole slot per piece: 16 bytes queued, no slot free, and grace-init slept in
    // pipe_write: no SIGTERM for the app, no SIGKILL at the deadline. Here as a subreaper without /proc.
    let launch = Launch {
        stderr: StderrTo::StalledSlots,
        ..Launch::without_proc()
    };
    let run = Run::launch(
        Mode::Subreaper,
        &launch,
        &["-t", "1", "--", "sh", "-c", NO_TERM_APP],
    );
    assert_killed_on_time(run, "subreaper without /proc");
}

#[test]
fn a_pipe_of_another_user_with_no_free_slot_never_takes_a_write_as_pid1() {
    // The same pipe, as PID 1 run as another user than the pipe's (it cannot reopen it through /proc).
    if !pid1_available() {
        return;
    }
    let launch = Launch {
        stderr: StderrTo::StalledSlots,
        prefix: as_user(65534),
        ..Launch::default()
    };
    let run = Run::launch(
        Mode::Pid1,
        &launch,
        &["-t", "1", "--", "sh", "-c", NO_TERM_APP],
    );
    assert_killed_on_time(run, "PID 1 as uid 65534");
}
