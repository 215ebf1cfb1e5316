//! Proof on real servers: gunicorn, uvicorn, grpcio and nginx run under grace-init as PID 1
//! (`unshare --pid --fork --mount-proc`), bound to 127.0.0.1 on a free port. While slow requests (about 2 s
//! each) are in flight the test sends the stop signal, then checks what users care about: every in-flight
//! result, whether new connections are refused or served, the time to exit, the exit code, and that no
//! process is left.
//!
//! Needs `scripts/setup-test-deps.sh` (nginx from Debian; gunicorn, uvicorn and grpcio in `.venv`). Missing
//! servers are a failure, never a skip. The measured numbers go to stderr: `cargo test --test real_servers --
//! --nocapture` shows them.

mod common;

use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// How many slow requests are in flight when the stop signal comes.
const IN_FLIGHT: usize = 4;
/// Bound for a server to start answering (Python servers start slowly on a busy 2-core machine).
const STARTUP: Duration = Duration::from_secs(30);
/// Bound for a slow request to start or a server to report something.
const PATIENCE: Duration = Duration::from_secs(10);
/// Bound for grace-init to exit after the stop signal when the grace period is 10 s.
const EXIT_BOUND: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------------------
// The environment: the servers installed by scripts/setup-test-deps.sh.

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn servers_dir() -> PathBuf {
    manifest_dir().join("tests/servers")
}

fn server_file(name: &str) -> String {
    servers_dir().join(name).to_string_lossy().into_owned()
}

/// A program of the test virtualenv (`.venv/bin/NAME`); fails with the fix when it is missing.
fn venv(name: &str) -> String {
    let path = manifest_dir().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: the real-server tests need the test virtualenv with gunicorn, uvicorn and grpcio; \
         run scripts/setup-test-deps.sh (as root) first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

/// The Debian nginx; fails with the fix when it is missing.
fn nginx() -> String {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    found
        .expect("nginx is missing: the real-server tests need it; run scripts/setup-test-deps.sh (as root) first")
        .to_string()
}

/// grace-init runs as PID 1 wherever the machine allows a PID namespace (always in CI, and as root);
/// elsewhere as a subreaper, which the harness announces.
fn mode() -> Mode {
    if pid1_available() {
        Mode::Pid1
    } else {
        Mode::Subreaper
    }
}

/// Environment for every Python server: no `__pycache__` in tests/servers.
const PY_ENV: &[(&str, &str)] = &[("PYTHONDONTWRITEBYTECODE", "1")];

/// A port on 127.0.0.1 that was free a moment ago (bound with port 0, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A private directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("grace-init-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        // nginx workers drop to `nobody`: they must be able to reach the files.
        set_mode(&path, 0o755);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

// ---------------------------------------------------------------------------------------------------------
// An HTTP/1.1 client with bounded waits that tells complete, cut and refused responses apart.

#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// Status line, headers and exactly Content-Length bytes of body.
    Complete,
    /// The TCP connection was refused: nobody listens.
    Refused,
    /// The connection was reset (RST).
    Reset,
    /// The server closed the connection before the response was complete.
    Closed,
    /// No progress within the patience.
    TimedOut,
    /// Anything else.
    Error(String),
}

#[derive(Clone, Debug)]
struct Outcome {
    status: Option<u16>,
    body: usize,
    length: Option<usize>,
    end: End,
    took: Duration,
}

impl Outcome {
    /// A 200 with the whole body.
    fn served(&self) -> bool {
        self.end == End::Complete && self.status == Some(200)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let took = self.took.as_secs_f64();
        match (&self.end, self.status) {
            (End::Complete, Some(status)) => {
                write!(f, "{status} complete ({} B) in {took:.3}s", self.body)
            }
            (End::Refused, _) => write!(f, "refused"),
            (end, None) => write!(f, "{end:?} before any response, after {took:.3}s"),
            (end, Some(status)) => write!(
                f,
                "{status} cut ({end:?}) after {} of {} B, {took:.3}s",
                self.body,
                self.length.map_or("?".to_string(), |n| n.to_string())
            ),
        }
    }
}

/// `GET path` on 127.0.0.1:port with `Connection: close`. `headers` gets a message once the status line and
/// headers are in. Every read is bounded by `patience`, and so is the whole exchange.
fn get(port: u16, path: &str, patience: Duration, headers: Option<Sender<()>>) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        status: None,
        body: 0,
        length: None,
        end: End::Complete,
        took: Duration::ZERO,
    };
    outcome.end = exchange(port, path, patience, headers, started, &mut outcome);
    outcome.took = started.elapsed();
    outcome
}

