//! Faults grace-init must survive, as PID 1 and as a subreaper: a closed or broken stderr, a child that exits
//! while its signal is being forwarded, a setsid grandchild that ignores SIGTERM, a child that stops itself, no
//! /proc, a non-root user, no file descriptors and no fork at start, and the signals the C library reserves.

mod common;

use std::time::Instant;

use common::*;

/// A process started by a test that may outlive grace-init (an orphan of a failed run): SIGKILLed on drop if it is
/// still the reporter it was.
struct Stray(Vec<i32>);

impl Drop for Stray {
    fn drop(&mut self) {
        for pid in &self.0 {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("reporter.py") {
                send_signal(*pid, libc::SIGKILL);
            }
        }
    }
}

/// `sh -c 'exec grace-init ARGS 2>&-'`: grace-init starts with fd 2 closed.
const CLOSE_STDERR: &[&str] = &["sh", "-c", "exec \"$0\" \"$@\" 2>&-"];

/// The child of grace-init whose command name is `comm`, by outside pid.
fn find(run: &Run, comm: &str) -> Option<i32> {
    run.descendants().into_iter().find(|p| {
        std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
    })
}

/// The ready line's pid, for a reporter in subreaper mode (same PID namespace as the test).
fn ready_pid(line: &str) -> i32 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// USR1 reaches the child, then TERM ends the run with the child's code 7: the common check of the stderr tests.
fn supervise_and_forward(mode: Mode, launch: &Launch, verbose: bool) {
    eprintln!("-- {mode:?}, verbose={verbose}");
    let reporter = reporter();
    let mut args = vec!["-t", "5"];
    if verbose {
        args.push("-vv");
    }
    args.extend(["--", &reporter, "--exit-on", "TERM=7"]);
    let mut run = Run::launch(mode, launch, &args);
    run.expect_stdout("child ready", secs(10.0));
    for _ in 0..3 {
        run.signal(libc::SIGUSR1);
        run.expect_stdout("child got SIGUSR1", secs(5.0));
    }
    run.signal(libc::SIGHUP);
    run.expect_stdout("child got SIGHUP", secs(5.0));
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(10.0));
    assert_eq!(
        done.signal, None,
        "{mode:?} verbose={verbose}: grace-init died of a signal"
    );
    done.assert_exit_for(7, format!("verbose={verbose}"));
    assert!(done.stdout.iter().any(|l| l == "child got SIGTERM"));
}

per_mode! {
    fn with_stderr_closed_grace_init_keeps_supervising_and_forwarding(mode: Mode) {
        for verbose in [false, true] {
            supervise_and_forward(mode, &Launch::prefixed(CLOSE_STDERR), verbose);
        }
    }
}

per_mode! {
    fn with_stderr_a_pipe_whose_reader_is_gone_grace_init_keeps_supervising(mode: Mode) {
        let launch = Launch {
            stderr: StderrTo::BrokenPipe,
            ..Launch::default()
        };
        supervise_and_forward(mode, &launch, false);
    }
}

per_mode! {
    fn with_stderr_a_pipe_whose_reader_is_gone_debug_logging_does_not_wedge_the_loop(mode: Mode) {
        // Every debug line written to the broken pipe raises a SIGPIPE, which grace-init reads from its signalfd and
        // drops as its own, logging that at debug level: one more write, one more SIGPIPE. The loop must not spin on it.
        let launch = Launch {
            stderr: StderrTo::BrokenPipe,
            ..Launch::default()
        };
        supervise_and_forward(mode, &launch, true);
    }
}

