//! The command line: every option with its help text and environment twin, validated into a `Config`.

use std::ffi::OsString;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, ValueEnum};
use log::LevelFilter;

use crate::duration::{Limit, format_duration, parse_duration, parse_limit};
use crate::exit_code::parse_code;
use crate::log_filter::{FILTER_VAR, Filter, parse_filter};
use crate::signals::{Rewrite, Rewrites, parse_receivable, parse_rewrite};
use crate::termination::{Destination, parse_destination};
use crate::terms::{PRE_STOP_LIMIT_WITHOUT_TIMEOUT, Policy};
use crate::user::{Identity, UserSpec, parse_spec};

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `grace-init: message`
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

// Every option's help goes on the line below it; `wrap` fits the whole text into 100 columns (clap's own
// wrapping needs its `wrap_help` feature and the terminal-size crate).
#[derive(Parser, Debug)]
#[command(
    name = "grace-init",
    version,
    about = "A tiny PID 1 for containers: reaps zombies, forwards signals, and stops the app within a \
             bounded grace period.",
    long_about = "A tiny PID 1 for containers: runs COMMAND as its child, reaps zombies, forwards signals, and \
                  on a stop signal (SIGTERM, SIGINT) stops the app within a bounded grace period, then exits \
                  with the app's status.",
    override_usage = "grace-init [OPTIONS] [--] COMMAND [ARGS]...\n       grace-init [OPTIONS] --pause",
    next_line_help = true,
    after_help = "Durations: a number of seconds (30, 1.5), or with a unit: 1500ms, 30s, 0.5s, 2m, 1h.\n\
                  An empty GRACE_INIT_* variable counts as unset; a flag on the command line wins over its\n\
                  variable. GRACE_INIT_LOG sets the log filter (off, error, warn, info, debug, trace) when\n\
                  neither -v nor -q is given.\n\
                  Exit status: the command's own (0 for codes listed with -e), 128+N if it was killed by\n\
                  signal N, 127 if it was not found, 126 if it could not be executed, 2 for a usage error,\n\
                  1 if grace-init could not start it (no fork, no descriptors)."
)]
struct Args {
    /// Grace period from the first stop signal to SIGKILL: 30, 30s, 1500ms, 2m, infinity; 0 kills
    /// right after forwarding. Set it a little below the platform's own: 8 under docker stop's and
    /// Cloud Run's 10 s, 25 under Kubernetes' 30 s (README: "Choosing --timeout").
    #[arg(short, long, allow_hyphen_values = true, hide_env_values = true,
        env = "GRACE_INIT_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_limit)]
    timeout: Limit,

    /// Forward signals to the direct child only, not to its whole process group.
    #[arg(short = 'c', long, hide_env_values = true,
        env = "GRACE_INIT_SINGLE_CHILD", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    single_child: bool,

