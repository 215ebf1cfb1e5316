//! grace-init under a real container engine: Podman (Debian's 4.3) as root, with images built here from a
//! Containerfile (no registry: `FROM scratch`, the static grace-init and a static busybox), stopped with
//! `podman stop -t`, signalled with `podman kill -s`, entered with `podman exec`, read with `podman inspect` and
//! `podman logs` — side by side with `podman run --init` (catatonit) and with no init at all.
//!
//! Podman is set up by tests/common/podman.rs (storage and configuration of its own, nothing from /etc). Every
//! container runs with `--network none` and is removed by the test that started it.

mod common;

use common::host::{DOUBLE_FORK, NO_HANDLER, zombies};
use common::podman::{Container, GRACE_INIT, Pid1, Podman, example_image, podman};
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `scenario` once per init at the same time (the containers are independent), returning the results in order.
fn side_by_side<T: Send>(inits: &[Pid1], scenario: impl Fn(Pid1) -> T + Sync) -> Vec<T> {
    let scenario = &scenario;
    thread::scope(|s| {
        let handles: Vec<_> = inits
            .iter()
            .map(|&init| s.spawn(move || scenario(init)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------------------
// The scenarios.

#[test]
fn pid1_problem_the_bare_app_ignores_podman_stop_and_an_init_fixes_it() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::App, Pid1::Catatonit, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        let c = Container::run(p, init, &[], NO_HANDLER);
        c.wait_log("ready");
        let stopped = c.stop(2);
        (stopped, c.logs())
    });
    let (bare, bare_logs) = &results[0];
    assert_eq!(bare.code, 137, "{bare:?}\n{bare_logs}");
    assert!(
        bare.took >= Duration::from_secs(2),
        "the bare PID 1 should have ignored TERM until podman's SIGKILL: {bare:?}"
    );
    for (init, (stopped, logs)) in inits.iter().zip(&results).skip(1) {
        assert_eq!(stopped.code, 143, "{init:?}: {stopped:?}\n{logs}");
        assert!(
            stopped.took < Duration::from_millis(1500),
            "{init:?} was not prompt: {stopped:?}\n{logs}"
        );
    }
    let (_, gi_logs) = &results[2];
    assert!(
        gi_logs.contains("exiting after stop signal SIGTERM") && gi_logs.contains("exit code 143"),
        "no summary line in `podman logs`:\n{gi_logs}"
    );
    eprintln!(
        "podman stop -t 2, app without a TERM handler: no init {} (137), podman --init {} (143), grace-init {} (143)",
        ms(bare.took),
        ms(results[1].0.took),
        ms(results[2].0.took)
    );
}

#[test]
fn cooperative_app_finishes_its_work_and_its_exit_code_reaches_podman_inspect() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::Catatonit, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        let c = Container::run(p, init, &[], &["/app/graceful.sh"]);
        c.wait_log("ready");
        (c.stop(10), c.logs())
    });
    for (init, (stopped, logs)) in inits.iter().zip(&results) {
        assert_eq!(stopped.code, 7, "{init:?}: {stopped:?}\n{logs}");
        assert!(logs.contains("app: finished"), "{init:?}:\n{logs}");
        assert!(
            stopped.took >= Duration::from_millis(900) && stopped.took < Duration::from_secs(8),
            "{init:?}: {stopped:?}"
        );
    }
    let (_, logs) = &results[1];
    assert!(
        logs.contains("child exited with code 7") && logs.contains("exit code 7"),
        "{logs}"
    );
    eprintln!(
        "cooperative app (1 s of work on TERM): podman --init {} (7), grace-init {} (7)",
        ms(results[0].0.took),
        ms(results[1].0.took)
    );
}

#[test]
fn term_ignoring_app_is_killed_at_grace_init_timeout_well_before_podman_stop_timeout() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::Catatonit, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        // The timeout comes from the environment, as an image's `ENV GRACE_INIT_TIMEOUT=1` sets it.
        let c = Container::run(
            p,
            init,
            &["--env", "GRACE_INIT_TIMEOUT=1"],
            &["/app/stubborn.sh"],
        );
        c.wait_log("ready");
        (c.stop(3), c.logs())
    });
    let (catatonit, logs) = &results[0];
    assert_eq!(catatonit.code, 137, "{catatonit:?}\n{logs}");
    assert!(
        catatonit.took >= Duration::from_secs(3),
        "under --init only podman's SIGKILL at 3 s ends it: {catatonit:?}"
    );
    let (grace, logs) = &results[1];
    assert_eq!(grace.code, 137, "{grace:?}\n{logs}");
    assert!(
        grace.took >= Duration::from_millis(950) && grace.took < Duration::from_millis(2500),
        "grace-init should SIGKILL at its 1 s timeout: {grace:?}\n{logs}"
    );
    assert!(logs.contains("escalated: SIGKILL"), "{logs}");
    eprintln!(
        "TERM-ignoring app, podman stop -t 3: podman --init {} (137, podman's SIGKILL); grace-init with \
         GRACE_INIT_TIMEOUT=1 {} (137, its own SIGKILL, logged)",
        ms(catatonit.took),
        ms(grace.took)
    );
}

