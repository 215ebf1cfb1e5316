//! What the supervisor has to say, as plain values: the pure state machine decides what is said, and the shell
//! turns it into text only after it has acted. So a stop signal is forwarded before its two log lines are
//! formatted, and the supervisor never formats at all: the log costs nothing before the action is taken.

use std::fmt;
use std::time::Duration;

use crate::comm::Comm;
use crate::death::Cause;
use crate::duration::seconds;
use crate::exit_code::ChildStatus;
use crate::signals::name;
use crate::terms::{Reach, Refused, Target, Trouble, Unreached};

/// One log line of the supervisor, not yet formatted. Each variant prints as the line it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// A signal that is only forwarded.
    Received(i32),
    /// A signal rewritten to `none`.
    Dropped(i32),
    /// A signal for the child alone (`--single-child`) after the child was reaped.
    NotForwardedChildGone(i32),
    /// The first stop signal: the grace period (`None`: no time limit) starts.
    ShuttingDown {
        signal: i32,
        grace: Option<Duration>,
    },
    /// The drain delay before the stop signal is forwarded.
    Draining(Duration),
    /// A second stop signal during the drain: forward now.
    Hurried(i32),
    /// A stop signal once the stop was forwarded: forwarded again, same deadline.
    ReceivedAgain(i32),
    /// The stop signal, as rewritten, goes to the child or its group.
    ForwardingStop { signal: i32, target: Target },
    /// The stop signal is rewritten to `none`.
    StopDropped(i32),
    /// The pre-stop command was started: its command line.
    PreStopRunning(&'static str),
    /// The pre-stop command could not be started: its command line, and why.
    PreStopFailed {
        line: &'static str,
        why: nix::errno::Errno,
    },
    /// The pre-stop command ended (exit 0 is "finished").
    PreStopEnded { status: ChildStatus, took: Duration },
    /// The pre-stop command was still running at the end of its share of the grace period.
    PreStopOverran,
    /// The pre-stop command (`command`) was reaped after it was cut off, or a process of its group (named with
    /// `--warn-reap`).
    PreStopReaped {
        pid: i32,
        status: ChildStatus,
        name: Option<Comm>,
        command: bool,
    },
    /// A process other than the main child was reaped; with `--warn-reap`, named.
    Reaped {
        pid: i32,
        status: ChildStatus,
        cause: Cause,
        warn: bool,
        name: Option<Comm>,
    },
    /// The main child ended, `after` the stop signal was forwarded, before, or without one.
    ChildEnded {
        pid: i32,
        status: ChildStatus,
        cause: Cause,
        when: Stage,
        after: Duration,
    },
    /// The main child is gone and no status will come.
    StatusLost(i32),
    /// The child is gone, other processes remain: SIGTERM to them, SIGKILL in this long (`None`: never).
    LeftoversRemain(Option<Duration>),
    /// The main child ended and others remain: `--wait-all` waits for them (the shell then lists them).
    WaitingForRest,
    /// Under `--wait-all`, the last process the child left has exited, this long after the wait began.
    RestGone(Duration),
    /// The stop signal, as rewritten, went to what the child left under `--wait-all`: whom it reached, and whom
    /// it was refused for.
    ToldRest {
        signal: i32,
        reach: Reach,
        refused: Refused,
    },
    /// The grace period is over.
    GracePeriodOver,
    /// SIGTERM went to leftovers and reached someone, or was refused for someone.
    Terminated(Reach, Refused),
    /// SIGTERM to leftovers reached nobody.
    NoneToTerminate,
    /// Without /proc, as a subreaper: SIGTERM went to what was left of the child's process group as the child
    /// exited, while its zombie still held the group id.
    ToldGroup(i32),
    /// The SIGKILL at the deadline went out: to the main child (`child`, while it was not reaped and did not
    /// refuse it) and whom else; and whom it was refused for.
    Killed {
        child: bool,
        reach: Reach,
        refused: Refused,
    },
    /// Processes remained after SIGKILL: it was sent again.
    KilledAgain(Reach),
    /// /proc could not be read, or some of the processes it lists.
    CouldNotLook(Trouble),
    /// `waited` after the SIGKILL, grace-init stops waiting for what is left: the main child when it was not
    /// reaped, what /proc shows, and, with `hidden`, children waitpid reports that /proc does not show.
    GaveUp {
        waited: Duration,
        child: Option<i32>,
        unreached: Unreached,
        hidden: bool,
    },
    /// What is still running once the main child ended under `--wait-all`: how many, and the first by pid and
    /// name.
    StillRunning(Unreached),
    /// Processes remain that grace-init cannot wait for: `blind` without /proc, else not its children.
    CannotWait { blind: bool },
    /// The last line.
    Summary(Summary),
}

/// When the main child ended, relative to the stop signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// No stop signal came: `after` is how long it ran.
    Running,
    /// A stop signal came but was not forwarded yet: `after` counts from its arrival.
    BeforeForward,
    /// `after` counts from the forward.
    AfterForward,
}

