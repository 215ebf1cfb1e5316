//! Signal names and numbers, `FROM:TO` rewrite rules and signal lists: parsing and printing, no syscalls.

use std::collections::BTreeMap;
use std::fmt;

/// Standard Linux signals by number, without the `SIG` prefix (aliases come after the canonical name).
const NAMES: &[(i32, &str)] = &[
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGILL, "ILL"),
    (libc::SIGTRAP, "TRAP"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGABRT, "IOT"),
    (libc::SIGBUS, "BUS"),
    (libc::SIGFPE, "FPE"),
    (libc::SIGKILL, "KILL"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGSEGV, "SEGV"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGPIPE, "PIPE"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGSTKFLT, "STKFLT"),
    (libc::SIGCHLD, "CHLD"),
    (libc::SIGCHLD, "CLD"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGSTOP, "STOP"),
    (libc::SIGTSTP, "TSTP"),
    (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"),
    (libc::SIGURG, "URG"),
    (libc::SIGXCPU, "XCPU"),
    (libc::SIGXFSZ, "XFSZ"),
    (libc::SIGVTALRM, "VTALRM"),
    (libc::SIGPROF, "PROF"),
    (libc::SIGWINCH, "WINCH"),
    (libc::SIGIO, "IO"),
    (libc::SIGIO, "POLL"),
    (libc::SIGPWR, "PWR"),
    (libc::SIGSYS, "SYS"),
];

/// Signals the kernel sends for a process's own faults. grace-init leaves them unblocked so a bug in grace-init
/// still ends it visibly, and so they can never be received (or rewritten) as requests.
pub const FAULTS: [i32; 7] = [
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// The first real-time signal a program may use (glibc reserves the first two or three for itself).
pub fn rt_min() -> i32 {
    libc::SIGRTMIN()
}

/// The last real-time signal.
pub fn rt_max() -> i32 {
    libc::SIGRTMAX()
}

/// True for the signals no process can catch, block or send on with a different meaning.
pub fn is_uncatchable(signal: i32) -> bool {
    signal == libc::SIGKILL || signal == libc::SIGSTOP
}

/// True for the signals grace-init can receive from others and so forward: every signal but the uncatchable
/// ones, the fault signals, and the real-time signals the C library keeps for itself.
pub fn is_receivable(signal: i32) -> bool {
    let standard =
        (1..=31).contains(&signal) && !is_uncatchable(signal) && !FAULTS.contains(&signal);
    standard || (rt_min()..=rt_max()).contains(&signal)
}

/// The conventional name of a signal: `SIGTERM`, `SIGRTMIN+3`, or the bare number when it has no name.
/// It is written straight into the line that uses it (`to_string()` for a `String`): a log line allocates
/// nothing for it.
pub fn name(signal: i32) -> Name {
    Name(signal)
}

/// A signal's name, as `name` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name(i32);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signal = self.0;
        if let Some((_, n)) = NAMES.iter().find(|(number, _)| *number == signal) {
            return write!(f, "SIG{n}");
        }
        let (min, max) = (rt_min(), rt_max());
        if signal == min {
            f.write_str("SIGRTMIN")
        } else if signal == max {
            f.write_str("SIGRTMAX")
        } else if signal > min && signal < max {
            write!(f, "SIGRTMIN+{}", signal - min)
        } else {
            write!(f, "signal {signal}")
        }
    }
}

