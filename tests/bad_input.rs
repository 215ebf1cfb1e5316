//! Bad input on the command line and in every GRACE_INIT_* variable: one line on stderr naming the bad value,
//! exit status 2, nothing on stdout, and the command never started (it would create a marker file). Also: a
//! flag wins over its environment variable, and repeatable options stay repeatable.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

/// Runs `grace-init OPTIONS -- sh -c 'touch MARKER'` (or OPTIONS alone when `raw`) and checks the usage-error
/// contract: exit 2, exactly one stderr line naming `named`, nothing on stdout, no child started.
fn usage_error(
    mode: Mode,
    options: &[&str],
    env: &[(&str, &str)],
    named: &[&str],
    marker: &std::path::Path,
    raw: bool,
) -> Result<(), String> {
    let touch = format!("touch {}", marker.display());
    let mut argv: Vec<&str> = options.to_vec();
    if !raw {
        argv.extend(["--", "sh", "-c", &touch]);
    }
    let done = Run::start_env(mode, &argv, env).wait(secs(10.0));
    let what = format!("{mode:?} {options:?} env {env:?}");
    if done.code != Some(2) {
        return Err(format!(
            "{what}: exit {:?}, want 2; stderr {:?}",
            done.code, done.stderr
        ));
    }
    let [line] = done.stderr.as_slice() else {
        return Err(format!(
            "{what}: want exactly one stderr line: {:?}",
            done.stderr
        ));
    };
    if !line.starts_with("grace-init: error: ") {
        return Err(format!("{what}: not grace-init's error line: {line}"));
    }
    if let Some(name) = named.iter().find(|name| !line.contains(*name)) {
        return Err(format!("{what}: {line:?} should name {name:?}"));
    }
    if !done.stdout.is_empty() {
        return Err(format!("{what}: stdout {:?}", done.stdout));
    }
    if marker.exists() {
        return Err(format!("{what}: the command was started"));
    }
    Ok(())
}

