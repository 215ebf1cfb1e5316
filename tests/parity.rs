//! What the peer inits offer, as PID 1 and as a subreaper: `--user` (gosu), `--pause` (catatonit -P),
//! an init that holds nothing of the caller's (cwd `/`, inherited descriptors closed in grace-init only),
//! socket activation (LISTEN_PID handed to the child) and `--warn-reap` (tini -w).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::Instant;

use common::*;

/// A symlink named `name` to `sleep` in `scratch`: a process started through it is called `name` in /proc.
fn named_sleep(scratch: &Scratch, name: &str) -> String {
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sleep");
    let link = scratch.path(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(sleep, &link).unwrap();
    link
}

/// `(uid, gid, home)` of `name` in this machine's /etc/passwd.
fn passwd_entry(name: &str) -> (u32, u32, String) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in /etc/passwd"));
    let fields: Vec<&str> = line.split(':').collect();
    (
        fields[2].parse().unwrap(),
        fields[3].parse().unwrap(),
        fields[5].to_string(),
    )
}

fn is_root() -> bool {
    status_field(std::process::id() as i32, "Uid").is_some_and(|u| u.starts_with("0\t"))
}

/// The first field of a /proc status line such as `Uid:\t65534\t65534\t65534\t65534`, all four equal.
fn all_ids(line: &str) -> String {
    let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{line}");
    ids.first().copied().unwrap_or_default().to_string()
}

/// Prints its ids, groups, HOME and directory, then `ready`, and sleeps until told to stop.
const SHOW_IDENTITY: &str = r#"grep -E '^(Uid|Gid|Groups):' /proc/self/status; echo "HOME=$HOME"; echo "CWD=$(pwd)"; echo ready; exec sleep 1000"#;

/// (flags, environment, uid, gid, groups, HOME) the child must see.
type UserCase<'a> = (
    Vec<&'a str>,
    Vec<(&'a str, &'a str)>,
    u32,
    u32,
    String,
    String,
);

per_mode! {
    fn user_switches_the_child_and_pre_stop_but_not_grace_init(mode: Mode) {
        if !is_root() {
            eprintln!("SKIPPED: --user needs root");
            return;
        }
        let (nobody_uid, nobody_gid, nobody_home) = passwd_entry("nobody");
        let (_, daemon_gid, _) = passwd_entry("daemon");
        let pre_stop = r#"echo "pre-stop ids $(id -u) $(id -g) HOME=$HOME""#;
        // (flags, environment, uid, gid, groups, HOME)
        let nobody = nobody_uid.to_string();
        let cases: Vec<UserCase> = vec![
            (
                vec!["-u", "nobody"],
                vec![],
                nobody_uid,
                nobody_gid,
                nobody_gid.to_string(),
                nobody_home.clone(),
            ),
            // The env twin, an explicit group (the only group then) and a uid given as a number.
            (
                vec![],
                vec![("GRACE_INIT_USER", "nobody:daemon")],
                nobody_uid,
                daemon_gid,
                daemon_gid.to_string(),
                nobody_home.clone(),
            ),
            (
                vec!["--user", &nobody],
                vec![],
                nobody_uid,
                nobody_gid,
                nobody_gid.to_string(),
                nobody_home.clone(),
            ),
            // A number with no passwd entry: grace-init's group (0, as docker --user does) and HOME=/.
            (
                vec!["--user", "4242"],
                vec![],
                4242,
                0,
                "0".to_string(),
                "/".to_string(),
            ),
            (
                vec!["--user", "4242:4243"],
                vec![],
                4242,
                4243,
                "4243".to_string(),
                "/".to_string(),
            ),
        ];
        for (flags, env, uid, gid, groups, home) in &cases {
            let what = format!("{mode:?} {flags:?} {env:?}");
            let mut args = flags.clone();
            args.extend(["--pre-stop", pre_stop, "--", "sh", "-c", SHOW_IDENTITY]);
            let mut run = Run::start_env(mode, &args, env);
            let uid_line = run.expect_stdout("Uid:", secs(10.0));
            let gid_line = run.expect_stdout("Gid:", secs(5.0));
            let groups_line = run.expect_stdout("Groups:", secs(5.0));
            let home_line = run.expect_stdout("HOME=", secs(5.0));
            let cwd_line = run.expect_stdout("CWD=", secs(5.0));
            run.expect_stdout("ready", secs(5.0));
            assert_eq!(all_ids(&uid_line), uid.to_string(), "{what}");
            assert_eq!(all_ids(&gid_line), gid.to_string(), "{what}");
            let groups_seen: Vec<&str> = groups_line.split_whitespace().skip(1).collect();
            assert_eq!(groups_seen.join(" "), *groups, "{what}");
            assert_eq!(home_line, format!("HOME={home}"), "{what}");
            // The child keeps the directory it was started in.
            assert_eq!(
                cwd_line,
                format!("CWD={}", env!("CARGO_MANIFEST_DIR")),
                "{what}"
            );
            // grace-init itself is still root, with its groups.
            let init = status_field(run.init_pid(), "Uid").unwrap();
            assert_eq!(all_ids(&format!("Uid: {init}")), "0", "{what}");
            run.signal(libc::SIGTERM);
            let done = run.wait(secs(10.0));
            done.assert_exit_for(143, &what);
            let want = format!("pre-stop ids {uid} {gid} HOME={home}");
            done.check(
                done.stderr.iter().any(|l| l == &want),
                format!("{what}: the pre-stop command runs as the user too; want {want:?}"),
            );
        }
    }
}