per_mode! {
    fn a_child_exiting_during_a_signal_storm_is_no_error_and_keeps_its_code(mode: Mode) {
        // The child ignores USR1 (so the storm cannot kill it) and exits 3 by itself while USR1s keep coming: some are
        // forwarded to a group that no longer exists (ESRCH), which is normal and never a warning. The debug log goes
        // to a file: a pipe read by the test can fall behind a storm, and then grace-init (rightly) drops lines and
        // says so in a warning of its own.
        let script = "trap '' USR1; echo ready; sleep 0.4; exit 3";
        let scratch = Scratch::new("storm-exit");
        for single_child in [false, true] {
            let mut args = vec!["-v", "-t", "5"];
            if single_child {
                args.push("-c");
            }
            args.extend(["--", "sh", "-c", script]);
            let log = scratch.0.join(format!("{mode:?}-{single_child}.log"));
            let launch = Launch {
                stderr: StderrTo::File(log.clone()),
                ..Launch::default()
            };
            let mut run = Run::launch(mode, &launch, &args);
            run.expect_stdout("ready", secs(10.0));
            let began = Instant::now();
            let mut sent = 0;
            while began.elapsed() < secs(2.0) {
                if run.try_signal(libc::SIGUSR1) != 0 {
                    break;
                }
                sent += 1;
                // A zombie grace-init (subreaper mode, not yet waited for) still accepts signals: stop there.
                if sent % 64 == 0 && matches!(state(run.init_pid()), Some('Z') | None) {
                    break;
                }
            }
            let mut done = run.wait(secs(10.0));
            done.stderr = std::fs::read_to_string(&log)
                .expect("the log file")
                .lines()
                .map(str::to_string)
                .collect();
            let what = format!("{mode:?} single_child={single_child} after {sent} USR1");
            let esrch = done
                .stderr
                .iter()
                .filter(|l| l.contains("no such process"))
                .count();
            eprintln!(
                "{what} in {:?}: {esrch} forwarded to a process that was gone",
                began.elapsed()
            );
            done.assert_exit_for(3, &what);
            let bad: Vec<_> = done
                .stderr
                .iter()
                .filter(|l| l.contains("warning") || l.contains("error"))
                .collect();
            assert!(bad.is_empty(), "{what}: {bad:#?}");
            assert!(
                sent > 100,
                "{what}: the storm was too small to mean anything"
            );
        }
    }
}

per_mode! {
    fn a_signal_for_a_process_group_that_is_gone_is_a_debug_line_not_a_warning(mode: Mode) {
        // The child exits 3 and leaves a setsid grandchild that takes 1 s to finish after SIGTERM. Meanwhile USR1 is
        // forwarded to what is left of the child's process group, which is nobody: once the child is reaped its group
        // id is never used again (it may be someone else's by now), and the members found are none.
        let reporter = reporter();
        let mut run = Run::start(
            mode,
            &[
                "-v",
                "-t",
                "5",
                "--",
                &reporter,
                "--grandchild",
                "--tag grandchild --setsid --exit-on TERM=0 --linger 1",
                "--exit-now",
                "3",
            ],
        );
        run.expect_stdout("grandchild finishing", secs(10.0));
        for _ in 0..20 {
            run.signal(libc::SIGUSR1);
            std::thread::sleep(secs(0.005));
        }
        let done = run.wait(secs(10.0));
        let text = done.stderr_text();
        done.assert_exit(3);
        assert!(
            text.contains("forwarded SIGUSR1 to 0 remaining members"),
            "{mode:?}: {text}"
        );
        assert!(
            !text.contains("warning") && !text.contains("error"),
            "{mode:?}: {text}"
        );
    }
}

per_mode! {
    fn a_setsid_grandchild_ignoring_sigterm_is_killed_at_the_deadline_on_shutdown(mode: Mode) {
        let reporter = reporter();
        let mut run = Run::start(
            mode,
            &[
                "-t",
                "1",
                "--",
                &reporter,
                "--exit-on",
                "TERM=0",
                "--grandchild",
                "--tag grandchild --setsid --ignore TERM",
            ],
        );
        run.expect_stdout("grandchild ready", secs(10.0));
        run.expect_stdout("child ready", secs(10.0));
        let before = run.descendants();
        assert_eq!(before.len(), 2, "{mode:?}: {before:?}");
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        let took = sent.elapsed();
        done.assert_exit(0);
        assert!(
            took >= secs(1.0) && took < secs(2.5),
            "{mode:?}: ended {took:?} after SIGTERM; want the 1 s deadline"
        );
        let text = done.stderr_text();
        assert!(text.contains("1 SIGKILLed"), "{mode:?}: {text}");
        let left: Vec<_> = before.iter().filter(|p| state(**p).is_some()).collect();
        assert!(left.is_empty(), "{mode:?}: still alive: {left:?}");
    }
}

