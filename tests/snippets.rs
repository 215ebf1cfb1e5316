//! The snippets of README.md and docs/*.md, run and built as a reader would copy them, straight from the
//! Markdown, so they cannot drift from what works.
//!
//! Every fenced block names what it is (its info string: `sh`, `dockerfile`, `yaml`, `text`, `json`). An `sh` block
//! is run and a `dockerfile` block is built, unless the line right before it is `<!-- not run: REASON -->`;
//! `every_block_is_exercised_or_marked_with_a_reason` checks that each other block is claimed by one of the
//! runners below, which run every block they claim:
//!
//! - a block that starts grace-init in the foreground runs in a network and mount namespace of its own (loopback
//!   up, a private /run), from a directory holding `./server` (tests/fixtures/snippet_server.py) and
//!   examples/app.py, with this build's grace-init, gunicorn from .venv and the host's programs on PATH. Once its
//!   server listens it gets one HTTP request (which must succeed), then grace-init gets SIGTERM, and its shutdown
//!   must end with the summary line, no SIGKILL, and the exit code the summary names;
//! - a block that calls `docker` or `podman` runs from the repository with both names standing for this machine's
//!   podman as tests/common/podman.rs sets it up (storage of its own; `build` gets `--network none` and the local
//!   base images Dockerfile.example is built on) and TMPDIR a directory of its own, and must exit 0; one that
//!   shows a container's logs must show grace-init's summary line in them;
//! - any other block runs in a mount namespace of its own with a private /usr/local/bin, next to the release
//!   artifacts (dist/, or the static test build under their name where dist/ has none), and must exit 0, as
//!   must `--version` of whatever it installed there;
//! - a Dockerfile fragment (no `FROM`) is built on a Debian base with Python, gunicorn and examples/app.py in
//!   /app, after the `sh` blocks that build the images it copies from; the one whose `CMD` runs the example app is
//!   also started and stopped with `podman stop`.

mod common;

use common::host::which;
use common::podman::{Container, Podman, example_bases, example_image, podman};
use common::{descendants, send_signal, state, wait_for};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Bound for a snippet's start, its request and its shutdown (a drain delay of 5 s included).
const PATIENCE: Duration = Duration::from_secs(60);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------------------
// The blocks.

#[derive(Debug)]
struct Block {
    file: String,
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    body: String,
    /// The reason given in `<!-- not run: REASON -->` right before the block.
    not_run: Option<String>,
}

impl Block {
    fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// README.md and docs/*.md.
fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("read docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.insert(0, root().join("README.md"));
    files
}

/// Every fenced block of every Markdown file, de-indented like its fence.
fn blocks() -> Vec<Block> {
    let mut out = vec![];
    for path in markdown_files() {
        let text = fs::read_to_string(&path).expect("read a Markdown file");
        let file = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let indent = line.len() - line.trim_start().len();
            let Some(info) = line.trim_start().strip_prefix("```") else {
                i += 1;
                continue;
            };
            let opened = i;
            let mut body = String::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                body.push_str(lines[i].get(indent..).unwrap_or(lines[i].trim_start()));
                body.push('\n');
                i += 1;
            }
            let not_run = lines[..opened]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix("<!-- not run:"))
                .and_then(|l| l.strip_suffix("-->"))
                .map(|reason| reason.trim().to_string());
            out.push(Block {
                file: file.clone(),
                line: opened + 1,
                lang: info.trim().to_string(),
                body,
                not_run,
            });
            i += 1;
        }
    }
    out
}

/// How a block is exercised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runner {
    /// Starts grace-init in the foreground: run, request, SIGTERM, summary.
    Foreground,
    /// Calls docker or podman: run with podman standing for both.
    Engine,
    /// Anything else: run to completion.
    Plain,
    /// A Dockerfile: built.
    Build,
}

