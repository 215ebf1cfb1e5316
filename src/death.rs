//! Why a process died, beyond its wait status: whether a SIGKILL was grace-init's own (the deadline), the
//! kernel's OOM killer's (as the memory cgroup counts it), or someone else's; and whether `--expect-exit` may
//! turn its code into 0. Pure: the shell reads the cgroup, this decides what it means.

use std::fmt;

use crate::cgroup::{Bytes, Limit, OomKill};
use crate::exit_code::{ChildStatus, exit_code};

/// What a look at the memory cgroup found when a process ended (`None` where the cgroup cannot be read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryLook {
    /// OOM kills counted since the previous look, with the limit and the peak when there were any.
    pub new: Option<OomKill>,
    /// OOM kills counted since grace-init started, with the limit and the peak when there were any.
    pub since_start: Option<OomKill>,
}

/// Why a process ended, as far as grace-init can tell; printed after its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Nothing more to say: it exited, or a signal other than SIGKILL ended it.
    Plain,
    /// grace-init's own SIGKILL, at the end of the grace period.
    Deadline,
    /// A SIGKILL while the memory cgroup counted a new OOM kill: the kernel's OOM killer.
    OomKiller(OomKill),
    /// A SIGKILL grace-init did not send; `oom_ruled_out` when the memory cgroup counted no OOM kill.
    NotOurs { oom_ruled_out: bool },
    /// It ended by itself, while the OOM killer killed processes in the container: a shell wrapping the app
    /// exits 137 when the app was OOM-killed.
    OthersOomKilled(OomKill),
}

impl Cause {
    /// Why a process with `status` ended: `we_killed` when grace-init had sent it SIGKILL; `memory` what the
    /// cgroup said, if it could be read. `main` is the app itself, for which any OOM kill during the run is
    /// worth saying.
    pub fn of(
        status: ChildStatus,
        we_killed: bool,
        memory: Option<MemoryLook>,
        main: bool,
    ) -> Cause {
        if status.signal() == Some(libc::SIGKILL) {
            match memory {
                Some(MemoryLook { new: Some(oom), .. }) => Cause::OomKiller(oom),
                _ if we_killed => Cause::Deadline,
                Some(_) => Cause::NotOurs {
                    oom_ruled_out: true,
                },
                None => Cause::NotOurs {
                    oom_ruled_out: false,
                },
            }
        } else {
            match memory {
                Some(MemoryLook {
                    since_start: Some(oom),
                    ..
                }) if main => Cause::OthersOomKilled(oom),
                _ => Cause::Plain,
            }
        }
    }

    /// Whether `--expect-exit` must leave the code alone: it never hides grace-init's own SIGKILL (a grace
    /// period overrun) or an OOM kill.
    pub fn overrides_expect_exit(self) -> bool {
        matches!(
            self,
            Cause::Deadline | Cause::OomKiller(_) | Cause::OthersOomKilled(_)
        )
    }

    /// A short name for log collectors (the JSON `killed_by` field), for SIGKILL deaths.
    pub fn killed_by(self) -> Option<&'static str> {
        match self {
            Cause::Deadline => Some("grace-init"),
            Cause::OomKiller(_) => Some("oom-killer"),
            Cause::NotOurs { .. } => Some("not-grace-init"),
            Cause::Plain | Cause::OthersOomKilled(_) => None,
        }
    }

    /// The memory cgroup's report, when an OOM kill is part of the story.
    pub fn oom(self) -> Option<OomKill> {
        match self {
            Cause::OomKiller(oom) | Cause::OthersOomKilled(oom) => Some(oom),
            _ => None,
        }
    }
}

/// The exit code for the app's `status`, and whether a code listed with `--expect-exit` was kept because of
/// the cause.
pub fn final_code(status: ChildStatus, cause: Cause, expected: &[i32]) -> (i32, bool) {
    let mapped = exit_code(status, expected);
    if mapped != status.code() && cause.overrides_expect_exit() {
        (status.code(), true)
    } else {
        (mapped, false)
    }
}

/// "memory limit 64 MiB, peak 63.9 MiB", with whatever of the two could be read.
struct MemoryFacts(OomKill);

impl fmt::Display for MemoryFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.limit {
            Some(Limit::Bytes(b)) => write!(f, "memory limit {}", Bytes(b))?,
            Some(Limit::Unlimited) => f.write_str("no memory limit on its cgroup")?,
            None => f.write_str("memory limit unknown")?,
        }
        if let Some(peak) = self.0.peak {
            write!(f, ", peak {}", Bytes(peak))?;
        }
        Ok(())
    }
}