    /// Rewrite a signal before forwarding it, e.g. TERM:QUIT for nginx; TO may be `none` to drop it.
    /// Repeatable.
    #[arg(short, long = "rewrite", allow_hyphen_values = true, hide_env_values = true,
        env = "GRACE_INIT_REWRITE", value_name = "FROM:TO", value_delimiter = ',', value_parser = parse_rewrite)]
    rewrite: Vec<Rewrite>,

    /// After the stop signal, keep the app serving this long before forwarding it (load balancers
    /// take the instance out meanwhile). Counts inside --timeout.
    #[arg(long, allow_hyphen_values = true, hide_env_values = true,
        env = "GRACE_INIT_DRAIN_DELAY", value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    drain_delay: Duration,

    /// Command line run with /bin/sh -c when the stop signal arrives, before the signal is forwarded.
    #[arg(
        long,
        hide_env_values = true,
        env = "GRACE_INIT_PRE_STOP",
        value_name = "COMMAND"
    )]
    pre_stop: Option<String>,

    /// A hook for grace-init's own tests, not an interface: with no timeout, how long the pre-stop command may
    /// run instead of 15 s, so a test of that bound need not wait it out.
    #[arg(long = "test-hook-pre-stop-limit", hide = true, env = "GRACE_INIT_TEST_HOOK_PRE_STOP_LIMIT",
        value_name = "DURATION", value_parser = parse_duration)]
    test_hook_pre_stop_limit: Option<Duration>,

    /// Report this exit code of the child (e.g. 143 from a JVM after SIGTERM) as 0. Repeatable.
    /// Never applies to grace-init's own SIGKILL at the deadline or to an OOM kill.
    #[arg(short, long = "expect-exit", allow_hyphen_values = true, hide_env_values = true,
        env = "GRACE_INIT_EXPECT_EXIT", value_name = "CODE", value_delimiter = ',', value_parser = parse_code)]
    expect_exit: Vec<i32>,

    /// Signal grace-init receives when its own parent dies (when it is not PID 1), e.g. TERM.
    #[arg(short, long, allow_hyphen_values = true, hide_env_values = true,
        env = "GRACE_INIT_PDEATHSIG", value_name = "SIGNAL", value_parser = parse_receivable)]
    pdeathsig: Option<i32>,

    /// Register as a child subreaper even as PID 1 (registration is automatic when not PID 1).
    #[arg(short, long, hide_env_values = true,
        env = "GRACE_INIT_SUBREAPER", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    subreaper: bool,

    /// Received signals that start the grace period.
    #[arg(long, allow_hyphen_values = true, hide_env_values = true,
        env = "GRACE_INIT_STOP_SIGNALS", value_name = "LIST", default_value = "TERM,INT", value_delimiter = ',',
        value_parser = parse_receivable)]
    stop_signals: Vec<i32>,

    /// Run the command (and the pre-stop command) as USER, or USER:GROUP: names from /etc/passwd
    /// and /etc/group, or numbers. Sets the user's supplementary groups and HOME; grace-init itself
    /// stays as it is (root).
    #[arg(short, long, allow_hyphen_values = true, hide_env_values = true,
        env = "GRACE_INIT_USER", value_name = "USER[:GROUP]", value_parser = parse_spec)]
    user: Option<UserSpec>,

    /// No command: only reap what is re-parented to grace-init and sleep, until a stop signal (then
    /// exit 0).
    #[arg(long, hide_env_values = true,
        env = "GRACE_INIT_PAUSE", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    pause: bool,

    /// Warn, with its pid and name, whenever a process other than the command (and the pre-stop
    /// command) has to be reaped: a zombie the app left behind.
    #[arg(short, long, hide_env_values = true,
        env = "GRACE_INIT_WARN_REAP", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    warn_reap: bool,

    /// When the command exits, keep reaping and wait for every process it left running (a daemon it
    /// started), then exit with the command's code; a stop signal meanwhile stops them, within --timeout.
    #[arg(long, hide_env_values = true,
        env = "GRACE_INIT_WAIT_ALL", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    wait_all: bool,

    /// On exit, write the summary line to PATH (Kubernetes' termination message), or `none`. Default:
    /// /dev/termination-log when it exists. A message the app wrote there itself is kept.
    #[arg(long, allow_hyphen_values = true, hide_env_values = true,
        env = "GRACE_INIT_TERMINATION_LOG", value_name = "PATH", value_parser = parse_destination)]
    termination_log: Option<Destination>,

    /// More log output (-v debug, -vv trace); overrides GRACE_INIT_LOG.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Only warnings and errors; overrides GRACE_INIT_LOG.
    #[arg(short, long)]
    quiet: bool,

    /// Log line format: text (`grace-init: message`) or json (one object per line, for collectors).
    #[arg(
        long,
        allow_hyphen_values = true,
        hide_env_values = true,
        hide_possible_values = true,
        env = "GRACE_INIT_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,

    /// The command to run, and its arguments (passed through unchanged).
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// Everything grace-init was asked to do, validated.
#[derive(Debug)]
pub struct Config {
    /// Empty in pause mode.
    pub command: Vec<OsString>,
    /// `--pause`: no command; reap and sleep until a stop signal.
    pub pause: bool,
    /// Who the command and the pre-stop command run as (`--user`), resolved.
    pub user: Option<Box<Identity>>,
    pub policy: Policy,
    pub pre_stop: Option<String>,
    pub pdeathsig: Option<i32>,
    pub force_subreaper: bool,
    /// Which log lines are shown: from `-v`/`-q`, else GRACE_INIT_LOG, else info.
    pub log_filter: Filter,
    pub log_format: LogFormat,
    /// Settings that are valid but work against themselves, to be logged as warnings once logging is up.
    pub warnings: Vec<String>,
    /// Where the exit summary goes as the termination message (`--termination-log`).
    pub termination_log: Destination,
}