/// How many leftovers got a signal, who else got it without being counted, and whether the main child got it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    counted: usize,
    group: Option<i32>,
    everyone: bool,
    /// Leftovers it was refused for: not in the count.
    refused: usize,
    /// The main child got it too (it is no leftover, so it is not in the count).
    pub child: bool,
    /// The main child refused it.
    pub child_refused: bool,
}

impl Tally {
    /// Leftovers that refused it: not sent, counted apart.
    pub fn refuse(&mut self, refused: Refused) {
        self.refused += refused.others;
        self.child_refused |= refused.child;
        self.child &= !refused.child;
    }

    pub fn add(&mut self, reach: Reach) {
        match reach {
            Reach::Counted(n) => self.counted += n,
            Reach::Group(g) => self.group = Some(g),
            Reach::Everyone => self.everyone = true,
            Reach::Nobody => {}
        }
    }
}

/// "2", "0 (and every process with kill -1, uncounted)", "1 (and process group 7, uncounted)". The child is
/// said by the line that prints the tally.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.counted)?;
        if self.everyone {
            f.write_str(" (and every process with kill -1, uncounted)")
        } else if let Some(g) = self.group {
            write!(f, " (and process group {g}, uncounted)")
        } else {
            Ok(())
        }
    }
}

/// " (2 refused)" after a tally's verb, when some refused it.
struct RefusedCount(usize);

impl fmt::Display for RefusedCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " ({n} refused)"),
        }
    }
}

/// "; refused for 1 process (operation not permitted)": leftovers a signal was refused for, if any.
struct RefusedFor(Refused);

impl fmt::Display for RefusedFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Refused { others, why, .. } = self.0;
        if others == 0 {
            return Ok(());
        }
        write!(f, "; refused for {}", Processes(others))?;
        if let Some(why) = why {
            write!(f, " ({})", why.desc().to_lowercase())?;
        }
        Ok(())
    }
}

/// "1 process", "3 processes".
struct Processes(usize);

impl fmt::Display for Processes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 process"),
            n => write!(f, "{n} processes"),
        }
    }
}

/// "1 other process", "3 other processes".
struct Others(usize);

impl fmt::Display for Others {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 other process"),
            n => write!(f, "{n} other processes"),
        }
    }
}

/// Whom a signal reached: "3 processes", "process group 7", "every process (kill -1)", "nobody".
struct Whom(Reach);

impl fmt::Display for Whom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reach::Counted(n) => Processes(n).fmt(f),
            Reach::Group(g) => write!(f, "process group {g}"),
            Reach::Everyone => f.write_str("every process (kill -1)"),
            Reach::Nobody => f.write_str("nobody"),
        }
    }
}

/// The one line that says why grace-init is exiting and how long each step took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub stop: Option<StopTimes>,
    /// How the main child ended; `None` when it had not ended when grace-init gave up waiting for it.
    pub status: Option<ChildStatus>,
    /// Why the child ended, beyond its status.
    pub cause: Cause,
    pub code: i32,
    /// Under `--wait-all`, the stop signal as forwarded to what the child left, and whom it reached.
    pub told_rest: Option<(i32, Tally)>,
    /// The code was listed with `--expect-exit` but kept: the cause is one it never hides.
    pub kept: bool,
    pub terminated: Tally,
    pub killed: Tally,
}

