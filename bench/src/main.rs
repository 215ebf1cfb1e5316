//! grace-init-bench: measures grace-init against tini, dumb-init and catatonit in the same run, each as a real
//! PID 1 of a fresh PID namespace, and writes a table, a JSON file, a Markdown fragment and an SVG chart.
//!
//! Run from the repository root, as root:
//!     cargo run --release --manifest-path bench/Cargo.toml -- [--quick] [--soak]
//!
//! It installs nothing: a peer that is not installed is reported as missing and skipped. It builds grace-init's
//! static binary with scripts/build-static.sh (or `cargo build` with +crt-static when the script is absent).

mod ktrace;
mod metrics;
mod model;
mod report;
mod stats;
mod sys;
mod syscalls;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use metrics::{Ctx, Plan};
use model::{Init, Metric};

const HELP: &str = "\
grace-init-bench: grace-init vs tini, dumb-init and catatonit, each as PID 1 of a fresh PID namespace

Usage: cargo run --release --manifest-path bench/Cargo.toml -- [OPTIONS]

Options:
  --quick              fewer rounds and a 2 s idle window: for development, not for publishing
  --soak               also run issue 6's long variants (1,000,000 forwarded signals, 100,000 reaped orphans,
                       a 50,000-signal mixed storm) on the grace-init builds
  --soak-only          only the soak
  --soak-all           run the soak on every init, not only grace-init
  --syscalls-only      only issue 10's system-call counts (strace attached to each init: per forwarded signal,
                       and SIGTERM → exit), a few seconds; part of every full run as the group 'syscalls'
  --traces DIR         keep strace's output of every traced session in DIR (INIT.ROUND.strace, with the
                       window boundaries in INIT.ROUND.window)
  --scale F            multiply every round count by F (e.g. 3 for tighter medians on a noisy machine)
  --only LIST          only these groups: size,startup,supervise,busy,idle,reap,signals,escalation,
                       syscalls
  --inits LIST         only these inits (names as in the table)
  --reference NAME     the init the ratios are taken against [default: tini-static]
  --grace-init PATH    measure this grace-init binary instead of building the static one
  --no-build           use the static binaries already in target/static/ (or target/bench-static/)
  --add 'NAME=PATH [ARGS]'  also measure this grace-init binary under NAME, run as `PATH ARGS -- COMMAND`
                       (repeatable), e.g. to compare builds or flags: --add 'quiet=target/static/grace-init -q'
  --out DIR            where latest.json, latest.md and latest.svg go [default: bench/results]
  --svg PATH           also write the chart here (e.g. docs/benchmarks.svg)
  --seed N             seed of the round order shuffle
  -h, --help           this text

Needs root (it creates PID and mount namespaces) and a C compiler (`cc`) for the child helper; the system-call
counts need strace (apt-get install strace).
Peers are used when installed: apt-get install tini dumb-init catatonit (or scripts/setup-test-deps.sh).";

struct Options {
    quick: bool,
    scale: f64,
    soak: bool,
    soak_only: bool,
    soak_all: bool,
    syscalls_only: bool,
    traces: Option<PathBuf>,
    only: Option<Vec<String>>,
    inits: Option<Vec<String>>,
    reference: String,
    grace_init: Option<PathBuf>,
    add: Vec<(String, PathBuf, Vec<String>)>,
    no_build: bool,
    out: Option<PathBuf>,
    svg: Option<PathBuf>,
    seed: Option<u64>,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        scale: 1.0,
        soak: false,
        soak_only: false,
        soak_all: false,
        syscalls_only: false,
        traces: None,
        only: None,
        inits: None,
        reference: "tini-static".to_string(),
        grace_init: None,
        add: Vec::new(),
        no_build: false,
        out: None,
        svg: None,
        seed: None,
    };
    let mut it = args.iter();
    let list = |v: &str| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--soak" => o.soak = true,
            "--scale" => {
                let v = value("--scale")?;
                o.scale = v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| *f > 0.0 && f.is_finite())
                    .ok_or(format!("--scale: not a positive number: '{v}'"))?;
            }
            "--soak-only" => {
                o.soak = true;
                o.soak_only = true;
            }
            "--soak-all" => o.soak_all = true,
            "--syscalls-only" => o.syscalls_only = true,
            "--traces" => o.traces = Some(PathBuf::from(value("--traces")?)),
            "--only" => o.only = Some(list(&value("--only")?)),
            "--inits" => o.inits = Some(list(&value("--inits")?)),
            "--reference" => o.reference = value("--reference")?,
            "--grace-init" => o.grace_init = Some(PathBuf::from(value("--grace-init")?)),
            "--no-build" => o.no_build = true,
            "--add" => {
                let v = value("--add")?;
                let (name, rest) = v
                    .split_once('=')
                    .ok_or(format!("--add: expected NAME=PATH, got '{v}'"))?;
                let mut words = rest.split_whitespace();
                let path = words.next().ok_or(format!("--add: no path in '{v}'"))?;
                o.add.push((
                    name.to_string(),
                    PathBuf::from(path),
                    words.map(str::to_string).collect(),
                ));
            }
            "--out" => o.out = Some(PathBuf::from(value("--out")?)),
            "--svg" => o.svg = Some(PathBuf::from(value("--svg")?)),
            "--seed" => {
                let v = value("--seed")?;
                o.seed = Some(
                    v.parse()
                        .map_err(|_| format!("--seed: not a number: '{v}'"))?,
                );
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}' (try --help)")),
        }
    }
    Ok(o)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "bench: {msg}");
}

