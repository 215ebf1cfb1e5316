//! The shutdown controls beyond forwarding, observed with the reporter child: rewrite, stop signals,
//! expect-exit, drain delay, pre-stop, parent-death signal, JSON logs.

mod common;

use std::time::Instant;

use common::*;

per_mode! {
    fn a_rewritten_stop_signal_still_starts_the_grace_period(mode: Mode) {
        let mut run = Run::start_reporter(mode, &["-t", "1", "-r", "TERM:USR1"], &[]);
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        run.expect_stdout("child got SIGUSR1", secs(5.0));
        let done = run.wait(secs(10.0));
        done.assert_exit(137);
        assert!(
            sent.elapsed() >= secs(1.0) && sent.elapsed() < secs(1.5),
            "{:?}",
            sent.elapsed()
        );
        assert!(
            !done.stdout.iter().any(|l| l.contains("SIGTERM")),
            "{:?}",
            done.stdout
        );
    }
}

#[test]
fn a_signal_rewritten_to_none_is_dropped() {
    let mut run = Run::start_reporter(
        Mode::Subreaper,
        &["-r", "HUP:none"],
        &["--exit-on", "TERM=0"],
    );
    run.signal(libc::SIGHUP);
    run.signal(libc::SIGUSR2);
    run.expect_stdout("child got SIGUSR2", secs(5.0));
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(10.0));
    done.assert_exit(0);
    assert!(
        !done.stdout.iter().any(|l| l.contains("SIGHUP")),
        "{:?}",
        done.stdout
    );
}

per_mode! {
    fn stop_signals_are_configurable_and_quit_is_not_one_by_default(mode: Mode) {
        // By default QUIT is forwarded but starts no grace period: the JVM thread-dump case.
        let mut run = Run::start_reporter(mode, &["-t", "0.3"], &[]);
        run.signal(libc::SIGQUIT);
        run.expect_stdout("child got SIGQUIT", secs(5.0));
        std::thread::sleep(secs(0.6));
        assert!(
            !run.descendants().is_empty(),
            "the child must still be running"
        );
        run.signal(libc::SIGUSR1);
        run.expect_stdout("child got SIGUSR1", secs(5.0));
        run.signal(libc::SIGKILL);
        drop(run);

        let run = Run::start_reporter(mode, &["-t", "0.5", "--stop-signals", "QUIT"], &[]);
        run.signal(libc::SIGQUIT);
        let done = run.wait(secs(5.0));
        done.assert_exit_for(137, "QUIT started the grace period");
    }
}

per_mode! {
    fn expect_exit_reports_a_listed_code_as_zero(mode: Mode) {
        let done = Run::start(mode, &["-e", "143", "-e", "3", "--", "sh", "-c", "exit 3"])
            .wait(secs(10.0));
        done.assert_exit(0);
        let done = Run::start_env(
            mode,
            &["--", "sh", "-c", "kill -TERM $$"],
            &[("GRACE_INIT_EXPECT_EXIT", "1,143")],
        )
        .wait(secs(10.0));
        assert_eq!(done.code, Some(0), "{mode:?}: killed by SIGTERM = 143 → 0");
        let done = Run::start(mode, &["-e", "143", "--", "sh", "-c", "exit 4"]).wait(secs(10.0));
        assert_eq!(done.code, Some(4), "{mode:?}: unlisted codes pass through");
    }
}

per_mode! {
    fn the_drain_delay_holds_the_signal_back_inside_the_budget(mode: Mode) {
        let mut run = Run::start_reporter(
            mode,
            &["-t", "5", "--drain-delay", "0.8"],
            &["--exit-on", "TERM=0"],
        );
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        // Other signals still pass during the drain.
        run.signal(libc::SIGUSR1);
        run.expect_stdout("child got SIGUSR1", secs(5.0));
        assert!(sent.elapsed() < secs(0.8), "USR1 was held back too");
        run.expect_stdout("child got SIGTERM", secs(5.0));
        let got_term = sent.elapsed();
        assert!(
            got_term >= secs(0.8) && got_term < secs(1.5),
            "{mode:?}: TERM forwarded after {got_term:?}"
        );
        let done = run.wait(secs(10.0));
        done.assert_exit(0);
        done.assert_log_contains("drain 0.8");
    }
}

