//! Signals refused with EPERM (grace-init root without CAP_KILL, the app another user): a refused signal is
//! never counted as sent, the log says for whom it was refused, and the exit stays bounded by the deadline plus
//! `KILL_WAIT` (2 s).
mod common;

use std::time::Instant;

use common::*;

/// `setpriv` dropping to nobody (uid and gid 65534) before `sh -c SCRIPT`.
fn as_nobody(script: &str) -> Vec<String> {
    let mut argv = as_user(65534);
    argv.extend(strings(&["sh", "-c", script]));
    argv
}

/// `sh -c` running SCRIPT as root after starting a helper as nobody that prints `ready` once it is nobody
/// (before that it is root, and grace-init's signals reach it) and then sleeps 6 s. A `trap` at the start of
/// SCRIPT goes before the helper, so it is in place when `ready` comes.
fn with_helper_as_nobody(script: &str) -> Vec<String> {
    let helper = as_nobody("echo ready; exec sleep 6");
    let (setpriv, rest) = helper.split_at(helper.len() - 1);
    let (trap, script) = match script.strip_prefix("trap '' TERM; ") {
        Some(rest) => ("trap '' TERM; ", rest),
        None => ("", script),
    };
    let outer = format!("{trap}{} '{}' & {script}", setpriv.join(" "), rest[0]);
    strings(&["sh", "-c", &outer])
}

/// Starts `grace-init -t 1 -- ARGV` as root without CAP_KILL, waits for `ready`, sends SIGTERM and returns how
/// the run ended and how long after the SIGTERM grace-init's exit was seen.
fn stop_without_cap_kill(mode: Mode, argv: &[String]) -> (Finished, std::time::Duration) {
    let mut args = vec!["-t", "1", "--"];
    args.extend(argv.iter().map(String::as_str));
    let mut run = Run::launch(mode, &Launch::without_cap_kill(), &args);
    run.expect_stdout("ready", secs(10.0));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let started = run.started_at();
    let done = run.wait(secs(15.0));
    let took = (started + done.elapsed).saturating_duration_since(sent);
    (done, took)
}

per_mode! {
    /// The app became another user (a setuid binary, `su`): grace-init's SIGKILL to it is refused. The line
    /// says so instead of "SIGKILL to the child", and grace-init exits 2 s after the deadline.
    fn a_sigkill_refused_for_the_child_is_said_not_counted(mode: Mode) {
        let argv = as_nobody("echo ready; exec sleep 6");
        let (done, took) = stop_without_cap_kill(mode, &argv);
        done.assert_log_lacks("SIGKILL to the child");
        done.assert_log_contains("escalated: SIGKILL refused for the child (operation not permitted)");
        done.assert_log_contains("child had not ended: its SIGKILL was refused");
        done.assert_exit(137);
        done.check(
            took < secs(1.0 + 2.0 + 1.5),
            format!("exited {took:?} after SIGTERM, want under the 1 s grace period + 2 s + slack"),
        );
    }

    /// The app (root, as grace-init) started a helper as nobody: the app is killed, the helper's SIGKILL is
    /// refused. The helper is not counted among the processes SIGKILL reached, and the line says it was refused.
    fn a_sigkill_refused_for_a_leftover_is_not_counted_as_sent(mode: Mode) {
        let argv = with_helper_as_nobody("trap '' TERM; wait");
        let (done, took) = stop_without_cap_kill(mode, &argv);
        done.assert_log_contains(
            "escalated: SIGKILL to the child and 0 other processes; refused for 1 other process (operation not permitted)",
        );
        done.assert_log_contains("0 SIGKILLed (1 refused), and the child");
        done.assert_exit(137);
        done.check(
            took < secs(1.0 + 2.0 + 1.5),
            format!("exited {took:?} after SIGTERM, want under the 1 s grace period + 2 s + slack"),
        );
    }
}

per_mode! {
    /// The app exits at once, leaving a helper that is nobody: the leftovers' SIGTERM and then SIGKILL are
    /// refused. Neither is counted as sent, both lines say they were refused, and grace-init exits 2 s after
    /// the deadline counted from the app's exit.
    fn sigterm_and_sigkill_refused_for_a_leftover_are_said_and_the_exit_is_bounded(mode: Mode) {
        let argv = with_helper_as_nobody("sleep 0.5; exit 3");
        let mut args = vec!["-t", "1", "--"];
        args.extend(argv.iter().map(String::as_str));
        let mut run = Run::launch(mode, &Launch::without_cap_kill(), &args);
        run.expect_stdout("ready", secs(10.0));
        let line = run.expect_stderr("the child is gone but processes remain", secs(10.0));
        let seen = Instant::now();
        let started = run.started_at();
        let done = run.wait(secs(15.0));
        let took = (started + done.elapsed).saturating_duration_since(seen);
        done.check(!line.is_empty(), "the leftover is seen");
        done.assert_log_contains(
            "sent SIGTERM to 0 processes; refused for 1 process (operation not permitted)",
        );
        done.assert_log_contains(
            "escalated: SIGKILL to 0 processes; refused for 1 process (operation not permitted)",
        );
        done.assert_log_contains("leftovers: 0 sent SIGTERM (1 refused), 0 SIGKILLed (1 refused); exit code 3");
        done.assert_exit(3);
        done.check(
            took < secs(1.0 + 2.0 + 1.0),
            format!("exited {took:?} after the child's exit was logged, want under 1 s + 2 s + slack"),
        );
    }
}

per_mode! {
    /// Under `--wait-all` the app exits and its helper, nobody, is waited for; the stop signal to it is refused,
    /// then its SIGKILL. Neither is counted as sent, the lines say so, and grace-init exits 2 s after the
    /// deadline counted from the stop signal.
    fn under_wait_all_a_stop_refused_by_what_the_app_left_is_said_and_the_exit_is_bounded(mode: Mode) {
        let argv = with_helper_as_nobody("exit 4");
        let mut args = vec!["--wait-all", "-t", "1", "--"];
        args.extend(argv.iter().map(String::as_str));
        let mut run = Run::launch(mode, &Launch::without_cap_kill(), &args);
        run.expect_stdout("ready", secs(10.0));
        run.expect_stderr("still running: 1 process", secs(10.0));
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let started = run.started_at();
        let done = run.wait(secs(15.0));
        let took = (started + done.elapsed).saturating_duration_since(sent);
        done.assert_log_contains(
            "sent SIGTERM to 0 processes; refused for 1 process (operation not permitted)",
        );
        done.assert_log_contains("0 forwarded SIGTERM (1 refused)");
        done.assert_log_contains("0 SIGKILLed (1 refused)");
        done.assert_exit(4);
        done.check(
            took < secs(1.0 + 2.0 + 1.5),
            format!("exited {took:?} after SIGTERM, want under the 1 s grace period + 2 s + slack"),
        );
    }
}