fn first_line_of(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The static grace-init builds: (main binary to ship, its description, the glibc one if the main is musl).
struct GraceBuilds {
    main: PathBuf,
    main_origin: String,
    glibc: Option<PathBuf>,
}

/// Builds the static binaries in a target directory of the bench's own (target/bench-static) with the settings
/// of scripts/build-static.sh, for when the script is absent or fails (e.g. its `cp` onto a binary that another
/// process is running): glibc with +crt-static always; musl non-PIE when its target is installed, with nightly and
/// the standard library rebuilt with panic=immediate-abort when nightly has rust-src and the musl target.
fn build_own(root: &Path) -> Result<GraceBuilds, String> {
    let dir = root.join("target/bench-static");
    let musl = "x86_64-unknown-linux-musl";
    let cargo = |toolchain: Option<&str>, triple: &str, rustflags: &str, extra: &[&str]| -> bool {
        say(&format!(
            "building grace-init: RUSTFLAGS='{rustflags}' cargo {}build --release --target {triple} --target-dir \
             target/bench-static {}",
            toolchain.map_or(String::new(), |t| format!("+{t} ")),
            extra.join(" ")
        ));
        let mut cmd = Command::new("cargo");
        if let Some(t) = toolchain {
            cmd.arg(format!("+{t}"));
        }
        cmd.args([
            "build",
            "--release",
            "--target",
            triple,
            "--target-dir",
            "target/bench-static",
        ])
        .args(extra)
        .env("RUSTFLAGS", rustflags)
        .current_dir(root);
        cmd.status().map(|s| s.success()).unwrap_or(false)
    };
    if !cargo(
        None,
        "x86_64-unknown-linux-gnu",
        "-C target-feature=+crt-static",
        &[],
    ) {
        return Err("cannot build grace-init".to_string());
    }
    let glibc = dir.join("x86_64-unknown-linux-gnu/release/grace-init");
    let listed = |args: &[&str], want: &str| {
        Command::new("rustup")
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim().starts_with(want))
            })
            .unwrap_or(false)
    };
    let musl_stable = listed(&["target", "list", "--installed"], musl);
    let musl_nightly = listed(
        &["target", "list", "--toolchain", "nightly", "--installed"],
        musl,
    ) && listed(
        &["component", "list", "--toolchain", "nightly", "--installed"],
        "rust-src",
    );
    if musl_nightly
        && cargo(
            Some("nightly"),
            musl,
            "-C relocation-model=static -Zunstable-options -Cpanic=immediate-abort",
            &["-Zbuild-std=std,panic_abort"],
        )
    {
        return Ok(GraceBuilds {
            main: dir.join(format!("{musl}/release/grace-init")),
            main_origin:
                "target/bench-static (musl, nightly -Zbuild-std, panic=immediate-abort, non-PIE)"
                    .to_string(),
            glibc: Some(glibc),
        });
    }
    if musl_stable && cargo(None, musl, "-C relocation-model=static", &[]) {
        return Ok(GraceBuilds {
            main: dir.join(format!("{musl}/release/grace-init")),
            main_origin: "target/bench-static (musl, stable, non-PIE)".to_string(),
            glibc: Some(glibc),
        });
    }
    say("musl target not installed or its build failed: measuring the glibc static build");
    Ok(GraceBuilds {
        main: glibc,
        main_origin: "target/bench-static (glibc, +crt-static)".to_string(),
        glibc: None,
    })
}

