//! `--wait-all`: a daemon that outlives the command is waited for, with no timer, and grace-init exits with the
//! command's code; a stop signal during that wait stops what is left within the deadline; other signals reach
//! it; without the flag the leftovers are stopped at once, as before. As PID 1 and as a subreaper.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A launcher that double-forks a daemon (a subshell starts it in the background and exits; the daemon leaves
/// the session with setsid), says so and exits 7. The daemon lives `life` seconds, then prints `daemon done`.
fn launcher(life: f64) -> String {
    format!("(setsid sh -c 'sleep {life}; echo daemon done' &); echo launcher done; exit 7")
}

/// The stdout line `needle` and when the test saw it.
fn seen(run: &mut Run, needle: &str, within: Duration) -> Instant {
    run.expect_stdout(needle, within);
    Instant::now()
}

per_mode! {
    fn a_double_forked_daemon_is_waited_for_and_the_launchers_code_is_kept(mode: Mode) {
        let script = launcher(1.5);
        let mut run = Run::start(mode, &["--wait-all", "-w", "--", "sh", "-c", &script]);
        let launched = seen(&mut run, "launcher done", secs(10.0));
        run.expect_stderr("exited with code 7 after running", secs(5.0));
        run.expect_stderr("waiting for the processes it left to exit", secs(5.0));
        let listed = run.expect_stderr("still running: ", secs(5.0));
        assert!(!listed.contains("still running: 0"), "{mode:?}: {listed}");
        let ended = seen(&mut run, "daemon done", secs(10.0));
        let at_exit = run.started_at();
        let done = run.wait(secs(10.0));
        let exited = at_exit + done.elapsed;
        // The launcher's code.
        done.assert_exit(7);
        done.check(
            ended.duration_since(launched) >= secs(1.3),
            "the daemon ran its course",
        );
        // Measured from the daemon's last line: grace-init leaves as soon as the daemon is reaped.
        let after = exited.saturating_duration_since(ended);
        done.check(
            after < secs(2.0),
            format!("exited {after:?} after the daemon"),
        );
        println!("{mode:?}: exit {after:?} after the daemon's last line");
        done.assert_log_contains("every process it left has exited");
        done.assert_log_contains("leftovers: 0 sent SIGTERM, 0 SIGKILLed; exit code 7");
        // -w names the reaped daemon.
        done.assert_log_contains("left behind by the app");
    }

    fn without_wait_all_the_daemon_is_stopped_when_the_launcher_exits(mode: Mode) {
        let script = launcher(3.0);
        let mut run = Run::start(mode, &["-t", "5", "--", "sh", "-c", &script]);
        let launched = seen(&mut run, "launcher done", secs(10.0));
        let at_exit = run.started_at();
        let done = run.wait(secs(10.0));
        done.assert_exit(7);
        done.check(
            !done.stdout.iter().any(|l| l.contains("daemon done")),
            "the daemon was stopped",
        );
        done.check(
            (at_exit + done.elapsed).saturating_duration_since(launched) < secs(2.5),
            "not waited for",
        );
        done.assert_log_contains("the child is gone but processes remain: sending them SIGTERM");
        done.assert_log_lacks("--wait-all");
    }
}

/// The reporter as a launcher that starts a daemon reporter (its own session) and exits 5 once both are ready.
fn reporter_launcher(daemon: &str) -> Vec<String> {
    vec![
        reporter(),
        "--tag".into(),
        "launcher".into(),
        "--exit-now".into(),
        "5".into(),
        "--grandchild".into(),
        format!("--tag daemon --setsid {daemon}"),
    ]
}