fn exchange(
    port: u16,
    path: &str,
    patience: Duration,
    headers: Option<Sender<()>>,
    started: Instant,
    outcome: &mut Outcome,
) -> End {
    let classify = |e: std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused => End::Refused,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            End::Reset
        }
        ErrorKind::WouldBlock | ErrorKind::TimedOut => End::TimedOut,
        _ => End::Error(e.to_string()),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = match TcpStream::connect_timeout(&addr, patience) {
        Ok(stream) => stream,
        Err(e) => return classify(e),
    };
    if let Err(e) = stream
        .set_read_timeout(Some(patience))
        .and_then(|()| stream.set_write_timeout(Some(patience)))
    {
        return End::Error(e.to_string());
    }
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return classify(e);
    }
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if started.elapsed() > patience {
            return End::TimedOut;
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return classify(e),
        };
        if outcome.status.is_none() {
            if n == 0 {
                return End::Closed;
            }
            head.extend_from_slice(&chunk[..n]);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let text = String::from_utf8_lossy(&head[..end]).into_owned();
            let mut lines = text.lines();
            outcome.status = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok());
            outcome.length = lines.find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())
                    .flatten()
            });
            if outcome.status.is_none() {
                return End::Error(format!("bad status line in {text:?}"));
            }
            outcome.body = head.len() - end - 4;
            if let Some(tx) = &headers {
                let _ = tx.send(());
            }
        } else if n == 0 {
            return End::Closed;
        } else {
            outcome.body += n;
        }
        match outcome.length {
            Some(length) if outcome.body >= length => return End::Complete,
            _ => {}
        }
    }
}

/// Polls `GET /fast` until it is answered with 200, at most `within`.
fn wait_until_serving(port: u16, within: Duration) {
    let mut last = None;
    let ok = wait_for(within, || {
        let outcome = get(port, "/fast", secs(2.0), None);
        if outcome.served() {
            Some(())
        } else {
            last = Some(outcome);
            thread::sleep(Duration::from_millis(50));
            None
        }
    });
    assert!(
        ok.is_some(),
        "127.0.0.1:{port} did not serve GET /fast within {within:?}; last attempt: {last:?}"
    );
}

/// Requests started together in threads.
struct Requests {
    handles: Vec<JoinHandle<Outcome>>,
    headers: Receiver<()>,
}

impl Requests {
    fn start(port: u16, path: &str, n: usize, patience: Duration) -> Requests {
        let (tx, headers) = channel();
        let handles = (0..n)
            .map(|_| {
                let tx = tx.clone();
                let path = path.to_string();
                thread::spawn(move || get(port, &path, patience, Some(tx)))
            })
            .collect();
        Requests { handles, headers }
    }

    /// Waits (bounded) until every response has started (status line and headers received).
    fn wait_for_headers(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for i in 0..self.handles.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                self.headers.recv_timeout(left).is_ok(),
                "only {i} of {} responses started within {within:?}",
                self.handles.len()
            );
        }
    }

    /// The outcomes; each request bounds itself by its patience.
    fn finish(self) -> Vec<Outcome> {
        self.handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    }
}

/// One request started now in a thread, e.g. a new connection during the shutdown.
fn spawn_get(port: u16, path: &'static str, after: Duration) -> JoinHandle<(Duration, Outcome)> {
    let start = Instant::now();
    thread::spawn(move || {
        thread::sleep(after);
        (start.elapsed(), get(port, path, secs(5.0), None))
    })
}

fn summary(outcomes: &[Outcome]) -> String {
    let served = outcomes.iter().filter(|o| o.served()).count();
    let list: Vec<String> = outcomes.iter().map(ToString::to_string).collect();
    format!("{served}/{} served [{}]", outcomes.len(), list.join("; "))
}

// ---------------------------------------------------------------------------------------------------------
// The processes: every one that ran must be gone when grace-init is.

/// Processes seen below grace-init, by outside pid and start time (so a reused pid is not mistaken).
struct Seen(Vec<(i32, u64, String)>);

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    // Fields after the command: state is field 3, starttime is field 22.
    after.split_whitespace().nth(19)?.parse().ok()
}

impl Seen {
    fn now(run: &Run) -> Seen {
        Seen(
            run.descendants()
                .into_iter()
                .filter_map(|pid| {
                    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
                    Some((pid, start_time(pid)?, comm.trim().to_string()))
                })
                .collect(),
        )
    }