/// The lines of a shell block that are commands: comments and blank lines left out.
fn commands(body: &str) -> impl Iterator<Item = &str> {
    body.lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The runner a block belongs to; `None` for a block that is no command (text, yaml, json) or is marked.
fn runner(block: &Block) -> Option<Runner> {
    if block.not_run.is_some() {
        return None;
    }
    match block.lang.as_str() {
        "dockerfile" => Some(Runner::Build),
        "sh" => {
            let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
            if commands(&block.body).any(|l| {
                matches!(
                    words(l).first().map(String::as_str),
                    Some("docker" | "podman")
                )
            }) {
                Some(Runner::Engine)
            } else if commands(&block.body).any(|l| words(l).iter().any(|w| w == "grace-init")) {
                Some(Runner::Foreground)
            } else {
                Some(Runner::Plain)
            }
        }
        _ => None,
    }
}

fn claimed(runner_kind: Runner) -> Vec<Block> {
    blocks()
        .into_iter()
        .filter(|b| runner(b) == Some(runner_kind))
        .collect()
}

#[test]
fn every_block_is_exercised_or_marked_with_a_reason() {
    let all = blocks();
    assert!(all.len() > 20, "the parser found only {} blocks", all.len());
    let mut problems = vec![];
    for block in &all {
        let known = ["sh", "dockerfile", "yaml", "text", "json"];
        if !known.contains(&block.lang.as_str()) {
            problems.push(format!(
                "{}: info string {:?}: say what the block is ({})",
                block.at(),
                block.lang,
                known.join(", ")
            ));
        }
        if let Some(reason) = &block.not_run {
            if reason.len() < 10 {
                problems.push(format!(
                    "{}: `not run` needs a reason: {reason:?}",
                    block.at()
                ));
            }
        }
        let commands_like = block.lang == "text"
            && block.body.lines().any(|l| {
                l.starts_with("$ ") || l.starts_with("docker ") || l.starts_with("cargo ")
            });
        if commands_like {
            problems.push(format!("{}: commands in a text block", block.at()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let runnable = all.iter().filter(|b| runner(b).is_some()).count();
    let marked = all.iter().filter(|b| b.not_run.is_some()).count();
    eprintln!(
        "{} blocks: {runnable} run or built by this file, {marked} marked not run",
        all.len()
    );
}

/// The fixed start of every message the source logs (up to its first placeholder), from `log::…!("…")`,
/// `write!(f, "…")` and `f.write_str("…")` outside the unit tests: the pieces are long enough to be a line or
/// its beginning.
fn logged_phrases() -> Vec<(String, String)> {
    let mut out = vec![];
    for entry in fs::read_dir(root().join("src"))
        .expect("read src/")
        .flatten()
    {
        let path = entry.path();
        let text = fs::read_to_string(&path).expect("read a source file");
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let starts = [
            "write!(",
            "write_str(",
            "log::error!(",
            "log::warn!(",
            "log::info!(",
            "log::debug!(",
            "log::trace!(",
        ];
        for start in starts {
            for (at, _) in text.match_indices(start) {
                let mut rest = text[at + start.len()..].trim_start();
                if start == "write!(" {
                    // `write!(f, "…")`, however rustfmt broke it over lines.
                    let Some(after) = rest.strip_prefix("f,") else {
                        continue;
                    };
                    rest = after.trim_start();
                }
                let Some(literal) = rest.strip_prefix('"') else {
                    continue;
                };
                let phrase = fixed_start(literal);
                if phrase.len() >= 12 {
                    out.push((path.display().to_string(), phrase));
                }
            }
        }
    }
    out
}

/// A Rust string literal's text up to its end or its first placeholder, escapes and line continuations undone.
fn fixed_start(literal: &str) -> String {
    let mut out = String::new();
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '{' => break,
            '\\' => match chars.next() {
                Some('\n') => while chars.next_if(|c| c.is_whitespace()).is_some() {},
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

#[test]
fn every_log_line_in_the_source_is_in_docs_log_md() {
    let reference = fs::read_to_string(root().join("docs/log.md")).expect("read docs/log.md");
    let phrases = logged_phrases();
    assert!(
        phrases.len() > 40,
        "found only {} logged phrases",
        phrases.len()
    );
    let missing: Vec<String> = phrases
        .iter()
        .filter(|(_, phrase)| !reference.contains(phrase.as_str()))
        .map(|(file, phrase)| format!("{file}: {phrase:?}"))
        .collect();
    assert!(
        missing.is_empty(),
        "lines a user can see that docs/log.md does not explain:\n{}",
        missing.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------------
// Running a shell block.

/// A directory with the programs the snippets call: grace-init (this build), `docker` and `podman` (the test
/// engine), ahead of .venv/bin (gunicorn) and the system's.
struct Sandbox {
    dir: PathBuf,
    path: String,
}

fn sandbox(name: &str, engine: Option<&'static Podman>) -> Sandbox {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("snippets")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("create the sandbox");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_grace-init"), bin.join("grace-init"))
        .expect("link grace-init");
    if let Some(p) = engine {
        let (rust, python, volumes) = example_bases(p);
        let podman = format!(
            "CONTAINERS_CONF={conf} {podman} --root {root} --runroot {run}",
            conf = p.home.join("containers.conf").display(),
            podman = p.podman.display(),
            root = p.home.join("root").display(),
            run = p.home.join("run/storage").display(),
        );
        let build_flags = format!(
            "--network none --build-arg RUST_IMAGE={rust} --build-arg PYTHON_IMAGE={python} {}",
            volumes
                .iter()
                .map(|v| format!("--volume {v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let shim = format!(
            "#!/bin/sh\n\
             # docker and podman for the snippets: the tests' podman; builds are offline, on local bases.\n\
             if [ \"$1\" = build ]; then shift; exec env {podman} build {build_flags} \"$@\"; fi\n\
             exec env {podman} \"$@\"\n"
        );
        for name in ["docker", "podman"] {
            fs::write(bin.join(name), &shim).expect("write a shim");
            fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    fs::copy(
        root().join("tests/fixtures/snippet_server.py"),
        dir.join("server"),
    )
    .expect("copy ./server");
    fs::set_permissions(dir.join("server"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::copy(root().join("examples/app.py"), dir.join("app.py")).expect("copy app.py");
    let path = format!(
        "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display(),
        root().join(".venv/bin").display()
    );
    Sandbox { dir, path }
}

/// A started shell block: its process (the root of its tree) and what it writes.
struct Started {
    pid: i32,
    child: std::process::Child,
    output: thread::JoinHandle<String>,
}

impl Started {
    /// Starts `script` with `sh -e` through `unshare FLAGS`, stdout and stderr together.
    fn new(unshare: &[&str], script: &str, sandbox: &Sandbox, cwd: &Path) -> Started {
        let mut command = Command::new("unshare");
        command
            .args(unshare)
            .args(["--", "sh", "-ec", script])
            .current_dir(cwd)
            .env("PATH", &sandbox.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().expect("start unshare");
        let pid = child.id() as i32;
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let output = thread::spawn(move || {
            let err = thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            });
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text + &err.join().unwrap_or_default()
        });
        Started { pid, child, output }
    }

    /// Waits (bounded) for the block to end: its exit status and everything it wrote. Whatever is left of its
    /// tree when the bound passes is killed, by pid.
    fn finish(mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let until = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the block") {
                break status;
            }
            if Instant::now() > until {
                self.kill();
                let status = self.child.wait().expect("wait for the block");
                let text = self.output.join().unwrap_or_default();
                panic!("the block did not end within {within:?} ({status}):\n{text}");
            }
            thread::sleep(Duration::from_millis(20));
        };
        (status, self.output.join().unwrap_or_default())
    }

    fn kill(&self) {
        for pid in descendants(self.pid).into_iter().chain([self.pid]) {
            send_signal(pid, libc::SIGKILL);
        }
    }
}

/// The port something listens on in the network namespace of `pid`, from /proc/PID/net/tcp{,6}.
fn listening_port(pid: i32) -> Option<u16> {
    ["tcp", "tcp6"].iter().find_map(|table| {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok()?;
        text.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (fields.get(1)?, fields.get(3)?);
            if *state != "0A" {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
    })
}

/// The grace-init process below `pid`, once it has blocked the signals it waits for (its first act), so a
/// SIGTERM sent now is one it handles.
fn grace_init_below(pid: i32) -> Option<i32> {
    descendants(pid).into_iter().find(|p| {
        let named =
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "grace-init");
        let blocked = fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
        });
        named && blocked
    })
}

/// Whether `pid` has left this test's network namespace (`unshare --net` has run).
fn in_own_network(pid: i32) -> bool {
    let ns = |p: &str| fs::read_link(format!("/proc/{p}/ns/net")).ok();
    ns(&pid.to_string()).is_some_and(|theirs| Some(theirs) != ns("self"))
}

/// Runs a block that starts grace-init in the foreground; `Err` says what went wrong.
fn run_foreground(block: &Block, index: usize) -> Result<String, String> {
    let sandbox = sandbox(&format!("foreground-{index}"), None);
    let prelude = "ip link set lo up\n\
                   mount -t tmpfs tmpfs /run\n\
                   if [ -d /var/log/nginx ]; then mount -t tmpfs tmpfs /var/log/nginx; fi\n";
    let script = format!("{prelude}{}", block.body);
    let started = Started::new(
        &["--net", "--mount", "--propagation", "private"],
        &script,
        &sandbox,
        &sandbox.dir,
    );
    let pid = started.pid;
    let fail = |why: String, started: Started| -> Result<String, String> {
        started.kill();
        let (_, text) = started.finish(PATIENCE);
        Err(format!("{why}\n{text}"))
    };
    let pauses = commands(&block.body).any(|l| l.contains("--pause"));
    if !pauses {
        let port = wait_for(PATIENCE, || {
            if !matches!(state(pid), Some(s) if s != 'Z') {
                return Some(None);
            }
            in_own_network(pid)
                .then(|| listening_port(pid).map(Some))
                .flatten()
        });
        let Some(Some(port)) = port else {
            return fail(format!("nothing listened within {PATIENCE:?}"), started);
        };
        let request = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["curl", "-fsS", "--max-time", "20"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .expect("run curl");
        if !request.status.success() {
            let why = format!(
                "the request to port {port} failed: {}",
                String::from_utf8_lossy(&request.stderr)
            );
            return fail(why, started);
        }
    }
    let Some(init) = wait_for(PATIENCE, || grace_init_below(pid)) else {
        return fail("grace-init never started".to_string(), started);
    };
    send_signal(init, libc::SIGTERM);
    let (status, text) = started.finish(PATIENCE);
    if pauses {
        // Pause mode has no child: it leaves on the stop signal, with 0.
        return if text.contains("received SIGTERM: leaving pause") && status.code() == Some(0) {
            Ok(format!("{} exit 0", block.at()))
        } else {
            Err(format!(
                "pause mode did not leave on SIGTERM with 0 ({status}):\n{text}"
            ))
        };
    }
    let summary = text
        .lines()
        .find(|l| l.contains("exiting after stop signal SIGTERM"))
        .ok_or_else(|| format!("no summary line ({status}):\n{text}"))?;
    let named: Option<i32> = summary
        .rsplit_once("exit code ")
        .and_then(|(_, code)| code.trim().parse().ok());
    if named != status.code() || status.signal().is_some() {
        return Err(format!(
            "exit status {status}, the summary says {named:?}:\n{text}"
        ));
    }
    if text.contains("escalat") || text.contains("SIGKILLed") && !text.contains("0 SIGKILLed") {
        return Err(format!("the shutdown needed SIGKILL:\n{text}"));
    }
    Ok(format!("{} exit {:?}", block.at(), status.code()))
}

#[test]
fn every_snippet_that_starts_grace_init_serves_and_stops_on_sigterm() {
    let blocks = claimed(Runner::Foreground);
    assert!(!blocks.is_empty());
    for program in ["unshare", "nsenter", "ip", "curl"] {
        assert!(which(program).is_some(), "{program} is needed");
    }
    let started = Instant::now();
    let results: Vec<Result<String, String>> = thread::scope(|s| {
        let handles: Vec<_> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| s.spawn(move || run_foreground(b, i)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let failures: Vec<String> = blocks
        .iter()
        .zip(&results)
        .filter_map(|(b, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("{}:\n{}\n{e}", b.at(), b.body))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!(
        "{} foreground snippets in {:.1}s: {}",
        blocks.len(),
        started.elapsed().as_secs_f64(),
        results
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The release artifacts the download snippet checks and installs: dist/ when `scripts/release.sh` has run,
/// else the static test build under the amd64 artifact's name, with its SHA256SUMS.
fn artifacts(into: &Path) {
    let dist = root().join("dist");
    if dist.join("SHA256SUMS").is_file() {
        for entry in fs::read_dir(&dist).expect("read dist/").flatten() {
            fs::copy(entry.path(), into.join(entry.file_name())).expect("copy an artifact");
        }
        return;
    }
    let binary = common::host::build_static_grace_init().unwrap_or_else(|e| panic!("{e}"));
    fs::copy(binary, into.join("grace-init-linux-amd64")).expect("copy the binary");
    let sums = Command::new("sha256sum")
        .arg("grace-init-linux-amd64")
        .current_dir(into)
        .output()
        .expect("sha256sum");
    fs::write(into.join("SHA256SUMS"), sums.stdout).expect("write SHA256SUMS");
}

#[test]
fn every_other_shell_snippet_runs_to_success() {
    let blocks = claimed(Runner::Plain);
    for (i, block) in blocks.iter().enumerate() {
        let sandbox = sandbox(&format!("plain-{i}"), None);
        artifacts(&sandbox.dir);
        // Whatever the block installed must run.
        let script = format!(
            "mount -t tmpfs tmpfs /usr/local/bin\n{}\nfor f in /usr/local/bin/*; do \"$f\" --version; done\n",
            block.body
        );
        let started = Started::new(
            &["--mount", "--propagation", "private"],
            &script,
            &sandbox,
            &sandbox.dir,
        );
        let (status, text) = started.finish(PATIENCE);
        assert!(
            status.success(),
            "{}: {status}:\n{}\n{text}",
            block.at(),
            block.body
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Container engines: the docker and podman blocks, then the Dockerfiles.

/// The base a Dockerfile fragment is built on: Debian with Python, gunicorn and examples/app.py in /app.
fn fragment_base(p: &'static Podman) -> String {
    let (_, python, _) = example_bases(p);
    let context = p.context(
        "snippet-base",
        &[("app.py", &root().join("examples/app.py"))],
    );
    fs::write(
        context.join("Containerfile"),
        format!(
            "FROM {python}\nRUN pip install --no-cache-dir gunicorn==27.0.1\nWORKDIR /app\nCOPY app.py /app/app.py\n"
        ),
    )
    .expect("write a Containerfile");
    let tag = "localhost/grace-init-e2e/snippet-base:test";
    p.ok(&[
        "build",
        "--network",
        "none",
        "--tag",
        tag,
        &context.to_string_lossy(),
    ]);
    tag.to_string()
}

#[test]
fn every_container_snippet_runs_and_every_dockerfile_snippet_builds() {
    let Some(p) = podman() else { return };
    // Dockerfile.example as tests/podman.rs builds it (usually already there): its stages, tagged, are the cache
    // the snippets' own builds of it hit.
    example_image(p);
    let started = Instant::now();
    let sandbox = sandbox("engine", Some(p));
    for block in claimed(Runner::Engine) {
        let script = format!("export TMPDIR={}\n{}", sandbox.dir.display(), block.body);
        let began = Instant::now();
        let run = Started::new(&[], &script, &sandbox, root());
        let (status, text) = run.finish(Duration::from_secs(1200));
        eprintln!(
            "{}: ran in {:.1}s",
            block.at(),
            began.elapsed().as_secs_f64()
        );
        assert!(
            status.success(),
            "{}: {status}:\n{}\n{text}",
            block.at(),
            block.body
        );
        // A block that shows a container's logs after stopping it shows grace-init's summary.
        if commands(&block.body).any(|l| l.contains(" logs ")) {
            assert!(
                text.contains("exiting after stop signal SIGTERM"),
                "{}: no summary in the logs it shows:\n{text}",
                block.at()
            );
        }
    }
    let began = Instant::now();
    let base = fragment_base(p);
    eprintln!(
        "the fragments' base built in {:.1}s",
        began.elapsed().as_secs_f64()
    );
    let mut built = vec![];
    for (i, block) in claimed(Runner::Build).into_iter().enumerate() {
        let context = p.context(&format!("snippet-{i}"), &[]);
        artifacts(&context);
        let has_from = block
            .body
            .lines()
            .any(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "));
        let file = if has_from {
            block.body.clone()
        } else {
            format!("FROM {base}\n{}", block.body)
        };
        fs::write(context.join("Containerfile"), file).expect("write a Containerfile");
        let tag = format!("localhost/grace-init-e2e/snippet-{i}:test");
        let began = Instant::now();
        let out = p.podman(&[
            "build",
            "--network",
            "none",
            "--tag",
            &tag,
            &context.to_string_lossy(),
        ]);
        assert!(
            out.status.success(),
            "{}: the Dockerfile does not build:\n{}\n{}",
            block.at(),
            block.body,
            String::from_utf8_lossy(&out.stderr)
        );
        if block.body.contains("\"gunicorn\"") {
            let c = Container::start(p, &[&tag]);
            c.wait_log("Booting worker");
            let stopped = c.stop(10);
            let logs = c.logs();
            assert_eq!(stopped.code, 0, "{}: {stopped:?}\n{logs}", block.at());
            assert!(logs.contains("exiting after stop signal SIGTERM"), "{logs}");
        } else if block.body.contains("grace-init-linux-") {
            let c = Container::start(
                p,
                &[
                    "--entrypoint",
                    "/usr/local/bin/grace-init",
                    &tag,
                    "--version",
                ],
            );
            p.ok(&["wait", &c.name]);
            assert!(
                c.logs().contains("grace-init"),
                "{}: {}",
                block.at(),
                c.logs()
            );
        }
        eprintln!(
            "{}: built (and run) in {:.1}s",
            block.at(),
            began.elapsed().as_secs_f64()
        );
        built.push(block.at());
    }
    eprintln!(
        "container snippets run and {} Dockerfiles built in {:.0}s: {}",
        built.len(),
        started.elapsed().as_secs_f64(),
        built.join(", ")
    );
}
