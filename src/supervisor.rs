//! The pure shutdown state machine: turns each event into the actions to take and the lines to log. No
//! syscalls, no clock reads, no writes: the shell acts on the actions first and writes the lines after.
//!
//! The phases are derived from what has happened so far:
//! `Running` → (stop signal) `Preparing` (drain delay, pre-stop) → `Stopping` (signal forwarded, deadline armed)
//! → `Killing` (deadline passed, SIGKILL sent) → exit once no process is left. When the main child exits first,
//! its leftovers get SIGTERM and the same bounded wait; with `--wait-all` they are waited for instead, with no
//! deadline, and a stop signal during that wait stops them as it would have stopped the child.

use std::time::{Duration, Instant};

use log::{Level, LevelFilter};

use crate::comm::Comm;
use crate::death::{Cause, MemoryLook, final_code};
use crate::exit_code::{ChildStatus, STATUS_LOST};
use crate::note::{Note, Stage, StopTimes, Summary, Tally};
use crate::route::Route;
use crate::terms::{Policy, Reach, Refused, Target, Trouble, Unreached};

/// After SIGKILL, how often to sweep again while processes remain (for at most `KILL_WAIT`): a process that
/// forked between the walk of the tree and the kill, and whose orphan was re-parented to us silently, would
/// otherwise never be killed.
pub const RESWEEP: Duration = Duration::from_millis(100);

/// After the SIGKILL at the deadline, how long to wait for what it reached to be gone. Then grace-init exits
/// without what is left, and says what that is: a process SIGKILL cannot end (stuck in the kernel), or one it
/// cannot see or signal (hidepid, another user's). The deadline is a bound, not an intention: from the stop signal
/// (or the child's exit), grace-init is gone within the grace period and this.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

/// What one event came to: the actions to perform, in order, and what to log once they are done.
#[derive(Debug)]
pub struct Output {
    pub actions: Vec<Action>,
    notes: Vec<(Level, Note)>,
    /// Notes above this level are not even made.
    level: LevelFilter,
}

impl Output {
    /// An empty output keeping notes up to `level`. Reused across events, so steady state allocates nothing.
    pub fn new(level: LevelFilter) -> Output {
        Output {
            actions: Vec::with_capacity(8),
            notes: Vec::with_capacity(8),
            level,
        }
    }

    /// Whether notes at `level` are kept: checked before a note is even made.
    fn wants(&self, level: Level) -> bool {
        level <= self.level
    }

    /// What was said since the last `clear_notes`, in order: each note prints as its log line.
    pub fn notes(&self) -> impl Iterator<Item = (Level, &Note)> + '_ {
        self.notes.iter().map(|(level, note)| (*level, note))
    }

    /// Whether anything was said since the last `clear_notes` or `take_notes`.
    pub fn has_notes(&self) -> bool {
        !self.notes.is_empty()
    }

    /// Forgets the notes (once the shell has logged them), keeping the buffer.
    pub fn clear_notes(&mut self) {
        self.notes.clear();
    }

    /// Takes the notes made so far, so the shell can act before it logs them; an event the actions lead to
    /// (a pre-stop command started) makes its own notes meanwhile.
    pub fn take_notes(&mut self) -> Vec<(Level, Note)> {
        std::mem::take(&mut self.notes)
    }

    /// Gives a taken buffer back, emptied, for the next event (unless notes were made since).
    pub fn reuse_notes(&mut self, mut notes: Vec<(Level, Note)>) {
        if self.notes.is_empty() {
            notes.clear();
            self.notes = notes;
        }
    }
}

/// `say!(out, Info, note)`: a log line for the shell to format and write after it has acted. The note is made
/// only when its level is kept, and is never formatted here: the stop signal goes out before its lines are.
macro_rules! say {
    ($out:expr, $level:ident, $note:expr) => {
        if $out.wants(Level::$level) {
            $out.notes.push((Level::$level, $note))
        }
    };
}

/// Something that happened, as the shell saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A signal arrived from another process.
    Signal(i32),
    /// A process was reaped; `name` is known only with `--warn-reap` (read before it was reaped); `memory` is
    /// what the memory cgroup said, when the shell looked (the app's end, and a SIGKILL grace-init did not send).
    Reaped {
        pid: i32,
        status: ChildStatus,
        name: Option<Comm>,
        memory: Option<MemoryLook>,
    },
    /// A process of the pre-stop command's process group, other than the command itself, was reaped (told
    /// apart only with `--warn-reap`, from its group read before it was reaped).
    PreStopHelperReaped {
        pid: i32,
        status: ChildStatus,
        name: Option<Comm>,
    },
    /// The reap pass is over: what is left.
    Settled(Left),
    /// The pre-stop command was started with this pid.
    PreStopStarted { pid: i32, line: &'static str },
    /// The pre-stop command could not be started.
    PreStopFailed {
        line: &'static str,
        why: nix::errno::Errno,
    },
    /// The wait ended: time may have reached a deadline.
    Tick,
    /// A signal arrived and the shell already forwarded it, as `Supervisor::route` said to.
    Forwarded(i32),
    /// The shell sent SIGTERM (then SIGCONT) to the leftovers (`Action::TerminateLeftovers`): whom it reached,
    /// and whom it was refused for.
    Terminated(Reach, Refused),
    /// Without /proc, as a subreaper: the shell sent SIGTERM (then SIGCONT) to the child's process group `pgid`
    /// while the exited child's zombie still held its id, and another process was there to hear it (reaped in
    /// the same pass, or still left). Its members cannot be counted.
    ToldGroup(i32),
    /// The shell sent SIGKILL (`Action::KillAll`, `Action::KillAgain`): whom it reached besides the main child,
    /// and whom it was refused for (the main child among them).
    Killed(Reach, Refused),
    /// The shell forwarded the stop signal to what the child left (`Action::ForwardStop` to `Target::Rest`):
    /// whom it reached, and whom it was refused for.
    ToldRest(Reach, Refused),
    /// What the shell found still there (`Action::Survey`).
    Surveyed(Unreached),
    /// What the shell found running once the main child ended under `--wait-all` (`Action::ListRest`).
    Listed(Unreached),
    /// Looking for processes (to signal, count or wait for them), the shell could not read /proc, or some of it.
    CouldNotLook(Trouble),
}

/// What a reap pass leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    /// No process grace-init has to wait for.
    Nothing,
    /// Children of grace-init, as waitpid says.
    Children,
    /// As PID 1, only processes that are not its children (entered with `docker exec`). They get SIGTERM and
    /// the deadline like any leftover, but once SIGKILL has been sent grace-init does not wait for them: it
    /// cannot reap them, and they die with the namespace when it exits.
    Strangers,
}

/// What the shell must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `signal` to `target`.
    Forward { signal: i32, target: Target },
    /// Send the (rewritten) stop signal to `target`, noting which processes it reached first, so that
    /// leftovers are not told twice.
    ForwardStop { signal: i32, target: Target },
    /// Start the pre-stop command and report `PreStopStarted` or `PreStopFailed`.
    StartPreStop,
    /// The pre-stop command overran its share of the budget: SIGKILL its process group.
    KillPreStop(i32),
    /// SIGTERM every process left; with `skip_told`, not those the stop signal already reached.
    TerminateLeftovers { skip_told: bool },
    /// SIGKILL every process left.
    KillAll,
    /// SIGKILL again whatever is still there (a process that forked during the first sweep).
    KillAgain,
    /// Look at which processes are still running (the main child ended under `--wait-all`), and report them
    /// with `Event::Listed`.
    ListRest,
    /// Look at what is still there, and report it with `Event::Surveyed`: grace-init stops waiting for it.
    Survey,
    /// Exit with this code: nothing is left.
    Exit(i32),
}

/// Why the forwarding rule sends a signal nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unsent {
    /// Rewritten to `none`.
    Dropped,
    /// Meant for the child alone, which is reaped: its pid may be someone else's.
    ChildGone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreStop {
    NotConfigured,
    Idle,
    Starting { since: Instant },
    Running { pid: i32, since: Instant },
    Finished { took: Duration },
}

#[derive(Clone, Copy, Debug)]
struct Stop {
    signal: i32,
    at: Instant,
    /// When the drain delay ends.
    forward_at: Instant,
    /// When the stop signal was forwarded (or would have been, when rewritten to none).
    forwarded_at: Option<Instant>,
    /// Whether a signal actually went to the child's group then.
    delivered: bool,
    /// A second stop signal during the drain: forward at once.
    hurried: bool,
    /// Stop signals received since the first: each is forwarded, but only the first repeat is said at info
    /// level, so a flood of them (a supervisor retrying, `timeout` signalling the group) cannot push the
    /// shutdown's own lines out of a full stderr.
    repeats: u32,
}

/// The state machine. Create it once the child is running, then feed it events with `handle`.
#[derive(Debug)]
pub struct Supervisor {
    policy: Policy,
    /// What `route` hands out: `only_forwards` for every signal, worked out once, while the child runs.
    routes: Route,
    child: i32,
    started: Instant,
    stop: Option<Stop>,
    child_exit: Option<(ChildStatus, Instant)>,
    /// Why the main child ended, once it has.
    child_cause: Cause,
    /// The line grace-init ends with, once it is known: for the termination message.
    last_word: Option<Note>,
    /// Whether grace-init sent SIGKILL to the pre-stop command's group.
    pre_stop_killed: bool,
    pre_stop: PreStop,
    /// The pre-stop command's pid, which is also its process group id, once it was started.
    pre_stop_group: Option<i32>,
    deadline: Option<Instant>,
    leftovers_signalled: bool,
    reaped_since_pass: bool,
    killed_at: Option<Instant>,
    last_kill: Option<Instant>,
    /// Since when what the main child left is waited for (`--wait-all`), before any stop signal.
    waited: Option<Instant>,
    /// The stop signal as forwarded to what the child left under `--wait-all`, and whom it reached.
    told_rest: Option<(i32, Tally)>,
    left: Left,
    /// SIGKILL reached leftovers only as a group or not at all: the shell cannot list processes (a subreaper
    /// without /proc), so once that SIGKILL went out nothing more can be found to wait for.
    blind: bool,
    terminated: Tally,
    killed: Tally,
    /// Whether the first SIGKILL's reach has been reported (`Event::Killed`); later ones are sweeps.
    killed_reported: bool,
    /// The last reason /proc could not be read that was said (`Event::CouldNotLook`).
    trouble_said: Option<nix::errno::Errno>,
    done: bool,
}

