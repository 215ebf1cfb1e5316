//! Turns how the main child ended into grace-init's own exit code, in one place.

/// How a process ended, as `waitpid` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// It was killed by this signal.
    Killed(i32),
    /// It was killed by this signal, and the kernel wrote a core dump.
    Dumped(i32),
}

/// grace-init's exit code when the command could not be started.
pub const NOT_FOUND: i32 = 127;
/// grace-init's exit code when the command exists but cannot be executed.
pub const NOT_EXECUTABLE: i32 = 126;
/// grace-init's exit code for a usage error (bad option or value, missing command).
pub const USAGE: i32 = 2;
/// grace-init's exit code when it could not set itself up (e.g. no fork possible).
pub const SETUP_FAILED: i32 = 1;
/// grace-init's exit code when the main child vanished without its exit status ever reaching grace-init
/// (it was reaped by someone else): the run cannot report the app's own code.
pub const STATUS_LOST: i32 = 1;

impl ChildStatus {
    /// The shell convention: the exit code itself, or 128+N for death by signal N.
    pub fn code(self) -> i32 {
        match self {
            ChildStatus::Exited(code) => code,
            ChildStatus::Killed(signal) | ChildStatus::Dumped(signal) => 128 + signal,
        }
    }

    /// The signal it was killed by, if any.
    pub fn signal(self) -> Option<i32> {
        match self {
            ChildStatus::Exited(_) => None,
            ChildStatus::Killed(signal) | ChildStatus::Dumped(signal) => Some(signal),
        }
    }
}

/// For the log: "exited with code 3" / "was killed by SIGKILL" / "was killed by SIGSEGV (core dumped)".
impl std::fmt::Display for ChildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ChildStatus::Exited(code) => write!(f, "exited with code {code}"),
            ChildStatus::Killed(signal) => {
                write!(f, "was killed by {}", crate::signals::name(signal))
            }
            ChildStatus::Dumped(signal) => {
                write!(
                    f,
                    "was killed by {} (core dumped)",
                    crate::signals::name(signal)
                )
            }
        }
    }
}

/// The exit code grace-init ends with: the child's, with the codes listed by `--expect-exit` mapped to 0.
pub fn exit_code(status: ChildStatus, expected: &[i32]) -> i32 {
    let code = status.code();
    if expected.contains(&code) { 0 } else { code }
}

/// Parses an `--expect-exit` value: an exit code from 0 to 255.
pub fn parse_code(text: &str) -> Result<i32, String> {
    let text = text.trim();
    match text.parse::<i32>() {
        Ok(code) if (0..=255).contains(&code) => Ok(code),
        _ => Err(format!(
            "invalid exit code '{text}': expected a number from 0 to 255"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_shell_convention() {
        let table = [
            (ChildStatus::Exited(0), &[][..], 0),
            (ChildStatus::Exited(3), &[], 3),
            (ChildStatus::Exited(255), &[], 255),
            (ChildStatus::Killed(libc::SIGKILL), &[], 137),
            (ChildStatus::Killed(libc::SIGTERM), &[], 143),
            (ChildStatus::Killed(libc::SIGTERM), &[143], 0),
            (ChildStatus::Exited(143), &[143], 0),
            (ChildStatus::Exited(1), &[143], 1),
            (ChildStatus::Exited(7), &[3, 7], 0),
            (ChildStatus::Dumped(libc::SIGSEGV), &[], 139),
            (ChildStatus::Dumped(libc::SIGABRT), &[134], 0),
        ];
        for (status, expected, want) in table {
            assert_eq!(
                exit_code(status, expected),
                want,
                "{status:?} with {expected:?}"
            );
        }
    }

    #[test]
    fn a_core_dump_is_said() {
        assert_eq!(
            ChildStatus::Dumped(libc::SIGSEGV).to_string(),
            "was killed by SIGSEGV (core dumped)"
        );
        assert_eq!(
            ChildStatus::Killed(libc::SIGKILL).to_string(),
            "was killed by SIGKILL"
        );
    }

    #[test]
    fn expect_exit_values() {
        assert_eq!(parse_code("0"), Ok(0));
        assert_eq!(parse_code("143"), Ok(143));
        for bad in ["", "-1", "256", "abc", "1.0", "99999999999"] {
            let err = parse_code(bad).expect_err(bad);
            assert!(err.contains(&format!("'{bad}'")));
        }
    }
}
