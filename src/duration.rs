//! Parses and prints the human durations grace-init accepts: `30`, `30s`, `1500ms`, `2m`, `1h`, `1.5s`, `infinity`.

use std::time::Duration;

/// The longest finite duration accepted. Anything longer is almost certainly a typo; `infinity` says "no limit".
pub const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a finite duration. A bare number means seconds, as in `sleep` and Kubernetes' grace period.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if is_infinity(text) {
        return Err(format!(
            "'{text}' is not allowed here: give a finite duration such as 30s"
        ));
    }
    parse_finite(text)
}

/// A time limit: a finite duration, or `None` for `infinity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit(pub Option<Duration>);

/// Parses a time limit: a finite duration, or `infinity`.
pub fn parse_limit(text: &str) -> Result<Limit, String> {
    if is_infinity(text) {
        return Ok(Limit(None));
    }
    parse_finite(text).map(|d| Limit(Some(d)))
}

fn is_infinity(text: &str) -> bool {
    matches!(
        text.to_ascii_lowercase().as_str(),
        "infinity" | "inf" | "never"
    )
}

fn parse_finite(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration '{text}': {why}");
    if text.is_empty() {
        return Err(
            "invalid duration '': empty (expected e.g. 30s, 1500ms, 2m, infinity)".to_string(),
        );
    }
    if text.starts_with('-') {
        return Err(bad("a duration cannot be negative"));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(bad(
            "not a duration (expected e.g. 30s, 1500ms, 2m or infinity)",
        ));
    }
    let nanos_per_unit: u128 = match unit {
        "" | "s" | "sec" | "secs" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" | "min" | "mins" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad(&format!("unknown unit '{unit}' (use ms, s, m or h)"))),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad("no number (expected e.g. 30s, 1500ms, 2m, infinity)"));
    }
    if fraction.contains('.') {
        return Err(bad("more than one decimal point"));
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad("number too large"))?
    };
    // The fraction is exact to the nanosecond: digits beyond what the unit can resolve are an error, not rounded.
    let mut fraction_nanos: u128 = 0;
    let mut scale = nanos_per_unit;
    for digit in fraction.bytes() {
        if scale % 10 != 0 {
            return Err(bad("finer than a nanosecond"));
        }
        scale /= 10;
        fraction_nanos += u128::from(digit - b'0') * scale;
    }
    let nanos = whole_value
        .checked_mul(nanos_per_unit)
        .and_then(|n| n.checked_add(fraction_nanos))
        .ok_or_else(|| bad("too large (use infinity for no limit)"))?;
    if nanos > MAX.as_nanos() {
        return Err(bad(
            "too large: at most 366 days (use infinity for no limit)",
        ));
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad("too large"))?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| bad("too large"))?;
    Ok(Duration::new(secs, sub))
}

/// Prints a duration the way `parse_duration` reads it back exactly: `30s`, `1.5s`, `0.000001s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        return format!("{secs}s");
    }
    let fraction = format!("{nanos:09}");
    format!("{secs}.{}s", fraction.trim_end_matches('0'))
}

/// An elapsed time for the log, to the millisecond (rounded): `0.352s`.
pub fn seconds(duration: Duration) -> Seconds {
    Seconds(duration)
}

/// How `seconds` prints: whole milliseconds in integer arithmetic, written straight into the line (a float's
/// `{:.3}` goes through the slow exact-decimal path and the log line is on the way to the exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(Duration);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rounded = (self.0.subsec_nanos() + 500_000) / 1_000_000;
        let millis = self
            .0
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(rounded));
        write!(f, "{}.{:03}s", millis / 1000, millis % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_times_print_to_the_rounded_millisecond() {
        let table = [
            (Duration::ZERO, "0.000s"),
            (Duration::from_micros(352_400), "0.352s"),
            (Duration::from_micros(352_500), "0.353s"),
            (Duration::from_nanos(999_999_999), "1.000s"),
            (Duration::from_secs(30), "30.000s"),
            (Duration::from_secs(86_400 * 400), "34560000.000s"),
        ];
        for (duration, want) in table {
            assert_eq!(seconds(duration).to_string(), want, "{duration:?}");
        }
    }

    #[test]
    fn accepts_the_documented_forms() {
        let table: &[(&str, Option<Duration>)] = &[
            ("30", Some(Duration::from_secs(30))),
            ("30s", Some(Duration::from_secs(30))),
            ("1500ms", Some(Duration::from_millis(1500))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("1.5s", Some(Duration::from_millis(1500))),
            ("0.25", Some(Duration::from_millis(250))),
            (".5s", Some(Duration::from_millis(500))),
            ("0", Some(Duration::ZERO)),
            ("0ms", Some(Duration::ZERO)),
            ("infinity", None),
            ("INF", None),
            ("8784h", Some(MAX)),
        ];
        for (text, want) in table {
            assert_eq!(parse_limit(text), Ok(Limit(*want)), "parsing {text:?}");
        }
    }

    #[test]
    fn rejects_bad_input_naming_the_value() {
        for text in [
            "",
            "abc",
            "-1",
            "-1s",
            "1x",
            "1.2.3",
            ".",
            "s",
            "30 s",
            " 30",
            "1e3",
            "99999999999999h",
            "8785h",
            "340282366920938463463374607431768211456",
            "0.0000000001s",
            "soon",
        ] {
            let err = parse_limit(text).expect_err(text);
            assert!(
                err.contains(&format!("'{text}'")),
                "error for {text:?} should name it: {err}"
            );
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn infinity_is_only_a_limit() {
        assert!(parse_duration("infinity").is_err());
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(1500),
            Duration::from_secs(30),
            Duration::new(12, 340_000_000),
            MAX,
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