#[test]
fn shell_entrypoint_background_server_finishes_under_grace_init_and_is_cut_off_under_init() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::Catatonit, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        let c = Container::run(p, init, &[], &["sh", "-c", "/app/server.sh & wait"]);
        c.wait_log("server: ready");
        (c.stop(10), c.logs())
    });
    let (catatonit, logs) = &results[0];
    // catatonit signals its child only: the shell dies of TERM, catatonit exits with it, and the kernel kills
    // the server before it has even heard of the stop.
    assert_eq!(catatonit.code, 143, "{catatonit:?}\n{logs}");
    assert!(
        !logs.contains("server: finished"),
        "under --init the server should have been cut off:\n{logs}"
    );
    let (grace, logs) = &results[1];
    assert_eq!(grace.code, 143, "{grace:?}\n{logs}");
    assert!(
        logs.contains("server: finished"),
        "the server was not let finish:\n{logs}"
    );
    assert!(grace.took >= Duration::from_millis(900), "{grace:?}");
    eprintln!(
        "shell entrypoint with a background server (1 s of work): podman --init {} (143, work lost); \
         grace-init {} (143, work finished)",
        ms(catatonit.took),
        ms(grace.took)
    );
}

#[test]
fn zombies_from_podman_exec_pile_up_without_init_and_are_reaped_by_grace_init() {
    let Some(p) = podman() else { return };
    let inits = [Pid1::App, Pid1::GraceInit(&[])];
    let results = side_by_side(&inits, |init| {
        let c = Container::run(p, init, &[], DOUBLE_FORK);
        c.wait_log("ready");
        for _ in 0..2 {
            let out = c.exec(&["sh", "-c", "sleep 0.2 & exit 0"]);
            assert!(out.status.success(), "podman exec failed: {out:?}");
        }
        let table = match init {
            // The control: the check sees zombies where there are some.
            Pid1::App => c.wait_processes(|t| zombies(t).len() >= 3),
            _ => c.wait_processes(|t| {
                zombies(t).is_empty() && t.iter().filter(|p| p.comm == "sleep").count() == 1
            }),
        };
        (table, c.stop(5))
    });
    let (bare, _) = &results[0];
    let bare = bare
        .as_ref()
        .unwrap_or_else(|t| panic!("expected 3 zombies under a bare PID 1: {t:?}"));
    assert!(zombies(bare).iter().all(|p| p.comm == "sleep"), "{bare:?}");
    let (table, stopped) = &results[1];
    let table = table
        .as_ref()
        .unwrap_or_else(|t| panic!("orphans from podman exec not reaped: {t:?}"));
    assert!(
        table.iter().any(|p| p.pid == 1 && p.comm == "grace-init"),
        "{table:?}"
    );
    assert_eq!(stopped.code, 143, "{stopped:?}");
}

#[test]
fn podman_kill_signals_are_forwarded_to_the_app() {
    let Some(p) = podman() else { return };
    let c = Container::run(p, Pid1::GraceInit(&[]), &[], &["/app/signals.sh"]);
    c.wait_log("ready");
    for signal in ["USR1", "HUP", "WINCH"] {
        c.p.ok(&["kill", "--signal", signal, &c.name]);
        c.wait_log(&format!("got {signal}"));
    }
    // A stop signal sent with `podman kill` starts the shutdown as `podman stop` does.
    c.p.ok(&["kill", "--signal", "TERM", &c.name]);
    c.wait_log("bye");
    let code = c.p.ok(&["wait", &c.name]);
    assert_eq!(code.trim(), "0", "{}", c.logs());
    assert_eq!(c.exit_code(), 0);
    assert!(
        c.logs().contains("exiting after stop signal SIGTERM"),
        "{}",
        c.logs()
    );
}