per_mode! {
    fn a_stop_during_the_wait_reaches_the_daemon_and_the_deadline_holds(mode: Mode) {
        for (rewrite, signal) in [(None, "SIGTERM"), (Some("TERM:QUIT"), "SIGQUIT")] {
            let mut args = vec!["--wait-all", "-t", "1"];
            if let Some(rule) = rewrite {
                args.extend(["-r", rule]);
            }
            args.push("--");
            let launcher = reporter_launcher("");
            args.extend(launcher.iter().map(String::as_str));
            let mut run = Run::start(mode, &args);
            run.expect_stdout("daemon ready", secs(20.0));
            run.expect_stderr("exited with code 5", secs(10.0));
            run.expect_stderr("still running: 1 process", secs(5.0));
            // The wait has no timer: grace-init sleeps until something happens.
            std::thread::sleep(secs(0.2));
            let before = wakeups(run.init_pid());
            std::thread::sleep(secs(1.0));
            let idle = wakeups(run.init_pid()) - before;
            assert_eq!(idle, 0, "{mode:?}: woke up {idle} times in 1 s of waiting");
            let sent = Instant::now();
            run.signal(libc::SIGTERM);
            // The daemon reports the signal and carries on: only SIGKILL at the deadline ends it.
            run.expect_stdout(&format!("daemon got {signal}"), secs(5.0));
            let at_exit = run.started_at();
            let done = run.wait(secs(10.0));
            let took = (at_exit + done.elapsed).saturating_duration_since(sent);
            let what = format!("{rewrite:?}");
            println!(
                "{mode:?} {what}: {idle} wake-ups in 1 s of waiting; exit {took:?} after the stop signal (-t 1)"
            );
            // The launcher's code.
            done.assert_exit_for(5, &what);
            done.check(
                took >= secs(1.0) && took < secs(1.5),
                format!("{what}: SIGKILL at the deadline, exit {took:?} after the signal"),
            );
            done.assert_log_contains(&format!(
                "leftovers: 1 forwarded {signal}, 0 sent SIGTERM, 1 SIGKILLed; exit code 5"
            ));
        }
    }

    fn a_stop_during_the_wait_keeps_the_drain_delay_and_the_pre_stop_and_a_cooperative_daemon_ends_it(mode: Mode) {
        let launcher = reporter_launcher("--exit-on TERM=0");
        let pre_stop = "echo deregistered >&2";
        let mut args = vec![
            "--wait-all",
            "-t",
            "5",
            "--drain-delay",
            "0.5",
            "--pre-stop",
            pre_stop,
            "--",
        ];
        args.extend(launcher.iter().map(String::as_str));
        let mut run = Run::start(mode, &args);
        run.expect_stdout("daemon ready", secs(20.0));
        run.expect_stderr("still running: 1 process", secs(10.0));
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        run.expect_stdout("daemon got SIGTERM", secs(5.0));
        let told = sent.elapsed();
        let done = run.wait(secs(10.0));
        done.assert_exit(5);
        // The pre-stop command's output (grace-init's stderr) comes before the stop signal goes out.
        let at = |line: &str| done.stderr.iter().position(|l| l.ends_with(line));
        done.check(
            at("deregistered").is_some() && at("deregistered") < at("to every process left"),
            "the pre-stop command's output before the stop signal",
        );
        done.check(
            told >= secs(0.5) && told < secs(2.0),
            format!("told {told:?} after the signal, after the drain delay"),
        );
        done.assert_log_contains("draining for 0.500s before forwarding");
        done.assert_log_contains("pre-stop command finished in");
        done.assert_log_contains("leftovers: 1 forwarded SIGTERM, 0 sent SIGTERM, 0 SIGKILLed");
    }

    fn other_signals_after_the_launcher_exited_reach_the_daemon_run_as_another_user(mode: Mode) {
        // A shell daemon (the reporter's interpreter may not be reachable for another user): it reports HUP, and
        // ends on USR1. Its `sleep`s are its own children, not told: only they would die of a HUP.
        let daemon = "trap 'echo daemon got HUP' HUP; trap 'echo daemon got USR1; exit 0' USR1; \
                      echo daemon ready $(id -u); while :; do sleep 0.1; done";
        let script = format!("(setsid sh -c \"{daemon}\" &); exit 5");
        let mut run = Run::start(
            mode,
            &["--wait-all", "-u", "65534:65534", "--", "sh", "-c", &script],
        );
        let ready = run.expect_stdout("daemon ready", secs(20.0));
        assert_eq!(ready, "daemon ready 65534", "{mode:?}");
        run.expect_stderr("still running: ", secs(10.0));
        run.signal(libc::SIGHUP);
        run.expect_stdout("daemon got HUP", secs(5.0));
        run.signal(libc::SIGUSR1);
        run.expect_stdout("daemon got USR1", secs(5.0));
        let done = run.wait(secs(10.0));
        done.assert_exit(5);
        done.assert_log_contains("every process it left has exited");
    }
}