/// What parsing came to: a config to run, or text to print and an exit code.
pub enum Parsed {
    Run(Box<Config>),
    /// `--help` / `--version`: print to stdout, exit 0.
    Info(String),
    /// A usage error: one line for stderr, in the log format asked for, exit 2.
    Usage {
        message: String,
        format: LogFormat,
    },
}

/// Parses the command line and the GRACE_INIT_* environment. A variable set to the empty string counts as
/// unset: a derived image cannot unset its base's `ENV`, and Kubernetes' `value: ""` is the usual way to clear one.
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Parsed {
    let argv: Vec<OsString> = argv.into_iter().collect();
    let command = without_empty_variables(Args::command());
    let usage = |message: String| Parsed::Usage {
        format: format_asked_for(&argv),
        message,
    };
    let args = match command
        .clone()
        .try_get_matches_from(&argv)
        .and_then(|matches| Args::from_arg_matches(&matches))
    {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Parsed::Info(wrap(&e.render().to_string(), HELP_WIDTH))
                }
                _ => {
                    let mut message = one_line(&e);
                    if let Some(var) = env_source(&command, &e, &argv) {
                        message.push_str(&format!(" (from the environment variable {var})"));
                    }
                    usage(message)
                }
            };
        }
    };
    match validate(args) {
        Ok(config) => Parsed::Run(Box::new(config)),
        Err(message) => usage(message),
    }
}

/// The widest line of `--help`.
const HELP_WIDTH: usize = 100;

/// `text` with every line longer than `width` characters broken at spaces; the continuation lines are
/// indented like the line they continue. A word longer than a line stays whole, and so does a bracket of two
/// words.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    for line in text.split_inclusive('\n') {
        let (line, newline) = match line.strip_suffix('\n') {
            Some(line) => (line, "\n"),
            None => (line, ""),
        };
        let body = line.trim_start();
        let indent = line.get(..line.len() - body.len()).unwrap_or_default();
        let mut column = 0;
        for word in words(body) {
            let length = word.chars().count();
            if column == 0 {
                out.push_str(indent);
                column = indent.chars().count();
            } else if column + 1 + length > width {
                out.push('\n');
                out.push_str(indent);
                column = indent.chars().count();
            } else {
                out.push(' ');
                column += 1;
            }
            out.push_str(word);
            column += length;
        }
        out.push_str(newline);
    }
    out
}

/// The words of `line`, split at spaces, except inside brackets: "[env: NAME]" is one word.
fn words(line: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (at, c) in line.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 => {
                words.push(line.get(start..at).unwrap_or_default());
                start = at + 1;
            }
            _ => {}
        }
    }
    words.push(line.get(start..).unwrap_or_default());
    words
}

/// `command` with the environment twin of every option whose variable is set but empty taken away.
fn without_empty_variables(mut command: clap::Command) -> clap::Command {
    let empty: Vec<clap::Id> = command
        .get_arguments()
        .filter(|a| a.get_env().is_some_and(is_empty_variable))
        .map(|a| a.get_id().clone())
        .collect();
    for id in empty {
        command = command.mut_arg(id, |a| a.env(None::<&str>));
    }
    command
}

/// Whether `var` is set to the empty string.
fn is_empty_variable(var: &std::ffi::OsStr) -> bool {
    std::env::var_os(var).is_some_and(|v| v.is_empty())
}

/// The value of `var`, unless it is unset or empty.
fn variable(var: &str) -> Option<OsString> {
    std::env::var_os(var).filter(|v| !v.is_empty())
}