#[test]
fn as_a_non_root_user_grace_init_still_forwards_waits_and_reaps() {
    let Some(p) = podman() else { return };
    let c = Container::run(
        p,
        Pid1::GraceInit(&["-t", "5"]),
        &["--user", "65534:65534"],
        &["sh", "-c", "echo uid=$(id -u); /app/server.sh & wait"],
    );
    c.wait_log("server: ready");
    let logs = c.logs();
    assert!(logs.contains("uid=65534"), "not running as 65534:\n{logs}");
    let stopped = c.stop(10);
    let logs = c.logs();
    assert_eq!(stopped.code, 143, "{stopped:?}\n{logs}");
    assert!(logs.contains("server: finished"), "{logs}");
    assert!(
        !logs.contains("warning"),
        "nothing that works as root should warn as nobody:\n{logs}"
    );
    let user = c.inspect("{{.Config.User}}");
    assert_eq!(user.trim(), "65534:65534");
}

// ---------------------------------------------------------------------------------------------------------
// Dockerfile.example, built for real on local bases, and examples/kubernetes/ played with `podman kube play`.

#[test]
fn dockerfile_example_builds_the_small_binary_and_its_image_finishes_a_request_on_podman_stop() {
    let Some(p) = podman() else { return };
    let image = example_image(p);
    // What users build is the small binary, the one the benchmarks measure.
    let size = Container::start(p, &["--entrypoint", "stat", image, "-c", "%s", GRACE_INIT]);
    let bytes: u64 = {
        p.ok(&["wait", &size.name]);
        size.logs().trim().parse().expect("a size")
    };
    assert!(bytes < 650_000, "the image's grace-init is {bytes} bytes");

    let c = Container::start(p, &[image]);
    c.wait_log("Booting worker");
    // A client inside the container (its network is loopback only); it ignores the TERM grace-init sends to
    // what is left once gunicorn is gone, so it can report the answer it got.
    let client = thread::scope(|s| {
        let request = s.spawn(|| {
            c.exec(&[
                "python3",
                "-c",
                "import signal, urllib.request; signal.signal(signal.SIGTERM, signal.SIG_IGN); \
                 print(urllib.request.urlopen('http://127.0.0.1:8000/slow', timeout=20).read().decode())",
            ])
        });
        c.wait_log("app: slow request started");
        let stopped = c.stop(10);
        (stopped, request.join().expect("the client thread"))
    });
    let (stopped, answer) = client;
    let logs = c.logs();
    assert_eq!(stopped.code, 0, "{stopped:?}\n{logs}");
    assert!(
        String::from_utf8_lossy(&answer.stdout).contains("slow request finished"),
        "the in-flight request was cut off: {answer:?}\n{logs}"
    );
    assert!(
        stopped.took >= Duration::from_millis(1000) && stopped.took < Duration::from_secs(8),
        "{stopped:?}"
    );
    assert!(logs.contains("exiting after stop signal SIGTERM"), "{logs}");
    assert_eq!(c.inspect("{{.Config.User}}").trim(), "10001:10001");
    eprintln!(
        "Dockerfile.example image ({bytes}-byte grace-init): podman stop during a 2 s request took {} and exited 0",
        ms(stopped.took)
    );
}

/// `podman kube down` of a manifest on drop: the pods the test played are gone whatever happens.
struct Played {
    p: &'static Podman,
    manifest: PathBuf,
}

impl Drop for Played {
    fn drop(&mut self) {
        let _ = self
            .p
            .podman(&["kube", "down", &self.manifest.to_string_lossy()]);
    }
}