    /// The ones still alive (not even a zombie may remain).
    fn alive(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(pid, started, _)| start_time(*pid) == Some(*started))
            .map(|(pid, _, comm)| format!("{pid} ({comm}, state {:?})", state(*pid)))
            .collect()
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|(_, _, c)| c.as_str()).collect();
        names.join(", ")
    }
}

/// Waits for grace-init's closing summary line and checks, while it may still be alive, that it has no
/// process left below it; returns the line.
fn expect_exit_summary(run: &mut Run, within: Duration) -> String {
    let line = run.expect_stderr("grace-init: exiting", within);
    let left = run.descendants();
    assert!(
        left.is_empty(),
        "grace-init announced its exit with processes still below it: {left:?}"
    );
    line
}

/// Checks that nothing that ran below grace-init is still alive.
fn assert_nothing_left(seen: &Seen) {
    let alive = seen.alive();
    assert!(
        alive.is_empty(),
        "processes left after grace-init exited: {alive:?}"
    );
}

/// The interesting part of the summary line: from "exiting".
fn short(summary: &str) -> &str {
    summary.find("exiting").map_or(summary, |i| &summary[i..])
}

/// Waits for `n` stdout lines starting with `needle` (one per slow request that has begun).
fn expect_n(run: &mut Run, needle: &str, n: usize) {
    for _ in 0..n {
        run.expect_stdout(needle, PATIENCE);
    }
}

// ---------------------------------------------------------------------------------------------------------
// The servers.

fn gunicorn_args(port: u16) -> Vec<String> {
    [
        &venv("gunicorn"),
        "--chdir",
        &server_file(""),
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--worker-class",
        "gthread",
        "--workers",
        &GUNICORN_WORKERS.to_string(),
        "--threads",
        "4",
        "--graceful-timeout",
        "10",
        // gunicorn 27 opens a control socket under $HOME by default: keep the tests to their own files.
        "--no-control-socket",
        // Each worker prints `worker ready PID` once it handles signals (see `wait_for_gunicorn_workers`).
        "--config",
        &server_file("gunicorn_conf.py"),
        "wsgi_app:app",
    ]
    .map(str::to_string)
    .to_vec()
}

/// How many workers `gunicorn_args` starts.
const GUNICORN_WORKERS: usize = 2;

/// Waits until every gunicorn worker has its signal handlers: gunicorn loses a SIGTERM that reaches a worker
/// still booting (it has the arbiter's handlers then), and would wait its whole --graceful-timeout for it.
fn wait_for_gunicorn_workers(run: &mut Run) {
    for _ in 0..GUNICORN_WORKERS {
        run.expect_stdout("worker ready", STARTUP);
    }
}

fn with<'a>(grace_init: &[&'a str], server: &'a [String]) -> Vec<&'a str> {
    grace_init
        .iter()
        .copied()
        .chain(["--"])
        .chain(server.iter().map(String::as_str))
        .collect()
}

/// What one shutdown looked like from outside.
struct Measured {
    /// The slow requests that were in flight when SIGTERM was sent.
    in_flight: Vec<Outcome>,
    /// A new request sent this long after SIGTERM, and how it went.
    probe: (Duration, Outcome),
    done: Finished,
    /// From the test's kill() to the moment grace-init's exit was seen.
    exit_after: Duration,
    /// grace-init's closing summary line.
    summary: String,
    /// The processes below grace-init just before the signal.
    seen: Seen,
}

/// The common scenario for HTTP servers: start grace-init with the server, wait for `ready` (a handshake
/// of the server's own) and for GET /fast to answer, put `IN_FLIGHT` slow requests in flight, send SIGTERM,
/// open a new connection `probe_after` later, and collect everything.
fn graceful_http(
    grace_init: &[&str],
    server: &[String],
    port: u16,
    probe_after: Duration,
    ready: fn(&mut Run),
) -> Measured {
    let mut run = Run::start_env(mode(), &with(grace_init, server), PY_ENV);
    ready(&mut run);
    wait_until_serving(port, STARTUP);
    let requests = Requests::start(port, "/slow", IN_FLIGHT, PATIENCE);
    expect_n(&mut run, "slow-start", IN_FLIGHT);
    let seen = Seen::now(&run);
    let started = run.started_at();
    let signalled = Instant::now();
    run.signal(libc::SIGTERM);
    let probe = spawn_get(port, "/fast", probe_after);
    let summary = expect_exit_summary(&mut run, EXIT_BOUND);
    let done = run.wait(EXIT_BOUND);
    let exit_after = (started + done.elapsed).saturating_duration_since(signalled);
    let in_flight = requests.finish();
    let probe = probe.join().expect("probe thread");
    Measured {
        in_flight,
        probe,
        done,
        exit_after,
        summary,
        seen,
    }
}