per_mode! {
    fn a_child_that_stops_itself_during_shutdown_is_killed_at_the_deadline(mode: Mode) {
        // On SIGTERM the shell stops itself (after its `sleep` died of the same SIGTERM): it can never exit on its own.
        // grace-init follows the stop signal with SIGCONT; on a busy machine the shell may stop between the two and be
        // continued, so it stops itself again whenever it is continued. It must be seen stopped well before the 3 s
        // deadline, which is what makes the scenario.
        let script =
            "trap 'while :; do kill -STOP $$; done' TERM; echo ready; while :; do sleep 0.05; done";
        let mut run = Run::start(mode, &["-t", "3", "--", "sh", "-c", script]);
        run.expect_stdout("ready", secs(10.0));
        let child = find(&run, "sh").expect("the shell");
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let stopped = wait_for(secs(2.5), || (state(child) == Some('T')).then_some(()));
        assert!(
            stopped.is_some(),
            "{mode:?}: the child did not stop itself within 2.5 s ({:?})",
            state(child)
        );
        let done = run.wait(secs(10.0));
        let took = sent.elapsed();
        done.assert_exit(137);
        assert!(
            took >= secs(3.0) && took < secs(4.5),
            "{mode:?}: SIGKILL after {took:?}; want the 3 s deadline"
        );
    }
}

per_mode! {
    fn a_child_stopped_before_the_stop_signal_does_not_outlive_the_deadline(mode: Mode) {
        // Stopped by someone else before `docker stop`: the forwarded SIGTERM waits, pending. grace-init may continue it
        // (then it exits 0) or kill it at the deadline (137); it must not wait past the deadline.
        let reporter = reporter();
        let mut run = Run::start(mode, &["-t", "1", "--", &reporter, "--exit-on", "TERM=0"]);
        run.expect_stdout("child ready", secs(10.0));
        let child = find(&run, "python3")
            .or_else(|| run.descendants().first().copied())
            .expect("child");
        assert_eq!(send_signal(child, libc::SIGSTOP), 0);
        wait_for(secs(2.0), || (state(child) == Some('T')).then_some(())).expect("stopped");
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        let took = sent.elapsed();
        assert!(
            matches!(done.code, Some(0) | Some(137)),
            "{mode:?}: {:?} {}",
            done.code,
            done.stderr_text()
        );
        assert!(
            took < secs(2.5),
            "{mode:?}: took {took:?} with a 1 s deadline"
        );
    }
}

#[test]
fn subreaper_without_proc_warns_and_still_supervises() {
    let reporter = reporter();
    // A cooperative child: forwarding works, and SIGTERM ends the run with its code.
    let mut run = Run::launch(
        Mode::Subreaper,
        &Launch::without_proc(),
        &["-t", "5", "--", &reporter, "--exit-on", "TERM=4"],
    );
    run.expect_stdout("child ready", secs(10.0));
    run.signal(libc::SIGUSR2);
    run.expect_stdout("child got SIGUSR2", secs(5.0));
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(10.0));
    done.assert_exit(4);
    assert_eq!(done.signal, None);
    let text = done.stderr_text();
    assert!(text.contains("warning") && text.contains("/proc"), "{text}");
    // A child ignoring SIGTERM: its group is still SIGKILLed at the deadline.
    let mut run = Run::launch(
        Mode::Subreaper,
        &Launch::without_proc(),
        &["-t", "1", "--", &reporter, "--ignore", "TERM"],
    );
    run.expect_stdout("child ready", secs(10.0));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(10.0));
    let took = sent.elapsed();
    done.assert_exit(137);
    assert!(took >= secs(1.0) && took < secs(2.5), "took {took:?}");
}

