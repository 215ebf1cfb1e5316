//! The core contract, observed from outside: exit codes, forwarding, reaping, escalation, clean child start,
//! usage errors. Every test runs grace-init as a real PID 1 and as a subreaper where it applies.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn args<'a>(prefix: &[&'a str], rest: &'a [String]) -> Vec<&'a str> {
    prefix
        .iter()
        .copied()
        .chain(rest.iter().map(String::as_str))
        .collect()
}

per_mode! {
    fn exit_codes_0_to_255_pass_through(mode: Mode) {
        for code in 0..=255 {
            let script = sh(&format!("exit {code}"));
            let done = Run::start(mode, &args(&["--"], &script)).wait(secs(10.0));
            done.assert_exit_for(code, format!("exit {code}"));
        }
    }
}

/// Signals whose default action ends a process (so `sleep` dies of them), minus the stop signals.
fn fatal_signals() -> Vec<i32> {
    let ignored_by_default = [libc::SIGCHLD, libc::SIGCONT, libc::SIGURG, libc::SIGWINCH];
    let stops = [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];
    (1..=libc::SIGRTMAX())
        .filter(|s| {
            *s != libc::SIGKILL
                && !ignored_by_default.contains(s)
                && !stops.contains(s)
                && !FAULTS.contains(s)
        })
        .filter(|s| *s <= 31 || *s >= libc::SIGRTMIN())
        .collect()
}

per_mode! {
    fn a_child_killed_by_signal_n_gives_128_plus_n(mode: Mode) {
        for signal in fatal_signals() {
            let script = sh("echo ready; exec sleep 60");
            let mut run = Run::start(mode, &args(&["--"], &script));
            run.expect_stdout("ready", secs(5.0));
            // `sleep` is exec'd by then only once /proc shows it; wait for the exec to be visible.
            wait_for(secs(5.0), || {
                run.descendants()
                    .first()
                    .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
                    .filter(|c| c.trim() == "sleep")
            })
            .expect("sleep started");
            run.signal(signal);
            let done = run.wait(secs(10.0));
            done.assert_exit_for(128 + signal, format!("signal {signal}"));
        }
    }
}