per_mode! {
    /// The README's example, as written there: a launcher script that starts nginx, which daemonises.
    fn the_readme_example_waits_for_nginx_and_stops_it_gracefully(mode: Mode) {
        let readme = std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR")))
            .expect("README.md");
        let section = readme
            .split("### `--wait-all`")
            .nth(1)
            .expect("the --wait-all section");
        let blocks: Vec<&str> = section
            .split("```sh\n")
            .skip(1)
            .take(2)
            .map(|b| b.split("```").next().unwrap_or_default())
            .collect();
        let [script, command] = blocks.as_slice() else {
            panic!("the section's two sh blocks: {blocks:?}");
        };
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        let args: Vec<&str> = command
            .trim()
            .strip_prefix("grace-init ")
            .expect("a grace-init command line")
            .split_whitespace()
            .collect();
        assert_eq!(args.last(), Some(&"./start.sh"), "{args:?}");
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nginx is missing: run scripts/setup-test-deps.sh (as root) first");
        let scratch = Scratch::new(&format!("wait-all-readme-{mode:?}"));
        let port = free_port();
        let conf = std::fs::read_to_string(format!(
            "{}/tests/servers/nginx.conf",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("nginx.conf")
        .replace("daemon off;", "daemon on;")
        .replace("@PREFIX@", &scratch.0.display().to_string())
        .replace("@PORT@", &port.to_string());
        let conf_path = scratch.path("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let start = scratch.path("start.sh");
        std::fs::write(&start, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&start, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut argv: Vec<&str> = args.clone();
        *argv.last_mut().unwrap() = &start;
        let path = format!(
            "{}:{}",
            std::path::Path::new(nginx).parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut run = Run::start_env(mode, &argv, &[("NGINX_CONF", &conf_path), ("PATH", &path)]);
        run.expect_stdout("start.sh: nginx is up", secs(20.0));
        run.expect_stderr("exited with code 0 after running", secs(10.0));
        let listed = run.expect_stderr("still running: ", secs(5.0));
        assert!(listed.contains("(nginx)"), "{mode:?}: {listed}");
        let answer = wait_for(secs(10.0), || http_get(port, "/fast"));
        assert_eq!(answer.as_deref(), Some("fast"), "{mode:?}: nginx serves");
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let at_exit = run.started_at();
        let done = run.wait(secs(30.0));
        let took = (at_exit + done.elapsed).saturating_duration_since(sent);
        // start.sh's code.
        done.assert_exit(0);
        done.check(
            took < secs(5.0),
            format!("nginx quit gracefully within {took:?}"),
        );
        done.assert_log_contains("forwarding SIGQUIT to every process left");
        done.assert_log_contains(
            "leftovers: 1 forwarded SIGQUIT, 0 sent SIGTERM, 0 SIGKILLed; exit code 0",
        );
        done.check(http_get(port, "/fast").is_none(), "nginx is gone");
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The body of `GET path` on the loopback port, if something answers with 200 within a second.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, secs(1.0)).ok()?;
    stream.set_read_timeout(Some(secs(1.0))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.trim().to_string())
}

/// As PID 1, a process entered from outside (`docker exec`) is no reason to keep waiting: once the command's
/// processes are gone it is stopped as any leftover (SIGTERM, then the bounded wait).
#[test]
fn as_pid1_a_process_entered_from_outside_is_stopped_once_the_commands_processes_are_gone() {
    if !pid1_available() {
        return;
    }
    let script = launcher(1.5);
    let mut run = Run::start(
        Mode::Pid1,
        &["--wait-all", "-t", "5", "--", "sh", "-c", &script],
    );
    run.expect_stdout("launcher done", secs(10.0));
    run.expect_stderr("still running: ", secs(5.0));
    let mut stranger = std::process::Command::new("nsenter")
        .args(["-t", &run.init_pid().to_string(), "-p", "-m", "--", "sh", "-c"])
        .arg("trap 'echo stranger got TERM; exit 0' TERM; echo stranger ready; while :; do sleep 0.05; done")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("nsenter");
    let lines = pump(stranger.stdout.take().expect("stdout"));
    let ready = lines.recv_timeout(secs(5.0)).ok();
    let daemon_done = seen(&mut run, "daemon done", secs(10.0));
    let said = lines.recv_timeout(secs(5.0)).ok();
    let told = daemon_done.elapsed();
    let at_exit = run.started_at();
    let done = run.wait(secs(10.0));
    let _ = stranger.kill();
    let _ = stranger.wait();
    let log = done.stderr_text();
    assert_eq!(ready.as_deref(), Some("stranger ready"));
    assert_eq!(said.as_deref(), Some("stranger got TERM"), "{log}");
    assert!(told < secs(2.0), "told {told:?} after the daemon ended");
    assert_eq!(done.code, Some(7), "{log}");
    assert!(
        (at_exit + done.elapsed).saturating_duration_since(daemon_done) < secs(3.0),
        "{log}"
    );
    assert!(
        log.contains("the child is gone but processes remain: sending them SIGTERM"),
        "{log}"
    );
}

/// A subreaper without /proc waits for what the command left through waitpid, but cannot find it to signal:
/// a stop reaches none of it, and at the end of the grace period grace-init says so and exits without it.
#[test]
fn without_proc_a_subreaper_waits_but_a_stop_ends_the_wait_at_the_deadline() {
    let launcher = reporter_launcher("");
    let mut args = vec!["--wait-all", "-t", "1", "--"];
    args.extend(launcher.iter().map(String::as_str));
    let mut run = Run::launch(Mode::Subreaper, &Launch::without_proc(), &args);
    let ready = run.expect_stdout("daemon ready", secs(20.0));
    let _daemon = Stray(vec![ready_pid(&ready)]);
    run.expect_stderr(
        "still running: processes grace-init cannot list without /proc",
        secs(10.0),
    );
    // Waiting, with no timer: the daemon is still there a while later.
    std::thread::sleep(secs(0.5));
    assert!(state(ready_pid(&ready)).is_some_and(|s| s != 'Z'));
    let sent = Instant::now();
    run.signal(libc::SIGTERM);
    let at_exit = run.started_at();
    let done = run.wait(secs(10.0));
    let took = (at_exit + done.elapsed).saturating_duration_since(sent);
    let log = done.stderr_text();
    assert_eq!(done.code, Some(5), "{log}");
    assert!(took >= secs(1.0) && took < secs(2.5), "{took:?}\n{log}");
    assert!(
        log.contains("no process left can be found without /proc: none was sent SIGTERM")
            && log.contains("cannot wait for (not visible without /proc): exiting without them")
            && log.contains(
                "leftovers: 0 forwarded SIGTERM, 0 sent SIGTERM, 0 SIGKILLed; exit code 5"
            ),
        "{log}"
    );
    assert!(
        !done.stdout.iter().any(|l| l.starts_with("daemon got")),
        "{:?}",
        done.stdout
    );
}