/// What follows the status: "was killed by SIGKILL" + " from the kernel's OOM killer (memory limit 64 MiB,
/// peak 64 MiB)".
impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cause::Plain => Ok(()),
            Cause::Deadline => f.write_str(" (grace-init's, at the end of the grace period)"),
            Cause::OomKiller(oom) => {
                write!(f, " from the kernel's OOM killer ({})", MemoryFacts(oom))
            }
            Cause::NotOurs {
                oom_ruled_out: true,
            } => f.write_str(" (not sent by grace-init, and not by the OOM killer)"),
            Cause::NotOurs {
                oom_ruled_out: false,
            } => f.write_str(" (not sent by grace-init)"),
            Cause::OthersOomKilled(oom) => write!(
                f,
                " (meanwhile the OOM killer killed {} process{} in the container; {})",
                oom.kills,
                if oom.kills == 1 { "" } else { "es" },
                MemoryFacts(oom)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KILL: ChildStatus = ChildStatus::Killed(libc::SIGKILL);
    const OOM: OomKill = OomKill {
        kills: 1,
        limit: Some(Limit::Bytes(64 << 20)),
        peak: Some(64 << 20),
    };
    const COUNTED: MemoryLook = MemoryLook {
        new: Some(OOM),
        since_start: Some(OOM),
    };
    const NONE_COUNTED: MemoryLook = MemoryLook {
        new: None,
        since_start: None,
    };

    #[test]
    fn a_sigkill_is_told_apart() {
        let table = [
            (KILL, false, Some(COUNTED), Cause::OomKiller(OOM)),
            // The counter is evidence: an OOM kill counted right at the deadline is still the OOM killer's.
            (KILL, true, Some(COUNTED), Cause::OomKiller(OOM)),
            (KILL, true, Some(NONE_COUNTED), Cause::Deadline),
            (KILL, true, None, Cause::Deadline),
            (
                KILL,
                false,
                Some(NONE_COUNTED),
                Cause::NotOurs {
                    oom_ruled_out: true,
                },
            ),
            (
                KILL,
                false,
                None,
                Cause::NotOurs {
                    oom_ruled_out: false,
                },
            ),
            (
                ChildStatus::Killed(libc::SIGTERM),
                false,
                Some(NONE_COUNTED),
                Cause::Plain,
            ),
            (
                ChildStatus::Exited(137),
                false,
                Some(COUNTED),
                Cause::OthersOomKilled(OOM),
            ),
            (ChildStatus::Exited(0), false, None, Cause::Plain),
        ];
        for (status, we_killed, memory, want) in table {
            assert_eq!(
                Cause::of(status, we_killed, memory, true),
                want,
                "{status:?} {we_killed} {memory:?}"
            );
        }
        // A leftover that exited by itself says nothing about other processes' OOM kills.
        assert_eq!(
            Cause::of(ChildStatus::Exited(1), false, Some(COUNTED), false),
            Cause::Plain
        );
    }

    #[test]
    fn expect_exit_never_hides_a_deadline_kill_or_an_oom_kill() {
        let table = [
            (KILL, Cause::Deadline, (137, true)),
            (KILL, Cause::OomKiller(OOM), (137, true)),
            (
                ChildStatus::Exited(137),
                Cause::OthersOomKilled(OOM),
                (137, true),
            ),
            (
                KILL,
                Cause::NotOurs {
                    oom_ruled_out: true,
                },
                (0, false),
            ),
            (ChildStatus::Exited(137), Cause::Plain, (0, false)),
            (
                ChildStatus::Killed(libc::SIGTERM),
                Cause::Plain,
                (143, false),
            ),
            // Nothing listed: nothing to keep.
            (ChildStatus::Exited(3), Cause::Deadline, (3, false)),
        ];
        for (status, cause, want) in table {
            assert_eq!(
                final_code(status, cause, &[137]),
                want,
                "{status:?} {cause:?}"
            );
        }
    }

    #[test]
    fn each_cause_reads_after_the_status() {
        let line = |status: ChildStatus, cause: Cause| format!("child {status}{cause}");
        assert_eq!(
            line(KILL, Cause::OomKiller(OOM)),
            "child was killed by SIGKILL from the kernel's OOM killer (memory limit 64 MiB, peak 64 MiB)"
        );
        assert_eq!(
            line(
                KILL,
                Cause::OomKiller(OomKill {
                    kills: 1,
                    limit: Some(Limit::Unlimited),
                    peak: None
                })
            ),
            "child was killed by SIGKILL from the kernel's OOM killer (no memory limit on its cgroup)"
        );
        assert_eq!(
            line(KILL, Cause::Deadline),
            "child was killed by SIGKILL (grace-init's, at the end of the grace period)"
        );
        assert_eq!(
            line(
                KILL,
                Cause::NotOurs {
                    oom_ruled_out: true
                }
            ),
            "child was killed by SIGKILL (not sent by grace-init, and not by the OOM killer)"
        );
        assert_eq!(
            line(
                KILL,
                Cause::NotOurs {
                    oom_ruled_out: false
                }
            ),
            "child was killed by SIGKILL (not sent by grace-init)"
        );
        assert_eq!(
            line(
                ChildStatus::Exited(137),
                Cause::OthersOomKilled(OomKill {
                    kills: 2,
                    limit: None,
                    peak: Some(1536)
                })
            ),
            "child exited with code 137 (meanwhile the OOM killer killed 2 processes in the container; \
             memory limit unknown, peak 1.5 KiB)"
        );
        assert_eq!(
            line(ChildStatus::Dumped(libc::SIGSEGV), Cause::Plain),
            "child was killed by SIGSEGV (core dumped)"
        );
    }
}