per_mode! {
    fn exec_failures_are_127_and_126_with_the_path_and_reason(mode: Mode) {
        let scratch = Scratch::new("exec");
        let dir = scratch.0.clone();
        let not_exec = dir.join("not-executable");
        std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
        let not_exec = not_exec.to_str().unwrap().to_string();
        let bad_interpreter = dir.join("bad-interpreter");
        std::fs::write(&bad_interpreter, "#!/no/such/interpreter\n").unwrap();
        std::fs::set_permissions(
            &bad_interpreter,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let bad_interpreter = bad_interpreter.to_str().unwrap().to_string();
        let table: Vec<(Vec<String>, i32, &str)> = vec![
            (vec!["no-such-command-xyz".into()], 127, "not found"),
            (vec!["/no/such/path".into()], 127, "no such file"),
            (vec![not_exec.clone()], 126, "permission denied"),
            (vec![dir.to_str().unwrap().into()], 126, "is a directory"),
            (vec![bad_interpreter.clone()], 126, "interpreter"),
        ];
        for (command, want, reason) in &table {
            let done = Run::start(mode, &args(&["--"], command)).wait(secs(10.0));
            done.assert_exit_for(*want, format!("{command:?}"));
            let err = done.stderr_text().to_lowercase();
            done.check(
                err.contains(&command[0].to_lowercase()) && err.contains(reason),
                format!("{command:?}: the log names the path and {reason:?}"),
            );
        }
    }
}

#[test]
fn usage_errors_exit_2_with_one_line_and_start_nothing() {
    let scratch = Scratch::new("usage");
    let marker = scratch.0.join("started");
    let touch = format!("touch {}", marker.display());
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--bogus", "--", "sh", "-c", &touch], vec![], "--bogus"),
        (vec![], vec![], "missing command"),
        (vec!["--"], vec![], "missing command"),
        (
            vec!["--timeout", "abc", "--", "sh", "-c", &touch],
            vec![],
            "abc",
        ),
        (
            vec!["--timeout", "-1", "--", "sh", "-c", &touch],
            vec![],
            "-1",
        ),
        (
            vec!["--timeout", "99999999999999h", "--", "sh", "-c", &touch],
            vec![],
            "99999999999999h",
        ),
        (
            vec!["--", "sh", "-c", &touch],
            vec![("GRACE_INIT_TIMEOUT", "soon")],
            "soon",
        ),
        (
            vec!["--", "sh", "-c", &touch],
            vec![("GRACE_INIT_SINGLE_CHILD", "maybe")],
            "maybe",
        ),
        (
            vec!["-r", "TERM:KILL", "--", "sh", "-c", &touch],
            vec![],
            "TERM:KILL",
        ),
        (vec!["-e", "300", "--", "sh", "-c", &touch], vec![], "300"),
    ];
    for (argv, env, named) in &cases {
        let done = Run::start_env(Mode::Subreaper, argv, env).wait(secs(10.0));
        assert_eq!(done.code, Some(2), "{argv:?} {env:?}: {:?}", done.stderr);
        assert_eq!(
            done.stderr.len(),
            1,
            "{argv:?}: exactly one line: {:?}",
            done.stderr
        );
        assert!(
            done.stderr[0].contains(named),
            "{argv:?}: {:?} should name {named}",
            done.stderr
        );
        assert!(
            done.stdout.is_empty(),
            "nothing on stdout: {:?}",
            done.stdout
        );
        assert!(
            !marker.exists(),
            "{argv:?}: the command must not have been started"
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    for flag in ["--help", "-h", "--version", "-V"] {
        let done = Run::start(Mode::Subreaper, &[flag]).wait(secs(10.0));
        assert_eq!(done.code, Some(0), "{flag}");
        assert!(
            done.stdout.join("\n").contains("grace-init"),
            "{flag}: {:?}",
            done.stdout
        );
    }
}

/// Every signal grace-init receives and does not keep for itself, except the stop signals (tested apart).
fn forwardable() -> Vec<i32> {
    let not_forwarded = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGCHLD,
        libc::SIGTERM,
        libc::SIGINT,
    ];
    (1..=libc::SIGRTMAX())
        .filter(|s| !not_forwarded.contains(s) && !FAULTS.contains(s))
        .filter(|s| *s <= 31 || *s >= libc::SIGRTMIN())
        .collect()
}

fn py_name(signal: i32) -> String {
    if signal >= libc::SIGRTMIN() {
        return format!("SIGRTMIN+{}", signal - libc::SIGRTMIN());
    }
    let names = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGSTKFLT, "SIGSTKFLT"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGURG, "SIGURG"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
    ];
    names
        .iter()
        .find(|(n, _)| *n == signal)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| signal.to_string())
}

per_mode! {
    fn every_forwardable_signal_reaches_the_child_and_its_group(mode: Mode) {
        let reporter = reporter();
        for single_child in [false, true] {
            let mut argv = vec!["-t", "5"];
            if single_child {
                argv.push("-c");
            }
            argv.extend([
                "--",
                &reporter,
                "--exit-on",
                "TERM=0",
                "--grandchild",
                "--tag grandchild --exit-on TERM=0",
            ]);
            let mut run = Run::start(mode, &argv);
            run.expect_stdout("child ready", secs(10.0));
            run.expect_stdout("grandchild ready", secs(10.0));
            for signal in forwardable() {
                run.signal(signal);
                let line = run.expect_stdout(&format!("child got {}", py_name(signal)), secs(5.0));
                assert!(line.starts_with("child "), "{line}");
                if !single_child {
                    run.expect_stdout(&format!("grandchild got {}", py_name(signal)), secs(5.0));
                }
            }
            // Ends the run: TERM goes to the group (both exit 0) or to the child alone.
            run.signal(libc::SIGTERM);
            let done = run.wait(secs(10.0));
            done.assert_exit_for(0, format!("single_child={single_child}"));
            if single_child {
                let leaked: Vec<_> = done
                    .stdout
                    .iter()
                    // As a leftover after the child's exit it gets SIGTERM and then SIGCONT, by design.
                    .filter(|l| {
                        l.starts_with("grandchild got")
                            && !l.ends_with("SIGTERM")
                            && !l.ends_with("SIGCONT")
                    })
                    .collect();
                assert!(
                    leaked.is_empty(),
                    "with -c the grandchild got forwarded signals: {leaked:?}"
                );
                // The grandchild outlived the child and got SIGTERM as a leftover.
                assert!(
                    done.stdout.iter().any(|l| l == "grandchild got SIGTERM"),
                    "{:?}",
                    done.stdout
                );
            }
        }
    }
}