/// Parses one signal: a name with or without `SIG` in any case (`TERM`, `sigterm`), a number (`15`),
/// or a real-time signal (`RTMIN`, `RTMIN+3`, `SIGRTMAX-1`).
pub fn parse(text: &str) -> Result<i32, String> {
    if text.is_empty() {
        return Err(
            "invalid signal '': empty (expected a name such as TERM or a number such as 15)"
                .to_string(),
        );
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let number: i32 = text
            .parse()
            .map_err(|_| format!("invalid signal '{text}': number out of range"))?;
        if number < 1 || number > rt_max() {
            return Err(format!(
                "invalid signal '{text}': not between 1 and {}",
                rt_max()
            ));
        }
        return Ok(number);
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((number, _)) = NAMES.iter().find(|(_, n)| *n == bare) {
        return Ok(*number);
    }
    parse_realtime(bare).ok_or_else(|| {
        format!("invalid signal '{text}': unknown name (try TERM, HUP, USR1, RTMIN+2 or 15)")
    })
}

fn parse_realtime(bare: &str) -> Option<i32> {
    let (min, max) = (rt_min(), rt_max());
    let (base, rest) = if let Some(rest) = bare.strip_prefix("RTMIN") {
        (min, rest)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        (max, rest)
    } else {
        return None;
    };
    let digits = rest.get(1..).unwrap_or("");
    if !rest.is_empty() && (digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let offset: i32 = match rest.chars().next() {
        None => 0,
        Some('+') => digits.parse().ok()?,
        Some('-') => digits.parse::<i32>().ok()?.checked_neg()?,
        Some(_) => return None,
    };
    let signal = base.checked_add(offset)?;
    (min..=max).contains(&signal).then_some(signal)
}

/// Parses a signal grace-init must be able to receive (a rewrite source, a stop signal).
pub fn parse_receivable(text: &str) -> Result<i32, String> {
    // Lists from the environment may carry spaces after their commas: "TERM, INT".
    let text = text.trim();
    let signal = parse(text)?;
    if is_uncatchable(signal) {
        return Err(format!(
            "invalid signal '{text}': {} cannot be caught, so it can never reach grace-init",
            name(signal)
        ));
    }
    if !is_receivable(signal) {
        return Err(format!(
            "invalid signal '{text}': {} is not a signal grace-init receives",
            name(signal)
        ));
    }
    if signal == libc::SIGCHLD {
        return Err(format!(
            "invalid signal '{text}': SIGCHLD is grace-init's own (it reaps children on it)"
        ));
    }
    Ok(signal)
}

/// Parses a signal grace-init may send on (a rewrite target, the parent-death signal).
pub fn parse_sendable(text: &str) -> Result<i32, String> {
    let signal = parse(text)?;
    if is_uncatchable(signal) {
        return Err(format!(
            "invalid signal '{text}': {} is not allowed here (grace-init sends SIGKILL itself when the grace period ends)",
            name(signal)
        ));
    }
    Ok(signal)
}

/// One rewrite rule: received `from` is forwarded as `to` (`None`: dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub from: i32,
    pub to: Option<i32>,
}

/// Parses `FROM:TO`, where `TO` may be `none` to drop the signal.
pub fn parse_rewrite(text: &str) -> Result<Rewrite, String> {
    let text = text.trim();
    let Some((from, to)) = text.split_once(':') else {
        return Err(format!(
            "invalid rewrite '{text}': expected FROM:TO, e.g. TERM:QUIT or HUP:none"
        ));
    };
    let from = parse_receivable(from).map_err(|e| format!("invalid rewrite '{text}': {e}"))?;
    let to = if to.eq_ignore_ascii_case("none") {
        None
    } else {
        Some(parse_sendable(to).map_err(|e| format!("invalid rewrite '{text}': {e}"))?)
    };
    Ok(Rewrite { from, to })
}

/// The rewrite table: every received signal maps to itself unless a rule says otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrites(BTreeMap<i32, Option<i32>>);

impl Rewrites {
    /// Builds the table; a later rule for the same signal is a usage error, not a silent override.
    pub fn from_rules(rules: &[Rewrite]) -> Result<Rewrites, String> {
        let mut map = BTreeMap::new();
        for rule in rules {
            if map.insert(rule.from, rule.to).is_some() {
                return Err(format!(
                    "invalid rewrite: {} is rewritten twice",
                    name(rule.from)
                ));
            }
        }
        Ok(Rewrites(map))
    }

    /// What a received signal is forwarded as; `None` means it is dropped.
    pub fn apply(&self, signal: i32) -> Option<i32> {
        match self.0.get(&signal) {
            Some(to) => *to,
            None => Some(signal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_realtime() {
        let table: &[(&str, i32)] = &[
            ("TERM", libc::SIGTERM),
            ("SIGTERM", libc::SIGTERM),
            ("sigterm", libc::SIGTERM),
            ("term", libc::SIGTERM),
            ("15", 15),
            ("1", 1),
            ("HUP", libc::SIGHUP),
            ("IOT", libc::SIGABRT),
            ("WINCH", libc::SIGWINCH),
            ("RTMIN", rt_min()),
            ("SIGRTMIN+3", rt_min() + 3),
            ("rtmax-1", rt_max() - 1),
            ("RTMAX", rt_max()),
        ];
        for (text, want) in table {
            assert_eq!(parse(text), Ok(*want), "parsing {text:?}");
        }
    }

    #[test]
    fn rejects_unknown_and_out_of_range() {
        for text in [
            "",
            "0",
            "65",
            "-1",
            "FOO",
            "SIG",
            "RTMIN+99",
            "RTMAX+1",
            "RTMIN-1",
            "RTMIN+",
            "RTMIN+x",
            "RTMIN--2147483648",
            "RTMAX-+1",
            "RTMIN+-1",
            "99999999999",
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(&format!("'{text}'")), "{err}");
        }
    }

    #[test]
    fn names_round_trip() {
        for signal in 1..=rt_max() {
            if signal > 31 && signal < rt_min() {
                continue;
            }
            assert_eq!(
                parse(&name(signal).to_string()),
                Ok(signal),
                "{}",
                name(signal)
            );
        }
    }

    #[test]
    fn kill_stop_and_faults_cannot_be_rewritten() {
        for bad in [
            "KILL:TERM",
            "STOP:TERM",
            "TERM:KILL",
            "TERM:STOP",
            "SEGV:TERM",
            "CHLD:TERM",
            "TERM",
            "TERM:",
            ":TERM",
            "TERM:FOO",
        ] {
            assert!(parse_rewrite(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_rewrite("TERM:QUIT"),
            Ok(Rewrite {
                from: libc::SIGTERM,
                to: Some(libc::SIGQUIT)
            })
        );
        assert_eq!(
            parse_rewrite("hup:none"),
            Ok(Rewrite {
                from: libc::SIGHUP,
                to: None
            })
        );
        assert_eq!(
            parse_rewrite("10:RTMIN+1"),
            Ok(Rewrite {
                from: 10,
                to: Some(rt_min() + 1)
            })
        );
    }

    #[test]
    fn rewrite_table_applies_rules_and_rejects_duplicates() {
        let rules = [
            parse_rewrite("TERM:QUIT").unwrap(),
            parse_rewrite("HUP:none").unwrap(),
        ];
        let table = Rewrites::from_rules(&rules).unwrap();
        assert_eq!(table.apply(libc::SIGTERM), Some(libc::SIGQUIT));
        assert_eq!(table.apply(libc::SIGHUP), None);
        assert_eq!(table.apply(libc::SIGUSR1), Some(libc::SIGUSR1));
        let twice = [
            parse_rewrite("TERM:QUIT").unwrap(),
            parse_rewrite("TERM:INT").unwrap(),
        ];
        assert!(Rewrites::from_rules(&twice).is_err());
    }
}