fn report(server: &str, m: &Measured) {
    eprintln!(
        "[real-servers] {server}: processes [{}]; in-flight {}; new connection {:.1}s after SIGTERM: {}; \
         SIGTERM->exit {:.3}s; exit code {:?}; grace-init: {}",
        m.seen.names(),
        summary(&m.in_flight),
        m.probe.0.as_secs_f64(),
        m.probe.1,
        m.exit_after.as_secs_f64(),
        m.done.code,
        short(&m.summary)
    );
}

fn assert_exit_within(m: &Measured, limit: Duration) {
    m.done.check(
        m.exit_after < limit,
        format!(
            "grace-init took {:?} from SIGTERM to exit, expected under {limit:?}",
            m.exit_after
        ),
    );
}

fn assert_all_served(outcomes: &[Outcome], done: &Finished) {
    done.check(
        outcomes.iter().all(Outcome::served),
        format!(
            "every in-flight request must complete: {}",
            summary(outcomes)
        ),
    );
}

// ---------------------------------------------------------------------------------------------------------
// The scenarios.

/// gunicorn with gthread workers: SIGTERM goes to the arbiter and its workers (one process group); the
/// workers finish what they are serving. gunicorn exits 0.
#[test]
fn gunicorn_gthread_finishes_in_flight_requests() {
    let port = free_port();
    let m = graceful_http(
        &["--timeout", "10"],
        &gunicorn_args(port),
        port,
        secs(0.5),
        wait_for_gunicorn_workers,
    );
    report("gunicorn gthread (2 workers x 4 threads)", &m);
    assert_all_served(&m.in_flight, &m.done);
    m.done.assert_exit(0);
    // gunicorn 27's gthread workers keep their copy of the listening socket open until their in-flight
    // requests are done: a new connection is queued by the kernel, never answered, and reset at the end.
    assert!(
        !m.probe.1.served(),
        "a new request after SIGTERM must not be served: {}",
        m.probe.1
    );
    assert_exit_within(&m, secs(5.0));
    assert_nothing_left(&m.seen);
}

/// uvicorn stops listening at once, waits for its connections, then re-raises SIGTERM on itself: it dies of
/// SIGTERM (143), which `-e 143` reports as 0.
#[test]
fn uvicorn_finishes_in_flight_requests() {
    let port = free_port();
    let server: Vec<String> = [
        &venv("uvicorn"),
        "--app-dir",
        &server_file(""),
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "asgi_app:app",
    ]
    .map(str::to_string)
    .to_vec();
    let m = graceful_http(
        &["--timeout", "10", "-e", "143"],
        &server,
        port,
        secs(0.3),
        |_| {},
    );
    report("uvicorn (-e 143)", &m);
    assert_all_served(&m.in_flight, &m.done);
    // uvicorn is expected to die of its re-raised SIGTERM, and 143 is remapped by -e 143.
    m.done.assert_log_contains("was killed by SIGTERM");
    m.done.assert_exit(0);
    assert_eq!(
        m.probe.1.end,
        End::Refused,
        "uvicorn closes its listener on SIGTERM: {}",
        m.probe.1
    );
    assert_exit_within(&m, secs(5.0));
    assert_nothing_left(&m.seen);
}

/// A Python process of the test, not under grace-init: the gRPC client.
struct Client {
    child: Child,
    lines: Receiver<String>,
}

impl Client {
    fn start(args: &[&str]) -> Client {
        let mut child = Command::new(venv("python"))
            .arg(server_file("grpc_client.py"))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start grpc_client.py");
        let stdout = child.stdout.take().expect("client stdout");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Client { child, lines }
    }

