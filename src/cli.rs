//! The command line: every option with its help text and environment twin, validated into a `Config`.

use std::ffi::OsString;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};

use crate::duration::{Limit, format_duration, parse_duration, parse_limit};
use crate::exit_code::parse_code;
use crate::signals::{Rewrite, Rewrites, parse_receivable, parse_rewrite};
use crate::supervisor::Policy;
use crate::user::{Identity, UserSpec, parse_spec};

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `grace-init: message`
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Parser, Debug)]
#[command(
    name = "grace-init",
    version,
    about = "A tiny PID 1 for containers: reaps zombies, forwards signals, and stops the app within a bounded grace period.",
    override_usage = "grace-init [OPTIONS] [--] COMMAND [ARGS]...\n       grace-init [OPTIONS] --pause",
    after_help = "Exit status: the command's own (0 for codes listed with -e), 128+N if it was killed by signal N, \
                  127 if it was not found, 126 if it could not be executed, 2 for a usage error, 1 if grace-init \
                  could not start it (no fork, no descriptors).\n\
                  A flag given on the command line wins over its environment variable. \
                  GRACE_INIT_LOG sets the log filter (error, warn, info, debug, trace) when neither -v nor -q is given."
)]
struct Args {
    /// Grace period from the first stop signal to SIGKILL: 30, 30s, 1500ms, 2m, infinity; 0 kills right after forwarding.
    /// Set it a little below the orchestrator's (25 under Kubernetes' 30 s, 8 under docker stop's and Cloud Run's 10 s).
    #[arg(short, long, allow_hyphen_values = true,
        env = "GRACE_INIT_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_limit)]
    timeout: Limit,

    /// Forward signals to the direct child only, not to its whole process group.
    #[arg(short = 'c', long, env = "GRACE_INIT_SINGLE_CHILD", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    single_child: bool,

    /// Rewrite a signal before forwarding it, e.g. TERM:QUIT for nginx; TO may be `none` to drop it. Repeatable.
    #[arg(short, long = "rewrite", allow_hyphen_values = true,
        env = "GRACE_INIT_REWRITE", value_name = "FROM:TO", value_delimiter = ',', value_parser = parse_rewrite)]
    rewrite: Vec<Rewrite>,

    /// After the stop signal, keep the app serving this long before forwarding it (load balancers take the instance out meanwhile).
    #[arg(long, allow_hyphen_values = true,
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

    /// Report this exit code of the child (e.g. 143 from a JVM after SIGTERM) as 0. Repeatable.
    #[arg(short, long = "expect-exit", allow_hyphen_values = true,
        env = "GRACE_INIT_EXPECT_EXIT", value_name = "CODE", value_delimiter = ',', value_parser = parse_code)]
    expect_exit: Vec<i32>,

    /// Signal grace-init receives when its own parent dies (when it is not PID 1), e.g. TERM.
    #[arg(short, long, allow_hyphen_values = true,
        env = "GRACE_INIT_PDEATHSIG", value_name = "SIGNAL", value_parser = parse_receivable)]
    pdeathsig: Option<i32>,

    /// Register as a child subreaper even as PID 1 (registration is automatic when not PID 1).
    #[arg(short, long, env = "GRACE_INIT_SUBREAPER", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    subreaper: bool,

    /// Received signals that start the grace period.
    #[arg(long, allow_hyphen_values = true,
        env = "GRACE_INIT_STOP_SIGNALS", value_name = "LIST", default_value = "TERM,INT", value_delimiter = ',', value_parser = parse_receivable)]
    stop_signals: Vec<i32>,

    /// Run the command (and the pre-stop command) as USER, or USER:GROUP: names from /etc/passwd and /etc/group,
    /// or numbers. Sets the user's supplementary groups and HOME; grace-init itself stays as it is (root).
    #[arg(short, long, allow_hyphen_values = true,
        env = "GRACE_INIT_USER", value_name = "USER[:GROUP]", value_parser = parse_spec)]
    user: Option<UserSpec>,

    /// No command: only reap what is re-parented to grace-init and sleep, until a stop signal (then exit 0).
    #[arg(long, env = "GRACE_INIT_PAUSE", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    pause: bool,

    /// Warn, with its pid and name, whenever a process other than the command (and the pre-stop command) has to
    /// be reaped: a zombie the app left behind.
    #[arg(short, long, env = "GRACE_INIT_WARN_REAP", value_parser = BoolishValueParser::new(), action = ArgAction::SetTrue)]
    warn_reap: bool,

    /// More log output (-v debug, -vv trace); overrides GRACE_INIT_LOG.
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Only warnings and errors; overrides GRACE_INIT_LOG.
    #[arg(short, long)]
    quiet: bool,

    /// Log line format.
    #[arg(
        long,
        allow_hyphen_values = true,
        env = "GRACE_INIT_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,

    /// The command to run, and its arguments (passed through unchanged).
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// Verbosity asked for on the command line; `None` defers to GRACE_INIT_LOG, then to info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    FromEnv,
    Quiet,
    Debug,
    Trace,
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
    pub verbosity: Verbosity,
    pub log_format: LogFormat,
}

