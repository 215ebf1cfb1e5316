//! The words the supervisor and the shell share: what the command line asked for (`Policy`), whom a signal is
//! for (`Target`), whom it reached (`Reach`) or was refused for (`Refused`), what it could not look at (`Trouble`)
//! and what it could not reach (`Unreached`). Plain values with no behaviour of their own, so the state machine,
//! its notes, the deliverer and the command line can all use them without knowing one another.

use std::time::Duration;

use nix::errno::Errno;

use crate::comm::Comm;
use crate::signals::Rewrites;

/// With `--timeout infinity` there is no budget to take half of: the pre-stop command may run this long (or
/// the drain delay, if longer) before it is killed and the stop signal goes through regardless.
pub const PRE_STOP_LIMIT_WITHOUT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the supervisor was told to do by the command line.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Grace period from the first stop signal to SIGKILL; `None` waits forever.
    pub timeout: Option<Duration>,
    /// How long to keep the app serving after the stop signal before forwarding it.
    pub drain_delay: Duration,
    /// Whether a pre-stop command is configured.
    pub pre_stop: bool,
    /// With no timeout, how long the pre-stop command may run (or the drain delay, if longer):
    /// `PRE_STOP_LIMIT_WITHOUT_TIMEOUT` but in tests.
    pub pre_stop_limit: Duration,
    /// Received signals that start the grace period.
    pub stop_signals: Vec<i32>,
    /// How received signals are rewritten before forwarding.
    pub rewrites: Rewrites,
    /// Forward to the main child only instead of its process group.
    pub single_child: bool,
    /// Exit codes reported as 0.
    pub expect_exit: Vec<i32>,
    /// Warn when a process other than the main child and the pre-stop command is reaped (`--warn-reap`).
    pub warn_reap: bool,
    /// When the main child exits, wait for what it left running instead of stopping it (`--wait-all`).
    pub wait_all: bool,
}

/// Who a forwarded signal goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The main child's process group (its pgid is the child's pid), with one kill(-pgid). Only while the
    /// child is not reaped: its pid, and so the group id, cannot be reused before that.
    Group(i32),
    /// What is left of the child's group once the child is reaped: each member found and signalled by itself,
    /// since the group id may by now name someone else's group.
    Members(i32),
    /// The main child alone.
    Child(i32),
    /// What is left once the main child ended under `--wait-all`, each process found and signalled by itself:
    /// grace-init's own children (processes re-parented to it, such as a daemon), as PID 1 the processes
    /// entered from outside, and the members of `group` (the child's process group, unless `--single-child`)
    /// among its descendants.
    Rest { group: Option<i32> },
}

/// Whom a SIGTERM or SIGKILL to leftovers reached, besides the main child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// These many processes, each found and signalled by itself.
    Counted(usize),
    /// The child's process group as a whole (no /proc to count its members).
    Group(i32),
    /// Every process in the namespace, with kill(-1) (PID 1 without /proc to count them).
    Everyone,
    /// Nobody could be reached (a subreaper without /proc, once the child's group id may be reused).
    Nobody,
}

/// How many processes `Unreached` names, by pid and name; the rest are counted.
pub const NAMED: usize = 3;

/// What the shell found still there when grace-init stopped waiting after SIGKILL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unreached {
    /// Live processes /proc shows that grace-init waits for (its descendants; as PID 1 every other process),
    /// the main child left out.
    pub seen: usize,
    /// The first of them, by pid and name.
    pub named: [Option<(i32, Comm)>; NAMED],
    /// How many of them are grace-init's own children (those waitpid reports).
    pub children_seen: usize,
    /// /proc could not be read at all, for this reason: nothing above is known.
    pub unreadable: Option<Errno>,
}

/// /proc could not be read, or not all of it: why, and how many of the processes it listed could not be read
/// (0: not even the list). Such a process is neither signalled nor counted by name; it is never taken for gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trouble {
    pub why: Errno,
    pub unread: usize,
}

/// Processes a signal was refused for (EPERM: another user's process while grace-init lacks CAP_KILL, or a
/// security policy), besides those it reached: never counted as sent. `child` is the main child, which is no
/// leftover and so not in `others`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refused {
    pub child: bool,
    pub others: usize,
    /// Why the first refusal was made.
    pub why: Option<Errno>,
}

impl Refused {
    /// No refusal.
    pub const NONE: Refused = Refused {
        child: false,
        others: 0,
        why: None,
    };

    /// Whether any process refused it.
    pub fn any(&self) -> bool {
        self.child || self.others > 0
    }

    /// Counts one more leftover that refused it, for `why`.
    pub fn other(&mut self, why: Errno) {
        self.others += 1;
        self.why.get_or_insert(why);
    }
}
