//! Logging: stderr only, every line prefixed `grace-init`, as text or one JSON object per line.
//!
//! A small `log::Log` of our own rather than env_logger. Lines are not written as they are logged: they are
//! kept until the event loop has acted (signals sent, children reaped) and then go out together with
//! `flush`, through a sink that never blocks (see `sink`). A stalled reader of stderr can cost log lines,
//! never a forwarded signal, a reap or a deadline. Lines that do not fit are dropped and counted, and the
//! count is reported once output flows again.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::cli::{LogFormat, Verbosity};

/// The environment variable holding a filter in env_logger's syntax: `debug`, `warn`, `grace_init::run=trace,info`.
pub const FILTER_VAR: &str = "GRACE_INIT_LOG";

/// Which levels are shown: a default, and per-target overrides (longest matching prefix wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(prefix, _)| target.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |(_, level)| *level)
    }

    fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, Ord::max)
    }
}

/// Parses env_logger's filter syntax: comma-separated `LEVEL`, `TARGET` or `TARGET=LEVEL`. Returns the filter and
/// the directives it could not read.
pub fn parse_filter(spec: &str) -> (Filter, Vec<String>) {
    let mut filter = Filter {
        default: LevelFilter::Info,
        targets: Vec::new(),
    };
    let mut bad = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((target, level)) => match level.trim().parse::<LevelFilter>() {
                Ok(level) => filter.targets.push((target.trim().to_string(), level)),
                Err(_) => bad.push(part.to_string()),
            },
            None => match part.parse::<LevelFilter>() {
                Ok(level) => filter.default = level,
                Err(_)
                    if part
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == ':') =>
                {
                    filter.targets.push((part.to_string(), LevelFilter::Trace))
                }
                Err(_) => bad.push(part.to_string()),
            },
        }
    }
    (filter, bad)
}

/// Lines logged since the last flush, and how many were dropped since the last successful write.
struct Pending {
    text: Vec<u8>,
    lines: usize,
    dropped: usize,
}

/// The longest log line, newline included: what a pipe takes in one atomic write.
const LINE_LIMIT: usize = libc::PIPE_BUF;

/// At most this much text waits for one flush; more is dropped and counted (a trace-level storm between
/// two flushes cannot grow memory).
const PENDING_LIMIT: usize = 64 * 1024;

struct StderrLogger {
    filter: Filter,
    format: LogFormat,
    pending: Mutex<Pending>,
    sink: crate::sink::Sink,
}

static LOGGER: std::sync::OnceLock<StderrLogger> = std::sync::OnceLock::new();

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = fitted_line(self.format, record.level(), record.args().to_string());
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if pending.text.len() + line.len() > PENDING_LIMIT {
            pending.dropped += 1;
            return;
        }
        pending.text.extend_from_slice(line.as_bytes());
        pending.lines += 1;
    }

    fn flush(&self) {}
}