per_mode! {
    fn thousand_orphans_are_reaped_with_no_zombie_left(mode: Mode) {
        // The child makes 1000 short-lived orphans (double fork), then stays alive so only grace-init can reap them.
        let script = r#"
import os, time
for _ in range(1000):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            time.sleep(0.05)
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
print('spawned', flush=True)
time.sleep(60)
"#;
        let mut run = Run::start(mode, &["-t", "2", "--", "python3", "-c", script]);
        run.expect_stdout("spawned", secs(30.0));
        if let Err(left) = run.only_the_child_left(secs(10.0)) {
            panic!("{mode:?}: processes left besides the child: {left:?}");
        }
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit(143);
    }
}

per_mode! {
    fn a_child_ignoring_sigterm_is_killed_at_the_timeout(mode: Mode) {
        let run = Run::start_reporter(mode, &["-t", "1"], &["--ignore", "TERM"]);
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        let took = sent.elapsed();
        done.assert_exit(137);
        assert!(
            took >= secs(1.0) && took < secs(1.5),
            "{mode:?}: SIGKILL after {took:?}, want 1 s ≤ t < 1.5 s"
        );
        done.assert_log_contains("SIGKILL");
    }
}

per_mode! {
    fn a_cooperative_child_ends_the_run_promptly_without_sigkill(mode: Mode) {
        let run = Run::start_reporter(mode, &["-t", "10"], &["--exit-on", "TERM=0"]);
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        let took = sent.elapsed();
        eprintln!("{mode:?}: SIGTERM -> grace-init exit with a cooperative child: {took:?}");
        done.assert_exit(0);
        assert!(
            took < secs(2.0),
            "{mode:?}: took {took:?} with a 10 s timeout"
        );
        assert!(done.stdout.contains(&"child got SIGTERM".to_string()));
        done.assert_log_contains("0 SIGKILLed");
        done.assert_log_lacks("grace period over");
    }
}

per_mode! {
    fn a_grandchild_outliving_the_child_is_terminated_and_the_childs_code_kept(mode: Mode) {
        for setsid in [false, true] {
            let grandchild = if setsid {
                "--tag grandchild --exit-on TERM=0 --linger 0.3 --setsid"
            } else {
                "--tag grandchild --exit-on TERM=0 --linger 0.3"
            };
            let mut run = Run::start_reporter(
                mode,
                &["-t", "5"],
                &["--grandchild", grandchild, "--exit-now", "7"],
            );
            run.expect_stdout("grandchild ready", secs(10.0));
            let done = run.wait(secs(10.0));
            done.assert_exit_for(7, format!("setsid={setsid}"));
            for want in ["grandchild got SIGTERM", "grandchild finished"] {
                assert!(
                    done.stdout.iter().any(|l| l == want),
                    "{mode:?} setsid={setsid}: {want}: {:?}",
                    done.stdout
                );
            }
        }
    }
}

