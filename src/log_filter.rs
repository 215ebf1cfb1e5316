//! The log filter: which levels are shown, from `-v`/`-q` or GRACE_INIT_LOG in env_logger's syntax, refused
//! whole when any part of it is not understood.

use log::LevelFilter;

/// The environment variable holding a filter: `debug`, `warn`, `grace_init::run=trace,info`.
pub const FILTER_VAR: &str = "GRACE_INIT_LOG";

/// Every log target of grace-init starts with this; a directive naming another target could never match.
const OUR_TARGETS: &str = "grace_init";

/// Which levels are shown: a default, and per-target overrides (longest matching prefix wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// Every line of `level` and above, from every target.
    pub fn level(level: LevelFilter) -> Filter {
        Filter {
            default: level,
            targets: Vec::new(),
        }
    }

    /// The most detailed level shown for `target`.
    pub fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(prefix, _)| target.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |(_, level)| *level)
    }

    /// The most detailed level shown for any target.
    pub fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, Ord::max)
    }
}

impl Default for Filter {
    /// Info and above.
    fn default() -> Filter {
        Filter::level(LevelFilter::Info)
    }
}

/// Parses env_logger's filter syntax: comma-separated `LEVEL`, `TARGET` or `TARGET=LEVEL`, where a target is
/// `grace_init` or one of its modules (`grace_init::reap`). An empty spec is the default (info). The error
/// names the first directive that is neither, quoted, for a usage error.
pub fn parse_filter(spec: &str) -> Result<Filter, String> {
    let mut filter = Filter::default();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (target, level) = match part.split_once('=') {
            Some((target, level)) => (Some(target.trim()), level.trim().parse().ok()),
            None => match part.parse::<LevelFilter>() {
                Ok(level) => (None, Some(level)),
                Err(_) => (Some(part), Some(LevelFilter::Trace)),
            },
        };
        match (target, level) {
            (None, Some(level)) => filter.default = level,
            (Some(target), Some(level)) if is_ours(target) => {
                filter.targets.push((target.to_string(), level))
            }
            _ => {
                return Err(format!(
                    "invalid {FILTER_VAR} '{part}': not a log level (off, error, warn, info, debug, trace) \
                     or {OUR_TARGETS}[::module][=LEVEL]"
                ));
            }
        }
    }
    Ok(filter)
}

/// `grace_init` or `grace_init::something`.
fn is_ours(target: &str) -> bool {
    target
        .strip_prefix(OUR_TARGETS)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_env_logger_syntax() {
        let f = parse_filter("").unwrap();
        assert_eq!(f.level_for("grace_init::run"), LevelFilter::Info);
        let f = parse_filter("debug").unwrap();
        assert_eq!(f.level_for("grace_init::run"), LevelFilter::Debug);
        let f = parse_filter("WARN, grace_init::reap=trace").unwrap();
        assert_eq!(f.level_for("grace_init::run"), LevelFilter::Warn);
        assert_eq!(f.level_for("grace_init::reap"), LevelFilter::Trace);
        assert_eq!(f.max(), LevelFilter::Trace);
        let f = parse_filter("grace_init").unwrap();
        assert_eq!(f.level_for("grace_init::supervisor"), LevelFilter::Trace);
        assert_eq!(parse_filter("off").unwrap().max(), LevelFilter::Off);
    }

    #[test]
    fn anything_else_is_refused_naming_the_directive() {
        for (spec, named) in [
            ("eror", "'eror'"),
            ("info,eror", "'eror'"),
            ("grace_init=noisy", "'grace_init=noisy'"),
            ("wa-rn", "'wa-rn'"),
            ("hyper=debug", "'hyper=debug'"),
            ("grace_initx", "'grace_initx'"),
            ("=debug", "'=debug'"),
        ] {
            let message = parse_filter(spec).expect_err(spec);
            assert!(message.contains(named), "{spec}: {message}");
            assert!(message.contains(FILTER_VAR), "{spec}: {message}");
        }
    }
}