#[test]
fn subreaper_without_proc_still_ends_at_the_deadline_when_a_leftover_cannot_be_found() {
    // The child exits 5 and leaves a setsid grandchild: without /proc a subreaper cannot find it (it is outside
    // the child's group). The shutdown must stay bounded: exit with 5 once the deadline has passed, with a warning,
    // rather than wait (and log every 100 ms) for as long as the grandchild lives.
    let reporter = reporter();
    let mut run = Run::launch(
        Mode::Subreaper,
        &Launch::without_proc(),
        &[
            "-t",
            "1",
            "--",
            &reporter,
            "--grandchild",
            "--tag grandchild --setsid --exit-on TERM=0",
            "--exit-now",
            "5",
        ],
    );
    let line = run.expect_stdout("grandchild ready", secs(10.0));
    let _stray = Stray(vec![ready_pid(&line)]);
    let done = run.wait(secs(5.0));
    done.assert_exit(5);
    assert!(
        done.stderr.len() < 20,
        "log flood: {} lines",
        done.stderr.len()
    );
}

#[test]
fn pid1_without_its_own_proc_falls_back_to_kill_minus_1() {
    if !pid1_available() {
        return;
    }
    // A new PID namespace whose /proc is still the parent's: grace-init cannot walk its tree and must fall back to
    // kill(-1), which as PID 1 reaches the setsid grandchild that ignores SIGTERM.
    let launch = Launch {
        launcher: Some(strings(&[
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
        ])),
        ..Launch::default()
    };
    let reporter = reporter();
    let mut run = Run::launch(
        Mode::Pid1,
        &launch,
        &[
            "-t",
            "1",
            "--",
            &reporter,
            "--exit-on",
            "TERM=0",
            "--grandchild",
            "--tag grandchild --setsid --ignore TERM",
        ],
    );
    run.expect_stdout("grandchild ready", secs(10.0));
    run.expect_stdout("child ready", secs(10.0));
    run.signal(libc::SIGUSR1);
    run.expect_stdout("child got SIGUSR1", secs(5.0));
    let before = run.descendants();
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(10.0));
    let took = sent.elapsed();
    done.assert_exit(0);
    assert!(took >= secs(1.0) && took < secs(2.5), "took {took:?}");
    let text = done.stderr_text();
    // kill(-1) reaches everyone, so this is no cause for a warning, but the log says how it was done.
    assert!(
        text.contains("(kill -1)") && !text.contains("warning"),
        "{text}"
    );
    let left: Vec<_> = before.iter().filter(|p| state(**p).is_some()).collect();
    assert!(left.is_empty(), "still alive: {left:?}");
}

/// The features that need no root: forwarding with a rewrite, a pre-stop command, the grace period with a
/// leftover that ignores SIGTERM, --expect-exit.
fn non_root_run(mode: Mode, launch: &Launch, uid: u32) {
    let reporter = reporter();
    let mut run = Run::launch(
        mode,
        launch,
        &[
            "-t",
            "1",
            "-r",
            "HUP:USR2",
            "--pre-stop",
            "echo pre-stop ran as $(id -u) >&2",
            "-e",
            "3",
            "--",
            &reporter,
            "--exit-on",
            "TERM=3",
            "--grandchild",
            "--tag grandchild --setsid --ignore TERM",
        ],
    );
    run.expect_stdout("grandchild ready", secs(10.0));
    run.expect_stdout("child ready", secs(10.0));
    let uid_line = status_field(run.init_pid(), "Uid").unwrap_or_default();
    assert!(
        uid_line.starts_with(&uid.to_string()),
        "{mode:?}: grace-init runs as {uid_line}"
    );
    run.signal(libc::SIGHUP);
    run.expect_stdout("child got SIGUSR2", secs(5.0));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(10.0));
    let took = sent.elapsed();
    let text = done.stderr_text();
    done.assert_exit(0);
    assert!(took >= secs(1.0) && took < secs(2.5), "{mode:?}: {took:?}");
    assert!(text.contains("pre-stop ran as"), "{mode:?}: {text}");
    assert!(text.contains("1 SIGKILLed"), "{mode:?}: {text}");
    assert!(!text.contains("warning"), "{mode:?}: {text}");
}

#[test]
fn as_a_non_root_user_subreaper_mode_works() {
    let launch = Launch {
        prefix: as_user(64010),
        ..Launch::default()
    };
    non_root_run(Mode::Subreaper, &launch, 64010);
}

