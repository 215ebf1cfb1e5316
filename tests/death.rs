//! Why the app died, as grace-init tells it: an app over its limit in a real memory cgroup created here is
//! OOM-killed, and the text log, the JSON log and the termination message say so with the limit and the peak;
//! a SIGKILL grace-init sent at the deadline and one it did not send are told apart; a core dump is said; and
//! `--expect-exit` never turns the deadline's SIGKILL or an OOM kill into 0.

mod common;

use std::time::{Duration, Instant};

use common::memcg::MemoryCgroup;
use common::*;

/// The limit of the cgroup the memory hog runs in: far above what grace-init, sh and Python need, far below
/// what the hog asks for.
const LIMIT: u64 = 48 << 20;
const LIMIT_TEXT: &str = "memory limit 48 MiB";
/// An app that touches 512 MiB.
const HOG: &[&str] = &["python3", "-c", "a = bytearray(512 << 20)"];

const BOUND: Duration = Duration::from_secs(30);

/// grace-init's last line: the summary.
fn summary(done: &Finished) -> &str {
    done.stderr
        .iter()
        .rev()
        .find(|l| l.contains("exit code"))
        .unwrap_or_else(|| panic!("no summary line: {:#?}", done.stderr))
}

/// A number field of a JSON line.
fn json_number(line: &str, field: &str) -> Option<u64> {
    let at = line.find(&format!("\"{field}\":"))? + field.len() + 3;
    let digits: String = line
        .get(at..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

per_mode! {
    fn an_app_over_its_memory_limit_is_reported_as_killed_by_the_oom_killer(mode: Mode) {
        for format in ["text", "json"] {
            let Some(cgroup) = MemoryCgroup::create(&format!("oom-{mode:?}-{format}"), Some(LIMIT))
            else {
                return;
            };
            let scratch = Scratch::new(&format!("oom-{mode:?}-{format}"));
            let message = scratch.path("termination-log");
            std::fs::write(&message, "").unwrap();
            let mut args = vec![
                "--log-format",
                format,
                "-e",
                "137",
                "--termination-log",
                &message,
                "--",
            ];
            args.extend(HOG);
            let done = Run::launch(mode, &cgroup.launch(), &args).wait(BOUND);
            let context = format!("{mode:?} {format}: {:#?}", done.stderr);
            assert_eq!(cgroup.oom_kills(), Some(1), "{context}");
            // -e 137 is there, and does not hide it.
            assert_eq!(done.code, Some(137), "{context}");
            let line = summary(&done);
            let said = if cgroup.keeps_peak() {
                "child was killed by SIGKILL from the kernel's OOM killer (memory limit 48 MiB, peak "
            } else {
                "child was killed by SIGKILL from the kernel's OOM killer (memory limit 48 MiB)"
            };
            assert!(line.contains(said), "{context}");
            assert!(
                line.contains(
                    "exit code 137 (--expect-exit does not hide grace-init's SIGKILL or an OOM kill)"
                ),
                "{context}"
            );
            if format == "json" {
                assert!(
                    line.contains("\"exit_code\":137,\"signal\":\"SIGKILL\",\"killed_by\":\"oom-killer\",\"oom_kills\":1,")
                        && json_number(line, "memory_limit_bytes") == Some(LIMIT),
                    "{context}"
                );
                // The cgroup's peak: at its limit, and never above it.
                if cgroup.keeps_peak() {
                    let peak = json_number(line, "memory_peak_bytes").expect("a peak");
                    assert!(peak > LIMIT / 2 && peak <= LIMIT, "peak {peak}: {context}");
                }
            }
            let written = std::fs::read_to_string(&message).unwrap();
            assert!(
                written.starts_with(&format!(
                    "grace-init: exiting: the child ended without a stop signal; {said}"
                )) && written.ends_with("SIGKILLed; exit code 137 (--expect-exit does not hide grace-init's SIGKILL or an OOM kill)\n")
                    && written.contains(LIMIT_TEXT),
                "{written}"
            );
            drop(cgroup);
        }
    }
}

per_mode! {
    fn an_oom_kill_of_another_process_is_said_and_expect_exit_does_not_hide_it(mode: Mode) {
        // A shell wrapping the app exits 137 by itself when the app was OOM-killed: -e 137 does not hide it.
        let Some(cgroup) = MemoryCgroup::create(&format!("wrapper-{mode:?}"), Some(LIMIT)) else {
            return;
        };
        let wrapper = "python3 -c 'a = bytearray(512 << 20)'; exit $?";
        let done = Run::launch(
            mode,
            &cgroup.launch(),
            &["-e", "137", "--", "sh", "-c", wrapper],
        )
        .wait(BOUND);
        assert_eq!(done.code, Some(137), "{mode:?}: {:#?}", done.stderr);
        assert!(
            summary(&done).contains(
                "child exited with code 137 (meanwhile the OOM killer killed 1 process in the container; \
                 memory limit 48 MiB"
            ) && summary(&done)
                .ends_with("(--expect-exit does not hide grace-init's SIGKILL or an OOM kill)"),
            "{mode:?}: {:#?}",
            done.stderr
        );
        drop(cgroup);

        // An orphan the OOM killer took is reaped by grace-init: a warning, before the app ends.
        let Some(cgroup) = MemoryCgroup::create(&format!("orphan-{mode:?}"), Some(LIMIT)) else {
            return;
        };
        let orphan = "(python3 -c 'a = bytearray(512 << 20)' &); sleep 60";
        let mut run = Run::launch(mode, &cgroup.launch(), &["--", "sh", "-c", orphan]);
        let line = run.expect_stderr("grace-init: warning: reaped process", BOUND);
        assert!(
            line.contains(
                ": was killed by SIGKILL from the kernel's OOM killer (memory limit 48 MiB"
            ),
            "{line}"
        );
        run.signal(libc::SIGTERM);
        let done = run.wait(BOUND);
        assert_eq!(done.code, Some(143), "{mode:?}: {:#?}", done.stderr);
        // The app's own end was the stop signal: nothing more is claimed for it (and nothing read).
        assert!(
            summary(&done).contains("; child was killed by SIGTERM; leftovers"),
            "{mode:?}: {:#?}",
            done.stderr
        );
        drop(cgroup);
    }
}

per_mode! {
    fn a_sigkill_grace_init_did_not_send_is_not_called_an_oom_kill(mode: Mode) {
        let Some(cgroup) = MemoryCgroup::create(&format!("kill-{mode:?}"), None) else {
            return;
        };
        let app = ["--", "sh", "-c", "kill -KILL $$"];
        let done = Run::launch(mode, &cgroup.launch(), &app).wait(BOUND);
        assert_eq!(done.code, Some(137), "{mode:?}: {:#?}", done.stderr);
        assert!(
            summary(&done).contains(
                "child was killed by SIGKILL (not sent by grace-init, and not by the OOM killer); "
            ),
            "{mode:?}: {:#?}",
            done.stderr
        );
        // Someone else's SIGKILL, with no OOM kill counted: listed with -e, it is 0 as the user asked.
        let mut args = vec!["-e", "137", "--log-format", "json"];
        args.extend(app);
        let done = Run::launch(mode, &cgroup.launch(), &args).wait(BOUND);
        assert_eq!(done.code, Some(0), "{mode:?}: {:#?}", done.stderr);
        assert!(
            summary(&done).contains(
                "\"exit_code\":0,\"signal\":\"SIGKILL\",\"killed_by\":\"not-grace-init\"}"
            ),
            "{mode:?}: {:#?}",
            done.stderr
        );
        assert_eq!(cgroup.oom_kills(), Some(0));
    }
}

per_mode! {
    fn the_deadline_sigkill_is_grace_inits_own_and_expect_exit_does_not_hide_it(mode: Mode) {
        let mut run = Run::start(
            mode,
            &[
                "-t",
                "1",
                "-e",
                "137",
                "--",
                "python3",
                &reporter(),
                "--ignore",
                "TERM",
            ],
        );
        run.expect_stdout("child ready", BOUND);
        let stop = Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(BOUND);
        assert_eq!(done.code, Some(137), "{mode:?}: {:#?}", done.stderr);
        assert!(
            stop.elapsed() < Duration::from_secs(1) + Duration::from_secs(5),
            "{mode:?}: {:?}",
            stop.elapsed()
        );
        let text = done.stderr_text();
        done.assert_log_contains(
            "was killed by SIGKILL (grace-init's, at the end of the grace period) 1.0",
        );
        assert!(
            summary(&done).ends_with(
                "child was killed by SIGKILL (grace-init's, at the end of the grace period); leftovers: 0 sent \
                 SIGTERM, 0 SIGKILLed, and the child; exit code 137 (--expect-exit does not hide grace-init's \
                 SIGKILL or an OOM kill)"
            ),
            "{mode:?}: {text}"
        );
    }
}

per_mode! {
    fn a_death_by_signal_names_it_and_says_when_a_core_was_dumped(mode: Mode) {
        let scratch = Scratch::new(&format!("core-{mode:?}"));
        let dir = scratch.path("");
        let script = format!("cd '{dir}' && ulimit -c unlimited && kill -SEGV $$");
        let done =
            Run::start(mode, &["--log-format", "json", "--", "sh", "-c", &script]).wait(BOUND);
        assert_eq!(done.code, Some(139), "{mode:?}: {:#?}", done.stderr);
        // Whether the kernel wrote a core depends on the host's core_pattern: the log says what happened.
        let dumped = std::fs::read_dir(&scratch.0)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("core"));
        let line = summary(&done);
        if dumped {
            assert!(
                line.contains("child was killed by SIGSEGV (core dumped); ")
                    && line.ends_with(
                        "\"exit_code\":139,\"signal\":\"SIGSEGV\",\"core_dumped\":true}"
                    ),
                "{mode:?}: {line}"
            );
        } else {
            eprintln!("no core was dumped here (core_pattern): only the signal is checked");
            assert!(
                line.contains("child was killed by SIGSEGV; ")
                    && line.ends_with("\"exit_code\":139,\"signal\":\"SIGSEGV\"}"),
                "{mode:?}: {line}"
            );
        }
        // No core: only the signal.
        let done = Run::start(mode, &["--", "sh", "-c", "kill -TERM $$"]).wait(BOUND);
        done.assert_exit(143);
        assert!(
            summary(&done).contains("; child was killed by SIGTERM; leftovers"),
            "{mode:?}: {:#?}",
            done.stderr
        );
    }
}

per_mode! {
    fn the_termination_message_is_written_unless_the_app_wrote_its_own(mode: Mode) {
        let scratch = Scratch::new(&format!("message-{mode:?}"));
        let message = scratch.path("termination-log");
        // An empty file, as Kubernetes mounts it: grace-init's summary goes in.
        std::fs::write(&message, "").unwrap();
        let done = Run::start(
            mode,
            &["--termination-log", &message, "--", "sh", "-c", "exit 3"],
        )
        .wait(BOUND);
        done.assert_exit(3);
        assert_eq!(
            std::fs::read_to_string(&message).unwrap(),
            "grace-init: exiting: the child ended without a stop signal; child exited with code 3; leftovers: 0 \
             sent SIGTERM, 0 SIGKILLed; exit code 3\n"
        );
        // A command that cannot start: the reason is the message.
        let done = Run::start(
            mode,
            &["--termination-log", &message, "--", "/nonexistent/app"],
        )
        .wait(BOUND);
        done.assert_exit(127);
        assert_eq!(
            std::fs::read_to_string(&message).unwrap(),
            "grace-init: cannot run '/nonexistent/app': no such file or directory; exit code 127\n"
        );
        // The app writes its own message: it stays.
        std::fs::write(&message, "").unwrap();
        let script = format!("echo 'app: config missing' > '{message}'; exit 3");
        let done = Run::start_env(
            mode,
            &["--", "sh", "-c", &script],
            &[("GRACE_INIT_TERMINATION_LOG", &message)],
        )
        .wait(BOUND);
        done.assert_exit(3);
        assert_eq!(
            std::fs::read_to_string(&message).unwrap(),
            "app: config missing\n"
        );
        done.assert_log_contains(&format!(
            "termination message not written: {message} changed since start (the app wrote its own)"
        ));
        // A FIFO nobody reads: no hang, no error.
        let fifo = scratch.path("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let done = Run::start(mode, &["--termination-log", &fifo, "--", "true"]).wait(BOUND);
        done.assert_exit(0);
        assert!(done.elapsed < Duration::from_secs(10), "{:?}", done.elapsed);
        done.assert_log_lacks("warning");
        // `none` on the command line wins over the environment: nothing is written.
        std::fs::write(&message, "").unwrap();
        let done = Run::start_env(
            mode,
            &["--termination-log", "none", "--", "true"],
            &[("GRACE_INIT_TERMINATION_LOG", &message)],
        )
        .wait(BOUND);
        done.assert_exit(0);
        assert_eq!(std::fs::read_to_string(&message).unwrap(), "");
    }
}