    /// Lines until `last` (inclusive), bounded.
    fn until(&mut self, last: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut out = vec![];
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let stop = line == last;
                    out.push(line);
                    if stop {
                        return out;
                    }
                }
                Err(_) => panic!("grpc client: no {last:?} within {within:?}; got {out:?}"),
            }
        }
    }

    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("client stdin");
        stdin.write_all(b"go\n").expect("write to client");
        stdin.flush().expect("flush client");
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// grpcio with `server.stop(grace)` on SIGTERM: calls in flight complete, a new call is refused.
#[test]
fn grpcio_stop_with_grace_finishes_in_flight_calls() {
    let mut run = Run::start_env(
        mode(),
        &[
            "--timeout",
            "10",
            "--",
            &venv("python"),
            &server_file("grpc_server.py"),
            "--grace",
            "8",
        ],
        PY_ENV,
    );
    let ready = run.expect_stdout("ready ", STARTUP);
    let port = ready["ready ".len()..].trim().to_string();
    let mut calls = Client::start(&["--port", &port, "--calls", &IN_FLIGHT.to_string()]);
    calls.until("sent", STARTUP);
    expect_n(&mut run, "slow-start", IN_FLIGHT);
    // A second client, connected to nothing yet, makes its call when told: a new connection after SIGTERM.
    let mut late = Client::start(&["--port", &port, "--calls", "1", "--go-on-stdin"]);
    late.until("armed", STARTUP);
    let seen = Seen::now(&run);
    let started = run.started_at();
    let signalled = Instant::now();
    run.signal(libc::SIGTERM);
    run.expect_stdout("got SIGTERM", PATIENCE);
    let late_at = signalled.elapsed();
    late.go();
    let summary_line = expect_exit_summary(&mut run, EXIT_BOUND);
    let done = run.wait(EXIT_BOUND);
    let exit_after = (started + done.elapsed).saturating_duration_since(signalled);
    let results = calls.until("done", PATIENCE);
    let late_result: Vec<String> = late
        .until("done", PATIENCE)
        .into_iter()
        .filter(|l| l.starts_with("call "))
        .collect();
    let in_flight: Vec<&String> = results.iter().filter(|l| l.starts_with("call ")).collect();
    let ok = in_flight.iter().filter(|l| l.contains(" ok ")).count();
    eprintln!(
        "[real-servers] grpcio server.stop(8): processes [{}]; in-flight {ok}/{} ok {in_flight:?}; new call \
         {:.2}s after SIGTERM: {:?}; SIGTERM->exit {:.3}s; exit code {:?}; grace-init: {}",
        seen.names(),
        in_flight.len(),
        late_at.as_secs_f64(),
        late_result.first(),
        exit_after.as_secs_f64(),
        done.code,
        short(&summary_line)
    );
    done.check(
        (ok, in_flight.len()) == (IN_FLIGHT, IN_FLIGHT),
        format!(
            "every in-flight call must complete: {ok} of {}: {results:?}",
            in_flight.len()
        ),
    );
    assert!(
        late_result.len() == 1 && late_result[0].contains(" error "),
        "a call after server.stop() must be refused: {late_result:?}"
    );
    assert!(
        done.stdout.iter().any(|l| l == "stopped"),
        "server.stop() did not finish"
    );
    done.assert_exit(0);
    done.check(exit_after < secs(5.0), format!("took {exit_after:?}"));
    assert_nothing_left(&seen);
}

/// nginx with its config written to a temp dir; returns (dir, port, nginx command line).
fn nginx_setup() -> (TempDir, u16, Vec<String>) {
    let dir = TempDir::new("nginx");
    let prefix = dir.path().to_string_lossy().into_owned();
    let port = free_port();
    let template =
        std::fs::read_to_string(servers_dir().join("nginx.conf")).expect("read nginx.conf");
    let conf = template
        .replace("@PREFIX@", &prefix)
        .replace("@PORT@", &port.to_string());
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let www = dir.path().join("www");
    std::fs::create_dir(&www).expect("mkdir www");
    set_mode(&www, 0o755);
    // 384 KiB at 128 KiB/s: nginx lets the first second's worth go at once, so about 2 s per response.
    let big = www.join("big.bin");
    std::fs::write(&big, vec![b'x'; BIG]).expect("write big.bin");
    set_mode(&big, 0o644);
    let command = [
        &nginx(),
        "-p",
        &prefix,
        "-e",
        "stderr",
        "-c",
        &conf_path.to_string_lossy(),
    ]
    .map(str::to_string)
    .to_vec();
    (dir, port, command)
}

const BIG: usize = 384 * 1024;

/// Starts nginx under grace-init with `extra` options, puts large responses in flight, sends SIGTERM.
fn nginx_run(extra: &[&str]) -> Measured {
    let (_dir, port, command) = nginx_setup();
    let mut grace_init = vec!["--timeout", "10"];
    grace_init.extend_from_slice(extra);
    let mut run = Run::start(mode(), &with(&grace_init, &command));
    wait_until_serving(port, STARTUP);
    let requests = Requests::start(port, "/big.bin", IN_FLIGHT, PATIENCE);
    requests.wait_for_headers(PATIENCE);
    let seen = Seen::now(&run);
    let started = run.started_at();
    let signalled = Instant::now();
    run.signal(libc::SIGTERM);
    let probe = spawn_get(port, "/fast", secs(0.3));
    let summary = expect_exit_summary(&mut run, EXIT_BOUND);
    let done = run.wait(EXIT_BOUND);
    let exit_after = (started + done.elapsed).saturating_duration_since(signalled);
    let in_flight = requests.finish();
    let probe = probe.join().expect("probe thread");
    Measured {
        in_flight,
        probe,
        done,
        exit_after,
        summary,
        seen,
    }
}