#[test]
fn a_second_stop_signal_cuts_the_drain_short() {
    let mut run = Run::start_reporter(
        Mode::Subreaper,
        &["-t", "20", "--drain-delay", "10"],
        &["--exit-on", "TERM=0"],
    );
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    run.expect_stderr("draining", secs(5.0));
    run.signal(libc::SIGTERM);
    run.expect_stdout("child got SIGTERM", secs(5.0));
    assert!(sent.elapsed() < secs(2.0), "{:?}", sent.elapsed());
    assert_eq!(run.wait(secs(10.0)).code, Some(0));
}

per_mode! {
    fn the_pre_stop_command_runs_before_the_app_gets_the_signal(mode: Mode) {
        let mut run = Run::start_reporter(
            mode,
            &["-t", "5", "--pre-stop", "echo pre-stop-start >&2; sleep 0.3; echo pre-stop-done"],
            &["--exit-on", "TERM=0"],
        );
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        run.expect_stdout("child got SIGTERM", secs(5.0));
        assert!(
            sent.elapsed() >= secs(0.3),
            "{mode:?}: the app got TERM before the pre-stop finished"
        );
        let done = run.wait(secs(10.0));
        done.assert_exit(0);
        let err = done.stderr_text();
        // Both of the pre-stop command's streams end up on grace-init's stderr, never on stdout.
        done.check(
            err.contains("pre-stop-start") && err.contains("pre-stop-done"),
            "both pre-stop lines in the log",
        );
        assert!(
            !done.stdout.iter().any(|l| l.contains("pre-stop")),
            "{:?}",
            done.stdout
        );
    }
}

per_mode! {
    fn log_lines_keep_the_order_of_events_though_written_after_the_actions(mode: Mode) {
        // The supervisor's lines are formatted only after its actions are carried out (the signal is sent first),
        // while an action logs its own lines as it runs: the log must still read in the order things happened.
        let run = Run::start_reporter(
            mode,
            &["-v", "-t", "5", "--pre-stop", "true"],
            &["--exit-on", "TERM=0"],
        );
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit(0);
        let err = done.stderr_text();
        let expected = [
            "received SIGTERM: shutting down",
            "running pre-stop command: true",
            "pre-stop command finished",
            "forwarding SIGTERM to process group",
            "debug: forwarded SIGTERM to process group",
            "after the stop signal was forwarded",
            "exiting after stop signal SIGTERM",
        ];
        let mut from = 0;
        for needle in expected {
            let at = err[from..].find(needle).unwrap_or_else(|| {
                panic!("{mode:?}: '{needle}' missing or out of order in:\n{err}")
            });
            from += at + needle.len();
        }
    }
}

per_mode! {
    fn a_hanging_pre_stop_command_is_cut_off_by_the_budget(mode: Mode) {
        let mut run = Run::start_reporter(
            mode,
            &["-t", "2", "--pre-stop", "sleep 100"],
            &["--exit-on", "TERM=0"],
        );
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        run.expect_stdout("child got SIGTERM", secs(5.0));
        let forwarded = sent.elapsed();
        assert!(
            forwarded >= secs(1.0) && forwarded < secs(1.5),
            "{mode:?}: forwarded after {forwarded:?}"
        );
        let done = run.wait(secs(10.0));
        done.assert_exit(0);
        assert!(
            sent.elapsed() < secs(2.0),
            "{mode:?}: the whole stop fits the 2 s budget"
        );
        done.assert_log_contains("pre-stop command overran");
    }
}

