//! Logging: stderr only, every line prefixed `grace-init`, as text or one JSON object per line.
//!
//! A small `log::Log` of our own rather than env_logger. Lines are not written as they are logged: they are
//! kept until the event loop has acted (signals sent, children reaped) and then go out together with
//! `flush`, through a sink that never blocks (see `sink`). A stalled reader of stderr can cost log lines,
//! never a forwarded signal, a reap or a deadline. Lines that do not fit are dropped and counted, and the
//! count is reported once output flows again.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{Level, Log, Metadata, Record};

use crate::cli::LogFormat;
use crate::log_filter::Filter;

/// Lines logged since the last flush, and how many were dropped since the last successful write.
struct Pending {
    text: Vec<u8>,
    lines: usize,
    dropped: usize,
    /// How many times the queue was written out: a `Mark` from before a flush no longer points into it.
    flushes: u64,
    /// The latest time stamp given to a line (JSON): no line gets an earlier one, whatever the wall clock does.
    last_stamp: Duration,
    /// The earliest time stamp among the queued lines: the dropped-lines notice, put in front of them, gets it.
    first_stamp: Option<Duration>,
    /// Set while `queue_at` formats lines that go in at a mark: they get the mark's time stamp, so the lines
    /// around them keep theirs in order.
    stamp_at_mark: Option<Duration>,
}

impl Pending {
    /// The time stamp for a line queued now: the wall clock, never earlier than the last one given.
    fn next_stamp(&mut self) -> Duration {
        let stamp = self
            .stamp_at_mark
            .unwrap_or_else(|| wall_clock().max(self.last_stamp));
        self.last_stamp = self.last_stamp.max(stamp);
        self.first_stamp = Some(self.first_stamp.map_or(stamp, |first| first.min(stamp)));
        stamp
    }
}

/// Time since the Unix epoch.
fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
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
        self.append(record.level(), *record.args(), None);
    }

    fn flush(&self) {}
}

impl StderrLogger {
    /// Queues one line (the level already checked), with `fields` after the message of a JSON line.
    fn append(&self, level: Level, message: fmt::Arguments, fields: Option<&dyn JsonFields>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        // Formatted straight into the queue: a line allocates nothing once the queue has its capacity.
        let start = pending.text.len();
        let stamp = if self.format == LogFormat::Json {
            pending.next_stamp()
        } else {
            Duration::ZERO
        };
        append_line(
            &mut pending.text,
            self.format,
            level,
            message,
            stamp,
            fields,
        );
        if pending.text.len() > PENDING_LIMIT {
            pending.text.truncate(start);
            pending.dropped += 1;
            return;
        }
        pending.lines += 1;
    }
}

/// What a JSON line carries after its message, each field written as `,"key":value`: how the app ended, on
/// the lines that say so. Text lines say the same in words.
pub trait JsonFields {
    fn write_json(&self, out: &mut Vec<u8>);
}

/// Appends one log line, newline included, to `buf`. The message is cut (with "…") so that the line reaches a
/// pipe in one atomic write, whole or not at all; the message is cut, not the line, so a JSON line stays valid
/// JSON (an escape is never split). A pre-stop command line can be long. `ts` is the JSON line's time stamp.
/// A JSON line carries `fields` after the message.
fn append_line(
    buf: &mut Vec<u8>,
    format: LogFormat,
    level: Level,
    message: fmt::Arguments,
    ts: Duration,
    fields: Option<&dyn JsonFields>,
) {
    let start = buf.len();
    let json = format == LogFormat::Json;
    // Only a line with fields (the app's end, the summary) builds a suffix of its own.
    let mut json_tail = Vec::new();
    let suffix: &[u8] = if let (true, Some(fields)) = (json, fields) {
        json_tail.push(b'"');
        fields.write_json(&mut json_tail);
        json_tail.extend_from_slice(b"}\n");
        &json_tail
    } else if json {
        b"\"}\n"
    } else {
        b"\n"
    };
    if json {
        // Writing into a Vec cannot fail.
        let _ = write!(
            buf,
            "{{\"ts\":{}.{:06},\"severity\":\"{}\",\"level\":\"{}\",\"source\":\"grace-init\",\"msg\":\"",
            ts.as_secs(),
            ts.subsec_micros(),
            severity(level),
            lower_case(level)
        );
    } else {
        buf.extend_from_slice(b"grace-init: ");
        if level != Level::Info {
            let tag = if level == Level::Warn {
                "warning"
            } else {
                lower_case(level)
            };
            buf.extend_from_slice(tag.as_bytes());
            buf.extend_from_slice(b": ");
        }
    }
    let mut message_out = Message {
        last_fit: buf.len(),
        end: start + LINE_LIMIT - suffix.len(),
        buf,
        json,
        cut: false,
    };
    let _ = fmt::Write::write_fmt(&mut message_out, message);
    buf.extend_from_slice(suffix);
}

/// What ends a message that was cut.
const ELLIPSIS: &str = "…";