/// Asserts that no case failed, listing every failure at once.
fn all_ok(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `(options, what the line must name)` for bad command-line values: each option's values empty, negative,
/// overflowing, with a wrong unit, junk, out of range, and repeated where an option is not repeatable.
fn bad_flags() -> Vec<(Vec<&'static str>, Vec<&'static str>)> {
    let mut cases: Vec<(Vec<&str>, Vec<&str>)> = vec![];
    let mut add = |options: &[&'static str], named: &[&'static str]| {
        cases.push((options.to_vec(), named.to_vec()))
    };
    // --timeout / -t
    for v in [
        "",
        "-1",
        "99999999999999h",
        "8785h",
        "340282366920938463463374607431768211456",
        "5x",
        "5 s",
        " 5",
        "5d",
        "1e3",
        "0x10",
        "abc",
        "1.2.3",
        ".",
        "s",
        "0.0000000001s",
        "soon",
    ] {
        add(&["--timeout", v], &[quote(v)]);
        add(&["-t", v], &[quote(v)]);
    }
    add(&["--timeout=-1"], &["'-1'"]);
    add(&["-t", "1", "-t", "2"], &["--timeout"]);
    add(&["--timeout", "1", "--timeout", "1"], &["--timeout"]);
    // --drain-delay: like --timeout, and `infinity` or a delay not shorter than the timeout is refused.
    for v in [
        "",
        "-1",
        "99999999999999h",
        "5x",
        "junk",
        "infinity",
        "inf",
        "30s",
    ] {
        add(&["--drain-delay", v], &[quote(v)]);
    }
    // Checked against the timeout after parsing: the message prints the parsed value.
    add(&["--drain-delay", "1h"], &["'3600s'", "(30s)"]);
    add(&["--drain-delay", "5", "-t", "5"], &["'5s'", "5s"]);
    add(
        &["--drain-delay", "1", "--drain-delay", "2"],
        &["--drain-delay"],
    );
    // -c / --single-child and -s / --subreaper take no value and are not repeatable.
    add(&["--single-child=yes"], &["'yes'", "--single-child"]);
    add(&["-c", "-c"], &["--single-child"]);
    add(&["--subreaper=1"], &["'1'", "--subreaper"]);
    add(&["-s", "-s"], &["--subreaper"]);
    // --rewrite / -r
    for v in [
        "",
        "TERM",
        "TERM:",
        ":TERM",
        ":",
        "FOO:TERM",
        "TERM:FOO",
        "none:TERM",
        "TERM:QUIT:INT",
        "KILL:TERM",
        "SIGKILL:TERM",
        "9:TERM",
        "STOP:TERM",
        "19:TERM",
        "TERM:KILL",
        "TERM:sigkill",
        "TERM:9",
        "TERM:STOP",
        "TERM:19",
        "SEGV:TERM",
        "CHLD:TERM",
        "0:TERM",
        "TERM:0",
        "65:TERM",
        "TERM:65",
        "99999999999:TERM",
        "TERM:99999999999",
        "RTMIN+99:TERM",
        "TERM:RTMAX+1",
        "32:TERM",
    ] {
        add(&["--rewrite", v], &[quote(v)]);
    }
    add(&["-r", "TERM:QUIT,"], &["''"]);
    add(
        &["-r", "TERM:QUIT", "-r", "TERM:INT"],
        &["SIGTERM", "twice"],
    );
    add(&["-r", "TERM:QUIT,15:INT"], &["SIGTERM", "twice"]);
    // --pre-stop
    add(&["--pre-stop", ""], &["pre-stop", "''"]);
    add(&["--pre-stop", "   "], &["pre-stop"]);
    add(
        &["--pre-stop", "true", "--pre-stop", "true"],
        &["--pre-stop"],
    );
    // --expect-exit / -e
    for v in ["", "-1", "256", "300", "99999999999", "abc", "1.0", "0x8f"] {
        add(&["--expect-exit", v], &[quote(v)]);
    }
    add(&["-e", "143,"], &["''"]);
    add(&["-e", "143,abc"], &["'abc'"]);
    // --pdeathsig / -p
    for v in [
        "",
        "0",
        "65",
        "-1",
        "KILL",
        "SIGKILL",
        "9",
        "STOP",
        "19",
        "FOO",
        "SIG",
        "99999999999",
        "RTMAX+1",
        "TERM,HUP",
    ] {
        add(&["--pdeathsig", v], &[quote(v)]);
    }
    add(&["-p", "TERM", "-p", "HUP"], &["--pdeathsig"]);
    // --stop-signals
    for v in [
        "", "TERM,", ",TERM", "KILL", "STOP", "CHLD", "SEGV", "NOPE", "0", "65", "32",
    ] {
        let bad = match v {
            "TERM," | ",TERM" => "''",
            other => quote(other),
        };
        add(&["--stop-signals", v], &[bad]);
    }
    add(&["--stop-signals", "TERM,NOPE"], &["'NOPE'"]);
    // --termination-log
    add(&["--termination-log", ""], &["''", "termination log"]);
    add(
        &["--termination-log", "/a", "--termination-log", "/b"],
        &["--termination-log"],
    );
    // --log-format
    add(
        &["--log-format", ""],
        &["--log-format", "value is required"],
    );
    for v in ["xml", "text,json"] {
        add(&["--log-format", v], &[quote(v)]);
    }
    add(
        &["--log-format", "json", "--log-format", "text"],
        &["--log-format"],
    );
    // --user / -u: the shape, then the names (looked up in /etc/passwd and /etc/group).
    for v in [
        "",
        ":",
        ":root",
        "root:",
        "a:b:c",
        "4294967295",
        "4294967296",
        "0:99999999999",
        "ro ot",
        "no-such-user-zz",
    ] {
        add(&["--user", v], &[quote(v)]);
        add(&["-u", v], &[quote(v)]);
    }
    add(&["-u", "root:no-such-group-zz"], &["'no-such-group-zz'"]);
    add(&["-u", "no-such-user-zz:root"], &["'no-such-user-zz'"]);
    add(&["-u", "root", "-u", "root"], &["--user"]);
    // --pause takes no value and no command.
    add(&["--pause"], &["--pause", "'sh'"]);
    add(&["--pause=1"], &["'1'", "--pause"]);
    add(&["--pause", "--pause"], &["--pause"]);
    // -w / --warn-reap and --wait-all take no value.
    add(&["--warn-reap=yes"], &["'yes'", "--warn-reap"]);
    add(&["-w", "-w"], &["--warn-reap"]);
    add(&["--wait-all=yes"], &["'yes'", "--wait-all"]);
    add(&["--wait-all", "--wait-all"], &["--wait-all"]);
    // -v / -q
    add(&["-v", "-q"], &["--quiet"]);
    add(&["-q", "-q"], &["--quiet"]);
    // Unknown options.
    add(&["--bogus"], &["--bogus"]);
    add(&["-x"], &["-x"]);
    add(&["--time-out", "5"], &["--time-out"]);
    cases
}

/// The value in quotes, as the messages print it. Leaks a few bytes per case, which keeps the tables `&str`.
fn quote(value: &str) -> &'static str {
    Box::leak(format!("'{value}'").into_boxed_str())
}

#[test]
fn every_option_rejects_bad_values_with_one_line_exit_2_and_no_child() {
    let scratch = Scratch::new("bad-flags");
    let mut failures = vec![];
    for (i, (options, named)) in bad_flags().iter().enumerate() {
        if let Err(e) = usage_error(
            Mode::Subreaper,
            options,
            &[],
            named,
            &scratch.marker(i),
            false,
        ) {
            failures.push(e);
        }
    }
    all_ok(failures);
}