impl Supervisor {
    /// The pre-stop command's process group (its pid) once it was started: processes reaped from that group are
    /// the command's, not the app's (see `Event::PreStopHelperReaped`).
    pub fn pre_stop_group(&self) -> Option<i32> {
        self.pre_stop_group
    }

    /// A supervisor for the main child `child`, started at `now`.
    pub fn new(policy: Policy, child: i32, now: Instant) -> Supervisor {
        let pre_stop = if policy.pre_stop {
            PreStop::Idle
        } else {
            PreStop::NotConfigured
        };
        let mut supervisor = Supervisor {
            policy,
            routes: Route::build(|_| None),
            child,
            started: now,
            stop: None,
            child_exit: None,
            child_cause: Cause::Plain,
            last_word: None,
            pre_stop_killed: false,
            pre_stop,
            pre_stop_group: None,
            deadline: None,
            leftovers_signalled: false,
            reaped_since_pass: false,
            killed_at: None,
            last_kill: None,
            waited: None,
            told_rest: None,
            left: Left::Children,
            blind: false,
            terminated: Tally::default(),
            killed: Tally::default(),
            killed_reported: false,
            trouble_said: None,
            done: false,
        };
        supervisor.routes = Route::build(|signal| supervisor.only_forwards(signal));
        supervisor
    }

    /// The signals the shell may forward the moment it reads them, then report with `Event::Forwarded`: what
    /// `only_forwards` said for each while the app ran and no stop had begun, which holds for as long as that
    /// state lasts (its answers depend on the policy and on whether the child is reaped). `None` afterwards.
    pub fn route(&self) -> Option<&Route> {
        (!self.done && self.stop.is_none() && self.child_exit.is_none()).then_some(&self.routes)
    }

    /// What receiving `signal` now comes to when all there is to do is forward it with one `kill(2)`: what it is
    /// sent as and the pid to send it to (minus the group id for the child's group). `None` when it does more (a
    /// stop signal), or nothing (rewritten to `none`, the child gone), or needs a search (the group's members).
    /// The very rule `step` forwards by.
    pub fn only_forwards(&self, signal: i32) -> Option<(i32, i32)> {
        if self.done || self.is_stop(signal) {
            return None;
        }
        match self.forwarding(signal) {
            Ok((as_signal, Target::Group(pgid))) => Some((as_signal, -pgid)),
            Ok((as_signal, Target::Child(pid))) => Some((as_signal, pid)),
            Ok((_, Target::Members(_) | Target::Rest { .. })) | Err(_) => None,
        }
    }