per_mode! {
    fn the_pre_stop_command_runs_in_the_directory_the_app_was_started_in(mode: Mode) {
        // `--pre-stop ./deregister.sh` from the image's WORKDIR, as the app itself would find it.
        let scratch = Scratch::new("pre-stop-dir");
        let script = scratch.0.join("deregister.sh");
        std::fs::write(&script, "#!/bin/sh\necho \"deregistered in $(pwd)\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let reporter = reporter();
        let args = [
            "--pre-stop",
            "./deregister.sh",
            "--",
            &reporter,
            "--exit-on",
            "TERM=0",
        ];
        let mut run = Run::launch(mode, &Launch::in_dir(&scratch.0), &args);
        run.expect_stdout("child ready", secs(10.0));
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit(0);
        let want = format!("deregistered in {}", scratch.0.display());
        done.check(
            done.stderr.iter().any(|l| l == &want),
            format!("want {want:?}"),
        );
        done.assert_log_contains("pre-stop command finished");
    }
}

per_mode! {
    fn a_pre_stop_command_whose_directory_is_gone_is_a_warning_naming_it_and_the_stop_goes_on(mode: Mode) {
        let scratch = Scratch::new("pre-stop-gone");
        let workdir = scratch.0.join("workdir");
        std::fs::create_dir(&workdir).unwrap();
        let reporter = reporter();
        let args = ["--pre-stop", "true", "--", &reporter, "--exit-on", "TERM=0"];
        let mut run = Run::launch(mode, &Launch::in_dir(&workdir), &args);
        run.expect_stdout("child ready", secs(10.0));
        // Removed while the app runs in it (a volume unmounted, a temporary directory cleaned up).
        std::fs::remove_dir(&workdir).unwrap();
        run.signal(libc::SIGTERM);
        run.expect_stdout("child got SIGTERM", secs(5.0));
        let done = run.wait(secs(10.0));
        done.assert_exit(0);
        let gone = format!(
            "warning: the directory the app was started in, {}, is gone",
            workdir.display()
        );
        done.assert_log_contains(&gone);
        done.assert_log_contains("warning: cannot run pre-stop command 'true'");
    }
}

per_mode! {
    fn a_signal_to_grace_inits_group_while_the_pre_stop_command_starts_does_not_reach_it(mode: Mode) {
        // GNU `timeout` signals its child, then its whole process group. The pre-stop command is forked while the
        // first signal is handled, and belongs to grace-init's group until it moves to its own: what reached the
        // group meanwhile must not kill it. Here the group is signalled over and over while it starts.
        // The app ignores the stop signal and ends on SIGUSR1, which the test sends once the pre-stop command is
        // over: so that command is never a leftover of an app already gone (which would get SIGTERM too).
        let app = "trap '' TERM; trap 'exit 0' USR1; echo ready; while :; do sleep 0.05; done";
        for round in 0..10 {
            let pre_stop = "echo pre-stop ran";
            let args = ["-t", "10", "--pre-stop", pre_stop, "--", "sh", "-c", app];
            let mut run = Run::launch(mode, &Launch::own_group(), &args);
            run.expect_stdout("ready", secs(10.0));
            let group = run.init_pid();
            assert_eq!(send_signal(group, libc::SIGTERM), 0);
            let until = Instant::now() + secs(0.2);
            while Instant::now() < until {
                send_signal(-group, libc::SIGTERM);
            }
            let outcome = run.expect_stderr("pre-stop command ", secs(10.0));
            run.signal(libc::SIGUSR1);
            let done = run.wait(secs(10.0));
            let what = format!("{mode:?} round {round}");
            done.check(
                outcome.contains("pre-stop command finished"),
                format!("{what}: the pre-stop command did not run: {outcome}"),
            );
            done.assert_exit_for(0, &what);
        }
    }
}

#[test]
fn a_failing_pre_stop_is_logged_and_the_stop_goes_on() {
    let mut run = Run::start_reporter(
        Mode::Subreaper,
        &["-t", "5", "--pre-stop", "exit 3"],
        &["--exit-on", "TERM=0"],
    );
    run.signal(libc::SIGTERM);
    run.expect_stdout("child got SIGTERM", secs(5.0));
    let done = run.wait(secs(10.0));
    done.assert_exit(0);
    done.assert_log_contains("pre-stop command exited with code 3");
}

#[test]
fn the_parent_death_signal_stops_grace_init_when_its_parent_dies() {
    let reporter = reporter();
    // An outer grace-init runs `sh`, which runs an inner grace-init with -p TERM. Killing sh must make the
    // inner one stop its child gracefully.
    let inner = format!("{BIN} -p TERM -t 5 -- {reporter} --tag inner --exit-on TERM=0 & wait");
    let mut run = Run::start(Mode::Subreaper, &["-t", "5", "--", "sh", "-c", &inner]);
    run.expect_stdout("inner ready", secs(10.0));
    let sh = common::children(run.init_pid())[0];
    unsafe_kill(sh, libc::SIGKILL);
    run.expect_stdout("inner got SIGTERM", secs(5.0));
    let done = run.wait(secs(10.0));
    done.assert_exit_for(137, "the outer child (sh) was SIGKILLed");
}

per_mode! {
    fn json_logs_are_one_object_per_line(mode: Mode) {
        let done = Run::start(
            mode,
            &["--log-format", "json", "-v", "--", "sh", "-c", "exit 2"],
        )
        .wait(secs(10.0));
        done.assert_exit(2);
        assert!(done.stderr.len() >= 2, "{:?}", done.stderr);
        for line in &done.stderr {
            // The message, then the fields some lines carry (the summary's exit code).
            assert!(
                line.starts_with("{\"ts\":")
                    && (line.ends_with("\"}") || line.ends_with(",\"exit_code\":2}")),
                "{line}"
            );
            assert!(
                line.contains("\"source\":\"grace-init\"") && line.contains("\"msg\":\""),
                "{line}"
            );
        }
        assert!(
            done.stderr.iter().any(|l| l.contains("exit code 2")),
            "{:?}",
            done.stderr
        );
    }
}

#[test]
fn the_parent_dying_during_start_up_still_triggers_the_parent_death_signal() {
    // sh starts grace-init -p TERM and exits at once, possibly before prctl takes effect.
    let inner = format!("{BIN} -p TERM -t 5 -- sleep 30 & exit 0");
    for _ in 0..3 {
        let done =
            Run::start(Mode::Subreaper, &["-t", "10", "--", "sh", "-c", &inner]).wait(secs(15.0));
        done.assert_exit(0);
        assert!(
            done.elapsed < secs(5.0),
            "the inner grace-init did not stop: {:?}",
            done.elapsed
        );
    }
}

per_mode! {
    fn json_time_stamps_never_go_backwards_in_the_order_lines_are_written(mode: Mode) {
        // The supervisor's lines are formatted after its actions and put in front of what the actions logged; their
        // time stamps must still read forwards. Main: "grace period over" (formatted after the SIGKILL) carried a
        // later stamp than the "escalated" line written under it.
        let run = Run::start_reporter(
            mode,
            &["--log-format", "json", "-v", "-t", "0.5", "--pre-stop", "true"],
            &["--ignore", "TERM"],
        );
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit(137);
        let stamps: Vec<f64> = done
            .stderr
            .iter()
            .map(|l| {
                let ts = l.strip_prefix("{\"ts\":").and_then(|r| r.split(',').next());
                ts.and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("{mode:?}: no time stamp in {l}"))
            })
            .collect();
        let backwards: Vec<_> = stamps
            .windows(2)
            .zip(&done.stderr[1..])
            .filter(|(pair, _)| pair[1] < pair[0])
            .map(|(_, line)| line)
            .collect();
        done.check(
            backwards.is_empty(),
            format!("stamped earlier than the line before: {backwards:#?}"),
        );
        let text = done.stderr_text();
        let over = text.find("grace period over").expect("grace period over");
        let escalated = text.find("escalated: SIGKILL").expect("escalated");
        assert!(over < escalated, "{mode:?}: {text}");
    }
}