/// nginx's graceful shutdown is SIGQUIT: `-r TERM:QUIT` turns the orchestrator's SIGTERM into it, and the
/// large responses in flight are sent to the end.
#[test]
fn nginx_with_term_rewritten_to_quit_finishes_responses() {
    let m = nginx_run(&["-r", "TERM:QUIT"]);
    report("nginx -r TERM:QUIT (384 KiB at 128 KiB/s)", &m);
    m.done.assert_log_contains("forwarding SIGQUIT");
    assert_all_served(&m.in_flight, &m.done);
    assert!(
        m.in_flight.iter().all(|o| o.body == BIG),
        "{:?}",
        m.in_flight
    );
    m.done.assert_exit(0);
    assert_eq!(
        m.probe.1.end,
        End::Refused,
        "nginx stops listening on SIGQUIT: {}",
        m.probe.1
    );
    assert_exit_within(&m, secs(5.0));
    assert_nothing_left(&m.seen);
}

/// Why the rewrite exists: nginx takes a plain SIGTERM as "fast shutdown" and cuts every response.
#[test]
fn nginx_with_plain_term_cuts_responses_off() {
    let m = nginx_run(&[]);
    report("nginx plain TERM (384 KiB at 128 KiB/s)", &m);
    assert!(
        m.in_flight.iter().all(|o| !o.served() && o.body < BIG),
        "with plain SIGTERM nginx is expected to cut every response: {}",
        summary(&m.in_flight)
    );
    m.done.assert_exit(0);
    assert_exit_within(&m, secs(1.5));
    assert_nothing_left(&m.seen);
}

/// An entrypoint script that starts gunicorn in the background and `wait`s: on SIGTERM the shell dies at
/// once (143), and grace-init keeps waiting for gunicorn, whose workers finish their requests.
#[test]
fn shell_entrypoint_server_finishes_after_the_shell_dies() {
    let port = free_port();
    let mut server = vec!["/bin/sh".to_string(), server_file("entrypoint.sh")];
    server.extend(gunicorn_args(port));
    let m = graceful_http(
        &["--timeout", "10"],
        &server,
        port,
        secs(0.5),
        wait_for_gunicorn_workers,
    );
    report("sh entrypoint.sh gunicorn & wait", &m);
    let stderr = m.done.stderr_text();
    assert!(
        stderr.contains("was killed by SIGTERM"),
        "the shell dies of SIGTERM:\n{stderr}"
    );
    assert!(
        stderr.contains("the child is gone but processes remain"),
        "grace-init must wait for the server after the shell:\n{stderr}"
    );
    assert_all_served(&m.in_flight, &m.done);
    assert_eq!(
        m.done.code,
        Some(143),
        "the shell's status (killed by SIGTERM):\n{stderr}"
    );
    assert!(
        !m.done
            .stdout
            .iter()
            .any(|l| l.starts_with("entrypoint: wait")),
        "the shell was expected to die in `wait`"
    );
    assert_exit_within(&m, secs(5.0));
    assert_nothing_left(&m.seen);
}

/// A server that ignores SIGTERM keeps serving until grace-init SIGKILLs it at `--timeout`: exit code 137.
#[test]
fn server_ignoring_sigterm_is_killed_at_the_timeout() {
    let port = free_port();
    let server: Vec<String> = [
        &venv("python"),
        &server_file("slow_http.py"),
        "--port",
        &port.to_string(),
        "--on-term",
        "ignore",
    ]
    .map(str::to_string)
    .to_vec();
    let timeout = 3.0;
    let m = graceful_http(&["--timeout", "3"], &server, port, secs(1.0), |_| {});
    report("python server ignoring SIGTERM (--timeout 3)", &m);
    let stderr = m.done.stderr_text();
    assert!(
        stderr.contains("grace period over"),
        "grace-init must escalate:\n{stderr}"
    );
    assert_eq!(m.done.code, Some(137), "{stderr}");
    assert!(
        m.exit_after >= secs(timeout - 0.05) && m.exit_after < secs(timeout + 1.5),
        "SIGKILL is due at the timeout ({timeout}s), exit came after {:?}",
        m.exit_after
    );
    // It ignored the signal: the 2 s requests (inside the 3 s budget) and the new one were served.
    assert_all_served(&m.in_flight, &m.done);
    assert!(
        m.probe.1.served(),
        "a server that ignores SIGTERM keeps serving: {}",
        m.probe.1
    );
    assert!(
        !m.done.stdout.iter().any(|l| l.starts_with("got SIGTERM")),
        "the server was meant to ignore SIGTERM"
    );
    assert_nothing_left(&m.seen);
}