#[test]
fn values_starting_with_a_dash_are_named_in_full() {
    // `--timeout -1` is named as '-1', but other dash-led values given as a separate word are taken for
    // options, and the message names a fragment ("unexpected argument '-1' found" for `--stop-signals -15`).
    let scratch = Scratch::new("dash");
    let mut failures = vec![];
    let cases: &[(&[&str], &str)] = &[
        (&["--timeout", "-1"], "'-1'"),
        (&["--timeout=-5s"], "'-5s'"),
        (&["--timeout", "-5s"], "'-5s'"),
        (&["-t", "-5s"], "'-5s'"),
        (&["--drain-delay", "-2s"], "'-2s'"),
        (&["-r", "-1:TERM"], "'-1:TERM'"),
        (&["--stop-signals", "-15"], "'-15'"),
        (&["-e", "-1"], "'-1'"),
        (&["-p", "-15"], "'-15'"),
    ];
    for (i, (options, named)) in cases.iter().enumerate() {
        if let Err(e) = usage_error(
            Mode::Subreaper,
            options,
            &[],
            &[named],
            &scratch.marker(i),
            false,
        ) {
            failures.push(e);
        }
    }
    all_ok(failures);
}

#[test]
fn missing_values_and_missing_command_are_usage_errors() {
    let scratch = Scratch::new("missing");
    let mut failures = vec![];
    let cases: &[(&[&str], &[&str])] = &[
        (&["--timeout"], &["--timeout"]),
        (&["-t"], &["--timeout"]),
        (&["--rewrite"], &["--rewrite"]),
        (&["--pre-stop"], &["--pre-stop"]),
        (&["--timeout", "--", "sh"], &["--timeout"]),
        (&[], &["missing command"]),
        (&["--"], &["missing command"]),
        (&["-t", "5"], &["missing command"]),
        (&["--", ""], &["''"]),
    ];
    for (i, (options, named)) in cases.iter().enumerate() {
        if let Err(e) = usage_error(
            Mode::Subreaper,
            options,
            &[],
            named,
            &scratch.marker(i),
            true,
        ) {
            failures.push(e);
        }
    }
    all_ok(failures);
}

