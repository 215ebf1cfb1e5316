//! Under a seccomp profile that refuses the newer system calls grace-init uses (EPERM, as older Docker profiles
//! answer, or ENOSYS, as a kernel without them does), each is replaced by its older equivalent, and grace-init
//! supervises as it does without the filter: signals are forwarded, every leftover gets its SIGTERM, the
//! deadline holds, and the log says what happened. The filter (`tests/fixtures/refuse.c`) is installed right
//! before grace-init and so covers the app too, as a container's profile does. Each scenario runs as PID 1 and
//! as a subreaper, with either errno.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// How much later than its grace period grace-init may exit: the bound measured from the event it reacts to.
const BOUND: f64 = 2.0;

/// Every system call the matrix refuses.
const ALL: [&str; 7] = [
    "pidfd_open",
    "pidfd_send_signal",
    "close_range",
    "pwritev2",
    "clone3",
    "signalfd4",
    "signalfd",
];

/// `matrix!(name, |mode, errno| body)`: one test per mode and errno, named `name::pid1_eperm` and so on.
macro_rules! matrix {
    ($name:ident, |$mode:ident, $errno:ident| $body:block) => {
        mod $name {
            use super::*;

            fn case($mode: Mode, $errno: &str) $body

            #[test]
            fn pid1_eperm() {
                if pid1_available() {
                    case(Mode::Pid1, "EPERM");
                }
            }

            #[test]
            fn pid1_enosys() {
                if pid1_available() {
                    case(Mode::Pid1, "ENOSYS");
                }
            }

            #[test]
            fn subreaper_eperm() {
                case(Mode::Subreaper, "EPERM");
            }

            #[test]
            fn subreaper_enosys() {
                case(Mode::Subreaper, "ENOSYS");
            }
        }
    };
}

/// Waits for grace-init to exit (at most `within`); returns how it ended and when its exit was seen.
fn finish(run: Run, within: Duration) -> (Finished, Instant) {
    let started = run.started_at();
    let done = run.wait(within);
    let gone = started + done.elapsed;
    (done, gone)
}

/// Asserts grace-init exited (at `gone`) with `code` no later than `grace` plus `BOUND` after `since`.
fn assert_exit(done: &Finished, gone: Instant, code: i32, since: Instant, grace: f64, what: &str) {
    let took = gone.saturating_duration_since(since);
    assert_eq!(done.code, Some(code), "{what}: {}", done.stderr_text());
    assert!(
        took < secs(grace + BOUND),
        "{what}: exited {took:?} after the event, with a grace period of {grace} s\n{}",
        done.stderr_text()
    );
}

/// Asserts no signal grace-init sent was refused, and no line claims one was.
fn assert_nothing_refused(done: &Finished, what: &str) {
    assert!(
        !done.stderr_text().contains("could not send"),
        "{what}: a signal was refused: {}",
        done.stderr_text()
    );
}

// Without signalfd grace-init waits for signals with sigtimedwait: a signal is forwarded, the stop signal starts
// the grace period, and an app that exits on it ends the run at once.
matrix!(
    without_signalfd_signals_are_forwarded_and_the_stop_ends_on_the_apps_exit,
    |mode, errno| {
        let what = format!("{mode:?} {errno}");
        let launch = Launch::refusing(errno, &["signalfd4", "signalfd"]);
        let reporter = reporter();
        let mut run = Run::launch(
            mode,
            &launch,
            &["-t", "5", "--", &reporter, "--exit-on", "TERM=0"],
        );
        run.expect_stdout("child ready", secs(10.0));
        run.signal(libc::SIGUSR1);
        run.expect_stdout("child got SIGUSR1", secs(5.0));
        run.signal(libc::SIGHUP);
        run.expect_stdout("child got SIGHUP", secs(5.0));
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        run.expect_stdout("child got SIGTERM", secs(5.0));
        let (done, gone) = finish(run, secs(10.0));
        assert_exit(&done, gone, 0, sent, 0.0, &what);
        let log = done.stderr_text();
        assert!(
            log.contains("sigtimedwait"),
            "{what}: the log does not say how signals are taken: {log}"
        );
        assert!(
            log.contains("leftovers: 0 sent SIGTERM, 0 SIGKILLed; exit code 0"),
            "{what}: {log}"
        );
    }
);