per_mode! {
    fn user_root_in_a_user_namespace_that_denies_setgroups_runs_the_command(mode: Mode) {
        // `unshare --map-root-user` denies setgroups; asking for the ids grace-init already has changes nothing,
        // so nothing is refused.
        for user in ["0:0", "0", "root"] {
            let launch = Launch::in_user_namespace(&[]);
            let done = Run::launch(mode, &launch, &["-u", user, "--", "id", "-u"]).wait(secs(10.0));
            done.assert_exit_for(0, format!("-u {user}"));
            assert_eq!(done.stdout, ["0"], "{mode:?} -u {user}");
        }
    }
}

per_mode! {
    fn user_that_cannot_be_executed_by_the_new_user_is_126(mode: Mode) {
        if !is_root() {
            eprintln!("SKIPPED: --user needs root");
            return;
        }
        // A script only root may run: the exec happens as nobody, so it is refused, with the usual code.
        let scratch = Scratch::new("user-exec");
        let script = scratch.0.join("root-only.sh");
        std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let done =
            Run::start(mode, &["-u", "nobody", "--", script.to_str().unwrap()]).wait(secs(10.0));
        done.assert_exit(126);
        assert!(done.stdout.is_empty(), "{mode:?}: {:?}", done.stdout);
    }
}

/// Waits (bounded) until grace-init sleeps with its signals blocked: from then on a signal is not lost.
fn wait_until_idle(run: &Run) {
    let pid = run.init_pid();
    wait_for(secs(5.0), || {
        let blocked = status_field(pid, "SigBlk").is_some_and(|m| m != "0000000000000000");
        (state(pid) == Some('S') && blocked).then_some(())
    })
    .expect("grace-init did not settle into its wait");
}