fn user_namespaces_available(uid: u32) -> bool {
    let ok = std::process::Command::new("setpriv")
        .args(as_user(uid))
        .args(["unshare", "--user", "--map-root-user", "--pid", "--fork"])
        .args(["--mount-proc", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "unprivileged user namespaces are required in CI"
        );
        eprintln!("SKIPPED: an unprivileged user cannot create a user namespace here");
    }
    ok
}

#[test]
fn as_a_non_root_user_pid1_mode_works_in_a_user_namespace() {
    let uid = 64013;
    if !user_namespaces_available(uid) {
        return;
    }
    let mut launcher = as_user(uid);
    launcher.extend(strings(&[
        "unshare",
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "--",
    ]));
    let launch = Launch {
        launcher: Some(launcher),
        ..Launch::default()
    };
    non_root_run(Mode::Pid1, &launch, uid);
}

per_mode! {
    fn a_signal_refused_for_lack_of_cap_kill_is_reported_once_per_target_not_at_every_sweep(mode: Mode) {
        // The app drops to nobody by itself; grace-init, root without CAP_KILL, may not signal it. It ends on its
        // own 3 s later, 2 s past the deadline: meanwhile every SIGKILL sweep is refused again.
        let app = "echo ready; exec sleep 3";
        let args = [
            "-t",
            "1",
            "--",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "sh",
            "-c",
            app,
        ];
        let mut run = Run::launch(mode, &Launch::without_cap_kill(), &args);
        run.expect_stdout("ready", secs(10.0));
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(15.0));
        let refused: Vec<&String> = done
            .stderr
            .iter()
            .filter(|l| l.contains("could not send"))
            .collect();
        assert!(
            !refused.is_empty(),
            "{mode:?}: the refusal is reported: {}",
            done.stderr_text()
        );
        // "could not send SIGKILL to 42: ...": the target is the word after "to".
        let target = |line: &str| {
            let after = line.split(" to ").nth(1).unwrap_or_default();
            after.split(':').next().unwrap_or_default().to_string()
        };
        let mut targets: Vec<String> = refused.iter().map(|l| target(l)).collect();
        targets.sort();
        let count = targets.len();
        targets.dedup();
        assert_eq!(
            count,
            targets.len(),
            "{mode:?}: a target reported twice: {refused:#?}"
        );
    }
}

per_mode! {
    fn fd_exhaustion_at_start_is_a_clear_error_exit_1_and_starts_nothing(mode: Mode) {
        let scratch = Scratch::new("nofile");
        let mut refused = 0;
        for limit in 3..=8 {
            let marker = scratch.path(&format!("{mode:?}-{limit}"));
            let nofile = format!("--nofile={limit}:{limit}");
            let launch = Launch::prefixed(&["prlimit", &nofile, "--"]);
            let touch = format!("touch {marker}");
            let done = Run::launch(mode, &launch, &["--", "sh", "-c", &touch]).wait(secs(10.0));
            let started = std::path::Path::new(&marker).exists();
            let what = format!("{mode:?} nofile={limit}: {:?} {:?}", done.code, done.stderr);
            match done.code {
                Some(0) => assert!(started, "{what}: exit 0 but the command did not run"),
                Some(1) => {
                    refused += 1;
                    assert!(!started, "{what}: exit 1 after starting the command");
                    assert_eq!(done.stderr.len(), 1, "{what}: one line");
                    let line = &done.stderr[0];
                    assert!(
                        line.starts_with("grace-init: error: ")
                            && line.contains("too many open files"),
                        "{what}"
                    );
                }
                // Too few descriptors for the dynamic loader to map the Rust runtime's libraries: grace-init
                // never ran (a static build starts, and fails with exit 1 like the other limits).
                Some(127) => {
                    assert!(!started, "{what}");
                    assert!(
                        done.stderr_text()
                            .contains("error while loading shared libraries"),
                        "{what}"
                    );
                }
                _ => panic!("{what}"),
            }
        }
        assert!(
            refused > 0,
            "{mode:?}: no descriptor limit made grace-init refuse"
        );
    }
}

/// Processes whose real uid is `uid`, anywhere on the machine.
fn processes_of(uid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            status_field(*pid, "Uid")
                .and_then(|u| u.split_whitespace().next().map(str::to_string))
                .is_some_and(|real| real == uid.to_string())
        })
        .collect()
}