/// The steps of a stop, each present only when it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopTimes {
    pub signal: i32,
    /// Stop signal to forward, with a drain delay configured.
    pub drain: Option<Duration>,
    pub pre_stop: Option<Duration>,
    /// Forward to the child's exit.
    pub child_exit: Option<Duration>,
    /// Stop signal to exit.
    pub total: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.stop {
            Some(stop) => {
                write!(f, "exiting after stop signal {}", name(stop.signal))?;
                if let Some(drain) = stop.drain {
                    write!(f, "; drain {}", seconds(drain))?;
                }
                if let Some(took) = stop.pre_stop {
                    write!(f, "; pre-stop {}", seconds(took))?;
                }
                if let Some(took) = stop.child_exit {
                    write!(f, "; child exit {}", seconds(took))?;
                }
                write!(f, "; total {}", seconds(stop.total))?;
            }
            None => f.write_str("exiting: the child ended without a stop signal")?,
        }
        match self.status {
            Some(status) => write!(f, "; child {status}{}; leftovers: ", self.cause)?,
            None if self.killed.child_refused => {
                f.write_str("; child had not ended: its SIGKILL was refused; leftovers: ")?
            }
            None => f.write_str("; child had not ended after SIGKILL; leftovers: ")?,
        }
        if let Some((signal, told)) = self.told_rest {
            write!(
                f,
                "{told} forwarded {}{}, ",
                name(signal),
                RefusedCount(told.refused)
            )?;
        }
        write!(
            f,
            "{} sent SIGTERM{}, {} SIGKILLed{}",
            self.terminated,
            RefusedCount(self.terminated.refused),
            self.killed,
            RefusedCount(self.killed.refused)
        )?;
        if self.killed.child {
            f.write_str(", and the child")?;
        }
        write!(f, "; exit code {}", self.code)?;
        if self.kept {
            f.write_str(" (--expect-exit does not hide grace-init's SIGKILL or an OOM kill)")?;
        }
        Ok(())
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Note::Received(s) => write!(f, "received {}", name(s)),
            Note::Dropped(s) => write!(f, "{} dropped (rewritten to none)", name(s)),
            Note::NotForwardedChildGone(s) => {
                write!(f, "{} not forwarded: the child has exited", name(s))
            }
            Note::ShuttingDown {
                signal,
                grace: Some(t),
            } => write!(
                f,
                "received {}: shutting down, grace period {}",
                name(signal),
                seconds(t)
            ),
            Note::ShuttingDown {
                signal,
                grace: None,
            } => {
                write!(f, "received {}: shutting down, no time limit", name(signal))
            }
            Note::Draining(d) => write!(f, "draining for {} before forwarding", seconds(d)),
            Note::Hurried(s) => write!(
                f,
                "received {} again during the drain: forwarding now",
                name(s)
            ),
            Note::ReceivedAgain(s) => write!(
                f,
                "received {} again: forwarding it, deadline unchanged",
                name(s)
            ),
            Note::ForwardingStop { signal, target } => match target {
                Target::Group(pgid) | Target::Members(pgid) => {
                    write!(f, "forwarding {} to process group {pgid}", name(signal))
                }
                Target::Child(pid) => write!(f, "forwarding {} to child {pid}", name(signal)),
                Target::Rest { .. } => {
                    write!(f, "forwarding {} to every process left", name(signal))
                }
            },
            Note::StopDropped(s) => write!(f, "{} rewritten to none: not forwarded", name(s)),
            Note::PreStopEnded {
                status: ChildStatus::Exited(0),
                took,
            } => write!(f, "pre-stop command finished in {}", seconds(took)),
            Note::PreStopEnded { status, took } => {
                write!(f, "pre-stop command {status} after {}", seconds(took))
            }
            Note::PreStopRunning(line) => write!(f, "running pre-stop command: {line}"),
            Note::PreStopFailed { line, why } => write!(
                f,
                "cannot run pre-stop command '{line}': {}",
                std::io::Error::from_raw_os_error(why as i32)
            ),
            Note::PreStopOverran => {
                f.write_str("pre-stop command overran its share of the grace period: killing it")
            }
            Note::PreStopReaped {
                pid,
                status,
                command: true,
                ..
            } => write!(f, "pre-stop command (process {pid}) reaped: it {status}"),
            Note::PreStopReaped {
                pid, status, name, ..
            } => {
                write!(f, "reaped process {pid} (")?;
                match name {
                    Some(n) => write!(f, "{n}")?,
                    None => f.write_str("name unknown")?,
                }
                write!(f, ") of the pre-stop command: it {status}")
            }
            Note::Reaped {
                pid,
                status,
                cause,
                warn: true,
                name,
            } => {
                write!(f, "reaped process {pid} (")?;
                match name {
                    Some(n) => write!(f, "{n}")?,
                    None => f.write_str("name unknown")?,
                }
                write!(f, "), left behind by the app: it {status}{cause}")
            }
            Note::Reaped {
                pid, status, cause, ..
            } => write!(f, "reaped process {pid}: {status}{cause}"),
            Note::ChildEnded {
                pid,
                status,
                cause,
                when,
                after,
            } => {
                let after = seconds(after);
                match when {
                    Stage::AfterForward => write!(
                        f,
                        "child {pid} {status}{cause} {after} after the stop signal was forwarded"
                    ),
                    Stage::BeforeForward => write!(
                        f,
                        "child {pid} {status}{cause} {after} after the stop signal, before it was forwarded"
                    ),
                    Stage::Running => {
                        write!(f, "child {pid} {status}{cause} after running {after}")
                    }
                }
            }
            Note::StatusLost(child) => write!(
                f,
                "child {child} is gone and its exit status was lost (no child is left to wait for): exiting"
            ),
            Note::LeftoversRemain(Some(kill_in)) => write!(
                f,
                "the child is gone but processes remain: sending them SIGTERM, SIGKILL in {}",
                seconds(kill_in)
            ),
            Note::LeftoversRemain(None) => f.write_str(
                "the child is gone but processes remain: sending them SIGTERM, no time limit",
            ),
            Note::GracePeriodOver => {
                f.write_str("grace period over: sending SIGKILL to every process left")
            }
            Note::Terminated(reach, refused) => match reach {
                Reach::Group(g) => write!(
                    f,
                    "sent SIGTERM to process group {g} (its members cannot be counted without /proc)"
                ),
                Reach::Everyone => {
                    f.write_str("sent SIGTERM to every process (kill -1): /proc cannot list them")
                }
                reach => write!(f, "sent SIGTERM to {}{}", Whom(reach), RefusedFor(refused)),
            },
            Note::NoneToTerminate => f.write_str("no leftover process to send SIGTERM to"),
            Note::ToldGroup(g) => write!(
                f,
                "sent SIGTERM to what was left of process group {g} (uncounted without /proc)"
            ),
            Note::Killed {
                child,
                reach,
                refused,
            } => {
                if reach == Reach::Nobody && !child && !refused.any() {
                    return f.write_str(
                        "escalated, but no leftover process can be found without /proc: none was SIGKILLed",
                    );
                }
                if refused.child {
                    // What was refused first: the child, and any leftover with it; then whom it reached.
                    f.write_str("escalated: SIGKILL refused for the child")?;
                    if refused.others > 0 {
                        write!(f, " and {}", Others(refused.others))?;
                    }
                    if let Some(why) = refused.why {
                        write!(f, " ({})", why.desc().to_lowercase())?;
                    }
                    f.write_str("; sent to ")?;
                    return match reach {
                        Reach::Counted(n) => Others(n).fmt(f),
                        Reach::Group(g) => {
                            write!(f, "its process group {g} (uncounted without /proc)")
                        }
                        Reach::Everyone => {
                            f.write_str("every process (kill -1; uncounted without /proc)")
                        }
                        Reach::Nobody => f.write_str("no other process"),
                    };
                }
                f.write_str("escalated: SIGKILL to ")?;
                match (child, reach) {
                    (true, Reach::Counted(n)) => write!(f, "the child and {}", Others(n))?,
                    (false, Reach::Counted(n)) => Processes(n).fmt(f)?,
                    (true, Reach::Group(g)) => write!(
                        f,
                        "the child and its process group {g} (uncounted without /proc)"
                    )?,
                    (false, Reach::Group(g)) => {
                        write!(f, "process group {g} (uncounted without /proc)")?
                    }
                    (_, Reach::Everyone) => {
                        f.write_str("every process (kill -1; uncounted without /proc)")?
                    }
                    (true, Reach::Nobody) => f.write_str("the child alone")?,
                    (false, Reach::Nobody) => f.write_str("nobody")?,
                }
                if refused.others > 0 {
                    let whom = if child {
                        Others(refused.others).to_string()
                    } else {
                        Processes(refused.others).to_string()
                    };
                    write!(f, "; refused for {whom}")?;
                    if let Some(why) = refused.why {
                        write!(f, " ({})", why.desc().to_lowercase())?;
                    }
                }
                Ok(())
            }
            Note::WaitingForRest => f.write_str(
                "waiting for the processes it left to exit (--wait-all); a stop signal stops them",
            ),
            Note::RestGone(waited) => write!(
                f,
                "every process it left has exited, {} after the child",
                seconds(waited)
            ),
            Note::ToldRest {
                signal,
                reach: Reach::Nobody,
                ..
            } => write!(
                f,
                "no process left can be found without /proc: none was sent {}",
                name(signal)
            ),
            Note::ToldRest {
                signal,
                reach: Reach::Everyone | Reach::Group(_),
                ..
            } => write!(
                f,
                "sent {} to every process (kill -1): /proc cannot list them",
                name(signal)
            ),
            Note::ToldRest {
                signal,
                reach,
                refused,
            } => write!(
                f,
                "sent {} to {}{}",
                name(signal),
                Whom(reach),
                RefusedFor(refused)
            ),
            Note::GaveUp {
                waited,
                child,
                unreached,
                hidden,
            } => {
                write!(f, "gave up waiting {} after SIGKILL", seconds(waited))?;
                let mut said = false;
                let mut part = |f: &mut fmt::Formatter<'_>| {
                    f.write_str(if std::mem::replace(&mut said, true) {
                        "; "
                    } else {
                        ": "
                    })
                };
                if let Some(pid) = child {
                    part(f)?;
                    write!(f, "child {pid} has not ended")?;
                }
                if unreached.seen > 0 {
                    part(f)?;
                    write!(f, "{} still there:", Processes(unreached.seen))?;
                    let named = unreached.named.iter().flatten();
                    for (i, (pid, name)) in named.enumerate() {
                        let comma = if i == 0 { "" } else { "," };
                        write!(f, "{comma} {pid} ({name})")?;
                    }
                    if unreached.seen > unreached.named.iter().flatten().count() {
                        f.write_str(", …")?;
                    }
                }
                if hidden {
                    part(f)?;
                    f.write_str("waitpid reports children that /proc does not show (hidepid, or not dumpable)")?;
                }
                if let Some(errno) = unreached.unreadable {
                    part(f)?;
                    write!(f, "/proc cannot be read ({})", errno.desc().to_lowercase())?;
                }
                if !said {
                    f.write_str(": processes remain")?;
                }
                f.write_str("; exiting without them")
            }
            Note::CouldNotLook(Trouble { why, unread: 0 }) => write!(
                f,
                "cannot list the processes in /proc ({}): leftovers are reached only through the child's group \
                 (as PID 1, with kill -1)",
                why.desc().to_lowercase()
            ),
            Note::CouldNotLook(Trouble { why, unread }) => write!(
                f,
                "cannot read {} that /proc lists ({}): not signalled or counted by name",
                Processes(unread),
                why.desc().to_lowercase()
            ),
            Note::KilledAgain(reach) => write!(
                f,
                "processes remain after SIGKILL: swept again, reaching {}",
                Whom(reach)
            ),
            Note::CannotWait { blind } => write!(
                f,
                "processes remain that grace-init cannot wait for ({}): exiting without them",
                if blind {
                    "not visible without /proc"
                } else {
                    "not its children"
                }
            ),
            Note::StillRunning(Unreached {
                unreadable: Some(why),
                ..
            }) => match why {
                nix::errno::Errno::ENOENT => {
                    f.write_str("still running: processes grace-init cannot list without /proc")
                }
                why => write!(
                    f,
                    "still running: processes grace-init cannot list (/proc: {})",
                    why.desc().to_lowercase()
                ),
            },
            Note::StillRunning(running) => {
                write!(f, "still running: {}", Processes(running.seen))?;
                let named = running.named.iter().flatten();
                for (i, (pid, name)) in named.enumerate() {
                    f.write_str(if i == 0 { ": " } else { ", " })?;
                    write!(f, "{pid} ({name})")?;
                }
                let more = running.seen - running.named.iter().flatten().count().min(running.seen);
                if more > 0 {
                    write!(f, ", and {more} more")?;
                }
                Ok(())
            }
            Note::Summary(summary) => summary.fmt(f),
        }
    }
}

