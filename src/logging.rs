//! Sets up logging: stderr only, every line prefixed `grace-init`, as text or one JSON object per line.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter};

use crate::cli::{LogFormat, Verbosity};

/// The environment variable holding an env_logger filter, e.g. `debug` or `warn`.
pub const FILTER_VAR: &str = "GRACE_INIT_LOG";

/// Installs the logger. A flag (`-v`, `-q`) wins over GRACE_INIT_LOG; the default level is info.
/// Write errors (stderr closed, reader gone) are ignored: logging must never stop supervision.
pub fn init(verbosity: Verbosity, format: LogFormat) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(LevelFilter::Info);
    match verbosity {
        Verbosity::FromEnv => {
            if let Ok(spec) = std::env::var(FILTER_VAR) {
                builder.parse_filters(&spec);
            }
        }
        Verbosity::Quiet => {
            builder.filter_level(LevelFilter::Warn);
        }
        Verbosity::Debug => {
            builder.filter_level(LevelFilter::Debug);
        }
        Verbosity::Trace => {
            builder.filter_level(LevelFilter::Trace);
        }
    }
    builder.target(env_logger::Target::Stderr);
    builder.format(move |buf, record| match format {
        LogFormat::Text => match record.level() {
            Level::Info => writeln!(buf, "grace-init: {}", record.args()),
            Level::Warn => writeln!(buf, "grace-init: warning: {}", record.args()),
            level => writeln!(
                buf,
                "grace-init: {}: {}",
                level.as_str().to_ascii_lowercase(),
                record.args()
            ),
        },
        LogFormat::Json => {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            writeln!(
                buf,
                "{{\"ts\":{}.{:06},\"level\":\"{}\",\"source\":\"grace-init\",\"msg\":\"{}\"}}",
                ts.as_secs(),
                ts.subsec_micros(),
                record.level().as_str().to_ascii_lowercase(),
                json_escape(&record.args().to_string())
            )
        }
    });
    // Only fails if a logger is already installed, which cannot happen here.
    let _ = builder.try_init();
}

/// Error printed before logging is set up (usage errors): one line on stderr.
pub fn print_error(message: &str) {
    let _ = writeln!(std::io::stderr(), "grace-init: error: {message}");
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
    use super::json_escape;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_escape("a\"b\\c\nd\u{1}"), "a\\\"b\\\\c\\nd\\u0001");
        assert_eq!(json_escape("plain 'text'"), "plain 'text'");
    }
}