#[test]
fn kube_play_of_the_deployment_drains_for_its_delay_and_exits_0_within_the_grace_period() {
    let Some(p) = podman() else { return };
    let image = example_image(p);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let original = fs::read_to_string(root.join("examples/kubernetes/deployment.yaml"))
        .expect("read deployment.yaml");
    let mut manifest = original.replace("registry.example.com/hello-gunicorn:0.1.0", image);
    // Podman 4.3 turns containerPort into a port mapping, which it refuses with --network none; the named port
    // the readiness probe uses goes with it (podman 4.3 does not run readiness probes anyway).
    let ports = manifest.find("          ports:\n").expect("a ports block");
    let probe = manifest
        .find("          readinessProbe:")
        .expect("a readinessProbe");
    manifest.replace_range(ports..probe, "");
    let manifest = manifest.replace("port: http", "port: 8000");
    assert_ne!(manifest, original);
    let dir = p.context("kube", &[]);
    let path = dir.join("deployment.yaml");
    fs::write(&path, manifest).expect("write the manifest");

    let played = Played {
        p,
        manifest: path.clone(),
    };
    p.ok(&["kube", "play", "--network", "none", &path.to_string_lossy()]);
    // replicas: 2 gives two pods.
    let pods: Vec<Container> = (0..2)
        .map(|i| Container {
            p,
            name: format!("hello-gunicorn-pod-{i}-app"),
        })
        .collect();
    for c in &pods {
        c.wait_log("Booting worker");
        let env = c.inspect("{{.Config.Env}}");
        for var in ["GRACE_INIT_TIMEOUT=25", "GRACE_INIT_DRAIN_DELAY=5s"] {
            assert!(env.contains(var), "{}: {var} not set: {env}", c.name);
        }
        assert_eq!(c.inspect("{{.Config.User}}").trim(), "10001:10001");
    }
    // Podman 4.3 does not carry terminationGracePeriodSeconds (30) into the container's stop timeout, and its
    // `kube down` removes pods without one: stop them as the kubelet would, with the manifest's 30 s, first.
    let podman_timeout = pods[0].inspect("{{.Config.StopTimeout}}");
    let grace = original
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
        .expect("terminationGracePeriodSeconds")
        .trim()
        .to_string();
    let began = Instant::now();
    p.ok(&["pod", "stop", "--time", &grace, "hello-gunicorn-pod-0"]);
    let took = began.elapsed();
    let c = &pods[0];
    let logs = c.logs();
    assert_eq!(c.exit_code(), 0, "{logs}");
    for needle in [
        "\"level\":\"info\"",
        "grace period 25.000s",
        "draining for 5.000s before forwarding",
        "exit code 0",
    ] {
        assert!(logs.contains(needle), "no {needle:?} in the logs:\n{logs}");
    }
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(25),
        "the 5 s drain delay, then gunicorn's prompt exit: {took:?}\n{logs}"
    );
    let began = Instant::now();
    drop(played);
    eprintln!(
        "kube play deployment.yaml: pod stop --time {grace} took {} (5 s drain, then gunicorn), exit 0; \
         podman 4.3 set the stop timeout to {}s, not terminationGracePeriodSeconds; kube down took {}",
        ms(took),
        podman_timeout.trim(),
        ms(began.elapsed())
    );
    let left = p.ok(&["pod", "ps", "--format", "{{.Name}}"]);
    assert!(!left.contains("hello-gunicorn"), "pods left: {left}");
}

/// The app asks for more memory than the container has: dd with a 300 MiB buffer it fills from /dev/zero. One
/// process, so the OOM killer has one obvious victim (with a pipeline, the processes left once the biggest is
/// killed are as small as grace-init, and a second OOM kill may take any of them).
const MEMORY_HOG: &[&str] = &["dd", "if=/dev/zero", "of=/dev/null", "bs=300M", "count=1"];

#[test]
fn an_app_over_podman_s_memory_limit_is_reported_as_oom_killed_in_the_log_and_the_termination_message()
 {
    let Some(p) = podman() else { return };
    // Mounted as Kubernetes mounts it: an empty file at /dev/termination-log, which grace-init writes by default.
    let dir = p
        .home
        .join("contexts")
        .join(format!("oom-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("create a directory");
    let message = dir.join("termination-log");
    fs::write(&message, "").expect("create the message file");
    let mount = format!("{}:/dev/termination-log", message.display());
    let c = Container::run(
        p,
        Pid1::GraceInit(&[]),
        &["--memory", "48m", "--memory-swap", "48m", "-v", &mount],
        MEMORY_HOG,
    );
    p.ok(&["wait", &c.name]);
    let logs = c.logs();
    assert_eq!(c.exit_code(), 137, "{logs}");
    let said = "was killed by SIGKILL from the kernel's OOM killer (memory limit 48 MiB, peak ";
    assert!(logs.contains(said), "{logs}");
    let written = fs::read_to_string(&message).expect("read the message file");
    assert!(
        written.starts_with(&format!(
            "grace-init: exiting: the child ended without a stop signal; child {said}"
        )) && written.ends_with("; leftovers: 0 sent SIGTERM, 0 SIGKILLed; exit code 137\n"),
        "{written}\n{logs}"
    );
    eprintln!(
        "podman --memory 48m: podman inspect says OOMKilled={}; the termination message: {written}",
        c.inspect("{{.State.OOMKilled}}").trim()
    );
    let _ = fs::remove_dir_all(&dir);
    // What conmon left in its working directory for the OOM kill.
    let _ = fs::remove_file(p.home.join("oom"));
}