per_mode! {
    fn a_grandchild_ignoring_sigterm_after_the_child_exits_is_killed_at_the_timeout(mode: Mode) {
        let mut run = Run::start_reporter(
            mode,
            &["-t", "1"],
            &["--grandchild", "--tag grandchild --ignore TERM --setsid", "--exit-now", "5"],
        );
        run.expect_stdout("grandchild ready", secs(10.0));
        let done = run.wait(secs(10.0));
        done.assert_exit(5);
        assert!(
            done.elapsed >= secs(1.0),
            "{mode:?}: waited {:?}",
            done.elapsed
        );
        done.assert_log_contains("1 SIGKILLed");
    }
}

per_mode! {
    fn the_child_starts_with_no_blocked_or_ignored_signal_and_only_fds_0_1_2(mode: Mode) {
        // The parent of grace-init ignores INT and HUP: the child must not inherit that.
        let run = Run::start(mode, &["--", "sh", "-c", "trap '' INT HUP; exec sleep 60"]);
        let child = wait_for(secs(5.0), || {
            run.descendants().into_iter().find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
        })
        .expect("sleep started");
        // sh set its traps itself, so check grace-init's own child through a fresh run below as well.
        assert_eq!(
            status_field(child, "SigBlk").as_deref(),
            Some("0000000000000000"),
            "{mode:?}"
        );
        run.signal(libc::SIGKILL);
        drop(run);

        let run = Run::start(mode, &["--", "sleep", "60"]);
        let child = wait_for(secs(5.0), || run.descendants().first().copied()).expect("child");
        // The name changes early in exec, before close-on-exec descriptors are closed: wait until `sleep`
        // actually sleeps (state S), so the exec is over.
        wait_for(secs(5.0), || {
            std::fs::read_to_string(format!("/proc/{child}/comm"))
                .ok()
                .filter(|c| c.trim() == "sleep" && state(child) == Some('S'))
        })
        .expect("sleep exec'd");
        assert_eq!(
            status_field(child, "SigBlk").as_deref(),
            Some("0000000000000000"),
            "{mode:?} SigBlk"
        );
        assert_eq!(
            status_field(child, "SigIgn").as_deref(),
            Some("0000000000000000"),
            "{mode:?} SigIgn"
        );
        let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{child}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        fds.sort();
        assert_eq!(fds, vec![0, 1, 2], "{mode:?}: the child's descriptors");
        run.signal(libc::SIGTERM);
        assert_eq!(run.wait(secs(10.0)).code, Some(143));
    }
}

#[test]
fn a_parent_that_ignores_signals_does_not_leak_that_into_the_child() {
    // grace-init started by a shell that ignores INT, HUP and USR1; its child must have default dispositions.
    let inner = format!("trap '' INT HUP USR1; exec {BIN} -- sleep 60");
    let run = Run::start(Mode::Subreaper, &["--", "sh", "-c", &inner]);
    let sleeper = wait_for(secs(5.0), || {
        run.descendants().into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
    })
    .expect("sleep started");
    assert_eq!(
        status_field(sleeper, "SigIgn").as_deref(),
        Some("0000000000000000")
    );
    run.signal(libc::SIGTERM);
    let _ = run.wait(secs(10.0));
}

per_mode! {
    fn arguments_pass_through_byte_for_byte(mode: Mode) {
        let scratch = Scratch::new("args");
        let out = scratch.0.join("args");
        let script = format!("printf '%s|' \"$@\" > {}", out.display());
        let done = Run::start(
            mode,
            &[
                "--",
                "sh",
                "-c",
                &script,
                "sh",
                "a b",
                "",
                "--timeout",
                "-x",
                "ünï",
            ],
        )
        .wait(secs(10.0));
        done.assert_exit(0);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "a b||--timeout|-x|ünï|"
        );
    }
}

per_mode! {
    fn a_second_stop_signal_is_forwarded_again_and_the_deadline_holds(mode: Mode) {
        let mut run = Run::start_reporter(
            mode,
            &["-t", "1"],
            &["--ignore", "INT", "--exit-on", "TERM=3", "--linger", "5"],
        );
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        run.expect_stdout("child finishing", secs(5.0));
        run.signal(libc::SIGINT);
        let done = run.wait(secs(10.0));
        let took = sent.elapsed();
        done.assert_exit(137);
        assert!(took < secs(1.5), "{mode:?}: the deadline moved: {took:?}");
        done.assert_log_contains("received SIGINT again");
    }
}