// Without signalfd the deadline still holds: an app that ignores SIGTERM is SIGKILLed when the grace period ends.
matrix!(
    without_signalfd_an_app_ignoring_sigterm_is_killed_at_the_deadline,
    |mode, errno| {
        let what = format!("{mode:?} {errno}");
        let launch = Launch::refusing(errno, &["signalfd4", "signalfd"]);
        let reporter = reporter();
        let mut run = Run::launch(
            mode,
            &launch,
            &["-t", "1", "--", &reporter, "--ignore", "TERM"],
        );
        run.expect_stdout("child ready", secs(10.0));
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let (done, gone) = finish(run, secs(10.0));
        assert!(
            gone.saturating_duration_since(sent) >= secs(1.0),
            "{what}: killed before the deadline: {}",
            done.stderr_text()
        );
        assert_exit(&done, gone, 137, sent, 1.0, &what);
        let log = done.stderr_text();
        assert!(
            log.contains("escalated: SIGKILL to the child and 0 other processes"),
            "{what}: {log}"
        );
        assert!(
            log.contains("leftovers: 0 sent SIGTERM, 0 SIGKILLed, and the child; exit code 137"),
            "{what}: {log}"
        );
        assert!(
            !done
                .stdout
                .iter()
                .any(|l| l.starts_with("child got SIGTERM")),
            "{what}: SIGTERM is ignored, not handled: {:#?}",
            done.stdout
        );
    }
);

/// Starts `sh` as the app, which starts `kid` (with a grandchild `grand`) in the background, in its own process
/// group, and exits once both are ready: `kid` becomes grace-init's child, `grand` stays below it, both in the
/// app's group. Returns the run once the app has exited and `kid` got the leftovers' SIGTERM, and when that was
/// seen.
fn start_leftovers(mode: Mode, launch: &Launch, grace: &str, scratch: &Scratch) -> (Run, Instant) {
    let reporter = reporter();
    let ready = scratch.path("kid-ready");
    let app = format!(
        "{reporter} --tag kid --ready-file {ready} --grandchild '--tag grand' & \
         while [ ! -e {ready} ]; do sleep 0.01; done; exit 0"
    );
    let mut run = Run::launch(mode, launch, &["-t", grace, "--", "sh", "-c", &app]);
    run.expect_stdout("kid ready", secs(20.0));
    run.expect_stdout("kid got SIGTERM", secs(5.0));
    let exited = Instant::now();
    (run, exited)
}

// A leftover below a living parent is signalled through a pidfd: when pidfd_send_signal is refused, kill(2) with
// the start-time check takes over, so it gets the signals forwarded to the app's group and the SIGKILL at the
// deadline, and the log counts both leftovers.
matrix!(
    without_pidfd_send_signal_a_leftover_below_another_gets_forwarded_signals_and_sigkill,
    |mode, errno| {
        let what = format!("{mode:?} {errno}");
        let scratch = Scratch::new(&format!("seccomp-send-{mode:?}-{errno}"));
        let launch = Launch::refusing(errno, &["pidfd_send_signal"]);
        let (mut run, exited) = start_leftovers(mode, &launch, "4", &scratch);
        run.signal(libc::SIGUSR1);
        run.expect_stdout("kid got SIGUSR1", secs(3.0));
        run.expect_stdout("grand got SIGUSR1", secs(3.0));
        let (done, gone) = finish(run, secs(10.0));
        assert_exit(&done, gone, 0, exited, 4.0, &what);
        assert_nothing_refused(&done, &what);
        assert!(
            !done
                .stdout
                .iter()
                .any(|l| l.starts_with("grand got SIGTERM")),
            "{what}: the grandchild is its parent's to stop: {:#?}",
            done.stdout
        );
        let log = done.stderr_text();
        assert!(log.contains("sent SIGTERM to 1 process"), "{what}: {log}");
        assert!(log.contains("SIGKILL to 2 processes"), "{what}: {log}");
        assert!(
            log.contains("leftovers: 1 sent SIGTERM, 2 SIGKILLed; exit code 0"),
            "{what}: {log}"
        );
    }
);