/// The log format a usage error is written in: JSON when `--log-format json` is on the command line (before
/// `--`), or, with no `--log-format` there, when GRACE_INIT_LOG_FORMAT is `json`. Read apart from clap, which
/// has failed by then.
fn format_asked_for(argv: &[OsString]) -> LogFormat {
    let options: Vec<&OsString> = argv.iter().skip(1).take_while(|a| *a != "--").collect();
    let mut asked = None;
    for (i, arg) in options.iter().enumerate() {
        if *arg == "--log-format" {
            asked = options.get(i + 1).map(|v| v.as_os_str());
        } else if let Some(v) = arg.to_str().and_then(|a| a.strip_prefix("--log-format=")) {
            asked = Some(std::ffi::OsStr::new(v));
        }
    }
    let asked = match asked {
        Some(value) => Some(value.to_os_string()),
        None => variable("GRACE_INIT_LOG_FORMAT"),
    };
    match asked {
        Some(value) if value.eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// The environment variable a bad value came from, when the option was not given on the command line.
fn env_source(command: &clap::Command, error: &clap::Error, argv: &[OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = shown.split_whitespace().next()?.strip_prefix("--")?;
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    variable(&var)?;
    let short = arg.get_short().map(|c| format!("-{c}"));
    let on_command_line = argv.iter().skip(1).take_while(|a| *a != "--").any(|a| {
        let a = a.to_string_lossy();
        a == format!("--{long}")
            || a.starts_with(&format!("--{long}="))
            || short.as_ref().is_some_and(|s| a.starts_with(s.as_str()))
    });
    (!on_command_line).then_some(var)
}

/// clap's message on one line: its first line without the "error: " prefix, then what it suggests instead
/// (a similar option, the values an option takes), without the usage and the tips that follow.
fn one_line(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let rendered = error.render().to_string();
    let line = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    let mut message = line.strip_prefix("error: ").unwrap_or(line).to_string();
    for (kind, value) in error.context() {
        match (kind, value) {
            (ContextKind::SuggestedArg | ContextKind::SuggestedValue, ContextValue::String(s)) => {
                message.push_str(&format!("; did you mean '{s}'?"));
            }
            (ContextKind::SuggestedArg | ContextKind::SuggestedValue, ContextValue::Strings(s)) => {
                let quoted: Vec<String> = s.iter().map(|v| format!("'{v}'")).collect();
                message.push_str(&format!("; did you mean {}?", quoted.join(" or ")));
            }
            (ContextKind::ValidValue, ContextValue::Strings(values)) => {
                message.push_str(&format!("; valid values: {}", values.join(", ")));
            }
            _ => {}
        }
    }
    message
}

fn validate(args: Args) -> Result<Config, String> {
    if args.pause {
        if let Some(program) = args.command.first() {
            return Err(format!(
                "unexpected command '{}' with --pause: pause mode runs no command",
                program.to_string_lossy()
            ));
        }
    } else if args.command.is_empty() {
        return Err(
            "missing command: usage: grace-init [OPTIONS] [--] COMMAND [ARGS]... (or --pause)"
                .to_string(),
        );
    }
    if args.command.first().is_some_and(|c| c.is_empty()) {
        return Err("invalid command '': the command name is empty".to_string());
    }
    let rewrites = Rewrites::from_rules(&args.rewrite)?;
    if let Limit(Some(timeout)) = args.timeout {
        if !args.drain_delay.is_zero() && args.drain_delay >= timeout {
            return Err(format!(
                "invalid drain delay '{}': it must be shorter than the timeout ({}), or the app would be killed before it is told to stop",
                format_duration(args.drain_delay),
                format_duration(timeout)
            ));
        }
    }
    if args.pre_stop.is_some() && args.timeout == Limit(Some(Duration::ZERO)) {
        return Err(
            "invalid timeout '0' with --pre-stop: the pre-stop command needs a grace period to run in".to_string(),
        );
    }
    let pre_stop = match args.pre_stop {
        Some(line) if line.trim().is_empty() => {
            return Err("invalid pre-stop command '': it is empty".to_string());
        }
        other => other,
    };
    let log_filter = match (args.quiet, args.verbose) {
        (true, _) => Filter::level(LevelFilter::Warn),
        (false, 0) => match variable(FILTER_VAR) {
            Some(spec) => parse_filter(&spec.to_string_lossy())?,
            None => Filter::default(),
        },
        (false, 1) => Filter::level(LevelFilter::Debug),
        (false, _) => Filter::level(LevelFilter::Trace),
    };
    let user = match &args.user {
        Some(spec) => Some(Box::new(crate::user::resolve_here(spec)?)),
        None => None,
    };
    let expect_exit = unique(args.expect_exit);
    let stop_signals = unique(args.stop_signals);
    let warnings = dropped_stop_signals(&stop_signals, &rewrites, args.timeout);
    Ok(Config {
        command: args.command,
        pause: args.pause,
        user,
        policy: Policy {
            timeout: args.timeout.0,
            drain_delay: args.drain_delay,
            pre_stop: pre_stop.is_some(),
            pre_stop_limit: args
                .test_hook_pre_stop_limit
                .unwrap_or(PRE_STOP_LIMIT_WITHOUT_TIMEOUT),
            stop_signals,
            rewrites,
            single_child: args.single_child,
            expect_exit,
            warn_reap: args.warn_reap,
            wait_all: args.wait_all,
        },
        pre_stop,
        pdeathsig: args.pdeathsig,
        force_subreaper: args.subreaper,
        log_filter,
        log_format: args.log_format,
        warnings,
        termination_log: args.termination_log.unwrap_or(Destination::Default),
    })
}

/// A warning for each stop signal rewritten to `none`: the app is never told to stop, so every shutdown ends
/// in the SIGKILL at the deadline (or, with no deadline, only when the app exits by itself).
fn dropped_stop_signals(stop_signals: &[i32], rewrites: &Rewrites, timeout: Limit) -> Vec<String> {
    let end = match timeout.0 {
        Some(timeout) => format!(
            "SIGKILLed when the grace period ({}) ends",
            format_duration(timeout)
        ),
        None => "left running until it exits by itself (--timeout infinity)".to_string(),
    };
    stop_signals
        .iter()
        .filter(|&&signal| rewrites.apply(signal).is_none())
        .map(|&signal| {
            let name = crate::signals::name(signal);
            format!(
                "--rewrite {}:none drops a stop signal: on {name} the app is not told to stop, and is {end}",
                name.to_string().trim_start_matches("SIG")
            )
        })
        .collect()
}

/// The values in their first-seen order, each once.
fn unique(values: Vec<i32>) -> Vec<i32> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Parsed {
        parse(
            std::iter::once("grace-init")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn config(args: &[&str]) -> Config {
        match run(args) {
            Parsed::Run(c) => *c,
            Parsed::Info(t) | Parsed::Usage { message: t, .. } => panic!("{args:?}: {t}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        match run(args) {
            Parsed::Usage { message, .. } => message,
            _ => panic!("{args:?} should be a usage error"),
        }
    }

    #[test]
    fn defaults() {
        let c = config(&["--", "sleep", "1"]);
        assert_eq!(
            c.command,
            vec![OsString::from("sleep"), OsString::from("1")]
        );
        assert_eq!(c.policy.timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.policy.stop_signals, vec![libc::SIGTERM, libc::SIGINT]);
        assert!(!c.policy.single_child);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn options_and_passthrough() {
        let c = config(&[
            "-t",
            "5",
            "-c",
            "-r",
            "TERM:QUIT",
            "-r",
            "HUP:none",
            "-e",
            "143",
            "-vv",
            "sh",
            "-c",
            "exit 3",
        ]);
        assert_eq!(c.policy.timeout, Some(Duration::from_secs(5)));
        assert!(c.policy.single_child);
        assert_eq!(c.policy.rewrites.apply(libc::SIGTERM), Some(libc::SIGQUIT));
        assert_eq!(c.policy.expect_exit, vec![143]);
        assert_eq!(c.log_filter, Filter::level(LevelFilter::Trace));
        assert_eq!(
            c.command,
            vec![
                OsString::from("sh"),
                OsString::from("-c"),
                OsString::from("exit 3")
            ]
        );
        let inf = config(&["--timeout", "infinity", "x"]);
        assert_eq!(inf.policy.timeout, None);
        let pause = config(&["--pause", "-w"]);
        assert!(pause.pause && pause.command.is_empty() && pause.policy.warn_reap);
        assert!(config(&["--wait-all", "x"]).policy.wait_all && !config(&["x"]).policy.wait_all);
        // Pause mode has no command to wait after: --wait-all is accepted there and has nothing to act on.
        assert!(config(&["--pause", "--wait-all"]).pause);
        // The current user can always be asked for, root or not.
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let me = format!("{uid}:{gid}");
        let same = config(&["-u", &me, "x"]).user.unwrap();
        assert_eq!((same.uid, same.gid, same.groups), (uid, gid, vec![gid]));
    }

    #[test]
    fn usage_errors_are_one_line_and_name_the_value() {
        let table: &[(&[&str], &str)] = &[
            (&[], "missing command"),
            (&["--"], "missing command"),
            (&["--timeout", "abc", "x"], "abc"),
            (&["--timeout", "-1", "x"], "-1"),
            (&["--bogus", "x"], "--bogus"),
            (&["-r", "TERM:KILL", "x"], "TERM:KILL"),
            (&["-r", "FOO:TERM", "x"], "FOO"),
            (&["-e", "256", "x"], "256"),
            (&["--stop-signals", "TERM,NOPE", "x"], "NOPE"),
            (&["--drain-delay", "30s", "x"], "30s"),
            (&["--pre-stop", " ", "x"], "pre-stop"),
            (&["-v", "-q", "x"], "--quiet"),
            (&["--log-format", "xml", "x"], "xml"),
            (&["-p", "STOP", "x"], "STOP"),
            (&["--pause", "x"], "'x'"),
            (&["-u", "", "x"], "''"),
            (&["-u", "app:", "x"], "'app:'"),
            (&["-u", "no-such-user-here", "x"], "'no-such-user-here'"),
            (&["-u", "0:no-such-group-here", "x"], "'no-such-group-here'"),
            (&["--warn-reap=maybe", "x"], "--warn-reap"),
            (&["--wait-all=maybe", "x"], "--wait-all"),
            (&["--log-format", "yaml", "x"], "valid values: text, json"),
            (&["--termination-log", "", "x"], "''"),
            (&["--timout", "3", "x"], "did you mean '--timeout'?"),
            (&["--log-format", "jsn", "x"], "did you mean 'json'?"),
        ];
        for (args, named) in table {
            let message = usage(args);
            assert!(message.contains(named), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{args:?}: one line: {message}");
        }
    }

    fn help(flag: &str) -> String {
        match run(&[flag]) {
            Parsed::Info(text) => text,
            _ => panic!("{flag} should print help"),
        }
    }

    #[test]
    fn help_fits_100_columns_and_every_variable_is_shown_alike() {
        for flag in ["-h", "--help"] {
            let text = help(flag);
            for line in text.lines() {
                assert!(line.chars().count() <= HELP_WIDTH, "{flag}: {line:?}");
            }
            for var in [
                "GRACE_INIT_TIMEOUT",
                "GRACE_INIT_PRE_STOP",
                "GRACE_INIT_USER",
            ] {
                assert!(
                    text.contains(&format!("[env: {var}]")),
                    "{flag}: {var}:\n{text}"
                );
            }
            assert!(
                text.contains("1h") && text.contains("0.5s") && text.contains("1.5"),
                "{text}"
            );
        }
    }

    #[test]
    fn wrapping_keeps_the_indent_and_brackets_whole() {
        assert_eq!(
            wrap("    aaa bbb ccc [env: X_Y]\nshort\n", 12),
            "    aaa bbb\n    ccc\n    [env: X_Y]\nshort\n"
        );
        assert_eq!(
            wrap("averyveryverylongword x", 5),
            "averyveryverylongword\nx"
        );
    }

    #[test]
    fn usage_errors_follow_the_log_format_asked_for_on_the_command_line() {
        let format = |args: &[&str]| match run(args) {
            Parsed::Usage { format, .. } => format,
            _ => panic!("{args:?} should be a usage error"),
        };
        assert_eq!(
            format(&["--log-format", "json", "--bogus"]),
            LogFormat::Json
        );
        assert_eq!(format(&["--bogus", "--log-format=json"]), LogFormat::Json);
        assert_eq!(
            format(&["--log-format", "text", "--bogus"]),
            LogFormat::Text
        );
        assert_eq!(
            format(&["--bogus", "--", "x", "--log-format", "json"]),
            LogFormat::Text
        );
    }

    #[test]
    fn a_stop_signal_rewritten_to_none_is_warned_about() {
        let c = config(&["-r", "TERM:none", "-t", "8", "x"]);
        let [warning] = c.warnings.as_slice() else {
            panic!("{:?}", c.warnings)
        };
        assert!(
            warning.contains("TERM:none")
                && warning.contains("SIGKILLed")
                && warning.contains("8s"),
            "{warning}"
        );
        let c = config(&["-r", "HUP:none", "-r", "INT:none", "-t", "infinity", "x"]);
        let [warning] = c.warnings.as_slice() else {
            panic!("{:?}", c.warnings)
        };
        assert!(
            warning.contains("INT:none") && warning.contains("infinity"),
            "{warning}"
        );
        assert!(config(&["-r", "TERM:QUIT", "x"]).warnings.is_empty());
    }
}