per_mode! {
    fn pause_sleeps_without_wakeups_ignores_other_signals_and_exits_0_on_a_stop_signal(mode: Mode) {
        for (args, env) in [
            (vec!["--pause"], vec![]),
            (vec![], vec![("GRACE_INIT_PAUSE", "yes")]),
        ] {
            let what = format!("{mode:?} {args:?} {env:?}");
            let run = Run::start_env(mode, &args, &env);
            wait_until_idle(&run);
            let pid = run.init_pid();
            let before = wakeups(pid);
            std::thread::sleep(secs(1.0));
            let idle = wakeups(pid) - before;
            assert_eq!(idle, 0, "{what}: woke up {idle} times in 1 s of idling");
            // Not a stop signal: ignored.
            run.signal(libc::SIGHUP);
            run.signal(libc::SIGUSR1);
            std::thread::sleep(secs(0.2));
            assert!(
                state(pid).is_some_and(|s| s != 'Z'),
                "{what}: exited on HUP"
            );
            // Its own cwd is / too, and it holds no inherited descriptor.
            assert_eq!(
                std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
                Path::new("/")
            );
            run.signal(libc::SIGTERM);
            let done = run.wait(secs(5.0));
            done.assert_exit_for(0, &what);
            println!("{what}: {idle} wake-ups in 1 s idle");
        }
    }
}

per_mode! {
    fn pause_stops_on_the_configured_stop_signals_only(mode: Mode) {
        let run = Run::start(mode, &["--pause", "--stop-signals", "QUIT"]);
        wait_until_idle(&run);
        run.signal(libc::SIGTERM);
        std::thread::sleep(secs(0.2));
        assert!(
            state(run.init_pid()).is_some_and(|s| s != 'Z'),
            "{mode:?}: TERM is not a stop signal here"
        );
        run.signal(libc::SIGQUIT);
        let done = run.wait(secs(5.0));
        done.assert_exit(0);
    }
}

#[test]
fn pause_as_pid_1_reaps_orphans_from_processes_that_join_its_namespace() {
    // podman's infra container: processes join the pod's PID namespace (nsenter here) and their orphans are
    // re-parented to its PID 1. Only PID 1 mode can be given orphans: as a subreaper it has no descendants.
    if !pid1_available() {
        return;
    }
    let scratch = Scratch::new("pause-orphans");
    let leftover = named_sleep(&scratch, "pause-orphan");
    let mut run = Run::start(Mode::Pid1, &["--pause", "-w"]);
    wait_until_idle(&run);
    let target = run.init_pid().to_string();
    let script = format!("'{leftover}' 0.3 & echo $!");
    let joined = std::process::Command::new("nsenter")
        .args(["--target", &target, "--pid", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(joined.status.success(), "{joined:?}");
    let line = run.expect_stderr("pause-orphan", secs(5.0));
    let inner_pid = String::from_utf8_lossy(&joined.stdout).trim().to_string();
    assert!(
        line.starts_with("grace-init: warning: reaped process ")
            && line.contains(&format!(" {inner_pid} (pause-orphan)")),
        "{line} (pid {inner_pid})"
    );
    // Reaped: no zombie is left below it.
    let zombies: Vec<i32> = run
        .descendants()
        .into_iter()
        .filter(|p| state(*p) == Some('Z'))
        .collect();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
    run.signal(libc::SIGINT);
    let done = run.wait(secs(5.0));
    done.assert_exit(0);
}

/// A FIFO whose read end the test opens and reads to EOF, reported on the channel. The write end is opened
/// by the process that becomes grace-init (not by the test, nor by `unshare`, which stays around as PID 1's
/// parent and would hold a copy of anything the test handed down).
fn fifo_with_eof_watch(scratch: &Scratch) -> (Receiver<usize>, PathBuf) {
    let path = scratch.0.join("fifo");
    let _ = std::fs::remove_file(&path);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (tx, rx) = channel();
    let reader = path.clone();
    std::thread::spawn(move || {
        // Blocks until a writer opens the FIFO, then reads until every writer has closed it.
        let Ok(mut file) = std::fs::File::open(&reader) else {
            return;
        };
        let mut all = vec![];
        let _ = file.read_to_end(&mut all);
        let _ = tx.send(all.len());
    });
    (rx, path)
}

/// grace-init's descriptors: (number, what it points to).
fn descriptors(pid: i32) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let to = std::fs::read_link(e.path()).ok()?;
            Some((fd, to.display().to_string()))
        })
        .collect();
    fds.sort();
    fds
}