/// Writes a message into a log line: escaped for JSON, and cut, with the ellipsis, once the line would grow
/// past `end`. Text goes in by runs, not character by character.
struct Message<'a> {
    buf: &'a mut Vec<u8>,
    json: bool,
    /// Where the message must end at the latest (the line's suffix follows). The prefix is far shorter than
    /// a line, so there is always room for the ellipsis after it.
    end: usize,
    /// The last length at which the message could be cut with room left for the ellipsis.
    last_fit: usize,
    cut: bool,
}

impl Message<'_> {
    /// Appends `piece`: plain text, which may be cut between characters, or one JSON escape (`atomic`), which
    /// goes in whole or not at all.
    fn append(&mut self, piece: &str, atomic: bool) {
        let before = self.buf.len();
        let room_before_ellipsis = self.end.saturating_sub(before + ELLIPSIS.len());
        let fits_ellipsis = before + ELLIPSIS.len() <= self.end;
        if before + piece.len() <= self.end {
            self.buf.extend_from_slice(piece.as_bytes());
            if self.buf.len() + ELLIPSIS.len() <= self.end {
                self.last_fit = self.buf.len();
            } else if !atomic && fits_ellipsis {
                self.last_fit = before + floor_boundary(piece, room_before_ellipsis);
            }
            return;
        }
        if !atomic && fits_ellipsis {
            let keep = floor_boundary(piece, room_before_ellipsis);
            self.buf
                .extend_from_slice(piece.get(..keep).unwrap_or_default().as_bytes());
        } else {
            self.buf.truncate(self.last_fit);
        }
        self.buf.extend_from_slice(ELLIPSIS.as_bytes());
        self.cut = true;
    }
}

impl fmt::Write for Message<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Nearly always: a piece of a line that fits with room for the ellipsis, and nothing to escape. A
        // line is written by its `Display` in many small pieces, so this path is the one that counts.
        if !self.cut
            && self.buf.len() + text.len() + ELLIPSIS.len() <= self.end
            && (!self.json || !text.bytes().any(needs_json_escape))
        {
            self.buf.extend_from_slice(text.as_bytes());
            self.last_fit = self.buf.len();
            return Ok(());
        }
        let mut rest = text;
        while !rest.is_empty() && !self.cut {
            // The longest run that needs no escaping goes in at once (all of it, for text).
            let run = if self.json {
                rest.bytes()
                    .position(needs_json_escape)
                    .unwrap_or(rest.len())
            } else {
                rest.len()
            };
            if run > 0 {
                // `run` ends at an ASCII byte or at the end: a character boundary.
                let (plain, tail) = rest.split_at(run);
                self.append(plain, false);
                rest = tail;
                continue;
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                let mut encoded = [0u8; 6];
                self.append(json_escaped(c, &mut encoded), true);
            }
            rest = chars.as_str();
        }
        Ok(())
    }
}

/// Whether a byte must be escaped inside a JSON string: a quote, a backslash, a control character.
fn needs_json_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The largest character boundary of `text` at or below `at`.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `c`, one of the characters JSON must escape (a quote, a backslash, a control character), as it stands
/// inside a JSON string.
fn json_escaped(c: char, out: &mut [u8; 6]) -> &str {
    match c {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ => {
            let code = u32::from(c);
            let hex = |n: u32| char::from_digit(n & 15, 16).map_or(b'0', |d| d as u8);
            *out = [b'\\', b'u', b'0', b'0', hex(code >> 4), hex(code)];
            std::str::from_utf8(out).unwrap_or_default()
        }
    }
}