per_mode! {
    fn fork_failure_at_start_is_a_clear_error_exit_1_and_leaves_nothing(mode: Mode) {
        // RLIMIT_NPROC counts the processes of the real uid; root is exempt, so drop to a uid of our own first, one
        // per mode: the two modes run at once, and would count each other's processes.
        let uid = match mode {
            Mode::Pid1 => 64011,
            Mode::Subreaper => 64021,
        };
        let scratch = Scratch::new("nproc");
        let marker = scratch.path(&format!("{mode:?}"));
        let mut prefix = as_user(uid);
        prefix.extend(strings(&["prlimit", "--nproc=1:1", "--"]));
        let launch = Launch {
            prefix,
            ..Launch::default()
        };
        let touch = format!("touch {marker}");
        let done = Run::launch(mode, &launch, &["--", "sh", "-c", &touch]).wait(secs(10.0));
        let what = format!("{mode:?}: {:?} {:?}", done.code, done.stderr);
        done.assert_exit_for(1, &what);
        assert_eq!(done.stderr.len(), 1, "{what}: one line");
        assert!(
            done.stderr[0].starts_with("grace-init: error: ") && done.stderr[0].contains("'sh'"),
            "{what}"
        );
        assert!(!std::path::Path::new(&marker).exists(), "{what}");
        let left = processes_of(uid);
        assert!(left.is_empty(), "{what}: left behind {left:?}");
    }
}

per_mode! {
    fn fork_failure_for_the_pre_stop_command_is_a_warning_and_shutdown_goes_on(mode: Mode) {
        // grace-init and its child use up a process limit of 2: the pre-stop command cannot be forked. A uid of
        // each mode's own: the two modes run at once, and would count each other's processes.
        let uid = match mode {
            Mode::Pid1 => 64012,
            Mode::Subreaper => 64022,
        };
        let scratch = Scratch::new("nproc-prestop");
        let marker = scratch.path(&format!("{mode:?}"));
        let mut prefix = as_user(uid);
        prefix.extend(strings(&["prlimit", "--nproc=2:2", "--"]));
        let launch = Launch {
            prefix,
            ..Launch::default()
        };
        let pre_stop = format!("touch {marker}");
        let run = Run::launch(
            mode,
            &launch,
            &["-t", "5", "--pre-stop", &pre_stop, "--", "sleep", "30"],
        );
        wait_for(secs(5.0), || find(&run, "sleep")).expect("sleep started");
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        let what = format!("{mode:?}: {:?} {}", done.code, done.stderr_text());
        done.assert_exit_for(143, &what);
        assert!(sent.elapsed() < secs(2.5), "{what}");
        assert!(
            done.stderr_text()
                .contains("warning: cannot run pre-stop command"),
            "{what}"
        );
        assert!(!std::path::Path::new(&marker).exists(), "{what}");
        assert!(processes_of(uid).is_empty(), "{what}");
    }
}

per_mode! {
    fn signals_reserved_by_the_c_library_do_not_kill_grace_init(mode: Mode) {
        // glibc keeps signals 32 and 33 for itself: sigfillset() leaves them out, so they are neither blocked nor read
        // from the signalfd, and their default action is to terminate. Anyone who may signal grace-init (or a
        // `--pdeathsig 33`) must not be able to kill it and orphan the app that way.
        let reporter = reporter();
        eprintln!("-- {mode:?}");
        let mut run = Run::start(mode, &["-t", "5", "--", &reporter, "--exit-on", "TERM=0"]);
        let line = run.expect_stdout("child ready", secs(10.0));
        let _stray = Stray(match mode {
            Mode::Subreaper => vec![ready_pid(&line)],
            Mode::Pid1 => vec![],
        });
        for signal in [32, 33] {
            assert_eq!(run.try_signal(signal), 0, "{mode:?}: kill {signal}");
            run.signal(libc::SIGUSR1);
            run.expect_stdout("child got SIGUSR1", secs(3.0));
        }
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        assert_eq!(done.signal, None, "{mode:?}: grace-init was killed");
        done.assert_exit(0);
    }
}
