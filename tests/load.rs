//! Load, short and bounded: a fork storm of orphans leaves no zombie, and a 50,000-signal storm of mixed signals
//! leaves grace-init alive, forwarding, and no bigger. (The long soak variants live in the benchmark.)

mod common;

use std::time::Instant;

use common::*;

per_mode! {
    fn a_two_second_fork_storm_of_orphans_leaves_no_zombie(mode: Mode) {
        // The child double-forks for 2 s (at most 50,000 orphans): every grandchild is an orphan only grace-init can
        // reap. Some exit at once, some after a few milliseconds, so exits arrive both alone and in bursts.
        let script = r#"
import os, time
end = time.monotonic() + 2.0
n = 0
while time.monotonic() < end and n < 50000:
    pid = os.fork()
    if pid == 0:
        for i in range(10):
            if os.fork() == 0:
                if i % 4 == 0:
                    time.sleep(0.001 * i)
                os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
    n += 10
print('spawned', n, flush=True)
time.sleep(60)
"#;
        let mut run = Run::start(mode, &["-t", "2", "--", "python3", "-c", script]);
        let line = run.expect_stdout("spawned", secs(20.0));
        let spawned: usize = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let settled = run.only_the_child_left(secs(10.0));
        eprintln!("{mode:?}: {spawned} orphans in 2 s");
        assert!(spawned >= 300, "{mode:?}: only {spawned} orphans: no storm");
        if let Err(left) = settled {
            panic!("{mode:?}: after {spawned} orphans, left besides the child: {left:?}");
        }
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit(143);
    }
}

/// The storm's signals, with the name the reporter prints for each.
fn kinds() -> Vec<(i32, String)> {
    let rt = libc::SIGRTMIN();
    vec![
        (libc::SIGUSR1, "SIGUSR1".into()),
        (libc::SIGUSR2, "SIGUSR2".into()),
        (libc::SIGHUP, "SIGHUP".into()),
        (rt + 1, "SIGRTMIN+1".into()),
        (rt + 2, "SIGRTMIN+2".into()),
        (rt + 5, "SIGRTMIN+5".into()),
    ]
}

const STORM: usize = 50_000;

/// A reporter under grace-init that has seen every kind once (so the code paths are paged in), with its output
/// settled. Returns the run, grace-init's pid and the child's.
/// With `log_to`, grace-init logs at debug level into that file: its lines are counted after the storm, and a
/// file never makes grace-init drop a line, where a pipe the test reads could fall behind in a storm.
fn warmed_up(mode: Mode, log_to: Option<&std::path::Path>) -> (Run, i32, i32) {
    let reporter = reporter();
    let mut args = vec!["-t", "5"];
    let mut launch = Launch::default();
    if let Some(path) = log_to {
        args.push("-v");
        launch.stderr = StderrTo::File(path.to_path_buf());
    }
    args.extend(["--", &reporter, "--exit-on", "TERM=0"]);
    let mut run = Run::launch(mode, &launch, &args);
    run.expect_stdout("child ready", secs(10.0));
    let init = run.init_pid();
    let child = run.descendants().first().copied().expect("child");
    for (signal, name) in kinds() {
        run.signal(signal);
        run.expect_stdout(&format!("child got {name}"), secs(5.0));
    }
    run.settle_stdout(secs(0.2), secs(5.0));
    (run, init, child)
}

/// Sends STORM signals of the mixed kinds to grace-init as fast as it takes them, then waits until grace-init
/// and the child have nothing pending and the child's output has gone quiet. Returns how many lines the child
/// printed meanwhile.
fn storm(mode: Mode, run: &mut Run, init: i32, child: i32) -> usize {
    let kinds = kinds();
    let began = Instant::now();
    let mut retries = 0u64;
    for i in 0..STORM {
        let (signal, _) = &kinds[i % kinds.len()];
        // A full real-time queue refuses with EAGAIN: retry, bounded in time.
        loop {
            match send_signal(init, *signal) {
                0 => break,
                libc::EAGAIN if began.elapsed() < secs(30.0) => {
                    retries += 1;
                    std::thread::yield_now();
                }
                errno => panic!("{mode:?}: signal {i} of the storm: errno {errno}"),
            }
        }
    }
    let sent_in = began.elapsed();
    let drained = wait_for(secs(20.0), || {
        (nothing_pending(init) && nothing_pending(child)).then_some(())
    });
    assert!(
        drained.is_some(),
        "{mode:?}: signals still pending after 20 s"
    );
    let lines = run.settle_stdout(secs(0.3), secs(20.0));
    eprintln!(
        "{mode:?}: {STORM} signals sent in {sent_in:?} ({retries} EAGAIN retries), {lines} reported by the child \
         in {:?}",
        began.elapsed()
    );
    assert!(
        matches!(state(init), Some('S') | Some('R')),
        "{mode:?}: grace-init did not survive: {:?}",
        state(init)
    );
    lines
}