/// "info", "debug", ... without allocating.
fn lower_case(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// One log line, newline included, cut to fit one atomic write.
pub fn format_line(format: LogFormat, level: Level, message: &str) -> String {
    format_line_at(format, level, message, wall_clock())
}

/// `format_line` with the time stamp `ts` (JSON).
fn format_line_at(format: LogFormat, level: Level, message: &str, ts: Duration) -> String {
    let mut buf = Vec::new();
    append_line(&mut buf, format, level, format_args!("{message}"), ts, None);
    String::from_utf8(buf).unwrap_or_default()
}

/// Logs `message` at `level` for `target`, with `fields` after the message of a JSON line.
pub fn log_with(target: &str, level: Level, message: &dyn fmt::Display, fields: &dyn JsonFields) {
    let Some(logger) = LOGGER.get() else {
        return;
    };
    if level <= logger.filter.level_for(target) {
        logger.append(level, format_args!("{message}"), Some(fields));
    }
}

/// One log line with fields (JSON only), newline included, cut to fit one atomic write.
pub fn format_line_with(
    format: LogFormat,
    level: Level,
    message: &str,
    fields: &dyn JsonFields,
) -> String {
    let mut buf = Vec::new();
    append_line(
        &mut buf,
        format,
        level,
        format_args!("{message}"),
        wall_clock(),
        Some(fields),
    );
    String::from_utf8(buf).unwrap_or_default()
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

/// Installs the logger, showing what `filter` lets through.
pub fn init(filter: Filter, format: LogFormat) {
    log::set_max_level(filter.max());
    let logger = LOGGER.get_or_init(|| StderrLogger {
        filter,
        format,
        pending: Mutex::new(Pending {
            text: Vec::with_capacity(1024),
            lines: 0,
            dropped: 0,
            flushes: 0,
            last_stamp: Duration::ZERO,
            first_stamp: None,
            stamp_at_mark: None,
        }),
        sink: crate::sink::Sink::open(),
    });
    // Only fails if a logger is already installed, which cannot happen here.
    let _ = log::set_logger(logger);
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
        // In front of the queued lines, with the earliest of their time stamps.
        let stamp = match pending.first_stamp {
            Some(first) => first,
            None => pending.next_stamp(),
        };
        let line = format_line_at(
            logger.format,
            Level::Warn,
            &format!(
                "{} dropped: stderr was not writable (or too much was logged at once)",
                count_lines(pending.dropped)
            ),
            stamp,
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
    pending.flushes += 1;
    pending.first_stamp = None;
}

/// A place in the queue of lines not yet written, and the time it was taken.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    at: usize,
    flushes: u64,
    /// The time stamp lines queued at this place get (JSON; zero for text, which has none).
    stamp: Duration,
}

/// Where the queue ends now.
pub fn mark() -> Mark {
    let Some(logger) = LOGGER.get() else {
        return Mark {
            at: 0,
            flushes: 0,
            stamp: Duration::ZERO,
        };
    };
    let Ok(mut pending) = logger.pending.lock() else {
        return Mark {
            at: 0,
            flushes: 0,
            stamp: Duration::ZERO,
        };
    };
    let stamp = if logger.format == LogFormat::Json {
        // Taken now, so that whatever is logged from here on is stamped no earlier.
        let now = wall_clock().max(pending.last_stamp);
        pending.last_stamp = now;
        now
    } else {
        Duration::ZERO
    };
    Mark {
        at: pending.text.len(),
        flushes: pending.flushes,
        stamp,
    }
}

/// Runs `log`, whose lines go into the queue at `mark`, ahead of what was queued since: the event loop formats
/// what the supervisor said only after carrying out its actions (signals sent first), yet the lines keep the
/// order in which things happened. A queue written out since `mark` just gets them at its end.
pub fn queue_at(at: Mark, log: impl FnOnce()) {
    let end = mark();
    let pending = || LOGGER.get().and_then(|l| l.pending.lock().ok());
    let in_place = end.flushes == at.flushes;
    if let (true, Some(mut pending)) = (in_place, pending()) {
        // Ahead of what was queued since, they are stamped as of the mark: the time stamps keep the order too.
        pending.stamp_at_mark = Some(at.stamp);
    }
    log();
    let Some(mut pending) = pending() else {
        return;
    };
    pending.stamp_at_mark = None;
    if pending.flushes != at.flushes || end.flushes != at.flushes {
        return;
    }
    let added = pending.text.len().saturating_sub(end.at);
    if let Some(moved) = pending.text.get_mut(at.at..) {
        moved.rotate_right(added.min(moved.len()));
    }
}

/// The logger's private stderr descriptor, if it opened one: grace-init keeps it when it closes what it
/// inherited.
pub fn private_fd() -> Option<std::os::fd::RawFd> {
    LOGGER.get().and_then(|l| l.sink.raw_fd())
}

/// "1 log line", "3 log lines".
fn count_lines(n: usize) -> String {
    if n == 1 {
        "1 log line".to_string()
    } else {
        format!("{n} log lines")
    }
}

/// Error printed before logging is set up (usage errors): one line on stderr in `format`, never blocking.
pub fn print_error(format: LogFormat, message: &str) {
    let line = format_line(format, Level::Error, message);
    crate::sink::Sink::open().write_lines(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let msg = |text: &str| {
            let line = format_line(LogFormat::Json, Level::Info, text);
            let at = line.find("\"msg\":\"").expect("msg field") + 7;
            line[at..line.len() - 3].to_string()
        };
        assert_eq!(
            msg("a\"b\\c\nd\u{1}\u{1f}"),
            "a\\\"b\\\\c\\nd\\u0001\\u001f"
        );
        assert_eq!(msg("plain 'text'"), "plain 'text'");
    }

    #[test]
    fn long_messages_are_cut_to_one_atomic_write_and_json_stays_json() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let line = format_line(format, Level::Info, &"é\"".repeat(5000));
            assert!(line.len() <= LINE_LIMIT, "{}", line.len());
            assert!(
                line.len() >= LINE_LIMIT - 8,
                "cut no shorter than needed: {}",
                line.len()
            );
            assert!(line.ends_with('\n') && line.contains('…'));
            if format == LogFormat::Json {
                assert!(
                    line.ends_with("\"…\"}\n") || line.ends_with("é…\"}\n"),
                    "{line}"
                );
                assert!(!line.contains("\\…"), "an escape is never split: {line}");
            }
        }
        assert_eq!(
            format_line(LogFormat::Text, Level::Info, "short"),
            "grace-init: short\n"
        );
        // A message that fits exactly is not cut.
        let exact = "x".repeat(LINE_LIMIT - "grace-init: \n".len());
        assert_eq!(
            format_line(LogFormat::Text, Level::Info, &exact),
            format!("grace-init: {exact}\n")
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