/// `--drain-delay 1`: new requests are served during the first second after SIGTERM (the load balancer is
/// still sending them), then gunicorn gets the signal and stops listening.
#[test]
fn drain_delay_keeps_serving_then_refuses() {
    let port = free_port();
    let mut run = Run::start_env(
        mode(),
        &with(
            &["--timeout", "10", "--drain-delay", "1"],
            &gunicorn_args(port),
        ),
        PY_ENV,
    );
    wait_for_gunicorn_workers(&mut run);
    wait_until_serving(port, STARTUP);
    let seen = Seen::now(&run);
    let started = run.started_at();
    let signalled = Instant::now();
    run.signal(libc::SIGTERM);
    // One new request every 100 ms for 2.5 s, while this thread watches grace-init exit.
    let prober = thread::spawn(move || {
        let mut probes = vec![];
        while signalled.elapsed() < secs(2.5) {
            let at = signalled.elapsed();
            probes.push((at, get(port, "/fast", secs(3.0), None)));
            thread::sleep(Duration::from_millis(100));
        }
        probes
    });
    let summary_line = expect_exit_summary(&mut run, EXIT_BOUND);
    let done = run.wait(EXIT_BOUND);
    let exit_after = (started + done.elapsed).saturating_duration_since(signalled);
    let probes = prober.join().expect("probe thread");
    let last_served = probes
        .iter()
        .filter(|(_, o)| o.served())
        .map(|(at, _)| at.as_secs_f64())
        .fold(f64::NAN, f64::max);
    let first_refused = probes
        .iter()
        .find(|(_, o)| !o.served())
        .map(|(at, o)| format!("{:.2}s ({o})", at.as_secs_f64()));
    eprintln!(
        "[real-servers] gunicorn --drain-delay 1: {} probes; last served {last_served:.2}s after SIGTERM; \
         first not served {first_refused:?}; SIGTERM->exit {:.3}s; exit code {:?}; grace-init: {}",
        probes.len(),
        exit_after.as_secs_f64(),
        done.code,
        short(&summary_line)
    );
    let early: Vec<_> = probes.iter().filter(|(at, _)| *at < secs(0.7)).collect();
    assert!(early.len() >= 4, "too few probes in the drain: {early:?}");
    assert!(
        early.iter().all(|(_, o)| o.served()),
        "requests during the drain delay must be served: {early:?}"
    );
    let late: Vec<_> = probes.iter().filter(|(at, _)| *at > secs(1.6)).collect();
    assert!(!late.is_empty(), "no probe after the drain");
    assert!(
        late.iter().all(|(_, o)| o.end == End::Refused),
        "requests well after the drain delay must be refused: {late:?}"
    );
    assert!(
        summary_line.contains("drain 1.0"),
        "the summary gives the drain: {summary_line}"
    );
    assert!(
        exit_after >= secs(1.0) && exit_after < secs(4.0),
        "took {exit_after:?}"
    );
    done.assert_exit(0);
    assert_nothing_left(&seen);
}

fn slow_http(port: u16) -> Vec<String> {
    [
        &venv("python"),
        &server_file("slow_http.py"),
        "--port",
        &port.to_string(),
    ]
    .map(str::to_string)
    .to_vec()
}

/// The `got SIGTERM <unix time>` line of the app.
fn app_sigterm_time(done: &Finished) -> f64 {
    let line = done
        .stdout
        .iter()
        .find(|l| l.starts_with("got SIGTERM "))
        .unwrap_or_else(|| panic!("the app never got SIGTERM: {:?}", done.stdout));
    line["got SIGTERM ".len()..]
        .trim()
        .parse()
        .expect("timestamp")
}