/// Environment variables for one case.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Environment variables that may hold any bytes.
type RawEnv = Vec<(&'static str, OsString)>;

/// `(variable, value, what the line must name besides the value)`.
type EnvCase = (&'static str, &'static str, &'static str);

fn bad_env() -> Vec<EnvCase> {
    let mut cases: Vec<EnvCase> = vec![];
    for v in [
        "-1",
        "99999999999999h",
        "8785h",
        "5x",
        "30 s",
        "soon",
        "1.2.3",
    ] {
        cases.push(("GRACE_INIT_TIMEOUT", v, "--timeout"));
    }
    for v in ["-1", "99999999999999h", "5x", "soon", "infinity"] {
        cases.push(("GRACE_INIT_DRAIN_DELAY", v, "--drain-delay"));
    }
    for (var, flag) in [
        ("GRACE_INIT_SINGLE_CHILD", "--single-child"),
        ("GRACE_INIT_SUBREAPER", "--subreaper"),
        ("GRACE_INIT_WARN_REAP", "--warn-reap"),
        ("GRACE_INIT_PAUSE", "--pause"),
        ("GRACE_INIT_WAIT_ALL", "--wait-all"),
    ] {
        for v in ["maybe", "2", "-1", "yes please", "11"] {
            cases.push((var, v, flag));
        }
    }
    for v in [
        "TERM",
        "TERM:",
        ":TERM",
        "FOO:TERM",
        "TERM:FOO",
        "KILL:TERM",
        "STOP:TERM",
        "TERM:KILL",
        "TERM:STOP",
        "TERM:0",
        "TERM:65",
        "99999999999:TERM",
        "TERM:QUIT,",
        "TERM:QUIT,HUP:SIGSTOP",
    ] {
        cases.push(("GRACE_INIT_REWRITE", v, "--rewrite"));
    }
    for v in ["-1", "256", "99999999999", "abc", "143,", "143,abc", "1.0"] {
        cases.push(("GRACE_INIT_EXPECT_EXIT", v, "--expect-exit"));
    }
    for v in ["0", "65", "-1", "KILL", "STOP", "FOO", "99999999999"] {
        cases.push(("GRACE_INIT_PDEATHSIG", v, "--pdeathsig"));
    }
    for v in [
        "TERM,",
        "KILL",
        "STOP",
        "CHLD",
        "SEGV",
        "NOPE",
        "0",
        "65",
        "TERM,NOPE",
    ] {
        cases.push(("GRACE_INIT_STOP_SIGNALS", v, "--stop-signals"));
    }
    for v in ["xml", "text,json"] {
        cases.push(("GRACE_INIT_LOG_FORMAT", v, "--log-format"));
    }
    for v in [":", "root:", "a:b:c", "4294967295"] {
        cases.push(("GRACE_INIT_USER", v, "--user"));
    }
    // A filter directive that is no level and names none of grace-init's own modules could never match.
    for v in [
        "eror",
        "info,eror",
        "grace_init=noisy",
        "hyper=debug",
        "grace_initx",
    ] {
        cases.push(("GRACE_INIT_LOG", v, "GRACE_INIT_LOG"));
    }
    cases
}

/// The bad element of a list value, as the message quotes it.
fn bad_element(value: &str) -> String {
    let element = match value {
        "TERM:QUIT," | "143," | "TERM," => "",
        "143,abc" => "abc",
        "TERM,NOPE" => "NOPE",
        "info,eror" => "eror",
        "TERM:QUIT,HUP:SIGSTOP" => "HUP:SIGSTOP",
        other => other,
    };
    format!("'{element}'")
}

#[test]
fn every_environment_variable_rejects_bad_values_the_same_way_and_names_itself() {
    let scratch = Scratch::new("bad-env");
    let mut failures = vec![];
    for (i, (var, value, flag)) in bad_env().into_iter().enumerate() {
        let quoted = bad_element(value);
        if let Err(e) = usage_error(
            Mode::Subreaper,
            &[],
            &[(var, value)],
            &[&quoted, var, flag],
            &scratch.marker(i),
            false,
        ) {
            failures.push(e);
        }
    }
    all_ok(failures);
}

#[test]
fn usage_errors_are_a_json_line_when_json_logs_were_asked_for() {
    let scratch = Scratch::new("json-usage");
    let cases: &[(&[&str], Env, &str)] = &[
        (
            &["--log-format", "json", "--timeout", "soon"],
            &[],
            "'soon'",
        ),
        (&["--log-format=json", "--bogus"], &[], "--bogus"),
        (&["-t", "-1"], &[("GRACE_INIT_LOG_FORMAT", "json")], "'-1'"),
        (
            &[],
            &[
                ("GRACE_INIT_LOG_FORMAT", "json"),
                ("GRACE_INIT_LOG", "eror"),
            ],
            "'eror'",
        ),
    ];
    for (i, (options, env, named)) in cases.iter().enumerate() {
        let marker = scratch.marker(i);
        let touch = format!("touch {}", marker.display());
        let mut argv = options.to_vec();
        argv.extend(["--", "sh", "-c", &touch]);
        let done = Run::start_env(Mode::Subreaper, &argv, env).wait(secs(10.0));
        let what = format!("{options:?} {env:?}");
        assert_eq!(done.code, Some(2), "{what}: {}", done.stderr_text());
        let [line] = done.stderr.as_slice() else {
            panic!("{what}: one line: {:?}", done.stderr)
        };
        assert!(
            line.starts_with("{\"ts\":")
                && line.ends_with("\"}")
                && line.contains("\"severity\":\"ERROR\"")
                && line.contains(named),
            "{what}: {line}"
        );
        assert!(!marker.exists(), "{what}: the command was started");
    }
}

#[test]
fn a_stop_signal_rewritten_to_none_is_warned_about_before_anything_runs() {
    let done = Run::start_env(
        Mode::Subreaper,
        &["-r", "TERM:none", "-t", "2", "--", "true"],
        &[],
    )
    .wait(secs(10.0));
    assert_eq!(done.code, Some(0), "{}", done.stderr_text());
    let first = done.stderr.first().map(String::as_str).unwrap_or_default();
    assert!(
        first.starts_with("grace-init: warning: --rewrite TERM:none")
            && first.contains("SIGKILLed when the grace period (2s) ends"),
        "{}",
        done.stderr_text()
    );
}

/// Every variable grace-init reads: each option's twin as `--help` shows it, and GRACE_INIT_LOG.
fn variables() -> Vec<String> {
    let help = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("grace-init --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let mut found: Vec<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split_once(']').map(|(var, _)| var.to_string()))
        .collect();
    found.push("GRACE_INIT_LOG".to_string());
    assert!(found.len() > 10, "{found:?}");
    found
}

#[test]
fn an_empty_variable_counts_as_unset_for_every_option() {
    // A derived image cannot unset its base's ENV, and Kubernetes' `value: ""` is how a variable is cleared:
    // each empty variable, and all of them at once, runs the command with the defaults and says nothing of it.
    let scratch = Scratch::new("empty-env");
    let variables = variables();
    let all: Vec<(&str, &str)> = variables.iter().map(|v| (v.as_str(), "")).collect();
    let cases: Vec<Vec<(&str, &str)>> = variables
        .iter()
        .map(|v| vec![(v.as_str(), "")])
        .chain([all])
        .collect();
    let mut failures = vec![];
    for (i, env) in cases.iter().enumerate() {
        let marker = scratch.marker(i);
        let touch = format!("touch {}", marker.display());
        let done =
            Run::start_env(Mode::Subreaper, &["--", "sh", "-c", &touch], env).wait(secs(10.0));
        let defaults = done.code == Some(0)
            && marker.exists()
            && done.stderr.len() == 1
            && done.stderr.iter().all(|l| {
                l.starts_with("grace-init: exiting: the child ended without a stop signal")
            });
        if !defaults {
            failures.push(format!(
                "{env:?}: exit {:?}, stderr {:?}",
                done.code, done.stderr
            ));
        }
    }
    all_ok(failures);
}

#[test]
fn an_empty_timeout_variable_leaves_the_default_grace_period() {
    let done = Run::start_env(
        Mode::Subreaper,
        &["--", "sh", "-c", "kill -TERM $PPID; sleep 0.2"],
        &[("GRACE_INIT_TIMEOUT", ""), ("GRACE_INIT_DRAIN_DELAY", "")],
    )
    .wait(secs(10.0));
    assert!(
        done.stderr_text().contains("grace period 30.000s"),
        "{}",
        done.stderr_text()
    );
}

#[test]
fn values_checked_after_parsing_are_rejected_from_the_environment_too() {
    // These are checked once every source is read (a drain delay against the timeout, an empty pre-stop line,
    // a signal rewritten twice); the message names the value but not the variable it came from.
    let scratch = Scratch::new("bad-env-validated");
    let mut failures = vec![];
    let cases: &[(Env, &[&str], &str)] = &[
        (&[("GRACE_INIT_DRAIN_DELAY", "30s")], &[], "'30s'"),
        (
            &[
                ("GRACE_INIT_DRAIN_DELAY", "5s"),
                ("GRACE_INIT_TIMEOUT", "5"),
            ],
            &[],
            "'5s'",
        ),
        (&[("GRACE_INIT_DRAIN_DELAY", "5s")], &["-t", "3"], "'5s'"),
        (
            &[("GRACE_INIT_TIMEOUT", "3")],
            &["--drain-delay", "5"],
            "'5s'",
        ),
        (&[("GRACE_INIT_PRE_STOP", "   ")], &[], "pre-stop"),
        (
            &[("GRACE_INIT_REWRITE", "TERM:QUIT,TERM:INT")],
            &[],
            "SIGTERM",
        ),
        (
            &[("GRACE_INIT_USER", "no-such-user-zz")],
            &[],
            "'no-such-user-zz'",
        ),
        (
            &[("GRACE_INIT_USER", "root:no-such-group-zz")],
            &[],
            "'no-such-group-zz'",
        ),
        // Pause mode from the environment and a command: which one was meant is unclear.
        (&[("GRACE_INIT_PAUSE", "1")], &[], "'sh'"),
    ];
    for (i, (env, options, named)) in cases.iter().enumerate() {
        if let Err(e) = usage_error(
            Mode::Subreaper,
            options,
            env,
            &[named],
            &scratch.marker(i),
            false,
        ) {
            failures.push(e);
        }
    }
    all_ok(failures);
}

#[test]
fn a_signal_grace_init_cannot_receive_is_refused_as_parent_death_signal() {
    // --pdeathsig names a signal grace-init itself *receives* when its parent dies, so it must be one grace-init
    // can receive. 32 and 33 (reserved by the C library, so never blocked) kill grace-init when they arrive and
    // orphan the child; SIGSEGV is swallowed by the Rust runtime's handler; SIGCHLD is taken for a reap request.
    let scratch = Scratch::new("pdeathsig");
    let mut failures = vec![];
    for (i, value) in ["32", "33", "SEGV", "BUS", "CHLD"].iter().enumerate() {
        if let Err(e) = usage_error(
            Mode::Subreaper,
            &["--pdeathsig", value],
            &[],
            &[&format!("'{value}'")],
            &scratch.marker(i),
            false,
        ) {
            failures.push(e);
        }
    }
    all_ok(failures);
}

#[test]
fn usage_errors_are_the_same_as_pid_1() {
    let scratch = Scratch::new("bad-pid1");
    let mut failures = vec![];
    if !pid1_available() {
        return;
    }
    let cases: &[(&[&str], Env, &str)] = &[
        (&["--timeout", "99999999999999h"], &[], "'99999999999999h'"),
        (&["-r", "TERM:KILL"], &[], "'TERM:KILL'"),
        (&["-r", "STOP:TERM"], &[], "'STOP:TERM'"),
        (&["-e", "256"], &[], "'256'"),
        (&["-t", "1", "-t", "2"], &[], "--timeout"),
        (&[], &[("GRACE_INIT_TIMEOUT", "soon")], "'soon'"),
        (&[], &[("GRACE_INIT_STOP_SIGNALS", "KILL")], "'KILL'"),
        (&[], &[("GRACE_INIT_LOG_FORMAT", "xml")], "'xml'"),
        (&["-u", "no-such-user-zz"], &[], "'no-such-user-zz'"),
        (&["--pause"], &[], "'sh'"),
        (&[], &[("GRACE_INIT_USER", "root:")], "'root:'"),
    ];
    for (i, (options, env, named)) in cases.iter().enumerate() {
        if let Err(e) = usage_error(
            Mode::Pid1,
            options,
            env,
            &[named],
            &scratch.marker(i),
            false,
        ) {
            failures.push(e);
        }
    }
    all_ok(failures);
}

/// Runs grace-init with raw (possibly non-UTF-8) arguments and environment, bounded; returns
/// (exit code, stdout, stderr lines).
fn run_raw(args: Vec<OsString>, env: &[(&str, OsString)]) -> (Option<i32>, String, Vec<String>) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + secs(10.0);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("grace-init did not exit within 10 s");
        }
        std::thread::sleep(secs(0.002));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(str::to_string)
        .collect();
    (
        status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn non_utf8_newlines_and_huge_values_still_give_one_line() {
    let scratch = Scratch::new("raw");
    let marker = scratch.marker(0);
    let touch = format!("touch {}", marker.display());
    let tail = |options: Vec<OsString>| -> Vec<OsString> {
        options
            .into_iter()
            .chain(["--", "sh", "-c", &touch].map(OsString::from))
            .collect()
    };
    let s = |text: &str| OsString::from(text);
    let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
    let huge = "9".repeat(10_000);
    let cases: Vec<(Vec<OsString>, RawEnv)> = vec![
        (tail(vec![s("--timeout"), bytes(b"\xff5s")]), vec![]),
        (tail(vec![s("-r"), bytes(b"TERM:\xc3\x28")]), vec![]),
        (tail(vec![bytes(b"--\xfftimeout"), s("5")]), vec![]),
        (tail(vec![]), vec![("GRACE_INIT_TIMEOUT", bytes(b"5\xff"))]),
        (
            tail(vec![]),
            vec![("GRACE_INIT_REWRITE", bytes(b"\x80:TERM"))],
        ),
        (tail(vec![s("--timeout"), s("1\n2")]), vec![]),
        (tail(vec![s("-r"), s("TERM:\nKILL")]), vec![]),
        (tail(vec![s("--timeout"), s(&huge)]), vec![]),
        (tail(vec![s("-e"), s(&huge)]), vec![]),
        (tail(vec![s("-p"), s(&huge)]), vec![]),
    ];
    for (args, env) in cases {
        let what = format!("{args:?} {env:?}");
        let (code, stdout, stderr) = run_raw(args, &env);
        assert_eq!(code, Some(2), "{what}: {stderr:?}");
        assert_eq!(stderr.len(), 1, "{what}: one line: {stderr:?}");
        assert!(stderr[0].starts_with("grace-init: error: "), "{what}");
        assert!(stdout.is_empty(), "{what}: {stdout}");
        assert!(!marker.exists(), "{what}: the command must not start");
    }
}

#[test]
fn repeatable_options_and_a_verbose_pile_are_accepted() {
    let scratch = Scratch::new("repeatable");
    let cases: &[&[&str]] = &[
        &["-e", "1", "-e", "1"],
        &["-e", "1,2", "-e", "3"],
        &["-r", "TERM:QUIT", "-r", "HUP:none"],
        &["--stop-signals", "TERM", "--stop-signals", "INT,TERM"],
        &["-vv", "-v"],
        &["-t", "infinity", "--drain-delay", "10m"],
        &["-t", "8784h"],
        &["-p", "TERM", "-c", "-s"],
        // Spaces around list elements, as in GRACE_INIT_EXPECT_EXIT="143, 137", are trimmed.
        &["-e", " 143, 137"],
        &["-r", "TERM:QUIT, HUP:none"],
        &["--stop-signals", "TERM, INT"],
    ];
    let pile = format!("-{}", "v".repeat(300));
    let mut all: Vec<Vec<&str>> = cases.iter().map(|c| c.to_vec()).collect();
    all.push(vec![&pile]);
    for (i, options) in all.iter().enumerate() {
        let marker = scratch.marker(i);
        let touch = format!("touch {}", marker.display());
        let mut argv = options.clone();
        argv.extend(["--", "sh", "-c", &touch]);
        let done = Run::start(Mode::Subreaper, &argv).wait(secs(10.0));
        assert_eq!(done.code, Some(0), "{options:?}: {}", done.stderr_text());
        assert!(marker.exists(), "{options:?}: the command should have run");
    }
}

#[test]
fn a_flag_wins_over_a_bad_environment_variable() {
    let scratch = Scratch::new("flag-wins");
    let cases: &[(&str, &str, &[&str])] = &[
        ("GRACE_INIT_TIMEOUT", "soon", &["--timeout", "5"]),
        ("GRACE_INIT_TIMEOUT", "-1", &["-t", "infinity"]),
        ("GRACE_INIT_DRAIN_DELAY", "junk", &["--drain-delay", "0"]),
        ("GRACE_INIT_SINGLE_CHILD", "maybe", &["-c"]),
        ("GRACE_INIT_SUBREAPER", "maybe", &["-s"]),
        ("GRACE_INIT_REWRITE", "TERM:KILL", &["-r", "TERM:QUIT"]),
        ("GRACE_INIT_PRE_STOP", "  ", &["--pre-stop", "true"]),
        ("GRACE_INIT_EXPECT_EXIT", "abc", &["-e", "0"]),
        ("GRACE_INIT_PDEATHSIG", "KILL", &["-p", "TERM"]),
        (
            "GRACE_INIT_STOP_SIGNALS",
            "KILL",
            &["--stop-signals", "TERM"],
        ),
        ("GRACE_INIT_LOG_FORMAT", "xml", &["--log-format", "text"]),
        ("GRACE_INIT_USER", "no-such-user-zz", &["-u", "0"]),
        ("GRACE_INIT_WARN_REAP", "maybe", &["-w"]),
        ("GRACE_INIT_WAIT_ALL", "maybe", &["--wait-all"]),
    ];
    for (i, (var, value, options)) in cases.iter().enumerate() {
        let marker = scratch.marker(i);
        let touch = format!("touch {}", marker.display());
        let mut argv = options.to_vec();
        argv.extend(["--", "sh", "-c", &touch]);
        let done = Run::start_env(Mode::Subreaper, &argv, &[(var, value)]).wait(secs(10.0));
        assert_eq!(
            done.code,
            Some(0),
            "{var}={value:?} with {options:?}: {}",
            done.stderr_text()
        );
        assert!(marker.exists(), "{var}={value:?} with {options:?}: not run");
    }
}

#[test]
fn a_flag_replaces_a_valid_environment_variable_it_does_not_merge() {
    // Exit code: GRACE_INIT_EXPECT_EXIT=3 but -e 4, so a child's 3 stays 3.
    let done = Run::start_env(
        Mode::Subreaper,
        &["-e", "4", "--", "sh", "-c", "exit 3"],
        &[("GRACE_INIT_EXPECT_EXIT", "3")],
    )
    .wait(secs(10.0));
    assert_eq!(done.code, Some(3), "{}", done.stderr_text());
    // Log format: the flag's text, not the variable's JSON.
    let done = Run::start_env(
        Mode::Subreaper,
        &["--log-format", "text", "--", "true"],
        &[("GRACE_INIT_LOG_FORMAT", "json")],
    )
    .wait(secs(10.0));
    assert_eq!(done.code, Some(0));
    assert!(
        !done.stderr.is_empty() && done.stderr.iter().all(|l| l.starts_with("grace-init: ")),
        "{:?}",
        done.stderr
    );
    // Rewrite: GRACE_INIT_REWRITE=TERM:INT, but -r TERM:QUIT: the child gets QUIT, not INT.
    let reporter = reporter();
    let mut run = Run::start_env(
        Mode::Subreaper,
        &[
            "-r",
            "TERM:QUIT",
            "--",
            &reporter,
            "--exit-on",
            "QUIT=5",
            "--exit-on",
            "INT=6",
        ],
        &[("GRACE_INIT_REWRITE", "TERM:INT")],
    );
    run.expect_stdout("child ready", secs(10.0));
    run.signal(libc::SIGTERM);
    let done = run.wait(secs(10.0));
    assert_eq!(
        done.code,
        Some(5),
        "{:?} {}",
        done.stdout,
        done.stderr_text()
    );
}

per_mode! {
    fn the_timeout_flag_wins_over_its_variable_measured(mode: Mode) {
        // GRACE_INIT_TIMEOUT=0.2 but --timeout 1.2: a child that ignores SIGTERM is killed after 1.2 s, not 0.2 s.
        let reporter = reporter();
        let mut run = Run::start_env(
            mode,
            &["--timeout", "1.2", "--", &reporter, "--ignore", "TERM"],
            &[("GRACE_INIT_TIMEOUT", "0.2")],
        );
        run.expect_stdout("child ready", secs(10.0));
        let sent = Instant::now();
        run.signal(libc::SIGTERM);
        let done = run.wait(secs(10.0));
        let took = sent.elapsed();
        done.assert_exit(137);
        done.check(
            took >= secs(1.2) && took < secs(2.0),
            format!("SIGKILL after {took:?}; want the flag's 1.2 s, not the variable's 0.2 s"),
        );
        done.assert_log_contains("grace period 1.200s");
    }
}

per_mode! {
    fn another_user_while_not_root_is_refused_with_one_line_exit_2_and_no_child(mode: Mode) {
        // Only root can switch users: as uid 64011 (no passwd entry), asking for root or another uid is a usage
        // error, not a child that fails later. Asking for its own ids changes nothing and is accepted.
        let scratch = Scratch::new("user-non-root");
        let launch = Launch::prefixed(&[
            "setpriv",
            "--reuid=64011",
            "--regid=64011",
            "--clear-groups",
            "--",
        ]);
        for (i, user) in ["root", "0", "64012", "64011:0"].iter().enumerate() {
            let marker = scratch.marker(i);
            let touch = format!("touch {}", marker.display());
            let done = Run::launch(mode, &launch, &["-u", user, "--", "sh", "-c", &touch])
                .wait(secs(10.0));
            let what = format!("-u {user}");
            done.assert_exit_for(2, &what);
            let [line] = done.stderr.as_slice() else {
                done.fail(&format!("{what}: want one line"));
            };
            done.check(
                line.starts_with("grace-init: error: ")
                    && line.contains(&format!("'{user}'"))
                    && line.contains("not root"),
                format!("{what}: {line}"),
            );
            done.check(!marker.exists(), format!("{what}: the command was started"));
        }
        let marker = scratch.marker(9);
        let touch = format!("touch {}", marker.display());
        let done = Run::launch(
            mode,
            &launch,
            &["-u", "64011:64011", "--", "sh", "-c", &touch],
        )
        .wait(secs(10.0));
        done.assert_exit(0);
        done.check(marker.exists(), "its own ids: the command runs");
        let _ = std::fs::remove_file(&marker);
    }
}

/// Runs `grace-init -u USER -- sh -c 'touch MARKER'` the way `launch` says, in `mode`, and checks the
/// usage-error contract: exit 2, one line naming the user and each of `named`, the command never started.
fn user_refused(mode: Mode, launch: &Launch, user: &str, named: &[&str]) {
    let scratch = Scratch::new("user-refused");
    let marker = scratch.marker(0);
    let touch = format!("touch {}", marker.display());
    let done = Run::launch(mode, launch, &["-u", user, "--", "sh", "-c", &touch]).wait(secs(10.0));
    let what = format!("-u {user}");
    done.assert_exit_for(2, &what);
    let [line] = done.stderr.as_slice() else {
        done.fail(&format!("{what}: want one line"));
    };
    done.check(
        line.starts_with("grace-init: error: "),
        format!("{what}: {line}"),
    );
    let quoted = format!("'{user}'");
    for needle in named.iter().copied().chain([quoted.as_str()]) {
        done.check(
            line.contains(needle),
            format!("{what}: want {needle:?} in {line}"),
        );
    }
    done.check(!marker.exists(), format!("{what}: the command was started"));
}

per_mode! {
    fn another_user_without_cap_kill_is_refused_with_one_line_exit_2_and_no_child(mode: Mode) {
        // Root that may switch users but not signal them: the app would never get its stop signal.
        user_refused(mode, &Launch::without_cap_kill(), "nobody", &["CAP_KILL"]);
        user_refused(mode, &Launch::without_cap_kill(), "4242:4242", &["CAP_KILL"]);
    }

    fn the_same_uid_without_cap_kill_is_accepted_another_group_is_no_obstacle_to_signals(mode: Mode) {
        let done = Run::launch(
            mode,
            &Launch::without_cap_kill(),
            &["-u", "0:1", "--", "id", "-g"],
        )
        .wait(secs(10.0));
        done.assert_exit(0);
        done.check(done.stdout == ["1"], "want stdout [\"1\"] (the group 1)");
    }

    fn a_user_the_user_namespace_does_not_map_is_refused_naming_the_id(mode: Mode) {
        // `unshare --map-root-user` maps root alone: uid 4242 cannot be switched to (setresuid says EINVAL).
        user_refused(
            mode,
            &Launch::in_user_namespace(&[]),
            "4242",
            &["uid 4242", "not mapped"],
        );
        user_refused(
            mode,
            &Launch::in_user_namespace(&[]),
            "0:4242",
            &["gid 4242", "not mapped"],
        );
    }

    fn groups_that_must_change_where_setgroups_is_denied_are_refused_naming_setgroups(mode: Mode) {
        // Supplementary group 5 held, root's own group list asked for: only setgroups could drop it, and the
        // namespace denies it.
        user_refused(mode, &Launch::in_user_namespace(&[5]), "0:0", &["setgroups"]);
    }
}