    /// The earliest instant at which a `Tick` has something to do; `None` means sleep until a signal.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        let pre_stop_busy = matches!(
            self.pre_stop,
            PreStop::Running { .. } | PreStop::Starting { .. }
        );
        if pre_stop_busy {
            // Its exit wakes us; the cutoff is never before the end of the drain.
            consider(self.pre_stop_cutoff());
        } else if let Some(stop) = self.stop {
            if stop.forwarded_at.is_none() && self.stop_target().is_some() {
                consider(Some(stop.forward_at));
            }
        }
        match self.last_kill {
            None => consider(self.deadline),
            Some(last) if self.left != Left::Nothing => consider(last.checked_add(RESWEEP)),
            Some(_) => {}
        }
        next
    }

    /// Whether the main child has not been reaped yet.
    pub fn child_alive(&self) -> bool {
        self.child_exit.is_none()
    }

    /// The main child's pid, which is also its process group id.
    pub fn child(&self) -> i32 {
        self.child
    }

    /// Whether grace-init has sent SIGKILL to every process left (the grace period is over): a SIGKILL death
    /// before that was someone else's, and the shell asks the memory cgroup about it.
    pub fn sent_sigkill(&self) -> bool {
        self.killed_at.is_some()
    }

    /// The line grace-init ends with (the summary, or why no status came), once the supervisor has decided to
    /// exit: what the shell writes as the termination message.
    pub fn last_word(&self) -> Option<Note> {
        self.last_word
    }

    /// Turns one event at time `now` into the actions to perform, in order, appended to `out.actions`, and
    /// what is to be said about it, appended to `out` (see `Output::notes`). The shell acts first and writes the lines after.
    pub fn step(&mut self, event: Event, now: Instant, out: &mut Output) {
        if self.done {
            return;
        }
        match event {
            Event::Signal(signal) => self.on_signal(signal, now, out),
            Event::Reaped {
                pid,
                status,
                name,
                memory,
            } => self.on_reaped(pid, status, name, memory, now, out),
            Event::Settled(left) => self.on_settled(left, now, out),
            Event::PreStopStarted { pid, line } => {
                say!(out, Info, Note::PreStopRunning(line));
                if let PreStop::Starting { since } = self.pre_stop {
                    self.pre_stop = PreStop::Running { pid, since };
                    self.pre_stop_group = Some(pid);
                }
            }
            Event::PreStopHelperReaped { pid, status, name } => {
                self.reaped_since_pass = true;
                say!(
                    out,
                    Debug,
                    Note::PreStopReaped {
                        pid,
                        status,
                        name,
                        command: false
                    }
                );
            }
            Event::PreStopFailed { line, why } => {
                say!(out, Warn, Note::PreStopFailed { line, why });
                if let PreStop::Starting { since } = self.pre_stop {
                    self.pre_stop = PreStop::Finished {
                        took: now.saturating_duration_since(since),
                    };
                }
                self.forward_stop_when_ready(now, out);
            }
            Event::Tick => self.on_tick(now, out),
            // What `route` promised: the signal went out as `step` would have sent it; only the line is left.
            Event::Forwarded(signal) => say!(out, Debug, Note::Received(signal)),
            Event::Terminated(reach, refused) => self.on_terminated(reach, refused, out),
            Event::Killed(reach, refused) => self.on_killed(reach, refused, out),
            Event::ToldGroup(pgid) => {
                self.terminated.add(Reach::Group(pgid));
                say!(out, Info, Note::ToldGroup(pgid));
            }
            Event::ToldRest(reach, refused) => {
                if let Some((signal, tally)) = &mut self.told_rest {
                    tally.add(reach);
                    tally.refuse(refused);
                    let said = Note::ToldRest {
                        signal: *signal,
                        reach,
                        refused,
                    };
                    match reach {
                        _ if refused.any() => say!(out, Warn, said),
                        Reach::Nobody => say!(out, Warn, said),
                        _ => say!(out, Info, said),
                    }
                }
            }
            Event::Surveyed(unreached) => self.give_up(unreached, now, out),
            Event::Listed(running) => say!(out, Info, Note::StillRunning(running)),
            Event::CouldNotLook(trouble) => {
                // Said once for each reason: the shell looks again after every reap, and would say it each time.
                if self.trouble_said != Some(trouble.why) {
                    self.trouble_said = Some(trouble.why);
                    say!(out, Warn, Note::CouldNotLook(trouble));
                }
            }
        }
    }

    /// `step` for the tables of the unit tests: the actions alone.
    #[cfg(test)]
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Output::new(log::LevelFilter::Trace);
        self.step(event, now, &mut out);
        out.actions
    }

    fn target(&self) -> Target {
        if self.policy.single_child {
            Target::Child(self.child)
        } else {
            Target::Group(self.child)
        }
    }

    /// What is left of the app once the main child ended under `--wait-all`.
    fn rest(&self) -> Target {
        let group = (!self.policy.single_child).then_some(self.child);
        Target::Rest { group }
    }

    /// Whom a stop signal now is for: the main child (or its group) while it runs, or what it left while that is
    /// waited for (`--wait-all`). `None` once the child is gone otherwise: its leftovers get SIGTERM instead.
    fn stop_target(&self) -> Option<Target> {
        match self.child_exit {
            None => Some(self.target()),
            Some(_) if self.waited.is_some() && !self.leftovers_signalled => Some(self.rest()),
            Some(_) => None,
        }
    }

    fn forward(&self, received: i32, out: &mut Output) {
        match self.forwarding(received) {
            Ok((signal, target)) => out.actions.push(Action::Forward { signal, target }),
            Err(Unsent::Dropped) => say!(out, Debug, Note::Dropped(received)),
            Err(Unsent::ChildGone) => say!(out, Debug, Note::NotForwardedChildGone(received)),
        }
    }

    /// The forwarding rule: what `received` is sent as, and to whom; or why it is not sent.
    fn forwarding(&self, received: i32) -> Result<(i32, Target), Unsent> {
        let signal = self
            .policy
            .rewrites
            .apply(received)
            .ok_or(Unsent::Dropped)?;
        let target = match (self.child_exit, self.target()) {
            (None, target) => target,
            (Some(_), _) if self.policy.wait_all => self.rest(),
            (Some(_), Target::Group(pgid) | Target::Members(pgid)) => Target::Members(pgid),
            // The child's pid may already belong to another process: do not signal it.
            (Some(_), Target::Child(_) | Target::Rest { .. }) => return Err(Unsent::ChildGone),
        };
        Ok((signal, target))
    }

    fn is_stop(&self, signal: i32) -> bool {
        self.policy.stop_signals.contains(&signal)
    }

    fn on_signal(&mut self, signal: i32, now: Instant, out: &mut Output) {
        let is_stop = self.is_stop(signal);
        match (is_stop, self.stop) {
            (true, None) => {
                self.deadline = self.earliest_deadline(now);
                let forward_at = now.checked_add(self.policy.drain_delay).unwrap_or(now);
                self.stop = Some(Stop {
                    signal,
                    at: now,
                    forward_at,
                    forwarded_at: None,
                    delivered: false,
                    hurried: false,
                    repeats: 0,
                });
                let grace = self.policy.timeout;
                say!(out, Info, Note::ShuttingDown { signal, grace });
                let for_app = self.stop_target().is_some();
                if !self.policy.drain_delay.is_zero() && for_app {
                    say!(out, Info, Note::Draining(self.policy.drain_delay));
                }
                if self.pre_stop == PreStop::Idle && for_app {
                    self.pre_stop = PreStop::Starting { since: now };
                    out.actions.push(Action::StartPreStop);
                }
                self.forward_stop_when_ready(now, out);
            }
            (true, Some(mut stop))
                if stop.forwarded_at.is_none() && self.stop_target().is_some() =>
            {
                say!(out, Info, Note::Hurried(signal));
                stop.hurried = true;
                self.stop = Some(stop);
                self.forward_stop_when_ready(now, out);
            }
            (true, Some(mut stop)) => {
                stop.repeats = stop.repeats.saturating_add(1);
                self.stop = Some(stop);
                if stop.repeats == 1 {
                    say!(out, Info, Note::ReceivedAgain(signal));
                } else {
                    say!(out, Debug, Note::ReceivedAgain(signal));
                }
                self.forward(signal, out);
            }
            (false, _) => {
                say!(out, Debug, Note::Received(signal));
                self.forward(signal, out);
            }
        }
    }

    /// The grace deadline counted from `now`, never later than one already armed.
    fn earliest_deadline(&self, now: Instant) -> Option<Instant> {
        let fresh = self.policy.timeout.and_then(|t| now.checked_add(t));
        match (self.deadline, fresh) {
            (Some(armed), Some(fresh)) => Some(armed.min(fresh)),
            (armed, fresh) => armed.or(fresh),
        }
    }

    /// The pre-stop command may use half of the grace period, or the drain delay if that is longer,
    /// so the app itself always keeps a real share of the budget.
    fn pre_stop_cutoff(&self) -> Option<Instant> {
        let stop = self.stop?;
        let share = self
            .policy
            .timeout
            .map_or(self.policy.pre_stop_limit, |t| t / 2);
        Some(stop.at.checked_add(share)?.max(stop.forward_at))
    }

    fn forward_stop_when_ready(&mut self, now: Instant, out: &mut Output) {
        let (Some(mut stop), Some(target)) = (self.stop, self.stop_target()) else {
            return;
        };
        if stop.forwarded_at.is_some() {
            return;
        }
        let drained = stop.hurried || now >= stop.forward_at;
        let pre_stop_busy = matches!(
            self.pre_stop,
            PreStop::Starting { .. } | PreStop::Running { .. }
        );
        if !drained || (pre_stop_busy && !stop.hurried) {
            return;
        }
        stop.forwarded_at = Some(now);
        match self.policy.rewrites.apply(stop.signal) {
            Some(signal) => {
                say!(out, Info, Note::ForwardingStop { signal, target });
                if let Target::Rest { .. } = target {
                    self.told_rest = Some((signal, Tally::default()));
                }
                out.actions.push(Action::ForwardStop { signal, target });
                // A stopped app (Ctrl-Z, SIGSTOP) cannot act on the signal until it runs again.
                if signal != libc::SIGCONT {
                    out.actions.push(Action::Forward {
                        signal: libc::SIGCONT,
                        target,
                    });
                }
                stop.delivered = true;
            }
            None => say!(out, Info, Note::StopDropped(stop.signal)),
        }
        self.stop = Some(stop);
        if let Target::Rest { .. } = target {
            // What the child left has been told: from here on it is stopped like any leftovers.
            self.leftovers_signalled = true;
            self.reaped_since_pass = false;
        }
        self.kill_if_due(now, out);
    }

    fn on_reaped(
        &mut self,
        pid: i32,
        status: ChildStatus,
        name: Option<Comm>,
        memory: Option<MemoryLook>,
        now: Instant,
        out: &mut Output,
    ) {
        self.reaped_since_pass = true;
        if let PreStop::Running {
            pid: pre_pid,
            since,
        } = self.pre_stop
        {
            if pid == pre_pid {
                let took = now.saturating_duration_since(since);
                self.pre_stop = PreStop::Finished { took };
                let ended = Note::PreStopEnded { status, took };
                match status {
                    ChildStatus::Exited(0) => say!(out, Info, ended),
                    _ => say!(out, Warn, ended),
                }
                self.forward_stop_when_ready(now, out);
                return;
            }
        }
        if self.pre_stop_group == Some(pid) {
            // The pre-stop command, reaped after it was cut off: it is not something the app left behind.
            let reaped = Note::PreStopReaped {
                pid,
                status,
                name,
                command: true,
            };
            say!(out, Info, reaped);
            return;
        }
        let we_killed = self.killed_at.is_some();
        if pid != self.child {
            // --warn-reap: a zombie the app left behind, named.
            let warn = self.policy.warn_reap;
            let cause = match Cause::of(status, we_killed, memory, false) {
                // The overrunning pre-stop command's group got grace-init's SIGKILL: no claim either way.
                Cause::NotOurs { .. } if self.pre_stop_killed => Cause::Plain,
                cause => cause,
            };
            let reaped = Note::Reaped {
                pid,
                status,
                cause,
                warn,
                name,
            };
            if warn || matches!(cause, Cause::OomKiller(_)) {
                say!(out, Warn, reaped);
            } else {
                say!(out, Debug, reaped);
            }
            return;
        }
        self.child_exit = Some((status, now));
        // A SIGKILL the child refused is not what ended it.
        let cause = Cause::of(
            status,
            we_killed && !self.killed.child_refused,
            memory,
            true,
        );
        self.child_cause = cause;
        let ended = |when, since: Instant| Note::ChildEnded {
            pid,
            status,
            cause,
            when,
            after: now.saturating_duration_since(since),
        };
        match self.stop {
            Some(Stop {
                forwarded_at: Some(forwarded),
                ..
            }) => say!(out, Info, ended(Stage::AfterForward, forwarded)),
            Some(stop) => say!(out, Info, ended(Stage::BeforeForward, stop.at)),
            // With --wait-all the wait that follows is explained at info; otherwise the summary line says it.
            None if self.policy.wait_all => say!(out, Info, ended(Stage::Running, self.started)),
            None => say!(out, Debug, ended(Stage::Running, self.started)),
        }
    }

    fn on_settled(&mut self, left: Left, now: Instant, out: &mut Output) {
        self.left = left;
        let children_left = left != Left::Nothing;
        let Some((status, _)) = self.child_exit else {
            if !children_left {
                // No child is left, yet the main child was never reaped: someone else reaped it (SIGCHLD was
                // ignored when grace-init started, or another reaper took it). Its status is lost; waiting on
                // would be waiting forever.
                say!(out, Error, Note::StatusLost(self.child));
                self.last_word = Some(Note::StatusLost(self.child));
                self.done = true;
                out.actions.push(Action::Exit(STATUS_LOST));
            }
            return;
        };
        if !children_left {
            if let (Some(since), None) = (self.waited, self.stop) {
                say!(
                    out,
                    Info,
                    Note::RestGone(now.saturating_duration_since(since))
                );
            }
            self.finish(Some(status), now, out);
            return;
        }
        if self.killed_at.is_some() {
            return;
        }
        // --wait-all: what the child left is waited for, with no deadline, until a stop signal. Processes that
        // are not grace-init's (PID 1: entered from outside) are not: they send no SIGCHLD, so only a periodic
        // look could tell when they are gone; once nothing else is left they are stopped as any leftovers.
        if self.policy.wait_all && self.stop.is_none() && left != Left::Strangers {
            if self.waited.is_none() {
                self.waited = Some(now);
                say!(out, Info, Note::WaitingForRest);
                out.actions.push(Action::ListRest);
            }
            return;
        }
        if self.stop.is_some() && self.stop_target().is_some() {
            // A stop signal during that wait: the drain delay and the pre-stop command come first.
            return;
        }
        let skip_told = self.stop.is_some_and(|s| s.delivered);
        if self.leftovers_signalled {
            // A process that exited may have handed its children over to grace-init: tell those too. Not when a
            // stop signal rewritten to none was all the rest of a --wait-all was to get.
            let dropped = self.waited.is_some() && self.stop.is_some_and(|s| !s.delivered);
            if self.reaped_since_pass && !dropped {
                self.reaped_since_pass = false;
                out.actions.push(Action::TerminateLeftovers { skip_told });
            }
            return;
        }
        {
            self.leftovers_signalled = true;
            self.reaped_since_pass = false;
            // Processes the stop signal reached are not told again: a second signal can mean "hurry".
            self.deadline = self.earliest_deadline(now);
            let kill_in = self.deadline.map(|d| d.saturating_duration_since(now));
            say!(out, Info, Note::LeftoversRemain(kill_in));
            out.actions.push(Action::TerminateLeftovers { skip_told });
            self.kill_if_due(now, out);
        }
    }

    fn on_tick(&mut self, now: Instant, out: &mut Output) {
        let busy = match self.pre_stop {
            PreStop::Running { pid, since } => Some((Some(pid), since)),
            PreStop::Starting { since } => Some((None, since)),
            _ => None,
        };
        if let Some((pid, since)) = busy {
            if self.pre_stop_cutoff().is_some_and(|cutoff| now >= cutoff) {
                say!(out, Warn, Note::PreStopOverran);
                self.pre_stop = PreStop::Finished {
                    took: now.saturating_duration_since(since),
                };
                if let Some(pid) = pid {
                    out.actions.push(Action::KillPreStop(pid));
                    self.pre_stop_killed = true;
                }
            }
        }
        self.forward_stop_when_ready(now, out);
        self.kill_if_due(now, out);
    }

    fn kill_if_due(&mut self, now: Instant, out: &mut Output) {
        if let Some(last) = self.last_kill {
            let left = self.left != Left::Nothing;
            if left && last.checked_add(RESWEEP).is_some_and(|at| now >= at) {
                self.last_kill = Some(now);
                let waited_enough = self
                    .killed_at
                    .and_then(|killed| killed.checked_add(KILL_WAIT))
                    .is_some_and(|end| now >= end);
                match self.child_exit {
                    Some((status, _)) if self.blind || self.left == Left::Strangers => {
                        say!(out, Warn, Note::CannotWait { blind: self.blind });
                        self.finish(Some(status), now, out);
                    }
                    _ if waited_enough => out.actions.push(Action::Survey),
                    _ => out.actions.push(Action::KillAgain),
                }
            }
            return;
        }
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        self.killed_at = Some(now);
        self.last_kill = Some(now);
        self.killed.child = self.child_exit.is_none();
        say!(out, Info, Note::GracePeriodOver);
        out.actions.push(Action::KillAll);
    }

    /// What the leftovers' SIGTERM reached, counted for the summary and said now; a refusal is no SIGTERM sent.
    fn on_terminated(&mut self, reach: Reach, refused: Refused, out: &mut Output) {
        self.terminated.add(reach);
        self.terminated.refuse(refused);
        match reach {
            _ if refused.any() => say!(out, Warn, Note::Terminated(reach, refused)),
            Reach::Counted(0) | Reach::Nobody => say!(out, Debug, Note::NoneToTerminate),
            _ => say!(out, Info, Note::Terminated(reach, refused)),
        }
    }

    /// What a SIGKILL reached: the first one, at the deadline, is said; later sweeps catch what forked during
    /// the one before, and are counted in the summary with it (the shell counts each process once).
    fn on_killed(&mut self, reach: Reach, refused: Refused, out: &mut Output) {
        if self.killed_reported {
            // Only processes no sweep before reached are in `reach`: the summary counts them too.
            self.killed.add(reach);
            self.killed.refuse(refused);
            say!(out, Debug, Note::KilledAgain(reach));
            return;
        }
        self.killed_reported = true;
        self.killed.add(reach);
        // A refused SIGKILL is not one sent: the child is not said to have got it.
        self.killed.refuse(refused);
        // Reached only as a group, or nobody: the shell cannot list processes.
        self.blind = matches!(reach, Reach::Group(_) | Reach::Nobody);
        let child = self.killed.child;
        let said = Note::Killed {
            child,
            reach,
            refused,
        };
        match reach {
            _ if refused.any() => say!(out, Warn, said),
            Reach::Nobody if !child => say!(out, Warn, said),
            _ => say!(out, Info, said),
        }
    }

    /// Stops waiting: `KILL_WAIT` has passed since the SIGKILL and processes remain. What is left is said, and
    /// grace-init exits with the child's code; a child still not reaped will die of the SIGKILL it was sent.
    fn give_up(&mut self, unreached: Unreached, now: Instant, out: &mut Output) {
        let waited = self.killed_at.map_or(Duration::ZERO, |killed| {
            now.saturating_duration_since(killed)
        });
        // waitpid says grace-init has children; /proc shows none of them.
        let hidden = self.left == Left::Children
            && unreached.children_seen == 0
            && unreached.unreadable.is_none()
            && self.child_exit.is_some();
        let child = self.child_exit.is_none().then_some(self.child);
        say!(
            out,
            Warn,
            Note::GaveUp {
                waited,
                child,
                unreached,
                hidden
            }
        );
        let status = self.child_exit.map(|(status, _)| status);
        self.finish(status, now, out);
    }

    /// Ends the run with the child's status, or, when it never came (`None`: the child outlived its SIGKILL by
    /// `KILL_WAIT`), with the code of the SIGKILL it will die of.
    fn finish(&mut self, status: Option<ChildStatus>, now: Instant, out: &mut Output) {
        self.done = true;
        let ending = status.unwrap_or(ChildStatus::Killed(libc::SIGKILL));
        // A child that outlived grace-init's SIGKILL dies of that SIGKILL: --expect-exit does not hide it.
        let cause = if status.is_some() {
            self.child_cause
        } else {
            Cause::Deadline
        };
        let (code, kept) = final_code(ending, cause, &self.policy.expect_exit);
        let summary = Note::Summary(self.summary(status, code, kept, now));
        self.last_word = Some(summary);
        say!(out, Info, summary);
        out.actions.push(Action::Exit(code));
    }

    /// The one line that says why grace-init is exiting and how long each step took.
    fn summary(&self, status: Option<ChildStatus>, code: i32, kept: bool, now: Instant) -> Summary {
        let stop = self.stop.map(|stop| StopTimes {
            signal: stop.signal,
            drain: (!self.policy.drain_delay.is_zero()).then(|| {
                stop.forwarded_at
                    .unwrap_or(now)
                    .saturating_duration_since(stop.at)
            }),
            pre_stop: match self.pre_stop {
                PreStop::Finished { took } => Some(took),
                _ => None,
            },
            child_exit: match (stop.forwarded_at, self.child_exit) {
                // Under --wait-all a stop can come after the child exited: it has no exit time to report.
                (Some(forwarded), Some((_, exited))) if self.waited.is_none() => {
                    Some(exited.saturating_duration_since(forwarded))
                }
                _ => None,
            },
            total: now.saturating_duration_since(stop.at),
        });
        let mut killed = self.killed;
        // The child counts as SIGKILLed only when that is also how it ended.
        killed.child &= status == Some(ChildStatus::Killed(libc::SIGKILL));
        Summary {
            stop,
            status,
            cause: self.child_cause,
            code,
            told_rest: self.told_rest,
            kept,
            terminated: self.terminated,
            killed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::death::MemoryLook;
    use crate::signals::{self, Rewrites, parse_rewrite};
    use crate::terms::PRE_STOP_LIMIT_WITHOUT_TIMEOUT;

    const CHILD: i32 = 100;
    const TERM: i32 = libc::SIGTERM;

    fn policy() -> Policy {
        Policy {
            timeout: Some(Duration::from_secs(10)),
            drain_delay: Duration::ZERO,
            pre_stop: false,
            pre_stop_limit: PRE_STOP_LIMIT_WITHOUT_TIMEOUT,
            stop_signals: vec![libc::SIGTERM, libc::SIGINT],
            rewrites: Rewrites::default(),
            single_child: false,
            expect_exit: vec![],
            warn_reap: false,
            wait_all: false,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `(offset, event, expected actions)` rows to a fresh supervisor and checks each row.
    fn run(policy: Policy, rows: &[(u64, Event, Vec<Action>)]) -> Supervisor {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy, CHILD, t0);
        for (i, (offset, event, want)) in rows.iter().enumerate() {
            let got = sup.handle(*event, t0 + ms(*offset));
            assert_eq!(&got, want, "row {i}: {event:?} at +{offset}ms");
        }
        sup
    }

    fn group(signal: i32) -> Action {
        Action::Forward {
            signal,
            target: Target::Group(CHILD),
        }
    }

    /// A stop signal is forwarded, then SIGCONT so a stopped app can act on it.
    fn stop(signal: i32) -> Vec<Action> {
        let target = Target::Group(CHILD);
        vec![Action::ForwardStop { signal, target }, group(libc::SIGCONT)]
    }

    fn exited(pid: i32, code: i32) -> Event {
        Event::Reaped {
            pid,
            status: ChildStatus::Exited(code),
            name: None,
            memory: None,
        }
    }

    const LEFT: Event = Event::Settled(Left::Children);
    const NONE_LEFT: Event = Event::Settled(Left::Nothing);

    fn wait_all() -> Policy {
        Policy {
            wait_all: true,
            ..policy()
        }
    }

    fn rest(signal: i32) -> Action {
        Action::Forward {
            signal,
            target: Target::Rest { group: Some(CHILD) },
        }
    }

    /// The stop signal to what the child left, then SIGCONT.
    fn stop_rest(signal: i32) -> Vec<Action> {
        let target = Target::Rest { group: Some(CHILD) };
        vec![Action::ForwardStop { signal, target }, rest(libc::SIGCONT)]
    }

    #[test]
    fn a_flood_of_stop_signals_is_forwarded_every_time_but_said_once() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        let mut out = Output::new(LevelFilter::Info);
        sup.step(Event::Signal(TERM), t0, &mut out);
        assert_eq!(out.actions, stop(TERM));
        out.actions.clear();
        out.clear_notes();
        for i in 1..=100 {
            sup.step(Event::Signal(TERM), t0 + ms(i), &mut out);
        }
        assert_eq!(out.actions, vec![group(TERM); 100], "each one is forwarded");
        let said: Vec<String> = out.notes().map(|(_, n)| n.to_string()).collect();
        assert_eq!(
            said,
            vec!["received SIGTERM again: forwarding it, deadline unchanged".to_string()],
            "only the first repeat is said at info level"
        );
    }

    #[test]
    fn with_wait_all_what_the_child_left_is_waited_for_without_a_timer() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(wait_all(), CHILD, t0);
        let mut out = Output::new(LevelFilter::Info);
        sup.step(exited(CHILD, 7), t0 + ms(5), &mut out);
        sup.step(LEFT, t0 + ms(5), &mut out);
        assert_eq!(
            out.actions,
            vec![Action::ListRest],
            "no SIGTERM, no deadline"
        );
        let said: Vec<String> = out.notes().map(|(_, n)| n.to_string()).collect();
        assert_eq!(
            said,
            vec![
                format!("child {CHILD} exited with code 7 after running 0.005s"),
                "waiting for the processes it left to exit (--wait-all); a stop signal stops them"
                    .to_string(),
            ]
        );
        assert_eq!(sup.next_wakeup(), None, "no wake-up while waiting");
        // Reaps and idle turns while the rest runs: nothing to do, said once.
        sup.handle(exited(300, 0), t0 + ms(1000));
        assert_eq!(sup.handle(LEFT, t0 + ms(1000)), vec![]);
        assert_eq!(sup.handle(Event::Tick, t0 + ms(60_000)), vec![]);
        assert_eq!(sup.next_wakeup(), None);
        let mut out = Output::new(LevelFilter::Info);
        sup.step(NONE_LEFT, t0 + ms(90_005), &mut out);
        assert_eq!(out.actions, vec![Action::Exit(7)], "the child's code");
        let said: Vec<String> = out.notes().map(|(_, n)| n.to_string()).collect();
        assert_eq!(
            said[0],
            "every process it left has exited, 90.000s after the child"
        );
        assert!(
            said[1].contains("leftovers: 0 sent SIGTERM, 0 SIGKILLed; exit code 7"),
            "{said:?}"
        );
    }

    #[test]
    fn with_wait_all_the_child_code_is_remapped_and_nothing_left_exits_at_once() {
        let policy = Policy {
            expect_exit: vec![7],
            ..wait_all()
        };
        run(
            policy.clone(),
            &[
                (0, exited(CHILD, 7), vec![]),
                (0, LEFT, vec![Action::ListRest]),
                (50, NONE_LEFT, vec![Action::Exit(0)]),
            ],
        );
        run(
            policy,
            &[
                (0, exited(CHILD, 3), vec![]),
                (0, NONE_LEFT, vec![Action::Exit(3)]),
            ],
        );
    }

    #[test]
    fn a_stop_during_the_wait_goes_to_the_rest_and_arms_the_same_deadline() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(wait_all(), CHILD, t0);
        sup.handle(exited(CHILD, 5), t0);
        sup.handle(LEFT, t0);
        let stop_at = t0 + ms(3000);
        assert_eq!(sup.handle(Event::Signal(TERM), stop_at), stop_rest(TERM));
        assert_eq!(sup.next_wakeup(), Some(stop_at + ms(10_000)));
        let mut out = Output::new(LevelFilter::Info);
        sup.step(
            Event::ToldRest(Reach::Counted(1), Refused::NONE),
            stop_at,
            &mut out,
        );
        let said: Vec<String> = out.notes().map(|(_, n)| n.to_string()).collect();
        assert_eq!(said, vec!["sent SIGTERM to 1 process"]);
        // A process that exits may hand its children to grace-init: they get SIGTERM, the others not again.
        sup.handle(exited(301, 0), stop_at + ms(10));
        assert_eq!(
            sup.handle(LEFT, stop_at + ms(10)),
            vec![Action::TerminateLeftovers { skip_told: true }]
        );
        assert_eq!(sup.handle(LEFT, stop_at + ms(20)), vec![]);
        assert_eq!(
            sup.handle(Event::Signal(TERM), stop_at + ms(30)),
            vec![rest(TERM)],
            "a second stop signal is forwarded again"
        );
        assert_eq!(
            sup.next_wakeup(),
            Some(stop_at + ms(10_000)),
            "deadline unchanged"
        );
        assert_eq!(
            sup.handle(Event::Tick, stop_at + ms(10_000)),
            vec![Action::KillAll]
        );
        sup.handle(
            Event::Killed(Reach::Counted(1), Refused::NONE),
            stop_at + ms(10_000),
        );
        let mut out = Output::new(LevelFilter::Info);
        sup.step(NONE_LEFT, stop_at + ms(10_001), &mut out);
        assert_eq!(
            out.actions,
            vec![Action::Exit(5)],
            "the child's code, not 137"
        );
        let summary = out.notes().last().unwrap().1.to_string();
        assert!(
            summary.contains(
                "leftovers: 1 forwarded SIGTERM, 0 sent SIGTERM, 1 SIGKILLed; exit code 5"
            ) && !summary.contains("; child exit "),
            "{summary}"
        );
    }

    #[test]
    fn a_stop_during_the_wait_is_rewritten_drained_and_waits_for_the_pre_stop() {
        let policy = Policy {
            rewrites: Rewrites::from_rules(&[parse_rewrite("TERM:QUIT").unwrap()]).unwrap(),
            drain_delay: ms(1000),
            pre_stop: true,
            ..wait_all()
        };
        run(
            policy,
            &[
                (0, exited(CHILD, 0), vec![]),
                (0, LEFT, vec![Action::ListRest]),
                (100, Event::Signal(TERM), vec![Action::StartPreStop]),
                (
                    101,
                    Event::PreStopStarted {
                        pid: 200,
                        line: "true",
                    },
                    vec![],
                ),
                (500, LEFT, vec![]),
                (1100, Event::Tick, vec![]),
                (1200, exited(200, 0), stop_rest(libc::SIGQUIT)),
                (1200, LEFT, vec![]),
                (1300, NONE_LEFT, vec![Action::Exit(0)]),
            ],
        );
    }

    #[test]
    fn signals_after_the_child_ended_go_to_the_rest_under_wait_all() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(wait_all(), CHILD, t0);
        sup.handle(exited(CHILD, 0), t0);
        sup.handle(LEFT, t0);
        assert_eq!(sup.route(), None, "decided by step once the child is gone");
        assert_eq!(
            sup.handle(Event::Signal(libc::SIGHUP), t0),
            vec![rest(libc::SIGHUP)]
        );
        let single = Policy {
            single_child: true,
            ..wait_all()
        };
        let mut sup = Supervisor::new(single, CHILD, t0);
        sup.handle(exited(CHILD, 0), t0);
        sup.handle(LEFT, t0);
        assert_eq!(
            sup.handle(Event::Signal(libc::SIGUSR1), t0),
            vec![Action::Forward {
                signal: libc::SIGUSR1,
                target: Target::Rest { group: None }
            }],
            "--single-child: grace-init's own children, not the group"
        );
    }

    #[test]
    fn a_stop_before_the_child_exits_is_the_usual_shutdown_under_wait_all() {
        run(
            wait_all(),
            &[
                (0, Event::Signal(TERM), stop(TERM)),
                (10, exited(CHILD, 0), vec![]),
                (
                    10,
                    LEFT,
                    vec![Action::TerminateLeftovers { skip_told: true }],
                ),
                (10_000, Event::Tick, vec![Action::KillAll]),
            ],
        );
    }

    #[test]
    fn as_pid_1_processes_entered_from_outside_are_stopped_not_waited_for() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(wait_all(), CHILD, t0);
        sup.handle(exited(CHILD, 2), t0);
        assert_eq!(sup.handle(LEFT, t0), vec![Action::ListRest]);
        // The last of its own processes is gone; only a `docker exec` session is left.
        sup.handle(exited(300, 0), t0 + ms(500));
        assert_eq!(
            sup.handle(Event::Settled(Left::Strangers), t0 + ms(500)),
            vec![Action::TerminateLeftovers { skip_told: false }]
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_500)));
    }

    #[test]
    fn a_stop_rewritten_to_none_during_the_wait_sends_nothing_until_the_deadline() {
        let policy = Policy {
            rewrites: Rewrites::from_rules(&[parse_rewrite("TERM:none").unwrap()]).unwrap(),
            ..wait_all()
        };
        run(
            policy,
            &[
                (0, exited(CHILD, 0), vec![]),
                (0, LEFT, vec![Action::ListRest]),
                (100, Event::Signal(TERM), vec![]),
                (200, exited(300, 0), vec![]),
                (200, LEFT, vec![]),
                (10_100, Event::Tick, vec![Action::KillAll]),
            ],
        );
    }

    #[test]
    fn child_exits_by_itself_with_nothing_left() {
        run(
            policy(),
            &[
                (5, exited(CHILD, 3), vec![]),
                (5, NONE_LEFT, vec![Action::Exit(3)]),
            ],
        );
    }

    #[test]
    fn orphans_are_reaped_without_ending_the_run() {
        let sup = run(
            policy(),
            &[
                (1, exited(7, 0), vec![]),
                (1, LEFT, vec![]),
                (1, Event::Tick, vec![]),
            ],
        );
        assert_eq!(sup.next_wakeup(), None, "no timer while running");
    }

    #[test]
    fn plain_signals_are_forwarded_to_the_group_or_the_child() {
        run(
            policy(),
            &[(1, Event::Signal(libc::SIGUSR1), vec![group(libc::SIGUSR1)])],
        );
        let single = Policy {
            single_child: true,
            ..policy()
        };
        run(
            single,
            &[(
                1,
                Event::Signal(libc::SIGHUP),
                vec![Action::Forward {
                    signal: libc::SIGHUP,
                    target: Target::Child(CHILD),
                }],
            )],
        );
    }

    #[test]
    fn cooperative_child_stops_before_the_deadline() {
        let sup = run(
            policy(),
            &[
                (0, Event::Signal(TERM), stop(TERM)),
                (40, exited(CHILD, 0), vec![]),
                (40, NONE_LEFT, vec![Action::Exit(0)]),
            ],
        );
        assert_eq!(sup.killed, Tally::default());
    }

    #[test]
    fn stubborn_child_is_killed_at_the_deadline() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        assert_eq!(sup.handle(Event::Signal(TERM), t0), stop(TERM));
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_000)));
        assert_eq!(sup.handle(Event::Tick, t0 + ms(9_999)), vec![]);
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_000)),
            vec![Action::KillAll]
        );
        assert_eq!(
            sup.next_wakeup(),
            Some(t0 + ms(10_000) + RESWEEP),
            "a sweep while processes remain"
        );
        let killed = Event::Reaped {
            pid: CHILD,
            status: ChildStatus::Killed(libc::SIGKILL),
            name: None,
            memory: None,
        };
        assert_eq!(sup.handle(killed, t0 + ms(10_001)), vec![]);
        assert_eq!(
            sup.handle(NONE_LEFT, t0 + ms(10_001)),
            vec![Action::Exit(137)]
        );
    }

    #[test]
    fn without_a_way_to_find_leftovers_it_exits_after_the_kill_sweep() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(exited(CHILD, 4), t0);
        assert_eq!(
            sup.handle(LEFT, t0),
            vec![Action::TerminateLeftovers { skip_told: false }]
        );
        assert_eq!(
            sup.handle(Event::Terminated(Reach::Nobody, Refused::NONE), t0),
            vec![]
        );
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_000)),
            vec![Action::KillAll]
        );
        // A subreaper without /proc: its SIGKILL reached nobody it could name.
        assert_eq!(
            sup.handle(Event::Killed(Reach::Nobody, Refused::NONE), t0 + ms(10_000)),
            vec![]
        );
        assert_eq!(sup.handle(LEFT, t0 + ms(10_001)), vec![]);
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_100)),
            vec![Action::Exit(4)]
        );
    }

    #[test]
    fn processes_that_are_not_children_are_not_waited_for_after_sigkill() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(exited(CHILD, 0), t0);
        assert_eq!(
            sup.handle(Event::Settled(Left::Strangers), t0),
            vec![Action::TerminateLeftovers { skip_told: false }]
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_000)));
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_000)),
            vec![Action::KillAll]
        );
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_100)),
            vec![Action::Exit(0)]
        );
    }

    #[test]
    fn processes_surviving_sigkill_are_swept_again_until_none_is_left() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_000)),
            vec![Action::KillAll]
        );
        assert_eq!(sup.handle(LEFT, t0 + ms(10_050)), vec![]);
        assert_eq!(sup.handle(Event::Tick, t0 + ms(10_099)), vec![]);
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_100)),
            vec![Action::KillAgain]
        );
        let killed = Event::Reaped {
            pid: CHILD,
            status: ChildStatus::Killed(9),
            name: None,
            memory: None,
        };
        sup.handle(killed, t0 + ms(10_101));
        assert_eq!(
            sup.handle(LEFT, t0 + ms(10_101)),
            vec![],
            "no SIGTERM round once killing"
        );
        assert_eq!(
            sup.handle(NONE_LEFT, t0 + ms(10_150)),
            vec![Action::Exit(137)]
        );
        assert_eq!(sup.next_wakeup(), None);
    }

    #[test]
    fn second_stop_signal_is_forwarded_without_moving_the_deadline() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        assert_eq!(
            sup.handle(Event::Signal(libc::SIGINT), t0 + ms(3000)),
            vec![group(libc::SIGINT)]
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_000)));
    }

    #[test]
    fn zero_timeout_kills_right_after_forwarding() {
        let zero = Policy {
            timeout: Some(Duration::ZERO),
            ..policy()
        };
        run(
            zero,
            &[(
                0,
                Event::Signal(TERM),
                [stop(TERM), vec![Action::KillAll]].concat(),
            )],
        );
    }

    #[test]
    fn infinite_timeout_never_arms_a_timer() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(
            Policy {
                timeout: None,
                ..policy()
            },
            CHILD,
            t0,
        );
        assert_eq!(sup.handle(Event::Signal(TERM), t0), stop(TERM));
        assert_eq!(sup.next_wakeup(), None);
    }

    #[test]
    fn leftovers_get_sigterm_then_the_same_bounded_wait() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(exited(CHILD, 5), t0);
        assert_eq!(
            sup.handle(LEFT, t0),
            vec![Action::TerminateLeftovers { skip_told: false }]
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_000)));
        assert_eq!(sup.handle(LEFT, t0 + ms(1)), vec![], "signalled once");
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_000)),
            vec![Action::KillAll]
        );
        assert_eq!(
            sup.handle(NONE_LEFT, t0 + ms(10_002)),
            vec![Action::Exit(5)],
            "the child's status, not 137"
        );
    }

    #[test]
    fn every_reap_while_draining_looks_again_for_leftovers() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(exited(CHILD, 0), t0);
        assert_eq!(
            sup.handle(LEFT, t0),
            vec![Action::TerminateLeftovers { skip_told: false }]
        );
        assert_eq!(sup.handle(LEFT, t0 + ms(5)), vec![], "nothing exited since");
        sup.handle(exited(300, 0), t0 + ms(10));
        assert_eq!(
            sup.handle(LEFT, t0 + ms(10)),
            vec![Action::TerminateLeftovers { skip_told: false }],
            "an exit may have orphaned more processes"
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_000)), "same deadline");
    }

    #[test]
    fn leftovers_after_a_forwarded_stop_keep_the_original_deadline_and_skip_the_group() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        sup.handle(exited(CHILD, 0), t0 + ms(2000));
        assert_eq!(
            sup.handle(LEFT, t0 + ms(2000)),
            vec![Action::TerminateLeftovers { skip_told: true }]
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_000)));
    }

    #[test]
    fn rewrite_changes_what_is_sent_but_the_stop_still_starts_the_grace_period() {
        let rewrites = Rewrites::from_rules(&[
            parse_rewrite("TERM:QUIT").unwrap(),
            parse_rewrite("HUP:none").unwrap(),
        ])
        .unwrap();
        let t0 = Instant::now();
        let mut sup = Supervisor::new(
            Policy {
                rewrites,
                ..policy()
            },
            CHILD,
            t0,
        );
        assert_eq!(
            sup.handle(Event::Signal(libc::SIGHUP), t0),
            vec![],
            "dropped"
        );
        assert_eq!(sup.handle(Event::Signal(TERM), t0), stop(libc::SIGQUIT));
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_000)));
    }

    #[test]
    fn a_stop_signal_rewritten_to_none_leaves_the_group_to_the_leftover_sigterm() {
        let rewrites = Rewrites::from_rules(&[parse_rewrite("TERM:none").unwrap()]).unwrap();
        run(
            Policy {
                rewrites,
                ..policy()
            },
            &[
                (0, Event::Signal(TERM), vec![]),
                (10, exited(CHILD, 0), vec![]),
                (
                    10,
                    LEFT,
                    vec![Action::TerminateLeftovers { skip_told: false }],
                ),
            ],
        );
    }

    #[test]
    fn stop_signals_are_configurable() {
        let quit = Policy {
            stop_signals: vec![libc::SIGQUIT],
            ..policy()
        };
        let t0 = Instant::now();
        let mut sup = Supervisor::new(quit, CHILD, t0);
        assert_eq!(sup.handle(Event::Signal(TERM), t0), vec![group(TERM)]);
        assert_eq!(sup.next_wakeup(), None, "TERM is not a stop signal here");
        assert_eq!(
            sup.handle(Event::Signal(libc::SIGQUIT), t0),
            stop(libc::SIGQUIT)
        );
        assert!(sup.next_wakeup().is_some());
    }

    #[test]
    fn drain_delay_holds_the_signal_back() {
        let drain = Policy {
            drain_delay: ms(1000),
            ..policy()
        };
        let t0 = Instant::now();
        let mut sup = Supervisor::new(drain, CHILD, t0);
        assert_eq!(sup.handle(Event::Signal(TERM), t0), vec![]);
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(1000)));
        assert_eq!(
            sup.handle(Event::Signal(libc::SIGUSR1), t0 + ms(10)),
            vec![group(libc::SIGUSR1)]
        );
        assert_eq!(sup.handle(Event::Tick, t0 + ms(999)), vec![]);
        assert_eq!(sup.handle(Event::Tick, t0 + ms(1000)), stop(TERM));
        assert_eq!(
            sup.next_wakeup(),
            Some(t0 + ms(10_000)),
            "the deadline counts from the signal"
        );
    }

    #[test]
    fn second_stop_signal_cuts_the_drain_short() {
        let drain = Policy {
            drain_delay: ms(5000),
            ..policy()
        };
        run(
            drain,
            &[
                (0, Event::Signal(TERM), vec![]),
                (100, Event::Signal(libc::SIGINT), stop(TERM)),
            ],
        );
    }

    #[test]
    fn pre_stop_runs_before_forwarding() {
        let pre = Policy {
            pre_stop: true,
            ..policy()
        };
        run(
            pre,
            &[
                (0, Event::Signal(TERM), vec![Action::StartPreStop]),
                (
                    1,
                    Event::PreStopStarted {
                        pid: 200,
                        line: "true",
                    },
                    vec![],
                ),
                (300, exited(200, 0), stop(TERM)),
                (500, exited(CHILD, 0), vec![]),
                (500, NONE_LEFT, vec![Action::Exit(0)]),
            ],
        );
    }

    #[test]
    fn failed_pre_stop_still_forwards() {
        let pre = Policy {
            pre_stop: true,
            ..policy()
        };
        run(
            pre,
            &[
                (0, Event::Signal(TERM), vec![Action::StartPreStop]),
                (
                    1,
                    Event::PreStopFailed {
                        line: "true",
                        why: nix::errno::Errno::ENOENT,
                    },
                    stop(TERM),
                ),
            ],
        );
    }

    #[test]
    fn hanging_pre_stop_is_cut_off_at_half_the_budget() {
        let pre = Policy {
            pre_stop: true,
            ..policy()
        };
        let t0 = Instant::now();
        let mut sup = Supervisor::new(pre, CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        sup.handle(
            Event::PreStopStarted {
                pid: 200,
                line: "true",
            },
            t0,
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(5000)));
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(5000)),
            [vec![Action::KillPreStop(200)], stop(TERM)].concat()
        );
        assert_eq!(
            sup.handle(
                Event::Reaped {
                    pid: 200,
                    status: ChildStatus::Killed(9),
                    name: None,
                    memory: None,
                },
                t0 + ms(5001)
            ),
            vec![]
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + ms(10_000)));
        // A member of the pre-stop command's group died of that SIGKILL too: no claim about whose it was.
        let mut out = Output::new(LevelFilter::Trace);
        let member = Event::Reaped {
            pid: 201,
            status: ChildStatus::Killed(libc::SIGKILL),
            name: None,
            memory: Some(MemoryLook::default()),
        };
        sup.step(member, t0 + ms(5002), &mut out);
        let said: Vec<String> = out.notes().map(|(_, n)| n.to_string()).collect();
        assert_eq!(said, vec!["reaped process 201: was killed by SIGKILL"]);
    }

    #[test]
    fn expect_exit_maps_codes_to_zero() {
        let expect = Policy {
            expect_exit: vec![143],
            ..policy()
        };
        run(
            expect,
            &[
                (0, Event::Signal(TERM), stop(TERM)),
                (
                    1,
                    Event::Reaped {
                        pid: CHILD,
                        status: ChildStatus::Killed(TERM),
                        name: None,
                        memory: None,
                    },
                    vec![],
                ),
                (1, NONE_LEFT, vec![Action::Exit(0)]),
            ],
        );
    }

    /// Feeds the stop, the deadline and the child's SIGKILL death (with what the memory cgroup said) to a
    /// supervisor with `-e 137`; returns the exit action and the lines said at info.
    fn killed_with_expect_137(
        memory: Option<MemoryLook>,
        deadline: bool,
    ) -> (Vec<Action>, Vec<String>) {
        let t0 = Instant::now();
        let policy = Policy {
            expect_exit: vec![137],
            ..policy()
        };
        let mut sup = Supervisor::new(policy, CHILD, t0);
        let mut out = Output::new(LevelFilter::Info);
        sup.step(Event::Signal(TERM), t0, &mut out);
        let at = if deadline {
            sup.step(Event::Tick, t0 + ms(10_000), &mut out);
            t0 + ms(10_001)
        } else {
            t0 + ms(5)
        };
        out.actions.clear();
        let killed = Event::Reaped {
            pid: CHILD,
            status: ChildStatus::Killed(libc::SIGKILL),
            name: None,
            memory,
        };
        sup.step(killed, at, &mut out);
        sup.step(NONE_LEFT, at, &mut out);
        let said = out.notes().map(|(_, n)| n.to_string()).collect();
        assert_eq!(
            sup.last_word().map(|n| n.to_string()),
            out.notes().last().map(|(_, n)| n.to_string())
        );
        (out.actions, said)
    }

    #[test]
    fn expect_exit_never_hides_the_deadline_kill_or_an_oom_kill() {
        use crate::cgroup::{Limit, OomKill};
        let (actions, said) = killed_with_expect_137(None, true);
        assert_eq!(actions, vec![Action::Exit(137)]);
        let summary = said.last().unwrap();
        assert!(
            summary.contains(
                "child was killed by SIGKILL (grace-init's, at the end of the grace period)"
            ) && summary.ends_with(
                "exit code 137 (--expect-exit does not hide grace-init's SIGKILL or an OOM kill)"
            ),
            "{said:?}"
        );
        let oom = OomKill {
            kills: 1,
            limit: Some(Limit::Bytes(32 << 20)),
            peak: Some(32 << 20),
        };
        let counted = MemoryLook {
            new: Some(oom),
            since_start: Some(oom),
        };
        let (actions, said) = killed_with_expect_137(Some(counted), false);
        assert_eq!(actions, vec![Action::Exit(137)]);
        assert!(
            said.iter().any(|l| l.starts_with(&format!(
                "child {CHILD} was killed by SIGKILL from the kernel's OOM killer (memory limit 32 MiB, peak 32 MiB) 0.005s after"
            ))),
            "{said:?}"
        );
        // A SIGKILL from someone else, with no OOM kill counted: the user listed 137, so it is 0.
        let (actions, said) = killed_with_expect_137(Some(MemoryLook::default()), false);
        assert_eq!(actions, vec![Action::Exit(0)]);
        assert!(
            said.last().unwrap().contains(
                "child was killed by SIGKILL (not sent by grace-init, and not by the OOM killer)"
            ),
            "{said:?}"
        );
    }

    #[test]
    fn nothing_happens_after_exit() {
        let mut sup = run(
            policy(),
            &[
                (0, exited(CHILD, 0), vec![]),
                (0, NONE_LEFT, vec![Action::Exit(0)]),
            ],
        );
        assert_eq!(sup.handle(Event::Signal(TERM), Instant::now()), vec![]);
        assert_eq!(sup.next_wakeup(), None);
    }

    #[test]
    fn single_child_mode_does_not_signal_a_reaped_pid() {
        let single = Policy {
            single_child: true,
            ..policy()
        };
        let t0 = Instant::now();
        let mut sup = Supervisor::new(single, CHILD, t0);
        sup.handle(exited(CHILD, 0), t0);
        assert_eq!(
            sup.handle(LEFT, t0),
            vec![Action::TerminateLeftovers { skip_told: false }]
        );
        assert_eq!(sup.handle(Event::Signal(libc::SIGUSR1), t0), vec![]);
    }

    #[test]
    fn after_the_child_is_reaped_its_group_is_reached_member_by_member() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        assert_eq!(
            sup.handle(Event::Signal(libc::SIGUSR1), t0),
            vec![group(libc::SIGUSR1)],
            "one kill(-pgid) while the child is unreaped"
        );
        sup.handle(exited(CHILD, 0), t0);
        sup.handle(LEFT, t0);
        assert_eq!(
            sup.handle(Event::Signal(libc::SIGUSR1), t0),
            vec![Action::Forward {
                signal: libc::SIGUSR1,
                target: Target::Members(CHILD)
            }],
            "the group id may be reused once the child is reaped"
        );
    }

    #[test]
    fn a_child_that_vanished_without_a_status_ends_the_run() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        let mut out = Output::new(LevelFilter::Info);
        sup.step(NONE_LEFT, t0, &mut out);
        assert_eq!(out.actions, vec![Action::Exit(STATUS_LOST)]);
        assert_eq!(
            out.notes().collect::<Vec<_>>(),
            vec![(Level::Error, &Note::StatusLost(CHILD))]
        );
        assert!(
            Note::StatusLost(CHILD)
                .to_string()
                .contains("exit status was lost")
        );
        assert_eq!(sup.next_wakeup(), None);
    }

    #[test]
    fn without_a_timeout_a_hanging_pre_stop_still_lets_the_stop_signal_through() {
        let pre = Policy {
            pre_stop: true,
            timeout: None,
            ..policy()
        };
        let t0 = Instant::now();
        let mut sup = Supervisor::new(pre, CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        sup.handle(
            Event::PreStopStarted {
                pid: 200,
                line: "true",
            },
            t0,
        );
        let limit = t0 + PRE_STOP_LIMIT_WITHOUT_TIMEOUT;
        assert_eq!(sup.next_wakeup(), Some(limit));
        assert_eq!(
            sup.handle(Event::Tick, limit),
            [vec![Action::KillPreStop(200)], stop(TERM)].concat()
        );
        // And then no deadline: the app has all the time it wants.
        assert_eq!(sup.next_wakeup(), None);
        // A drain delay longer than the limit still holds the signal back until it ends.
        let long_drain = Policy {
            pre_stop: true,
            timeout: None,
            drain_delay: Duration::from_secs(40),
            ..policy()
        };
        let mut sup = Supervisor::new(long_drain, CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        sup.handle(
            Event::PreStopStarted {
                pid: 200,
                line: "true",
            },
            t0,
        );
        assert_eq!(sup.next_wakeup(), Some(t0 + Duration::from_secs(40)));
    }

    #[test]
    fn the_standing_route_sends_exactly_what_step_would_and_only_while_the_app_runs() {
        let rewritten = Policy {
            rewrites: Rewrites::from_rules(&[
                parse_rewrite("USR1:USR2").unwrap(),
                parse_rewrite("HUP:none").unwrap(),
                parse_rewrite("RTMIN+1:WINCH").unwrap(),
            ])
            .unwrap(),
            stop_signals: vec![libc::SIGQUIT, libc::SIGTERM],
            ..policy()
        };
        let single = Policy {
            single_child: true,
            ..policy()
        };
        for policy in [policy(), rewritten, single] {
            let t0 = Instant::now();
            let sup = Supervisor::new(policy.clone(), CHILD, t0);
            let route = sup.route().expect("routed while the app runs");
            for signal in 1..=64 {
                // What step decides for the same signal, in the same state.
                let mut fresh = Supervisor::new(policy.clone(), CHILD, t0);
                let decided = fresh.handle(Event::Signal(signal), t0);
                match route.forward_as(signal) {
                    Some(sent) => {
                        let target = if policy.single_child {
                            assert_eq!(route.to(), CHILD);
                            Target::Child(CHILD)
                        } else {
                            assert_eq!(route.to(), -CHILD);
                            Target::Group(CHILD)
                        };
                        assert_eq!(
                            decided,
                            vec![Action::Forward {
                                signal: sent,
                                target
                            }],
                            "signal {signal}"
                        );
                        // Told afterwards, the supervisor only says it: nothing is sent twice.
                        let mut told = Supervisor::new(policy.clone(), CHILD, t0);
                        assert_eq!(told.handle(Event::Forwarded(signal), t0), vec![]);
                        assert_eq!(told.route(), Some(route));
                    }
                    None => assert!(
                        signal == libc::SIGCHLD
                            || signals::is_uncatchable(signal)
                            || policy.stop_signals.contains(&signal)
                            || decided.is_empty(),
                        "signal {signal} is not routed, yet step only forwards it: {decided:?}"
                    ),
                }
            }
        }
        // Once a stop begins or the child is gone, every signal goes through step again.
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        assert_eq!(sup.route(), None);
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(
            Event::Reaped {
                pid: CHILD,
                status: ChildStatus::Exited(0),
                name: None,
                memory: None,
            },
            t0,
        );
        assert_eq!(sup.route(), None);
    }

    #[test]
    fn lines_are_returned_with_the_actions_and_filtered_by_level() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        let mut out = Output::new(LevelFilter::Info);
        sup.step(Event::Signal(libc::SIGUSR1), t0, &mut out);
        assert_eq!(out.actions, vec![group(libc::SIGUSR1)]);
        assert!(!out.has_notes(), "debug lines are not even made");
        out.actions.clear();
        sup.step(Event::Signal(TERM), t0, &mut out);
        assert_eq!(out.actions, stop(TERM));
        let said: Vec<String> = out.notes().map(|(_, n)| n.to_string()).collect();
        assert_eq!(
            said,
            vec![
                "received SIGTERM: shutting down, grace period 10.000s".to_string(),
                format!("forwarding SIGTERM to process group {CHILD}"),
            ]
        );
    }

    #[test]
    fn summary_counts_say_who_was_reached_uncounted() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(Event::Terminated(Reach::Group(CHILD), Refused::NONE), t0);
        sup.handle(Event::Killed(Reach::Everyone, Refused::NONE), t0);
        let line = sup
            .summary(Some(ChildStatus::Exited(0)), 0, false, t0)
            .to_string();
        assert!(
            line.contains(&format!(
                "leftovers: 0 (and process group {CHILD}, uncounted) sent SIGTERM, 0 (and every process with kill -1, uncounted) SIGKILLed;"
            )),
            "{line}"
        );
    }

    #[test]
    fn a_group_told_as_the_child_exits_is_said_and_counted_though_no_one_is_left() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        let mut out = Output::new(LevelFilter::Info);
        sup.step(exited(CHILD, 5), t0, &mut out);
        sup.step(Event::ToldGroup(CHILD), t0, &mut out);
        sup.step(NONE_LEFT, t0, &mut out);
        let said: Vec<String> = out.notes().map(|(_, n)| n.to_string()).collect();
        assert!(
            said.contains(&format!(
                "sent SIGTERM to what was left of process group {CHILD} (uncounted without /proc)"
            )),
            "{said:?}"
        );
        let summary = said.last().cloned().unwrap_or_default();
        assert!(
            summary.contains(&format!(
                "leftovers: 0 (and process group {CHILD}, uncounted) sent SIGTERM, 0 SIGKILLed"
            )),
            "{summary}"
        );
        assert_eq!(out.actions, vec![Action::Exit(5)]);
    }

    /// Every line of an escalation, as the supervisor says it from what the shell reports back.
    fn said(sup: &mut Supervisor, event: Event, now: Instant) -> (Vec<Action>, Vec<String>) {
        let mut out = Output::new(LevelFilter::Info);
        sup.step(event, now, &mut out);
        let lines = out.notes().map(|(_, n)| n.to_string()).collect();
        (out.actions, lines)
    }

    #[test]
    fn a_sigkill_the_child_refused_is_not_said_to_have_reached_or_ended_it() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_000)),
            vec![Action::KillAll]
        );
        let refused = Refused {
            child: true,
            others: 1,
            why: Some(nix::errno::Errno::EPERM),
        };
        let (_, lines) = said(
            &mut sup,
            Event::Killed(Reach::Counted(0), refused),
            t0 + ms(10_000),
        );
        assert_eq!(
            lines,
            vec![
                "escalated: SIGKILL refused for the child and 1 other process (operation not permitted); sent to \
                 0 other processes"
            ]
        );
        // Someone else's SIGKILL ends it later: not grace-init's.
        let killed = Event::Reaped {
            pid: CHILD,
            status: ChildStatus::Killed(libc::SIGKILL),
            name: None,
            memory: None,
        };
        sup.handle(killed, t0 + ms(10_500));
        let (_, lines) = said(&mut sup, NONE_LEFT, t0 + ms(10_500));
        let summary = lines.last().unwrap();
        assert!(
            summary.contains("leftovers: 0 sent SIGTERM, 0 SIGKILLed (1 refused); exit code 137")
                && !summary.contains("grace-init's"),
            "{summary}"
        );
        // Never reaped: grace-init gives up, and says the SIGKILL was refused.
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        sup.handle(Event::Tick, t0 + ms(10_000));
        sup.handle(Event::Killed(Reach::Counted(0), refused), t0 + ms(10_000));
        sup.handle(LEFT, t0 + ms(10_000));
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(12_000)),
            vec![Action::Survey]
        );
        let (actions, lines) = said(
            &mut sup,
            Event::Surveyed(Unreached::default()),
            t0 + ms(12_000),
        );
        assert_eq!(actions, vec![Action::Exit(137)]);
        assert!(
            lines.last().unwrap().contains("child had not ended: its SIGKILL was refused; leftovers: 0 sent SIGTERM, 0 SIGKILLed (1 refused)"),
            "{lines:?}"
        );
    }

    #[test]
    fn the_escalation_names_the_child_and_the_summary_counts_every_sweep() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        let (actions, _) = said(&mut sup, Event::Tick, t0 + ms(10_000));
        assert_eq!(actions, vec![Action::KillAll]);
        let (_, lines) = said(
            &mut sup,
            Event::Killed(Reach::Counted(2), Refused::NONE),
            t0 + ms(10_000),
        );
        assert_eq!(
            lines,
            vec!["escalated: SIGKILL to the child and 2 other processes"]
        );
        sup.handle(LEFT, t0 + ms(10_001));
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_100)),
            vec![Action::KillAgain]
        );
        // A second sweep is no new escalation: not said at info, but what it newly reached is in the summary.
        let (_, lines) = said(
            &mut sup,
            Event::Killed(Reach::Counted(1), Refused::NONE),
            t0 + ms(10_100),
        );
        assert!(lines.is_empty(), "{lines:?}");
        let killed = Event::Reaped {
            pid: CHILD,
            status: ChildStatus::Killed(libc::SIGKILL),
            name: None,
            memory: None,
        };
        sup.handle(killed, t0 + ms(10_101));
        let (actions, lines) = said(&mut sup, NONE_LEFT, t0 + ms(10_101));
        assert_eq!(actions, vec![Action::Exit(137)]);
        assert!(
            lines[0].ends_with(
                "child was killed by SIGKILL (grace-init's, at the end of the grace period); leftovers: 0 sent \
                 SIGTERM, 3 SIGKILLed, and the child; exit code 137"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn after_sigkill_it_waits_kill_wait_then_says_what_is_left_and_exits() {
        // A leftover /proc does not show (hidepid): SIGKILL reaches nobody, waitpid keeps saying children remain.
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        sup.handle(exited(CHILD, 3), t0);
        sup.handle(LEFT, t0);
        sup.handle(Event::Terminated(Reach::Counted(0), Refused::NONE), t0);
        assert_eq!(
            sup.handle(Event::Tick, t0 + ms(10_000)),
            vec![Action::KillAll]
        );
        sup.handle(
            Event::Killed(Reach::Counted(0), Refused::NONE),
            t0 + ms(10_000),
        );
        let mut at = 10_000;
        while at < 10_000 + KILL_WAIT.as_millis() as u64 - 100 {
            at += 100;
            sup.handle(LEFT, t0 + ms(at));
            assert_eq!(sup.next_wakeup(), Some(t0 + ms(at - 100) + RESWEEP));
            assert_eq!(
                sup.handle(Event::Tick, t0 + ms(at)),
                vec![Action::KillAgain],
                "at {at} ms"
            );
        }
        at += 100;
        assert_eq!(sup.handle(Event::Tick, t0 + ms(at)), vec![Action::Survey]);
        let (actions, lines) = said(&mut sup, Event::Surveyed(Unreached::default()), t0 + ms(at));
        assert_eq!(actions, vec![Action::Exit(3)]);
        assert_eq!(
            lines[0],
            "gave up waiting 2.000s after SIGKILL: waitpid reports children that /proc does not show \
             (hidepid, or not dumpable); exiting without them"
        );
        assert!(lines[1].contains("child exited with code 3"), "{lines:?}");
        assert_eq!(sup.next_wakeup(), None);
    }

    #[test]
    fn a_child_that_outlives_its_sigkill_is_not_waited_for_past_kill_wait() {
        let t0 = Instant::now();
        // -e 137 is no way to hide it: the child dies of grace-init's SIGKILL.
        let policy = Policy {
            expect_exit: vec![137],
            ..policy()
        };
        let mut sup = Supervisor::new(policy, CHILD, t0);
        sup.handle(Event::Signal(TERM), t0);
        sup.handle(Event::Tick, t0 + ms(10_000));
        sup.handle(
            Event::Killed(Reach::Counted(1), Refused::NONE),
            t0 + ms(10_000),
        );
        sup.handle(LEFT, t0 + ms(10_000));
        let end = t0 + ms(10_000) + KILL_WAIT;
        assert_eq!(sup.handle(Event::Tick, end), vec![Action::Survey]);
        let mut seen = Unreached {
            seen: 1,
            children_seen: 0,
            ..Unreached::default()
        };
        seen.named[0] = Some((57, crate::comm::Comm::exact(b"stuck")));
        let (actions, lines) = said(&mut sup, Event::Surveyed(seen), end);
        assert_eq!(actions, vec![Action::Exit(137)]);
        assert_eq!(
            lines[0],
            format!(
                "gave up waiting 2.000s after SIGKILL: child {CHILD} has not ended; 1 process still there: 57 (stuck); \
                 exiting without them"
            )
        );
        assert!(
            lines[1].ends_with(
                "; child had not ended after SIGKILL; leftovers: 0 sent SIGTERM, 1 SIGKILLed; exit code 137 \
                 (--expect-exit does not hide grace-init's SIGKILL or an OOM kill)"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn what_could_not_be_looked_at_is_said_once_per_reason() {
        let t0 = Instant::now();
        let mut sup = Supervisor::new(policy(), CHILD, t0);
        let emfile = Trouble {
            why: nix::errno::Errno::EMFILE,
            unread: 2,
        };
        let (_, lines) = said(&mut sup, Event::CouldNotLook(emfile), t0);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let (_, lines) = said(&mut sup, Event::CouldNotLook(emfile), t0 + ms(100));
        assert!(lines.is_empty(), "said twice: {lines:?}");
        let eacces = Trouble {
            why: nix::errno::Errno::EACCES,
            unread: 1,
        };
        let (_, lines) = said(&mut sup, Event::CouldNotLook(eacces), t0 + ms(200));
        assert_eq!(lines.len(), 1, "{lines:?}");
    }
}