/// The line for `message`, cut (with "…") so that it reaches a pipe in one atomic write, whole or not at all;
/// the message is cut, not the line, so a JSON line stays valid JSON. A pre-stop command line can be long.
fn fitted_line(format: LogFormat, level: Level, mut message: String) -> String {
    loop {
        let line = format_line(format, level, &message);
        if line.len() <= LINE_LIMIT || message.is_empty() {
            return line;
        }
        let mut cut = message.len().saturating_sub(line.len() - LINE_LIMIT + 8);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
}

/// One log line, newline included.
pub fn format_line(format: LogFormat, level: Level, message: &str) -> String {
    match format {
        LogFormat::Text => match level {
            Level::Info => format!("grace-init: {message}\n"),
            Level::Warn => format!("grace-init: warning: {message}\n"),
            other => format!(
                "grace-init: {}: {message}\n",
                other.as_str().to_ascii_lowercase()
            ),
        },
        LogFormat::Json => {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            format!(
                "{{\"ts\":{}.{:06},\"severity\":\"{}\",\"level\":\"{}\",\"source\":\"grace-init\",\"msg\":\"{}\"}}\n",
                ts.as_secs(),
                ts.subsec_micros(),
                severity(level),
                level.as_str().to_ascii_lowercase(),
                json_escape(message)
            )
        }
    }
}

/// The severity names Cloud Logging and most collectors read from a JSON payload.
fn severity(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

/// Installs the logger. A flag (`-v`, `-q`) wins over GRACE_INIT_LOG; the default level is info.
pub fn init(verbosity: Verbosity, format: LogFormat) {
    let (filter, bad) = match verbosity {
        Verbosity::FromEnv => match std::env::var(FILTER_VAR) {
            Ok(spec) => parse_filter(&spec),
            Err(_) => parse_filter(""),
        },
        Verbosity::Quiet => parse_filter("warn"),
        Verbosity::Debug => parse_filter("debug"),
        Verbosity::Trace => parse_filter("trace"),
    };
    log::set_max_level(filter.max());
    let logger = LOGGER.get_or_init(|| StderrLogger {
        filter,
        format,
        pending: Mutex::new(Pending {
            text: Vec::with_capacity(1024),
            lines: 0,
            dropped: 0,
        }),
        sink: crate::sink::Sink::open(),
    });
    // Only fails if a logger is already installed, which cannot happen here.
    let _ = log::set_logger(logger);
    for directive in bad {
        log::warn!(
            "ignoring '{directive}' in {FILTER_VAR}: not a log level (error, warn, info, debug, trace, off)"
        );
    }
}

/// Writes the lines logged since the last call, in one write when they fit, without ever blocking. Called by
/// the event loop once per wake-up, after it has acted, and before exiting. Lines stderr cannot take now are
/// dropped and counted; the count is reported in front of the next lines that do get through.
pub fn flush() {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    let Ok(mut pending) = logger.pending.lock() else {
        return;
    };
    if pending.lines == 0 && pending.dropped == 0 {
        return;
    }
    let notice = usize::from(pending.dropped > 0);
    if notice == 1 {
        let line = format_line(
            logger.format,
            Level::Warn,
            &format!(
                "{} dropped: stderr was not writable (or too much was logged at once)",
                count_lines(pending.dropped)
            ),
        );
        let mut text = line.into_bytes();
        text.extend_from_slice(&pending.text);
        pending.text = text;
        pending.lines += 1;
    }
    let total = pending.lines;
    let unwritten = logger.sink.write_lines(&pending.text);
    pending.dropped = if unwritten < total {
        // The first chunk, notice included, went out: what is missing now is all that is owed.
        unwritten
    } else {
        // Nothing went out: the notice is not a line of its own to count.
        pending.dropped + unwritten - notice
    };
    pending.text.clear();
    pending.lines = 0;
}

/// The logger's private stderr descriptor, if it opened one: grace-init keeps it when it closes what it
/// inherited.
pub fn private_fd() -> Option<std::os::fd::RawFd> {
    LOGGER.get().and_then(|l| l.sink.raw_fd())
}

/// How many lines were dropped and not yet reported (for the exit summary).
pub fn dropped() -> usize {
    LOGGER
        .get()
        .and_then(|l| l.pending.lock().ok().map(|p| p.dropped))
        .unwrap_or(0)
}

/// "1 log line", "3 log lines".
fn count_lines(n: usize) -> String {
    if n == 1 {
        "1 log line".to_string()
    } else {
        format!("{n} log lines")
    }
}

/// Error printed before logging is set up (usage errors): one line on stderr, never blocking.
pub fn print_error(message: &str) {
    let line = format!("grace-init: error: {message}\n");
    crate::sink::Sink::open().write_lines(line.as_bytes());
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_escape("a\"b\\c\nd\u{1}"), "a\\\"b\\\\c\\nd\\u0001");
        assert_eq!(json_escape("plain 'text'"), "plain 'text'");
    }

    #[test]
    fn filters_follow_env_logger_syntax() {
        let (f, bad) = parse_filter("");
        assert_eq!(
            (f.level_for("grace_init::run"), bad.len()),
            (LevelFilter::Info, 0)
        );
        let (f, _) = parse_filter("debug");
        assert_eq!(f.level_for("grace_init::run"), LevelFilter::Debug);
        let (f, _) = parse_filter("warn,grace_init::reap=trace");
        assert_eq!(f.level_for("grace_init::run"), LevelFilter::Warn);
        assert_eq!(f.level_for("grace_init::reap"), LevelFilter::Trace);
        assert_eq!(f.max(), LevelFilter::Trace);
        let (f, _) = parse_filter("grace_init");
        assert_eq!(f.level_for("grace_init::supervisor"), LevelFilter::Trace);
        let (f, bad) = parse_filter("loud,grace_init=noisy");
        assert_eq!(f.default, LevelFilter::Info);
        assert_eq!(bad, vec!["grace_init=noisy".to_string()]);
        let (_, bad) = parse_filter("wa-rn");
        assert_eq!(bad, vec!["wa-rn".to_string()]);
    }

    #[test]
    fn long_messages_are_cut_to_one_atomic_write_and_json_stays_json() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let line = fitted_line(format, Level::Info, "é\"".repeat(5000));
            assert!(line.len() <= LINE_LIMIT, "{}", line.len());
            assert!(line.ends_with('\n') && line.contains('…'));
            if format == LogFormat::Json {
                assert!(line.ends_with("…\"}\n"), "{line}");
            }
        }
        assert_eq!(
            fitted_line(LogFormat::Text, Level::Info, "short".into()),
            "grace-init: short\n"
        );
    }

    #[test]
    fn text_lines_carry_the_prefix() {
        assert_eq!(
            format_line(LogFormat::Text, Level::Info, "hi"),
            "grace-init: hi\n"
        );
        assert_eq!(
            format_line(LogFormat::Text, Level::Warn, "hi"),
            "grace-init: warning: hi\n"
        );
        assert_eq!(
            format_line(LogFormat::Text, Level::Debug, "hi"),
            "grace-init: debug: hi\n"
        );
        let json = format_line(LogFormat::Json, Level::Error, "a \"b\"");
        assert!(
            json.starts_with("{\"ts\":") && json.ends_with("\"msg\":\"a \\\"b\\\"\"}\n"),
            "{json}"
        );
    }
}