/// What parsing came to: a config to run, or text to print and an exit code.
pub enum Parsed {
    Run(Config),
    /// `--help` / `--version`: print to stdout, exit 0.
    Info(String),
    /// A usage error: one line for stderr, exit 2.
    Usage(String),
}

/// Parses the command line and the GRACE_INIT_* environment.
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Parsed {
    let argv: Vec<OsString> = argv.into_iter().collect();
    let args = match Args::try_parse_from(&argv) {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Parsed::Info(e.render().to_string())
                }
                _ => {
                    let mut message = first_line(&e.render().to_string());
                    if let Some(var) = env_source(&e, &argv) {
                        message.push_str(&format!(" (from the environment variable {var})"));
                    }
                    Parsed::Usage(message)
                }
            };
        }
    };
    match validate(args) {
        Ok(config) => Parsed::Run(config),
        Err(message) => Parsed::Usage(message),
    }
}

/// The environment variable a bad value came from, when the option was not given on the command line.
fn env_source(error: &clap::Error, argv: &[OsString]) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = shown.split_whitespace().next()?.strip_prefix("--")?;
    let command = Args::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    std::env::var_os(&var)?;
    let short = arg.get_short().map(|c| format!("-{c}"));
    let on_command_line = argv.iter().skip(1).take_while(|a| *a != "--").any(|a| {
        let a = a.to_string_lossy();
        a == format!("--{long}")
            || a.starts_with(&format!("--{long}="))
            || short.as_ref().is_some_and(|s| a.starts_with(s.as_str()))
    });
    (!on_command_line).then_some(var)
}

/// clap's message without its "error: " prefix and the tips that follow it.
fn first_line(rendered: &str) -> String {
    let line = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
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
    let verbosity = match (args.quiet, args.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::FromEnv,
        (false, 1) => Verbosity::Debug,
        (false, _) => Verbosity::Trace,
    };
    let user = match &args.user {
        Some(spec) => Some(Box::new(crate::user::resolve_here(spec)?)),
        None => None,
    };
    let expect_exit = unique(args.expect_exit);
    let stop_signals = unique(args.stop_signals);
    Ok(Config {
        command: args.command,
        pause: args.pause,
        user,
        policy: Policy {
            timeout: args.timeout.0,
            drain_delay: args.drain_delay,
            pre_stop: pre_stop.is_some(),
            stop_signals,
            rewrites,
            single_child: args.single_child,
            expect_exit,
            warn_reap: args.warn_reap,
        },
        pre_stop,
        pdeathsig: args.pdeathsig,
        force_subreaper: args.subreaper,
        verbosity,
        log_format: args.log_format,
    })
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
            Parsed::Run(c) => c,
            Parsed::Info(t) | Parsed::Usage(t) => panic!("{args:?}: {t}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        match run(args) {
            Parsed::Usage(m) => m,
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
        assert_eq!(c.verbosity, Verbosity::FromEnv);
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
        assert_eq!(c.verbosity, Verbosity::Trace);
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
        ];
        for (args, named) in table {
            let message = usage(args);
            assert!(message.contains(named), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{args:?}: one line: {message}");
        }
    }
}
