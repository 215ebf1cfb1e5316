//! Property tests over the pure parsers: they never panic on any input, durations and signal names print in a
//! form that parses back to the same value, the command-line parser survives any argv, non-UTF-8 included, and
//! the memory cgroup's files (/proc/self/cgroup, mountinfo, the counters) are read without a guess.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use grace_init::cli::{self, Parsed};
use grace_init::duration::{Limit, MAX, format_duration, parse_duration, parse_limit};
use grace_init::signals::{self, name, parse_receivable, parse_rewrite, parse_sendable};
use proptest::prelude::*;

/// Modest case counts keep the whole file to a few seconds; no regression files are written into the tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text that looks like a duration often enough to reach every branch of the parser.
fn duration_like() -> impl Strategy<Value = String> {
    "[-+ ]?[0-9]{0,25}(\\.[0-9]{0,12})?(\\.[0-9]{0,3})?(|s|ms|m|h|sec|secs|min|mins|us|d|S|MS| s|x|infinity|inf|never|INF)"
}

/// Text that looks like a signal, a rewrite rule or a list of them.
fn signal_like() -> impl Strategy<Value = String> {
    let one = "(SIG|sig)?(TERM|HUP|KILL|STOP|CHLD|SEGV|USR1|RTMIN|RTMAX|rtmin|IO|POLL|NOPE|)([+-][0-9]{0,12}|[0-9]{0,12})";
    (one, "[:,]?", one).prop_map(|(a, sep, b)| format!("{a}{sep}{b}"))
}