fn build_grace(root: &Path, opts: &Options) -> Result<GraceBuilds, String> {
    if let Some(p) = &opts.grace_init {
        return Ok(GraceBuilds {
            main: p.clone(),
            main_origin: format!("{} (--grace-init)", p.display()),
            glibc: None,
        });
    }
    let script = root.join("scripts/build-static.sh");
    let fallback = root.join("target/bench-static/x86_64-unknown-linux-gnu/release/grace-init");
    let fallback_musl =
        root.join("target/bench-static/x86_64-unknown-linux-musl/release/grace-init");
    if !opts.no_build {
        let mut built_by_script = false;
        let mut script_nightly = false;
        if script.exists() {
            say("building grace-init with scripts/build-static.sh");
            let (ok, log) = match Command::new("bash").arg(&script).current_dir(root).output() {
                Ok(o) => {
                    let mut log = String::from_utf8_lossy(&o.stderr).into_owned();
                    log.push_str(&String::from_utf8_lossy(&o.stdout));
                    (o.status.success(), log)
                }
                Err(e) => (false, e.to_string()),
            };
            let _ = std::io::stderr().write_all(log.as_bytes());
            script_nightly = log.contains("with nightly");
            if ok {
                built_by_script = true;
            } else {
                say("scripts/build-static.sh failed: building in target/bench-static instead");
            }
        }
        if !built_by_script {
            return build_own(root);
        }
        let musl = root.join("target/static/grace-init-musl");
        if musl.exists() {
            return Ok(GraceBuilds {
                main: musl,
                main_origin: format!(
                    "target/static/grace-init-musl (scripts/build-static.sh, musl, {})",
                    if script_nightly {
                        "nightly -Zbuild-std, panic=immediate-abort"
                    } else {
                        "stable"
                    }
                ),
                glibc: Some(root.join("target/static/grace-init")),
            });
        }
    }
    let musl = root.join("target/static/grace-init-musl");
    let glibc = root.join("target/static/grace-init");
    if fallback_musl.exists() && !musl.exists() {
        return Ok(GraceBuilds {
            main: fallback_musl,
            main_origin: "target/bench-static (x86_64-unknown-linux-musl)".to_string(),
            glibc: fallback.exists().then_some(fallback),
        });
    }
    match (musl.exists(), glibc.exists(), fallback.exists()) {
        (true, g, _) => Ok(GraceBuilds {
            main: musl,
            main_origin: "target/static/grace-init-musl (scripts/build-static.sh, musl)"
                .to_string(),
            glibc: g.then_some(glibc),
        }),
        (false, true, _) => Ok(GraceBuilds {
            main: glibc,
            main_origin: "target/static/grace-init (scripts/build-static.sh, glibc +crt-static)"
                .to_string(),
            glibc: None,
        }),
        (false, false, true) => Ok(GraceBuilds {
            main: fallback,
            main_origin: "target/bench-static (glibc, +crt-static)".to_string(),
            glibc: None,
        }),
        _ => Err("no static grace-init found (run without --no-build)".to_string()),
    }
}

/// Copies a binary into the run's directory so a rebuild during the run cannot change what is measured.
fn snapshot(src: &Path, dir: &Path, name: &str) -> Result<PathBuf, String> {
    let dst = dir.join(name);
    fs::copy(src, &dst).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
    Ok(dst)
}

fn compile_helper(dir: &Path) -> Result<PathBuf, String> {
    let src = dir.join("helper.c");
    fs::write(&src, include_str!("../helper/helper.c")).map_err(|e| e.to_string())?;
    let out = dir.join("helper");
    for extra in [&["-static"][..], &[][..]] {
        let ok = Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .args(extra)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Ok(out);
        }
    }
    Err("cannot compile the child helper with cc (is gcc installed?)".to_string())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The commit measured, with "+ uncommitted changes" when the crate's sources differ from it.
fn git_revision(root: &Path) -> String {
    let head = first_line_of(
        Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(root),
    );
    let dirty = Command::new("git")
        .args([
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
            "Cargo.lock",
        ])
        .current_dir(root)
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{head} + uncommitted changes")
    } else {
        head
    }
}