// Everything refused at once: the same leftovers, and a process entered from outside as PID 1, are reached.
matrix!(
    with_every_newer_call_refused_leftovers_get_forwarded_signals_and_sigkill,
    |mode, errno| {
        let what = format!("{mode:?} {errno}");
        let scratch = Scratch::new(&format!("seccomp-all-{mode:?}-{errno}"));
        let launch = Launch::refusing(errno, &ALL);
        let (mut run, exited) = start_leftovers(mode, &launch, "4", &scratch);
        run.signal(libc::SIGUSR1);
        run.expect_stdout("kid got SIGUSR1", secs(3.0));
        run.expect_stdout("grand got SIGUSR1", secs(3.0));
        let (done, gone) = finish(run, secs(10.0));
        assert_exit(&done, gone, 0, exited, 4.0, &what);
        assert_nothing_refused(&done, &what);
        let log = done.stderr_text();
        assert!(log.contains("SIGKILL to 2 processes"), "{what}: {log}");
        assert!(
            log.contains("leftovers: 1 sent SIGTERM, 2 SIGKILLed; exit code 0"),
            "{what}: {log}"
        );
    }
);

/// As PID 1, runs a reporter tagged `stranger` entered into grace-init's namespaces from outside (`docker exec`):
/// not grace-init's descendant, so a leftover reached only through /proc.
fn enter(run: &Run) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let reporter = reporter();
    let mut stranger = std::process::Command::new("nsenter")
        .args(["-t", &run.init_pid().to_string(), "-p", "-m", "--"])
        .args([&reporter, "--tag", "stranger", "--exit-on", "TERM=0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("nsenter");
    let lines = pump(stranger.stdout.take().expect("stdout"));
    (stranger, lines)
}

/// Waits (bounded) for a line starting with `needle` from `lines`.
fn expect_line(
    lines: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with(needle) {
            return line;
        }
    }
    panic!("no line {needle:?} within {within:?}");
}

/// PID 1 only: a process entered from outside gets SIGTERM with the app's, and grace-init exits once it is
/// gone, long before the deadline.
fn entered_process_is_stopped(errno: &str, syscalls: &[&str]) {
    if !pid1_available() {
        return;
    }
    let what = format!("{errno} {syscalls:?}");
    let reporter = reporter();
    let launch = Launch::refusing(errno, syscalls);
    let mut run = Run::launch(
        Mode::Pid1,
        &launch,
        &["-t", "10", "--", &reporter, "--exit-on", "TERM=0"],
    );
    run.expect_stdout("child ready", secs(10.0));
    let (mut stranger, lines) = enter(&run);
    expect_line(&lines, "stranger ready", secs(10.0));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let (done, gone) = finish(run, secs(15.0));
    // Everything it printed until it exited (it exits on SIGTERM; bounded should it not). grace-init sends it
    // SIGTERM, then SIGCONT; a Python handler can be interrupted by the next signal's handler, so the SIGCONT
    // line may come first when the SIGCONT lands while the SIGTERM handler is still running (seen under load).
    // The order the lines come in is the reporter's, not grace-init's: every line is checked, not the first.
    let mut told = Vec::new();
    let end = Instant::now() + secs(2.0);
    while let Ok(line) = lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
        told.push(line);
    }
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(
        told.iter().any(|l| l.starts_with("stranger got SIGTERM")),
        "{what}: the entered process did not get SIGTERM: {told:?}\n{}",
        done.stderr_text()
    );
    assert!(
        told.iter().all(|l| l.starts_with("stranger got SIGTERM")
            || l.starts_with("stranger got SIGCONT")),
        "{what}: the entered process got more than SIGTERM and SIGCONT: {told:?}\n{}",
        done.stderr_text()
    );
    assert_exit(&done, gone, 0, sent, 0.0, &what);
    assert_nothing_refused(&done, &what);
    assert!(
        done.stderr_text().contains("sent SIGTERM to 1 process"),
        "{what}: {}",
        done.stderr_text()
    );
}

#[test]
fn as_pid1_an_entered_process_gets_sigterm_when_pidfd_send_signal_is_refused() {
    entered_process_is_stopped("EPERM", &["pidfd_send_signal"]);
    entered_process_is_stopped("ENOSYS", &["pidfd_send_signal"]);
}