/// Every signal number that has a name: the standard ones and the real-time ones a program may use.
fn named_signals() -> Vec<i32> {
    (1..=signals::rt_max())
        .filter(|s| *s <= 31 || *s >= signals::rt_min())
        .collect()
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn duration_parsers_never_panic_on_any_text(text in any::<String>()) {
        let _ = parse_duration(&text);
        let _ = parse_limit(&text);
    }

    #[test]
    fn duration_parsers_never_panic_on_duration_like_text(text in duration_like()) {
        let finite = parse_duration(&text);
        let limit = parse_limit(&text);
        // The two agree wherever a finite duration is meant.
        if let Ok(d) = finite {
            prop_assert_eq!(limit, Ok(Limit(Some(d))));
            prop_assert!(d <= MAX);
        }
        // An error names the text it refuses, on one line.
        if let Err(e) = parse_limit(&text) {
            prop_assert!(e.contains(&format!("'{text}'")), "{}", e);
            prop_assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn any_duration_up_to_max_prints_and_parses_back(nanos in 0..=MAX.as_nanos() as u64) {
        let d = Duration::from_nanos(nanos);
        let text = format_duration(d);
        prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
        prop_assert_eq!(parse_limit(&text), Ok(Limit(Some(d))), "{}", text);
    }

    #[test]
    fn round_durations_print_and_parse_back(secs in 0..=MAX.as_secs(), millis in 0u32..1000) {
        let d = Duration::new(secs, millis * 1_000_000).min(MAX);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn a_parsed_duration_prints_to_a_text_that_parses_to_it(text in duration_like()) {
        if let Ok(d) = parse_duration(&text) {
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn anything_longer_than_max_is_refused(extra in 1u64..=u64::MAX / 2) {
        let too_long = MAX.saturating_add(Duration::from_nanos(extra));
        prop_assert!(parse_duration(&format_duration(too_long)).is_err());
    }

    #[test]
    fn signal_parsers_never_panic_on_any_text(text in any::<String>()) {
        let _ = signals::parse(&text);
        let _ = parse_receivable(&text);
        let _ = parse_sendable(&text);
        let _ = parse_rewrite(&text);
    }

    #[test]
    fn signal_parsers_agree_on_signal_like_text(text in signal_like()) {
        let plain = signals::parse(&text);
        // Receivable and sendable signals are signals; an error names the text.
        if let Ok(s) = parse_receivable(&text) {
            prop_assert_eq!(plain.clone(), Ok(s));
            prop_assert!(!signals::is_uncatchable(s) && s != libc::SIGCHLD);
        }
        if let Ok(s) = parse_sendable(&text) {
            prop_assert_eq!(plain.clone(), Ok(s));
            prop_assert!(!signals::is_uncatchable(s));
        }
        if let Err(e) = &plain {
            prop_assert!(e.contains(&format!("'{text}'")), "{}", e);
        }
        if let Ok(rule) = parse_rewrite(&text) {
            prop_assert!(!signals::is_uncatchable(rule.from));
            prop_assert!(rule.to.is_none_or(|to| !signals::is_uncatchable(to)));
        }
    }

    #[test]
    fn any_number_parses_to_itself_or_is_refused(n in any::<i64>()) {
        let text = n.to_string();
        match signals::parse(&text) {
            Ok(s) => {
                prop_assert_eq!(i64::from(s), n);
                prop_assert!((1..=signals::rt_max()).contains(&s));
            }
            Err(e) => {
                prop_assert!(n < 1 || n > i64::from(signals::rt_max()));
                prop_assert!(e.contains(&text), "{}", e);
            }
        }
    }

    #[test]
    fn any_signal_name_in_any_case_with_or_without_sig_parses_back(
        index in 0usize..200,
        lower in any::<bool>(),
        strip in any::<bool>(),
    ) {
        let all = named_signals();
        let signal = all[index % all.len()];
        let mut text = name(signal).to_string();
        if strip {
            text = text.trim_start_matches("SIG").to_string();
        }
        if lower {
            text = text.to_lowercase();
        }
        prop_assert_eq!(signals::parse(&text), Ok(signal), "{}", text);
    }

    #[test]
    fn any_rewrite_of_two_named_signals_is_accepted_exactly_when_both_ends_allow_it(
        a in 0usize..200,
        b in 0usize..200,
    ) {
        let all = named_signals();
        let (from, to) = (all[a % all.len()], all[b % all.len()]);
        let rule = format!("{}:{}", name(from), name(to));
        let want_ok = parse_receivable(&name(from).to_string()).is_ok()
            && parse_sendable(&name(to).to_string()).is_ok();
        match parse_rewrite(&rule) {
            Ok(r) => {
                prop_assert!(want_ok, "{} accepted", rule);
                prop_assert_eq!((r.from, r.to), (from, Some(to)));
            }
            Err(e) => {
                prop_assert!(!want_ok, "{} refused: {}", rule, e);
                prop_assert!(e.contains(&format!("'{rule}'")), "{}", e);
            }
        }
    }
}

/// Real-time signal names with offsets of any size and sign, repeated signs included.
fn realtime_like() -> impl Strategy<Value = String> {
    let base = prop::sample::select(vec!["RTMIN", "RTMAX", "SIGRTMIN", "sigrtmax", "RTMIN+"]);
    let sign = prop::sample::select(vec!["", "+", "-", "--", "+-", "-+", "++"]);
    let offset = prop_oneof![
        any::<i32>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just(i32::MIN.to_string()),
        Just(i32::MAX.to_string()),
        "[0-9]{0,3}",
    ];
    (base, sign, offset).prop_map(|(b, s, o)| format!("{b}{s}{o}"))
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn realtime_offsets_of_any_size_never_panic(text in realtime_like()) {
        if let Ok(s) = signals::parse(&text) {
            prop_assert!((signals::rt_min()..=signals::rt_max()).contains(&s), "{} -> {}", text, s);
        }
    }
}

#[test]
fn realtime_offsets_at_the_limits_of_i32_are_refused_without_panic() {
    // `RTMIN--2147483648`: the offset after the first '-' parses as i32::MIN, and negating it overflows.
    for text in [
        "RTMIN--2147483648",
        "SIGRTMAX--2147483648",
        "RTMIN-2147483648",
        "RTMIN+2147483647",
        "RTMAX+-2147483648",
        "RTMIN-+2147483647",
    ] {
        let outcome = std::panic::catch_unwind(|| signals::parse(text));
        match outcome {
            Ok(result) => assert!(result.is_err(), "{text} parsed as {result:?}"),
            Err(_) => panic!("signals::parse({text:?}) panicked"),
        }
    }
}

#[test]
fn every_named_signal_parses_back_from_its_name() {
    for signal in named_signals() {
        let text = name(signal).to_string();
        assert_eq!(signals::parse(&text), Ok(signal), "{text}");
        assert_eq!(signals::parse(&signal.to_string()), Ok(signal));
    }
    // Numbers without a name print as a number, and never as something else that parses.
    for signal in (32..signals::rt_min()).chain([0, -1, 65, i32::MAX, i32::MIN]) {
        let text = name(signal).to_string();
        assert!(
            signals::parse(&text).is_err() || signals::parse(&text) == Ok(signal),
            "{signal}: {text}"
        );
    }
}

/// One argv word: an option grace-init knows, a value that is sometimes good and sometimes bad, or raw bytes.
fn word() -> impl Strategy<Value = OsString> {
    let known = prop::sample::select(vec![
        "--",
        "-t",
        "--timeout",
        "-c",
        "--single-child",
        "-r",
        "--rewrite",
        "--drain-delay",
        "--pre-stop",
        "-e",
        "--expect-exit",
        "-p",
        "--pdeathsig",
        "-s",
        "--subreaper",
        "--stop-signals",
        "-v",
        "-vv",
        "-q",
        "--log-format",
        "-h",
        "--help",
        "-V",
        "--version",
        "--timeout=",
        "-t5",
        "-cs",
        "-",
        "",
    ])
    .prop_map(OsString::from);
    let values = prop_oneof![duration_like(), signal_like(), "[a-z]{0,6}", "[0-9]{1,4}"]
        .prop_map(OsString::from);
    let bytes = prop::collection::vec(any::<u8>(), 0..12).prop_map(OsString::from_vec);
    prop_oneof![3 => known, 3 => values, 1 => bytes, 1 => any::<String>().prop_map(OsString::from)]
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn the_command_line_parser_never_panics_on_any_argv(words in prop::collection::vec(word(), 0..10)) {
        let argv = std::iter::once(OsString::from("grace-init")).chain(words.iter().cloned());
        match cli::parse(argv) {
            Parsed::Usage { message, .. } => {
                prop_assert!(!message.is_empty());
                prop_assert!(!message.contains('\n'), "usage error on more than one line: {:?}", message);
            }
            Parsed::Run(config) => prop_assert!(!config.command.is_empty()),
            Parsed::Info(text) => prop_assert!(!text.is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn the_command_line_parser_never_panics_on_raw_bytes(
        words in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..8),
    ) {
        let argv = words.into_iter().map(OsString::from_vec);
        let _ = cli::parse(argv);
    }
}

/// Reads back the `msg` of a JSON log line: its unescaped text, or `None` if the string is not valid JSON.
fn json_message(line: &str) -> Option<String> {
    let body = line.split_once("\"msg\":\"")?.1.strip_suffix("\"}\n")?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            c if u32::from(c) < 0x20 => return None,
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

/// A log message: any text, control characters, quotes and multi-byte characters included, up to twice what
/// fits in one line.
fn message() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('\u{1}'),
            Just('é'),
            Just('😀'),
            any::<char>(),
            "[a-z ]".prop_map(|s| s.chars().next().unwrap_or('a')),
        ],
        0..6000,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(config(48))]

    /// Every log line goes out in one atomic write, whole: at most PIPE_BUF bytes, one newline at its end, and
    /// JSON lines stay valid JSON. The message is kept, or cut to a prefix that ends with "…", and cut only when
    /// it does not fit.
    #[test]
    fn log_lines_fit_one_atomic_write_and_keep_a_prefix_of_the_message(text in message(), json in any::<bool>()) {
        use grace_init::cli::LogFormat;
        use grace_init::logging::format_line;
        let format = if json { LogFormat::Json } else { LogFormat::Text };
        let line = format_line(format, log::Level::Warn, &text);
        prop_assert!(line.len() <= libc::PIPE_BUF, "{} bytes", line.len());
        prop_assert!(line.ends_with('\n'));
        let said = if json {
            json_message(&line).ok_or_else(|| TestCaseError::fail(format!("not valid JSON: {line}")))?
        } else {
            let body = line.strip_prefix("grace-init: warning: ").and_then(|l| l.strip_suffix('\n'));
            body.ok_or_else(|| TestCaseError::fail(format!("prefix or newline missing: {line:?}")))?.to_string()
        };
        if said == text {
            return Ok(());
        }
        let kept = said.strip_suffix('…').ok_or_else(|| TestCaseError::fail("changed but not cut".to_string()))?;
        prop_assert!(text.starts_with(kept), "not a prefix");
        // Cut only when needed: the line with the whole message would not have fitted.
        let in_line = |t: &str| -> usize {
            if !json {
                return t.len();
            }
            t.chars()
                .map(|c| match c {
                    '"' | '\\' | '\n' | '\r' | '\t' => 2,
                    c if u32::from(c) < 0x20 => 6,
                    c => c.len_utf8(),
                })
                .sum()
        };
        prop_assert!(line.len() - in_line(&said) + in_line(&text) > libc::PIPE_BUF, "cut though it fitted");
    }
}

/// A /proc/self/cgroup line: v1 controllers or v2's empty list, a path that may climb out with `..`.
fn cgroup_line() -> impl Strategy<Value = String> {
    (
        "(0|[1-9])",
        "(|memory|cpu,memory|name=systemd|pids)",
        "(/[a-z.]{0,6}){0,4}",
    )
        .prop_map(|(id, controllers, path)| format!("{id}:{controllers}:{path}\n"))
}

/// A mountinfo line of a cgroup file system (v1 with options, or v2), mounted from some root.
fn mount_line() -> impl Strategy<Value = String> {
    (
        "(/[a-z.]{0,6}){0,3}",
        "/sys/fs/cgroup(/[a-z\\\\0-9]{0,6})?",
        "(cgroup|cgroup2|tmpfs)",
        "(rw|rw,memory|rw,cpu|rw,nsdelegate)",
    )
        .prop_map(|(root, point, fstype, options)| {
            format!("35 31 0:32 {root} {point} rw,relatime - {fstype} {fstype} {options}\n")
        })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn the_cgroup_parsers_never_panic_and_only_name_a_dir_below_a_mount(
        cgroup in any::<Vec<u8>>(),
        mountinfo in any::<Vec<u8>>(),
        lines in prop::collection::vec(cgroup_line(), 0..4),
        mounts in prop::collection::vec(mount_line(), 0..4),
    ) {
        use grace_init::cgroup::{keyed, locate, parse_bytes, parse_limit};
        let _ = locate(&cgroup, &mountinfo);
        let _ = (keyed(&cgroup, "oom_kill"), parse_limit(&cgroup), parse_bytes(&mountinfo));
        let cgroup: String = lines.concat();
        let mountinfo: String = mounts.concat();
        if let Some(found) = locate(cgroup.as_bytes(), mountinfo.as_bytes()) {
            // Below a mount point that is listed, and never climbing out of it.
            prop_assert!(found.dir.starts_with("/sys/fs/cgroup"), "{found:?}");
            prop_assert!(!found.dir.components().any(|c| c.as_os_str() == ".."), "{found:?}");
        }
    }
}