#[test]
fn subreaper_mode_registers_quietly() {
    let done = Run::start(Mode::Subreaper, &["--", "true"]).wait(secs(10.0));
    done.assert_exit(0);
    done.assert_log_lacks("warning");
}

per_mode! {
    fn nothing_is_written_to_stdout_by_grace_init(mode: Mode) {
        let done = Run::start(mode, &["-vv", "--", "true"]).wait(secs(10.0));
        done.assert_exit(0);
        assert!(done.stdout.is_empty(), "{:?}", done.stdout);
        assert!(
            done.stderr.iter().all(|l| l.starts_with("grace-init")),
            "{:?}",
            done.stderr
        );
    }
}

per_mode! {
    fn idle_grace_init_does_not_wake_up(mode: Mode) {
        let mut run = Run::start(mode, &["--", "sh", "-c", "echo ready; exec sleep 60"]);
        run.expect_stdout("ready", secs(5.0));
        std::thread::sleep(Duration::from_millis(200));
        let before = wakeups(run.init_pid());
        std::thread::sleep(Duration::from_millis(1500));
        let after = wakeups(run.init_pid());
        assert_eq!(
            after,
            before,
            "{mode:?}: grace-init woke up {} times while idle",
            after - before
        );
        run.signal(libc::SIGTERM);
        assert_eq!(run.wait(secs(10.0)).code, Some(143));
    }
}

per_mode! {
    fn ctrl_c_on_a_terminal_reaches_the_app_like_docker_run_it(mode: Mode) {
        let pty_run = format!("{}/tests/fixtures/pty_run.py", env!("CARGO_MANIFEST_DIR"));
        let reporter = reporter();
        let mut command = std::process::Command::new("python3");
        command.arg(&pty_run);
        if mode == Mode::Pid1 {
            command.args(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]);
        }
        command.args([BIN, "--", &reporter, "--exit-on", "INT=0"]);
        let output = command.output().expect("run pty_run.py");
        let shown = String::from_utf8_lossy(&output.stdout);
        assert!(
            shown.contains("child got SIGINT"),
            "{mode:?}: Ctrl-C did not reach the app:\n{shown}"
        );
        assert!(shown.trim_end().ends_with("EXIT 0"), "{mode:?}: {shown}");
        // The app is the terminal's foreground group, so grace-init itself never receives the SIGINT.
        assert!(!shown.contains("received SIGINT"), "{mode:?}: {shown}");
    }
}