#[test]
fn as_pid1_an_entered_process_gets_sigterm_when_every_newer_call_is_refused() {
    entered_process_is_stopped("EPERM", &ALL);
    entered_process_is_stopped("ENOSYS", &ALL);
}

// Without close_range grace-init still closes the descriptors it inherited (the app keeps its copies).
matrix!(
    without_close_range_inherited_descriptors_are_closed_in_grace_init,
    |mode, errno| {
        let what = format!("{mode:?} {errno}");
        let (_read, write) = nix::unistd::pipe().expect("pipe");
        use std::os::fd::AsRawFd;
        let launch = Launch {
            inherit: vec![(7, write.as_raw_fd())],
            ..Launch::refusing(errno, &["close_range"])
        };
        let app = "[ -e /proc/self/fd/7 ] && echo child holds 7; echo child ready; exec sleep 100";
        let mut run = Run::launch(mode, &launch, &["-t", "1", "--", "sh", "-c", app]);
        run.expect_stdout("child holds 7", secs(10.0));
        run.expect_stdout("child ready", secs(10.0));
        let fd = format!("/proc/{}/fd/7", run.init_pid());
        let closed = wait_for(secs(5.0), || {
            std::fs::symlink_metadata(&fd).is_err().then_some(())
        });
        assert!(
            closed.is_some(),
            "{what}: grace-init still holds descriptor 7"
        );
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let (done, gone) = finish(run, secs(10.0));
        assert_exit(&done, gone, 143, sent, 1.0, &what);
    }
);

// Without pwritev2, a stderr pipe grace-init cannot reopen (no /proc as a subreaper, another user's pipe as PID 1)
// is written only when a slot is surely free: a stalled one never holds up the deadline.
matrix!(
    without_pwritev2_a_stalled_stderr_never_delays_the_deadline,
    |mode, errno| {
        let what = format!("{mode:?} {errno}");
        let base = match mode {
            Mode::Subreaper => Launch::without_proc(),
            Mode::Pid1 => Launch {
                prefix: as_user(65534),
                ..Launch::default()
            },
        };
        let launch = Launch {
            stderr: StderrTo::Stalled,
            ..base.and_refusing(errno, &["pwritev2"])
        };
        let reporter = reporter();
        let run = Run::launch(
            mode,
            &launch,
            &["-t", "1", "-v", "--", &reporter, "--ignore", "TERM"],
        );
        assert_killed_on_time(run, &what);
    }
);

// clone3 refused: grace-init starts the app and the pre-stop command with the older call, and so does the app.
matrix!(
    without_clone3_the_app_and_the_pre_stop_command_start_and_stop,
    |mode, errno| {
        let what = format!("{mode:?} {errno}");
        let scratch = Scratch::new(&format!("seccomp-clone3-{mode:?}-{errno}"));
        let marker = scratch.path("pre-stop-ran");
        let pre_stop = format!("touch {marker}");
        let launch = Launch::refusing(errno, &["clone3"]);
        let reporter = reporter();
        let mut run = Run::launch(
            mode,
            &launch,
            &[
                "-t",
                "5",
                "--pre-stop",
                &pre_stop,
                "--",
                &reporter,
                "--exit-on",
                "TERM=0",
            ],
        );
        run.expect_stdout("child ready", secs(10.0));
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        run.expect_stdout("child got SIGTERM", secs(5.0));
        let (done, gone) = finish(run, secs(10.0));
        assert_exit(&done, gone, 0, sent, 0.0, &what);
        assert!(
            std::path::Path::new(&marker).exists(),
            "{what}: the pre-stop command did not run"
        );
    }
);

// Pause mode without signalfd: orphans are reaped and the stop signal ends the pause.
matrix!(
    without_signalfd_pause_mode_ends_on_the_stop_signal,
    |mode, errno| {
        let what = format!("{mode:?} {errno}");
        let launch = Launch::refusing(errno, &["signalfd4", "signalfd"]);
        let mut run = Run::launch(mode, &launch, &["--pause"]);
        run.expect_stderr("sigtimedwait", secs(10.0));
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let (done, gone) = finish(run, secs(10.0));
        assert_exit(&done, gone, 0, sent, 0.0, &what);
    }
);