/// What a JSON log line carries as fields besides its text, for the lines that report how a process ended
/// and the summary: the signal, a core dump, who sent a SIGKILL, the memory cgroup's figures, the exit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    exit_code: Option<i32>,
    signal: Option<crate::signals::Name>,
    core_dumped: bool,
    killed_by: Option<&'static str>,
    oom: Option<crate::cgroup::OomKill>,
}

impl Fields {
    fn of(status: ChildStatus, cause: Cause) -> Fields {
        Fields {
            exit_code: None,
            signal: status.signal().map(name),
            core_dumped: matches!(status, ChildStatus::Dumped(_)),
            killed_by: cause.killed_by(),
            oom: cause.oom(),
        }
    }

    /// Whether there is any field to write.
    pub fn is_empty(&self) -> bool {
        *self == Fields::default()
    }
}

impl crate::logging::JsonFields for Fields {
    fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing into a Vec cannot fail; every value is a number, a boolean or a plain ASCII name.
        if let Some(code) = self.exit_code {
            let _ = write!(out, ",\"exit_code\":{code}");
        }
        if let Some(signal) = self.signal {
            let _ = write!(out, ",\"signal\":\"{signal}\"");
        }
        if self.core_dumped {
            out.extend_from_slice(b",\"core_dumped\":true");
        }
        if let Some(by) = self.killed_by {
            let _ = write!(out, ",\"killed_by\":\"{by}\"");
        }
        if let Some(oom) = self.oom {
            let _ = write!(out, ",\"oom_kills\":{}", oom.kills);
            match oom.limit {
                Some(crate::cgroup::Limit::Bytes(b)) => {
                    let _ = write!(out, ",\"memory_limit_bytes\":{b}");
                }
                Some(crate::cgroup::Limit::Unlimited) => {
                    out.extend_from_slice(b",\"memory_limit_bytes\":\"max\"");
                }
                None => {}
            }
            if let Some(peak) = oom.peak {
                let _ = write!(out, ",\"memory_peak_bytes\":{peak}");
            }
        }
    }
}