/// `--pre-stop` runs to its end before the app receives the signal, while the app keeps serving.
#[test]
fn pre_stop_runs_before_the_app_gets_the_signal() {
    let port = free_port();
    let dir = TempDir::new("pre-stop");
    let marks = dir.path().join("marks");
    let pre_stop = format!(
        "echo start $(date +%s.%N) >> {m}; sleep 0.5; echo end $(date +%s.%N) >> {m}",
        m = marks.display()
    );
    let server = slow_http(port);
    let mut run = Run::start_env(
        mode(),
        &with(&["--timeout", "10", "--pre-stop", &pre_stop], &server),
        PY_ENV,
    );
    wait_until_serving(port, STARTUP);
    let requests = Requests::start(port, "/slow", 2, PATIENCE);
    expect_n(&mut run, "slow-start", 2);
    let seen = Seen::now(&run);
    let started = run.started_at();
    let signal_time = unix_now();
    let signalled = Instant::now();
    run.signal(libc::SIGTERM);
    let during = spawn_get(port, "/fast", secs(0.2));
    let summary_line = expect_exit_summary(&mut run, EXIT_BOUND);
    let done = run.wait(EXIT_BOUND);
    let exit_after = (started + done.elapsed).saturating_duration_since(signalled);
    let in_flight = requests.finish();
    let during = during.join().expect("probe thread");
    let text = std::fs::read_to_string(&marks).expect("the pre-stop command wrote its marks");
    let mark = |what: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(what)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {what:?} mark in {text:?}"))
    };
    let (pre_start, pre_end) = (mark("start "), mark("end "));
    let app_term = app_sigterm_time(&done);
    eprintln!(
        "[real-servers] --pre-stop 'sleep 0.5': pre-stop ran {:.3}s..{:.3}s after SIGTERM, app got SIGTERM at \
         {:.3}s; request during pre-stop: {}; in-flight {}; SIGTERM->exit {:.3}s; exit code {:?}; grace-init: {}",
        pre_start - signal_time,
        pre_end - signal_time,
        app_term - signal_time,
        during.1,
        summary(&in_flight),
        exit_after.as_secs_f64(),
        done.code,
        short(&summary_line)
    );
    assert!(
        signal_time <= pre_start && pre_end <= app_term,
        "order must be: signal ({signal_time}) <= pre-stop start ({pre_start}) < pre-stop end ({pre_end}) <= \
         app gets SIGTERM ({app_term})"
    );
    assert!(
        during.1.served(),
        "the app serves while the pre-stop command runs: {}",
        during.1
    );
    assert_all_served(&in_flight, &done);
    assert!(
        summary_line.contains("pre-stop 0.") || summary_line.contains("pre-stop 1."),
        "the summary gives the pre-stop time (0.5 s and a bit): {summary_line}"
    );
    done.assert_exit(0);
    assert_nothing_left(&seen);
}

/// A pre-stop command that hangs is killed when its share of the budget (half of `--timeout`) is over; the
/// app still gets the signal and the run ends within `--timeout`.
#[test]
fn hanging_pre_stop_is_cut_off_by_the_budget() {
    let port = free_port();
    let server = slow_http(port);
    let timeout = 4.0;
    let mut run = Run::start_env(
        mode(),
        &with(&["--timeout", "4", "--pre-stop", "sleep 100"], &server),
        PY_ENV,
    );
    wait_until_serving(port, STARTUP);
    let started = run.started_at();
    let signal_time = unix_now();
    let signalled = Instant::now();
    run.signal(libc::SIGTERM);
    run.expect_stderr("running pre-stop command", PATIENCE);
    // `sh -c 'sleep 100'` becomes `sleep` once the shell has exec'd it.
    let with_pre_stop = wait_for(PATIENCE, || {
        Some(Seen::now(&run)).filter(|seen| seen.names().contains("sleep"))
    })
    .unwrap_or_else(|| {
        panic!(
            "the pre-stop command never showed up: [{}]",
            Seen::now(&run).names()
        )
    });
    let summary_line = expect_exit_summary(&mut run, EXIT_BOUND);
    let done = run.wait(EXIT_BOUND);
    let exit_after = (started + done.elapsed).saturating_duration_since(signalled);
    let app_term = app_sigterm_time(&done) - signal_time;
    eprintln!(
        "[real-servers] --pre-stop 'sleep 100' --timeout 4: app got SIGTERM {app_term:.3}s after it was sent; \
         SIGTERM->exit {:.3}s; exit code {:?}; grace-init: {}",
        exit_after.as_secs_f64(),
        done.code,
        short(&summary_line)
    );
    let stderr = done.stderr_text();
    assert!(
        stderr.contains("pre-stop command overran"),
        "the pre-stop command must be cut off:\n{stderr}"
    );
    assert!(
        (timeout / 2.0 - 0.05..timeout / 2.0 + 1.0).contains(&app_term),
        "the app gets SIGTERM when the pre-stop's half of the budget is over, got it after {app_term:.3}s"
    );
    assert!(
        exit_after < secs(timeout),
        "the run must end within --timeout: {exit_after:?}"
    );
    assert_eq!(done.code, Some(0), "{stderr}");
    assert_nothing_left(&with_pre_stop);
}