#[test]
fn a_broken_stderr_pipe_with_debug_logging_does_not_stall_supervision() {
    // Every log line then raises SIGPIPE in grace-init itself; those must be dropped without a feedback loop.
    use std::process::{Command, Stdio};
    let reporter = reporter();
    let mut child = Command::new(BIN)
        .args(["-v", "-t", "5", "--", &reporter, "--exit-on", "TERM=0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let lines = pump(child.stdout.take().unwrap());
    let next = || lines.recv_timeout(secs(5.0)).unwrap_or_default();
    let first = next();
    assert!(first.starts_with("child ready"), "{first:?}");
    unsafe_kill(child.id() as i32, libc::SIGUSR1);
    let got = next();
    if got != "child got SIGUSR1" {
        let _ = child.kill();
        panic!("USR1 was not forwarded within 5 s: {got:?}");
    }
    let sent = Instant::now();
    unsafe_kill(child.id() as i32, libc::SIGTERM);
    let status = wait_for(secs(3.0), || child.try_wait().unwrap());
    if status.is_none() {
        let _ = child.kill();
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "grace-init did not stop within 3 s"
    );
    assert!(sent.elapsed() < secs(3.0));
}

per_mode! {
    fn a_stop_signal_sent_right_at_start_is_not_lost(mode: Mode) {
        // As PID 1 a signal that arrives while no handler is set up would be discarded by the kernel.
        for _ in 0..5 {
            let run = Run::start(mode, &["-t", "5", "--", "sleep", "30"]);
            // The first thing grace-init does is block signals; from then on a signal must not be lost, even
            // when it comes before the child is started or the command line is parsed.
            // (unshare's forked child may block signals itself before it execs grace-init: look at grace-init.)
            let pid = run.init_pid();
            wait_for(secs(5.0), || {
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
                let blocked = status_field(pid, "SigBlk")?;
                (exe.ends_with("grace-init") && blocked != "0000000000000000").then_some(())
            })
            .expect("grace-init blocked its signals");
            run.signal(libc::SIGTERM);
            let done = run.wait(secs(10.0));
            done.assert_exit(143);
            assert!(done.elapsed < secs(3.0), "{mode:?}: {:?}", done.elapsed);
        }
    }
}

per_mode! {
    fn a_stopped_child_still_gets_a_graceful_shutdown(mode: Mode) {
        let run = Run::start_reporter(mode, &["-t", "5"], &["--exit-on", "TERM=0"]);
        let child = run.descendants()[0];
        unsafe_kill(child, libc::SIGSTOP);
        wait_for(secs(5.0), || (state(child) == Some('T')).then_some(())).expect("child stopped");
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit_for(0, "SIGCONT follows the stop signal");
        assert!(sent.elapsed() < secs(2.0), "{mode:?}: {:?}", sent.elapsed());
    }
}

#[test]
fn as_pid1_a_process_entered_from_outside_gets_sigterm_and_is_waited_for() {
    if !pid1_available() {
        return;
    }
    let run = Run::start_reporter(Mode::Pid1, &["-t", "5"], &["--exit-on", "TERM=0"]);
    // Like `docker exec`: a process in the namespace that is not grace-init's descendant.
    let mut stranger = std::process::Command::new("nsenter")
        .args(["-t", &run.init_pid().to_string(), "-p", "-m", "--", "sh", "-c"])
        .arg("trap 'sleep 0.5; echo stranger done; exit 0' TERM; echo stranger ready; while :; do sleep 0.05; done")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = pump(stranger.stdout.take().unwrap());
    assert_eq!(
        lines.recv_timeout(secs(5.0)).ok().as_deref(),
        Some("stranger ready")
    );
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(10.0));
    let took = sent.elapsed();
    let said = lines.recv_timeout(secs(2.0)).ok();
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert_eq!(
        said.as_deref(),
        Some("stranger done"),
        "the entered process was not let finish"
    );
    done.assert_exit(0);
    assert!(
        took >= secs(0.5) && took < secs(3.0),
        "waited {took:?} for the entered process"
    );
}

per_mode! {
    fn a_group_member_started_after_the_stop_signal_still_gets_sigterm_as_a_leftover(mode: Mode) {
        let reporter = reporter();
        // On TERM the child starts a new process in its group (it never got the stop signal), waits (at most
        // 10 s) until that one has its handlers, then exits.
        let scratch = Scratch::new("late");
        let ready = scratch.path("late-ready");
        let script = format!(
            "trap '{reporter} --tag late --exit-on TERM=0 --ready-file {ready} & i=0; \
             while [ ! -e {ready} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; exit 0' TERM; \
             echo ready; while :; do sleep 0.05; done"
        );
        let mut run = Run::start(mode, &["-t", "10", "--", "sh", "-c", &script]);
        run.expect_stdout("ready", secs(10.0));
        run.signal(libc::SIGTERM);
        run.expect_stdout("late ready", secs(15.0));
        // The child exits now: grace-init tells the late member as a leftover and exits, long before the 10 s
        // deadline it would otherwise wait for. (Measured from here: python's start-up is the machine's.)
        let ready = Instant::now();
        run.expect_stdout("late got SIGTERM", secs(5.0));
        let done = run.wait(secs(10.0));
        done.assert_exit(0);
        assert!(
            ready.elapsed() < secs(3.0),
            "{mode:?}: waited {:?} after the late member was ready",
            ready.elapsed()
        );
    }
}