impl Note {
    /// The fields a JSON line carries for this note (none for most notes: see `Fields::is_empty`).
    pub fn fields(&self) -> Fields {
        match *self {
            Note::ChildEnded { status, cause, .. } | Note::Reaped { status, cause, .. } => {
                Fields::of(status, cause)
            }
            Note::Summary(summary) => Fields {
                exit_code: Some(summary.code),
                ..summary
                    .status
                    .map(|status| Fields::of(status, summary.cause))
                    .unwrap_or_default()
            },
            _ => Fields::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERM: i32 = libc::SIGTERM;

    /// Every note prints its line word for word: users and their log queries match on these.
    #[test]
    fn each_note_prints_its_line() {
        let ms = Duration::from_millis;
        let killed = ChildStatus::Killed(TERM);
        let rows: Vec<(Note, &str)> = vec![
            (Note::Received(libc::SIGUSR1), "received SIGUSR1"),
            (
                Note::Dropped(libc::SIGHUP),
                "SIGHUP dropped (rewritten to none)",
            ),
            (
                Note::NotForwardedChildGone(libc::SIGUSR2),
                "SIGUSR2 not forwarded: the child has exited",
            ),
            (
                Note::ShuttingDown {
                    signal: TERM,
                    grace: Some(ms(2500)),
                },
                "received SIGTERM: shutting down, grace period 2.500s",
            ),
            (
                Note::ShuttingDown {
                    signal: libc::SIGINT,
                    grace: None,
                },
                "received SIGINT: shutting down, no time limit",
            ),
            (
                Note::Draining(ms(5000)),
                "draining for 5.000s before forwarding",
            ),
            (
                Note::Hurried(TERM),
                "received SIGTERM again during the drain: forwarding now",
            ),
            (
                Note::ReceivedAgain(TERM),
                "received SIGTERM again: forwarding it, deadline unchanged",
            ),
            (
                Note::ForwardingStop {
                    signal: libc::SIGQUIT,
                    target: Target::Group(7),
                },
                "forwarding SIGQUIT to process group 7",
            ),
            (
                Note::ForwardingStop {
                    signal: TERM,
                    target: Target::Child(7),
                },
                "forwarding SIGTERM to child 7",
            ),
            (
                Note::StopDropped(TERM),
                "SIGTERM rewritten to none: not forwarded",
            ),
            (
                Note::PreStopEnded {
                    status: ChildStatus::Exited(0),
                    took: ms(120),
                },
                "pre-stop command finished in 0.120s",
            ),
            (
                Note::PreStopEnded {
                    status: ChildStatus::Exited(3),
                    took: ms(1),
                },
                "pre-stop command exited with code 3 after 0.001s",
            ),
            (
                Note::PreStopRunning("./deregister.sh --now"),
                "running pre-stop command: ./deregister.sh --now",
            ),
            (
                Note::PreStopFailed {
                    line: "./deregister.sh",
                    why: nix::errno::Errno::EAGAIN,
                },
                "cannot run pre-stop command './deregister.sh': Resource temporarily unavailable (os error 11)",
            ),
            (
                Note::PreStopOverran,
                "pre-stop command overran its share of the grace period: killing it",
            ),
            (
                Note::PreStopReaped {
                    pid: 40,
                    status: ChildStatus::Killed(9),
                    name: None,
                    command: true,
                },
                "pre-stop command (process 40) reaped: it was killed by SIGKILL",
            ),
            (
                Note::PreStopReaped {
                    pid: 41,
                    status: ChildStatus::Killed(9),
                    name: Some(Comm::new(b"sleep")),
                    command: false,
                },
                "reaped process 41 (sleep) of the pre-stop command: it was killed by SIGKILL",
            ),
            (
                Note::Reaped {
                    pid: 42,
                    status: ChildStatus::Exited(0),
                    cause: Cause::Plain,
                    warn: false,
                    name: None,
                },
                "reaped process 42: exited with code 0",
            ),
            (
                Note::Reaped {
                    pid: 42,
                    status: killed,
                    cause: Cause::Plain,
                    warn: true,
                    name: None,
                },
                "reaped process 42 (name unknown), left behind by the app: it was killed by SIGTERM",
            ),
            (
                Note::ChildEnded {
                    pid: 9,
                    cause: Cause::Plain,
                    status: killed,
                    when: Stage::AfterForward,
                    after: ms(30),
                },
                "child 9 was killed by SIGTERM 0.030s after the stop signal was forwarded",
            ),
            (
                Note::ChildEnded {
                    pid: 9,
                    cause: Cause::Plain,
                    status: ChildStatus::Exited(1),
                    when: Stage::BeforeForward,
                    after: ms(30),
                },
                "child 9 exited with code 1 0.030s after the stop signal, before it was forwarded",
            ),
            (
                Note::ChildEnded {
                    pid: 9,
                    cause: Cause::Plain,
                    status: ChildStatus::Exited(0),
                    when: Stage::Running,
                    after: ms(61_000),
                },
                "child 9 exited with code 0 after running 61.000s",
            ),
            (
                Note::StatusLost(9),
                "child 9 is gone and its exit status was lost (no child is left to wait for): exiting",
            ),
            (
                Note::LeftoversRemain(Some(ms(10_000))),
                "the child is gone but processes remain: sending them SIGTERM, SIGKILL in 10.000s",
            ),
            (
                Note::LeftoversRemain(None),
                "the child is gone but processes remain: sending them SIGTERM, no time limit",
            ),
            (
                Note::ForwardingStop {
                    signal: libc::SIGQUIT,
                    target: Target::Rest { group: Some(7) },
                },
                "forwarding SIGQUIT to every process left",
            ),
            (
                Note::WaitingForRest,
                "waiting for the processes it left to exit (--wait-all); a stop signal stops them",
            ),
            (
                Note::RestGone(ms(2500)),
                "every process it left has exited, 2.500s after the child",
            ),
            (
                Note::ToldRest {
                    signal: libc::SIGQUIT,
                    reach: Reach::Counted(1),
                    refused: Refused::NONE,
                },
                "sent SIGQUIT to 1 process",
            ),
            (
                Note::ToldRest {
                    signal: TERM,
                    reach: Reach::Everyone,
                    refused: Refused::NONE,
                },
                "sent SIGTERM to every process (kill -1): /proc cannot list them",
            ),
            (
                Note::ToldRest {
                    signal: TERM,
                    reach: Reach::Nobody,
                    refused: Refused::NONE,
                },
                "no process left can be found without /proc: none was sent SIGTERM",
            ),
            (
                Note::GracePeriodOver,
                "grace period over: sending SIGKILL to every process left",
            ),
            (
                Note::CannotWait { blind: true },
                "processes remain that grace-init cannot wait for (not visible without /proc): exiting without them",
            ),
            (
                Note::CannotWait { blind: false },
                "processes remain that grace-init cannot wait for (not its children): exiting without them",
            ),
            (
                Note::Terminated(Reach::Counted(1), Refused::NONE),
                "sent SIGTERM to 1 process",
            ),
            (
                Note::Terminated(Reach::Counted(3), Refused::NONE),
                "sent SIGTERM to 3 processes",
            ),
            (
                Note::Terminated(Reach::Group(7), Refused::NONE),
                "sent SIGTERM to process group 7 (its members cannot be counted without /proc)",
            ),
            (
                Note::Terminated(Reach::Everyone, Refused::NONE),
                "sent SIGTERM to every process (kill -1): /proc cannot list them",
            ),
            (
                Note::NoneToTerminate,
                "no leftover process to send SIGTERM to",
            ),
            (
                Note::Killed {
                    child: true,
                    reach: Reach::Counted(0),
                    refused: Refused::NONE,
                },
                "escalated: SIGKILL to the child and 0 other processes",
            ),
            (
                Note::Killed {
                    child: true,
                    reach: Reach::Counted(1),
                    refused: Refused::NONE,
                },
                "escalated: SIGKILL to the child and 1 other process",
            ),
            (
                Note::Killed {
                    child: false,
                    reach: Reach::Counted(2),
                    refused: Refused::NONE,
                },
                "escalated: SIGKILL to 2 processes",
            ),
            (
                Note::Killed {
                    child: true,
                    reach: Reach::Group(7),
                    refused: Refused::NONE,
                },
                "escalated: SIGKILL to the child and its process group 7 (uncounted without /proc)",
            ),
            (
                Note::Killed {
                    child: true,
                    reach: Reach::Everyone,
                    refused: Refused::NONE,
                },
                "escalated: SIGKILL to every process (kill -1; uncounted without /proc)",
            ),
            (
                Note::Killed {
                    child: false,
                    reach: Reach::Nobody,
                    refused: Refused::NONE,
                },
                "escalated, but no leftover process can be found without /proc: none was SIGKILLed",
            ),
            (
                Note::Killed {
                    child: false,
                    reach: Reach::Counted(0),
                    refused: Refused {
                        child: true,
                        others: 0,
                        why: Some(nix::errno::Errno::EPERM),
                    },
                },
                "escalated: SIGKILL refused for the child (operation not permitted); sent to 0 other processes",
            ),
            (
                Note::Killed {
                    child: false,
                    reach: Reach::Counted(1),
                    refused: Refused {
                        child: true,
                        others: 2,
                        why: Some(nix::errno::Errno::EPERM),
                    },
                },
                "escalated: SIGKILL refused for the child and 2 other processes (operation not permitted); sent to 1 \
                 other process",
            ),
            (
                Note::Killed {
                    child: true,
                    reach: Reach::Counted(0),
                    refused: Refused {
                        child: false,
                        others: 1,
                        why: Some(nix::errno::Errno::EPERM),
                    },
                },
                "escalated: SIGKILL to the child and 0 other processes; refused for 1 other process (operation not \
                 permitted)",
            ),
            (
                Note::Killed {
                    child: false,
                    reach: Reach::Counted(2),
                    refused: Refused {
                        child: false,
                        others: 1,
                        why: Some(nix::errno::Errno::EPERM),
                    },
                },
                "escalated: SIGKILL to 2 processes; refused for 1 process (operation not permitted)",
            ),
            (
                Note::Terminated(
                    Reach::Counted(0),
                    Refused {
                        child: false,
                        others: 2,
                        why: Some(nix::errno::Errno::EPERM),
                    },
                ),
                "sent SIGTERM to 0 processes; refused for 2 processes (operation not permitted)",
            ),
            (
                Note::CouldNotLook(Trouble {
                    why: nix::errno::Errno::EMFILE,
                    unread: 0,
                }),
                "cannot list the processes in /proc (too many open files): leftovers are reached only through the \
                 child's group (as PID 1, with kill -1)",
            ),
            (
                Note::CouldNotLook(Trouble {
                    why: nix::errno::Errno::EMFILE,
                    unread: 2,
                }),
                "cannot read 2 processes that /proc lists (too many open files): not signalled or counted by name",
            ),
            (
                Note::KilledAgain(Reach::Counted(1)),
                "processes remain after SIGKILL: swept again, reaching 1 process",
            ),
        ];
        for (note, want) in rows {
            assert_eq!(note.to_string(), want, "{note:?}");
        }
    }

    #[test]
    fn json_lines_carry_how_the_app_ended_as_fields() {
        use crate::cgroup::{Limit, OomKill};
        use crate::cli::LogFormat;
        let oom = OomKill {
            kills: 1,
            limit: Some(Limit::Bytes(64 << 20)),
            peak: Some(66_949_120),
        };
        let summary = Note::Summary(Summary {
            stop: None,
            status: Some(ChildStatus::Killed(libc::SIGKILL)),
            cause: Cause::OomKiller(oom),
            code: 137,
            told_rest: None,
            kept: false,
            terminated: Tally::default(),
            killed: Tally::default(),
        });
        let line = crate::logging::format_line_with(
            LogFormat::Json,
            log::Level::Info,
            &summary.to_string(),
            &summary.fields(),
        );
        assert!(
            line.ends_with(
                "; exit code 137\",\"exit_code\":137,\"signal\":\"SIGKILL\",\"killed_by\":\"oom-killer\",\
                 \"oom_kills\":1,\"memory_limit_bytes\":67108864,\"memory_peak_bytes\":66949120}\n"
            ),
            "{line}"
        );
        let dumped = Note::ChildEnded {
            pid: 9,
            status: ChildStatus::Dumped(libc::SIGSEGV),
            cause: Cause::Plain,
            when: Stage::Running,
            after: Duration::from_millis(5),
        };
        let line = crate::logging::format_line_with(
            LogFormat::Json,
            log::Level::Info,
            &dumped.to_string(),
            &dumped.fields(),
        );
        assert!(
            line.ends_with(
                "child 9 was killed by SIGSEGV (core dumped) after running 0.005s\",\"signal\":\"SIGSEGV\",\
                 \"core_dumped\":true}\n"
            ),
            "{line}"
        );
        assert!(Note::Received(libc::SIGHUP).fields().is_empty());
        // Text lines say it in words only.
        let text = crate::logging::format_line_with(
            LogFormat::Text,
            log::Level::Info,
            &summary.to_string(),
            &summary.fields(),
        );
        assert!(text.ends_with("exit code 137\n"), "{text}");
    }

    #[test]
    fn the_summary_lists_only_the_steps_that_happened() {
        let ms = Duration::from_millis;
        let mut killed = Tally::default();
        killed.add(Reach::Counted(2));
        let full = Summary {
            stop: Some(StopTimes {
                signal: TERM,
                drain: Some(ms(5000)),
                pre_stop: Some(ms(250)),
                child_exit: Some(ms(40)),
                total: ms(5300),
            }),
            status: Some(ChildStatus::Exited(0)),
            cause: Cause::Plain,
            code: 0,
            told_rest: None,
            kept: false,
            terminated: Tally::default(),
            killed,
        };
        assert_eq!(
            Note::Summary(full).to_string(),
            "exiting after stop signal SIGTERM; drain 5.000s; pre-stop 0.250s; child exit 0.040s; total 5.300s; \
             child exited with code 0; leftovers: 0 sent SIGTERM, 2 SIGKILLed; exit code 0"
        );
        let bare = Summary {
            stop: None,
            status: Some(ChildStatus::Exited(3)),
            cause: Cause::Plain,
            code: 3,
            told_rest: None,
            kept: false,
            terminated: Tally::default(),
            killed: Tally::default(),
        };
        assert_eq!(
            bare.to_string(),
            "exiting: the child ended without a stop signal; child exited with code 3; leftovers: 0 sent SIGTERM, \
             0 SIGKILLed; exit code 3"
        );
        let mut told = Tally::default();
        told.add(Reach::Counted(1));
        let waited = Summary {
            stop: Some(StopTimes {
                signal: TERM,
                drain: None,
                pre_stop: None,
                child_exit: None,
                total: ms(1000),
            }),
            told_rest: Some((libc::SIGQUIT, told)),
            ..bare
        };
        assert_eq!(
            waited.to_string(),
            "exiting after stop signal SIGTERM; total 1.000s; child exited with code 3; leftovers: 1 forwarded \
             SIGQUIT, 0 sent SIGTERM, 0 SIGKILLed; exit code 3"
        );
        let nginx = Comm::new(b"nginx");
        let mut running = Unreached {
            seen: 2,
            ..Unreached::default()
        };
        running.named[0] = Some((40, nginx));
        running.named[1] = Some((41, nginx));
        assert_eq!(
            Note::StillRunning(running).to_string(),
            "still running: 2 processes: 40 (nginx), 41 (nginx)"
        );
        running.named[2] = Some((42, nginx));
        running.seen = 11;
        assert_eq!(
            Note::StillRunning(running).to_string(),
            "still running: 11 processes: 40 (nginx), 41 (nginx), 42 (nginx), and 8 more"
        );
        let blind = Unreached {
            unreadable: Some(nix::errno::Errno::ENOENT),
            ..Unreached::default()
        };
        assert_eq!(
            Note::StillRunning(blind).to_string(),
            "still running: processes grace-init cannot list without /proc"
        );
        let child_killed = Summary {
            status: Some(ChildStatus::Killed(libc::SIGKILL)),
            code: 137,
            killed: Tally {
                child: true,
                ..Tally::default()
            },
            ..bare
        };
        assert!(
            child_killed
                .to_string()
                .ends_with("child was killed by SIGKILL; leftovers: 0 sent SIGTERM, 0 SIGKILLed, and the child; exit code 137"),
            "{child_killed}"
        );
    }
}