/// Whether grace-init holds only 0, 1, 2 and its own: the signalfd; when stderr is a pipe or terminal, the
/// logger's private non-blocking description of that same stderr (it never writes through the shared one); and,
/// as PID 1, the namespace's /proc, open to ask at exit whether any other process is left; and the memory cgroup's
/// OOM-kill counter (`memory.events` or `memory.oom_control`), open to explain a death.
fn holds_nothing_inherited(fds: &[(i32, String)], as_pid1: bool) -> bool {
    let numbers: Vec<i32> = fds.iter().map(|(fd, _)| *fd).collect();
    let stderr = fds
        .iter()
        .find(|(fd, _)| *fd == 2)
        .map(|(_, to)| to.clone());
    let extra: Vec<&(i32, String)> = fds.iter().filter(|(fd, _)| *fd > 2).collect();
    let signalfds = extra
        .iter()
        .filter(|(_, to)| to == "anon_inode:[signalfd]")
        .count();
    let stderr_copies = extra
        .iter()
        .filter(|(_, to)| Some(to) == stderr.as_ref())
        .count();
    let proc_dirs = extra.iter().filter(|(_, to)| to == "/proc").count();
    let oom_counters = extra
        .iter()
        .filter(|(_, to)| to.ends_with("/memory.events") || to.ends_with("/memory.oom_control"))
        .count();
    numbers.starts_with(&[0, 1, 2])
        && signalfds == 1
        && stderr_copies <= 1
        && proc_dirs <= usize::from(as_pid1)
        && oom_counters <= 1
        && extra.len() == signalfds + stderr_copies + proc_dirs + oom_counters
}

/// Asserts grace-init comes to hold only 0, 1, 2 and its own descriptors (it closes the rest just after the fork, so
/// the child may print its first line before that).
fn assert_holds_nothing_inherited(pid: i32, mode: Mode, what: &str) {
    let settled = wait_for(secs(2.0), || {
        holds_nothing_inherited(&descriptors(pid), mode == Mode::Pid1).then_some(())
    });
    assert!(
        settled.is_some(),
        "{what}: grace-init holds {:?}",
        descriptors(pid)
    );
}

