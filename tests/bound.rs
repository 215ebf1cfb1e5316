//! The exit bound against what grace-init cannot keep up with: from the main child's exit (or the first stop
//! signal), grace-init exits within the grace period plus `KILL_WAIT` (2 s), and the summary counts what its
//! sweeps reached.
mod common;

use std::time::Instant;

use common::*;

/// Held by each test of this file while it runs: the forking chains keep both cores busy, and a test beside
/// them would measure the machine rather than grace-init.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The number in the "escalated: SIGKILL to N (other) processes" line and the summary's "N SIGKILLed".
fn sigkill_counts(done: &Finished) -> (usize, usize) {
    let number_before = |line: &str, word: &str| -> usize {
        let at = line
            .find(word)
            .unwrap_or_else(|| done.fail(&format!("no {word:?} in {line:?}")));
        let digits: String = line[..at]
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .chars()
            .rev()
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    };
    let first = done.log_lines("escalated: SIGKILL to");
    done.check(first.len() == 1, "one escalation line");
    let first = first[0].replace(" other process", " process");
    let summary = done.log_lines("exiting");
    let total = number_before(summary.last().copied().unwrap_or_default(), " SIGKILLed");
    (number_before(&first, " process"), total)
}

per_mode! {
    /// Chains of processes that fork and exit at once, each child in a session of its own, ignoring SIGTERM,
    /// left behind by the app: the sweeps after the deadline's SIGKILL chase them. grace-init exits within the
    /// 1 s grace period + 2 s of the app's exit, and its summary counts the processes the sweeps reached too.
    fn processes_that_fork_away_from_every_kill_leave_the_exit_bounded_and_the_count_true(mode: Mode) {
        let _alone = one_at_a_time();
        let scratch = Scratch::new("hopper");
        let ready = scratch.path("ready");
        let hopper = fixture("hopper.py");
        // The app waits (bounded) for the chains to run, then exits.
        let script = format!(
            "python3 {hopper} 16 8 {ready} & for i in $(seq 200); do [ -e {ready} ] && break; sleep 0.05; done; \
             echo app-exits; exit 0"
        );
        let mut run = Run::start(mode, &["-t", "1", "--", "sh", "-c", &script]);
        run.expect_stdout("app-exits", secs(15.0));
        // Measured from when grace-init says it saw the app's exit: the chains keep both cores busy.
        run.expect_stderr("the child is gone but processes remain", secs(10.0));
        let exited = Instant::now();
        let started = run.started_at();
        let done = run.wait(secs(15.0));
        let took = (started + done.elapsed).saturating_duration_since(exited);
        eprintln!("{mode:?}: exited {took:?} after it saw the app's exit");
        done.assert_exit(0);
        done.check(
            took < secs(1.0 + 2.0 + 1.0),
            format!("exited {took:?} after it saw the app's exit, want under 1 s + 2 s + slack"),
        );
        let (first, total) = sigkill_counts(&done);
        done.check(
            total >= first,
            format!("the summary's {total} SIGKILLed counts the escalation's {first}"),
        );
        // They ignore SIGTERM and live 8 s: when grace-init did not give up on them, its SIGKILLs ended them,
        // and the summary counts at least one.
        if done.log_lines("gave up waiting").is_empty() {
            done.check(
                total > 0,
                "every process was SIGKILLed by a sweep, yet the summary says 0 SIGKILLed",
            );
        }
    }
}

per_mode! {
    /// The app frozen by a cgroup v1 freezer (as a process stuck in the kernel): the deadline's SIGKILL cannot
    /// end it. 2 s after it grace-init stops waiting, says the child has not ended, and exits 137.
    fn a_child_that_outlives_its_sigkill_in_the_kernel_is_given_up_on_2s_after_it(mode: Mode) {
        let _alone = one_at_a_time();
        let Some(freezer) = freezer::Freezer::create(&format!("{mode:?}")) else {
            return;
        };
        let mut run = Run::start(mode, &["-t", "1", "--", "sh", "-c", "echo ready; exec sleep 30"]);
        run.expect_stdout("ready", secs(10.0));
        let app = wait_for(secs(5.0), || children(run.init_pid()).first().copied())
            .expect("the app is grace-init's child");
        freezer.freeze(app);
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        // As PID 1 the kernel holds grace-init's own exit until the frozen child is gone: its last line is the
        // moment it was done.
        let last = run.expect_stderr("exiting after stop signal", secs(10.0));
        let took = sent.elapsed();
        eprintln!("{mode:?}: said its last line {took:?} after the SIGTERM");
        drop(freezer);
        let done = run.wait(secs(10.0));
        done.assert_log_contains("gave up waiting");
        done.assert_log_contains("has not ended");
        done.check(last.contains("exit code 137"), format!("exit code 137 in {last:?}"));
        done.check(
            took < secs(1.0 + 2.0 + 1.0),
            format!("its last line came {took:?} after SIGTERM, want under 1 s + 2 s + slack"),
        );
    }
}