per_mode! {
    fn a_50000_signal_storm_is_survived_and_the_last_signal_of_each_kind_is_forwarded(mode: Mode) {
        let log = std::env::temp_dir().join(format!(
            "grace-init-storm-{mode:?}-{}.log",
            std::process::id()
        ));
        let (mut run, init, child) = warmed_up(mode, Some(&log));
        storm(mode, &mut run, init, child);
        // After the storm (nothing pending anywhere, the child quiet), one more of each kind gets through.
        for (signal, name) in kinds() {
            run.signal(signal);
            run.expect_stdout(&format!("child got {name}"), secs(5.0));
        }
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(20.0));
        done.assert_exit(0);
        assert_eq!(done.signal, None);
        let logged: Vec<String> = std::fs::read_to_string(&log)
            .expect("the log file")
            .lines()
            .map(str::to_string)
            .collect();
        let _ = std::fs::remove_file(&log);
        let warnings: Vec<_> = logged
            .iter()
            .filter(|l| l.contains("warning") || l.contains("error"))
            .take(5)
            .collect();
        assert!(warnings.is_empty(), "{mode:?}: {warnings:#?}");
        // Real-time signals queue rather than merge: each one sent was forwarded (the warm-up's one, the storm's
        // share, the final one).
        let per_kind = STORM / kinds().len();
        for (signal, name) in kinds().into_iter().filter(|(s, _)| *s >= libc::SIGRTMIN()) {
            let sent = per_kind + usize::from(signal_index(signal) < STORM % kinds().len()) + 2;
            let forwarded = logged
                .iter()
                .filter(|l| l.contains(&format!("forwarded {name} to")))
                .count();
            assert_eq!(
                forwarded, sent,
                "{mode:?}: {name} forwarded {forwarded} of {sent}"
            );
        }
    }
}

fn signal_index(signal: i32) -> usize {
    kinds().iter().position(|(s, _)| *s == signal).unwrap()
}

per_mode! {
    fn memory_does_not_grow_across_50000_signal_storms(mode: Mode) {
        let (mut run, init, child) = warmed_up(mode, None);
        let rss = |what: &str| {
            let kib = status_kib(init, "VmRSS").expect("VmRSS");
            let anon = status_kib(init, "RssAnon").unwrap_or(0);
            eprintln!("{mode:?}: {what}: VmRSS {kib} KiB, RssAnon {anon} KiB");
            kib
        };
        let before = rss("before");
        storm(mode, &mut run, init, child);
        let after_one = rss("after one storm");
        storm(mode, &mut run, init, child);
        let after_two = rss("after two storms");
        // No leak: a second storm adds nothing.
        assert!(
            after_two <= after_one + 64,
            "{mode:?}: VmRSS grew from {after_one} to {after_two} KiB in the second storm: a leak"
        );
        // Nor a high-water mark: buffers sized by the largest burst ever read are memory that stays.
        assert!(
            after_one <= before + 64,
            "{mode:?}: VmRSS grew from {before} to {after_one} KiB in the first storm and stayed there"
        );
        run.signal(libc::SIGTERM);
        assert_eq!(run.wait(secs(10.0)).code, Some(0), "{mode:?}");
    }
}

per_mode! {
    fn ten_thousand_orphans_appearing_during_the_leftover_wait_are_reaped_in_linear_time(mode: Mode) {
        // The child exits at once, leaving a setsid spawner that (once the child is gone, so during the leftover wait)
        // double-forks 10,000 orphans, 50 at a time: each sleeps until SIGTERM (a leftover that honours it) or 1 s.
        // The spawner ignores the SIGTERM it gets as a leftover and exits once done. Every one is re-parented to
        // grace-init, told, reaped; then the spawner exits and grace-init exits with the child's code 3. The list of
        // leftovers already told is pruned on reap, so the work per orphan stays the same however many came before.
        let script = r#"
import os, signal, sys, time
child = os.getpid()
# Ignored before the fork, so the spawner ignores the leftover SIGTERM even if it comes before it first runs.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    while os.getppid() == child:
        time.sleep(0.001)
    began = time.monotonic()
    n = 0
    while n < 10000:
        pid = os.fork()
        if pid == 0:
            for i in range(50):
                if os.fork() == 0:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    time.sleep(1)
                    os._exit(0)
            os._exit(0)
        os.waitpid(pid, 0)
        n += 50
    print('spawned', n, 'in', round(time.monotonic() - began, 2), flush=True)
    os._exit(0)
sys.exit(3)
"#;
        // The deadline and the wait for the spawner are generous: on a busy machine the forking alone takes
        // more than 30 s, and grace-init would (rightly) SIGKILL the spawner at a shorter deadline.
        let mut run = Run::start(mode, &["-t", "150", "--", "python3", "-c", script]);
        let started = run.started_at();
        let line = run.expect_stdout("spawned", secs(140.0));
        let spawned_at = started.elapsed();
        let zombies_seen = run
            .descendants()
            .into_iter()
            .filter(|p| state(*p) == Some('Z'))
            .count();
        let done = run.wait(secs(30.0));
        eprintln!(
            "{mode:?}: {line}; seen at {spawned_at:?}, grace-init exited at {:?}; {zombies_seen} zombies \
             when the spawner finished",
            done.elapsed
        );
        done.assert_exit(3);
        // How fast the spawner forks is the machine's business; what grace-init does once it is done is not: every
        // orphan left is told and reaped, and grace-init exits, within seconds of the spawner's last line.
        let after_spawner = done.elapsed.saturating_sub(spawned_at);
        assert!(
            after_spawner < secs(5.0),
            "{mode:?}: {line}; grace-init exited {after_spawner:?} after the spawner finished"
        );
    }
}