per_mode! {
    fn grace_init_closes_inherited_descriptors_and_leaves_the_callers_directory_the_child_keeps_both(mode: Mode) {
        // The child drops fd 9 at once and its copy of fd 5 on SIGUSR1; its sleeps never get either.
        let app = r#"exec 9>&-; trap 'exec 5>&-; echo closed' USR1; echo ready; while :; do sleep 1000 5>&- & wait $!; done"#;
        let scratch = Scratch::new("hygiene");
        let (eof, fifo) = fifo_with_eof_watch(&scratch);
        // grace-init starts with the FIFO's write end on fds 5 and 9.
        let launch = Launch {
            prefix: strings(&["sh", "-c", r#"exec 5>"$FIFO" 9>&5; exec "$0" "$@""#]),
            env: vec![("FIFO".to_string(), fifo.display().to_string())],
            ..Launch::default()
        };
        let mut run = Run::launch(mode, &launch, &["--", "sh", "-c", app]);
        run.expect_stdout("ready", secs(10.0));
        let init = run.init_pid();
        let what = format!("{mode:?}");
        assert_holds_nothing_inherited(init, mode, &what);
        assert_eq!(
            std::fs::read_link(format!("/proc/{init}/cwd")).unwrap(),
            Path::new("/"),
            "{what}: grace-init's own directory"
        );
        let child = children(init)[0];
        assert_eq!(
            std::fs::read_link(format!("/proc/{child}/cwd")).unwrap(),
            Path::new(env!("CARGO_MANIFEST_DIR")),
            "{what}: the child keeps the caller's directory"
        );
        assert!(
            std::fs::read_link(format!("/proc/{child}/fd/5")).is_ok(),
            "{what}: the child keeps the inherited descriptor"
        );
        // The child still holds the write end: no EOF yet.
        assert!(
            eof.recv_timeout(secs(0.3)).is_err(),
            "{what}: EOF while the child holds the pipe"
        );
        run.signal(libc::SIGUSR1);
        run.expect_stdout("closed", secs(5.0));
        // grace-init holds no copy: the reader sees EOF as soon as the child closed its own.
        let started = Instant::now();
        assert!(
            eof.recv_timeout(secs(5.0)).is_ok(),
            "{what}: no EOF after the child closed its copy: grace-init still holds one"
        );
        println!("{what}: EOF {:?} after the child closed", started.elapsed());
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit_for(143, &what);
    }
}

per_mode! {
    fn grace_init_lets_go_of_the_callers_stdin_and_stdout_once_the_app_runs(mode: Mode) {
        // `grace-init -- producer | consumer`: the consumer sees EOF when the producer is done with its stdout, not
        // when grace-init exits. grace-init points its own 0 and 1 at /dev/null; the app keeps the caller's.
        let app = "echo ready >&2; exec >/dev/null; exec sleep 1000";
        let scratch = Scratch::new("stdio");
        let input = scratch.path("input");
        std::fs::write(&input, "").unwrap();
        let (eof, fifo) = fifo_with_eof_watch(&scratch);
        // The consumer's pipe is opened by the process that becomes grace-init, as a shell's `|` would.
        let launch = Launch {
            prefix: strings(&["sh", "-c", r#"exec "$0" "$@" <"$INPUT" >"$FIFO""#]),
            env: vec![
                ("INPUT".to_string(), input.clone()),
                ("FIFO".to_string(), fifo.display().to_string()),
            ],
            ..Launch::default()
        };
        let mut run = Run::launch(mode, &launch, &["--", "sh", "-c", app]);
        run.expect_stderr("ready", secs(10.0));
        let init = run.init_pid();
        assert!(
            eof.recv_timeout(secs(5.0)).is_ok(),
            "{mode:?}: no EOF once the app let go of stdout; grace-init holds {:?}",
            descriptors(init)
        );
        let held: Vec<String> = [0, 1]
            .iter()
            .map(|fd| {
                let link = std::fs::read_link(format!("/proc/{init}/fd/{fd}")).unwrap();
                link.display().to_string()
            })
            .collect();
        assert_eq!(
            held,
            ["/dev/null", "/dev/null"],
            "{mode:?}: grace-init's own 0 and 1"
        );
        let child = children(init)[0];
        assert_eq!(
            std::fs::read_link(format!("/proc/{child}/fd/0")).unwrap(),
            Path::new(&input),
            "{mode:?}: the app keeps the caller's stdin"
        );
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit(143);
    }
}

/// The activated app: checks LISTEN_PID against its own pid, accepts one connection on fd 3 and answers.
const ACTIVATED_APP: &str = r#"
import os, signal, socket, sys
print("activated LISTEN_PID=%s pid=%d LISTEN_FDS=%s LISTEN_FDNAMES=%s" % (
    os.environ.get("LISTEN_PID"), os.getpid(), os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_FDNAMES")), flush=True)
s = socket.socket(fileno=3)
conn, _ = s.accept()
conn.sendall(b"hello from pid %d\n" % os.getpid())
conn.close()
print("served", flush=True)
signal.pause()
"#;

/// Connects to `port` on the loopback (bounded) and returns the first line the server sends.
fn fetch_line(port: u16) -> String {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), secs(5.0)).unwrap();
    stream.set_read_timeout(Some(secs(5.0))).unwrap();
    let _ = stream.write_all(b"hi\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.trim().to_string()
}

per_mode! {
    fn socket_activation_hands_the_child_its_own_pid_and_the_listening_socket(mode: Mode) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // `sh -c '... exec grace-init'`: the shell's pid is the pid grace-init will have (1 as PID 1).
        let launch = Launch {
            prefix: strings(&[
                "sh",
                "-c",
                r#"export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web; exec "$0" "$@""#,
            ]),
            inherit: vec![(3, listener.as_raw_fd())],
            ..Launch::default()
        };
        let pre_stop = r#"echo "pre-stop sees LISTEN_PID=${LISTEN_PID:-unset} LISTEN_FDS=${LISTEN_FDS:-unset}""#;
        let mut run = Run::launch(
            mode,
            &launch,
            &["--pre-stop", pre_stop, "--", "python3", "-c", ACTIVATED_APP],
        );
        drop(listener);
        let what = format!("{mode:?}");
        let line = run.expect_stdout("activated", secs(10.0));
        let field = |name: &str| -> String {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(field("LISTEN_PID"), field("pid"), "{what}: {line}");
        assert_ne!(field("LISTEN_PID"), "1", "{what}: {line}");
        assert_eq!(field("LISTEN_FDS"), "1", "{what}: {line}");
        assert_eq!(field("LISTEN_FDNAMES"), "web", "{what}: {line}");
        // grace-init keeps no copy of the socket.
        assert_holds_nothing_inherited(run.init_pid(), mode, &what);
        let answer = fetch_line(port);
        assert_eq!(answer, format!("hello from pid {}", field("pid")), "{what}");
        run.expect_stdout("served", secs(5.0));
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit_for(143, &what);
        done.check(
            done.stderr
                .iter()
                .any(|l| l == "pre-stop sees LISTEN_PID=unset LISTEN_FDS=unset"),
            format!("{what}: the descriptors are the child's alone"),
        );
    }
}

per_mode! {
    fn socket_activation_for_another_pid_passes_through_untouched(mode: Mode) {
        let done = Run::start_env(
            mode,
            &[
                "--",
                "sh",
                "-c",
                "echo LISTEN_PID=$LISTEN_PID LISTEN_FDS=$LISTEN_FDS",
            ],
            &[("LISTEN_PID", "999999"), ("LISTEN_FDS", "2")],
        )
        .wait(secs(10.0));
        done.assert_exit(0);
        assert_eq!(
            done.stdout,
            vec!["LISTEN_PID=999999 LISTEN_FDS=2"],
            "{mode:?}"
        );
    }
}

per_mode! {
    fn systemd_socket_activate_starts_grace_init_and_the_child_serves(mode: Mode) {
        // The real launcher: it listens, waits for the first connection, then execs grace-init with LISTEN_PID
        // set to its own pid.
        if std::process::Command::new("systemd-socket-activate")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "systemd-socket-activate is required in CI (Debian package systemd)"
            );
            eprintln!("SKIPPED: systemd-socket-activate is not installed");
            return;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let launch = Launch {
            prefix: strings(&["systemd-socket-activate", "-l", &address, "--fdname=api"]),
            ..Launch::default()
        };
        let mut run = Run::launch(mode, &launch, &["--", "python3", "-c", ACTIVATED_APP]);
        // The first connection starts everything; the app answers it. Retried until the socket listens.
        let stream = wait_for(secs(5.0), || {
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), secs(1.0)).ok()
        })
        .expect("systemd-socket-activate did not listen");
        let mut stream = stream;
        stream.set_read_timeout(Some(secs(10.0))).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let line = run.expect_stdout("activated", secs(10.0));
        let what = format!("{mode:?}: {line}");
        let pid = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("pid="))
            .unwrap();
        assert!(line.contains(&format!("LISTEN_PID={pid} ")), "{what}");
        assert!(line.contains("LISTEN_FDNAMES=api"), "{what}");
        assert_eq!(answer.trim(), format!("hello from pid {pid}"), "{what}");
        assert_holds_nothing_inherited(run.init_pid(), mode, &what);
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit_for(143, &what);
    }
}

per_mode! {
    fn warn_reap_names_the_zombies_the_app_left_behind_and_nothing_else(mode: Mode) {
        let scratch = Scratch::new("warn-reap");
        let leftover = named_sleep(&scratch, "left-behind");
        // A double fork: the subshell exits at once, so its sleep is re-parented to grace-init.
        let app = r#"("$0" 0.3 &); echo ready; exec sleep 1000"#;
        for (flags, env) in [
            (vec!["-w"], vec![]),
            (vec![], vec![("GRACE_INIT_WARN_REAP", "on")]),
        ] {
            let what = format!("{mode:?} {flags:?} {env:?}");
            let mut args = flags.clone();
            args.extend(["--pre-stop", "true", "--", "sh", "-c", app, &leftover]);
            let mut run = Run::start_env(mode, &args, &env);
            run.expect_stdout("ready", secs(10.0));
            let line = run.expect_stderr("left-behind", secs(5.0));
            assert!(
                line.starts_with("grace-init: warning: reaped process ")
                    && line.contains("(left-behind)")
                    && line.ends_with("exited with code 0"),
                "{what}: {line}"
            );
            run.signal(libc::SIGTERM);
            let done = run.wait(secs(10.0));
            done.assert_exit_for(143, &what);
            // Neither the main child nor the pre-stop command is warned about.
            let warned: Vec<&String> = done
                .stderr
                .iter()
                .filter(|l| l.contains("reaped process") && !l.contains("(left-behind)"))
                .collect();
            assert!(warned.is_empty(), "{what}: {warned:?}");
        }
        // Off by default: the same app, no warning.
        let mut run = Run::start(mode, &["--", "sh", "-c", app, &leftover]);
        run.expect_stdout("ready", secs(10.0));
        std::thread::sleep(secs(0.8));
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        done.assert_exit(143);
        done.assert_log_lacks("reaped process");
    }
}

per_mode! {
    fn warn_reap_does_not_blame_the_app_for_a_pre_stop_command_killed_for_overrunning(mode: Mode) {
        // The pre-stop command is a shell and its sleep, in a process group of their own, SIGKILLed together at
        // half the budget: the sleep is re-parented to grace-init and reaped there too.
        let app = "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done";
        let args = [
            "-w",
            "-t",
            "2",
            "--pre-stop",
            "sleep 100; true",
            "--",
            "sh",
            "-c",
            app,
        ];
        let mut run = Run::start(mode, &args);
        run.expect_stdout("ready", secs(10.0));
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        let text = done.stderr_text();
        done.assert_exit(0);
        done.assert_log_contains("pre-stop command overran");
        // The pre-stop command's processes are not the app's.
        done.assert_log_lacks("left behind by the app");
        done.check(
            text.contains("pre-stop command (process ") && text.contains("was killed by SIGKILL"),
            "its end is said as the pre-stop command's",
        );
    }
}

per_mode! {
    fn warn_reap_names_every_one_of_many_orphans_exactly_once(mode: Mode) {
        // 200 orphans exiting together (SIGCHLDs coalesce): with -w each is named once (none lost to the peek, none
        // named twice); without it, none is named and all are reaped just the same.
        let scratch = Scratch::new("warn-reap-many");
        let leftover = named_sleep(&scratch, "many-orphans");
        let app = r#"i=0; while [ $i -lt 200 ]; do ("$0" 0 &); i=$((i+1)); done; sleep 0.5"#;
        for warn in [false, true] {
            let mut args = vec![];
            if warn {
                args.push("-w");
            }
            args.extend(["--", "sh", "-c", app, &leftover]);
            let done = Run::start(mode, &args).wait(secs(20.0));
            done.assert_exit_for(0, format!("-w {warn}"));
            let named = done
                .stderr
                .iter()
                .filter(|l| l.contains("(many-orphans)"))
                .count();
            let want = if warn { 200 } else { 0 };
            assert_eq!(named, want, "{mode:?} -w {warn}");
        }
    }
}