fn read_trim(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            say(&e);
            return ExitCode::from(2);
        }
    };
    match run(&opts, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Options, args: &[String]) -> Result<(), String> {
    if !sys::is_root() {
        return Err(
            "must run as root: every init runs as PID 1 of a new PID namespace".to_string(),
        );
    }
    let began = Instant::now();
    let root = repo_root();
    let tmp = std::env::temp_dir().join(format!("grace-init-bench.{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let result = run_in(opts, args, &root, &tmp, began);
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn run_in(
    opts: &Options,
    args: &[String],
    root: &Path,
    tmp: &Path,
    began: Instant,
) -> Result<(), String> {
    let loadavg_start = read_trim("/proc/loadavg");
    let helper = compile_helper(tmp)?;
    let builds = build_grace(root, opts)?;
    // The commit measured: read right after the build (commits landing during the run do not change the binary).
    let revision = if opts.no_build || opts.grace_init.is_some() {
        format!("(not built by this run; HEAD is {})", git_revision(root))
    } else {
        git_revision(root)
    };

    // The inits, the way users run them.
    let mut inits = Vec::new();
    let mut missing = Vec::new();
    let main_exe = snapshot(&builds.main, tmp, "grace-init")?;
    inits.push(Init {
        name: "grace-init".to_string(),
        exe: main_exe,
        origin: builds.main_origin.clone(),
        prefix: vec!["--".to_string()],
        size_file: builds.main.clone(),
        is_grace: true,
        version: String::new(),
    });
    // Binaries whose size is reported without being run (none by default).
    let extra_sizes: Vec<(String, PathBuf)> = Vec::new();
    if let Some(g) = &builds.glibc {
        inits.push(Init {
            name: "grace-init-glibc".to_string(),
            exe: snapshot(g, tmp, "grace-init-glibc")?,
            origin: format!("{} (glibc, +crt-static)", g.display()),
            prefix: vec!["--".to_string()],
            size_file: g.clone(),
            is_grace: true,
            version: String::new(),
        });
    }
    for (k, (name, path, extra)) in opts.add.iter().enumerate() {
        let mut prefix = extra.clone();
        prefix.push("--".to_string());
        inits.push(Init {
            name: name.clone(),
            exe: snapshot(path, tmp, &format!("added-{k}"))?,
            origin: format!(
                "{} (--add{})",
                path.display(),
                extra.iter().map(|a| format!(" {a}")).collect::<String>()
            ),
            prefix,
            size_file: path.clone(),
            is_grace: true,
            version: String::new(),
        });
    }
    for (name, path, prefix) in [
        ("tini-static", "/usr/bin/tini-static", true),
        ("tini", "/usr/bin/tini", true),
        ("dumb-init", "/usr/bin/dumb-init", false),
        ("catatonit", "/usr/bin/catatonit", true),
    ] {
        let p = PathBuf::from(path);
        if !p.exists() {
            say(&format!("{name} is not installed ({path}): skipped"));
            missing.push(name.to_string());
            continue;
        }
        inits.push(Init {
            name: name.to_string(),
            exe: p.clone(),
            origin: format!("{path} (Debian package)"),
            prefix: if prefix {
                vec!["--".to_string()]
            } else {
                Vec::new()
            },
            size_file: p,
            is_grace: false,
            version: String::new(),
        });
    }
    if let Some(keep) = &opts.inits {
        inits.retain(|i| keep.contains(&i.name));
        if inits.is_empty() {
            return Err("--inits selected no installed init".to_string());
        }
    }
    for i in &mut inits {
        i.version = first_line_of(Command::new(&i.exe).arg("--version"));
    }
    if !inits.iter().any(|i| i.name == opts.reference) {
        say(&format!(
            "reference '{}' is not measured: ratios will be empty",
            opts.reference
        ));
    }
    say(&format!(
        "measuring {} (reference for ratios: {})",
        inits
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        opts.reference
    ));

    let launcher =
        sys::Launcher::new(true).map_err(|e| format!("cannot prepare the launcher: {e}"))?;
    // Check that namespaces work here before spending minutes.
    {
        let mut probe = launcher
            .start(&["/bin/true".to_string()], false)
            .map_err(|e| format!("cannot create a PID namespace (clone3 CLONE_NEWPID): {e}"))?;
        let (_, status) = probe.wait_exit_blocking();
        if status != 0 {
            return Err(format!(
                "/bin/true as PID 1 of a new namespace failed ({}): cannot mount /proc?",
                metrics::describe_status(status)
            ));
        }
    }
    let seed = opts
        .seed
        .unwrap_or_else(|| sys::now_ns() ^ u64::from(std::process::id()));
    let mut ctx = Ctx {
        launcher,
        helper: helper.to_string_lossy().into_owned(),
        plan: if opts.quick {
            Plan::quick()
        } else {
            Plan::full()
        }
        .scaled(opts.scale),
        rng: stats::Rng::new(seed),
        tmp: tmp.to_path_buf(),
        traces: opts.traces.clone(),
    };
    if let Some(dir) = &ctx.traces {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let wants = |group: &str| {
        if opts.syscalls_only {
            return group == "syscalls";
        }
        !opts.soak_only
            && opts
                .only
                .as_ref()
                .is_none_or(|o| o.iter().any(|g| g == group))
    };
    let mut results: Vec<Metric> = Vec::new();
    let mut lap = Instant::now();
    let mut show = |ms: Vec<Metric>, results: &mut Vec<Metric>| {
        say(&format!("({:.0} s)", lap.elapsed().as_secs_f64()));
        lap = Instant::now();
        for m in ms {
            print!("{}", report::text_metric(&m, &opts.reference));
            let _ = std::io::stdout().flush();
            results.push(m);
        }
    };
    if wants("size") {
        show(
            vec![metrics::size(&inits, &extra_sizes, root)],
            &mut results,
        );
    }
    if wants("startup") {
        say("startup overhead (paired with /bin/true as PID 1)");
        show(vec![metrics::startup(&mut ctx, &inits)], &mut results);
    }
    if wants("supervise") {
        say("memory, forwarding and shutdown (one supervision session per init per round)");
        show(metrics::supervise(&mut ctx, &inits), &mut results);
    }
    if wants("busy") {
        say(&format!(
            "shutdown on a busy host: {} idle processes outside the namespaces",
            ctx.plan.busy_processes
        ));
        show(vec![metrics::busy_shutdown(&mut ctx, &inits)], &mut results);
    }
    if wants("idle") {
        say(&format!(
            "idle wake-ups over {} s, all inits side by side",
            ctx.plan.idle_secs
        ));
        show(vec![metrics::idle(&mut ctx, &inits)], &mut results);
    }
    if wants("reap") {
        say("reaping: 10,000 orphans at once, then a fork storm");
        show(metrics::reaping(&mut ctx, &inits), &mut results);
    }
    if wants("signals") {
        say("signal storm");
        show(vec![metrics::signal_storm(&mut ctx, &inits)], &mut results);
    }
    if wants("escalation") && inits.iter().any(|i| i.is_grace) {
        say("escalation (grace-init only): the child ignores SIGTERM, --timeout 1");
        show(metrics::escalation(&mut ctx, &inits), &mut results);
    }
    if wants("syscalls") {
        say(&format!(
            "system calls (strace -p on the init): per forwarded signal ({} SIGUSR1 one at a time), and SIGTERM → exit",
            ctx.plan.syscall_signals
        ));
        show(syscalls::syscalls(&mut ctx, &inits), &mut results);
    }
    if opts.soak && !opts.syscalls_only {
        let soaked: Vec<Init> = inits
            .iter()
            .filter(|i| opts.soak_all || i.is_grace)
            .cloned()
            .collect();
        say(&format!(
            "soak: {} forwarded signals, {}×{} orphans, {} mixed signals on {}",
            ctx.plan.soak_signals,
            ctx.plan.soak_orphan_batches,
            ctx.plan.soak_orphans_per_batch,
            ctx.plan.soak_mixed_signals,
            soaked
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        show(metrics::soak(&mut ctx, &soaked), &mut results);
    }

    let verdicts = report::verdicts(&results, &inits, "grace-init", &opts.reference);
    print!("{}", report::text_verdicts(&verdicts));
    let meta = report::Meta {
        command: format!(
            "cargo run --release --manifest-path bench/Cargo.toml --{}",
            args.iter().map(|a| format!(" {a}")).collect::<String>()
        ),
        date: first_line_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: read_trim("/proc/sys/kernel/osrelease"),
        cpu: cpu_model(),
        loadavg_start,
        loadavg_end: read_trim("/proc/loadavg"),
        duration_s: began.elapsed().as_secs_f64(),
        quick: opts.quick,
        reference: opts.reference.clone(),
        missing,
        grace_build: builds.main_origin.clone(),
        revision,
    };
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| root.join("bench/results"));
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let write = |path: PathBuf, text: String| -> Result<(), String> {
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        say(&format!("wrote {}", path.display()));
        Ok(())
    };
    write(
        out.join("latest.json"),
        report::json(&meta, &inits, &results, &verdicts),
    )?;
    write(
        out.join("latest.md"),
        report::markdown(&meta, &inits, &results, &verdicts),
    )?;
    // No chart when nothing charted was measured (e.g. --syscalls-only).
    if results.iter().any(|m| m.chart.is_some()) {
        let chart = report::svg(&meta, &inits, &results);
        write(out.join("latest.svg"), chart.clone())?;
        if let Some(svg) = &opts.svg {
            write(svg.clone(), chart)?;
        }
    }
    say(&format!(
        "done in {:.0} s (load average {} → {})",
        meta.duration_s, meta.loadavg_start, meta.loadavg_end
    ));
    Ok(())
}
