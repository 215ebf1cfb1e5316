//! Sends the signals the supervisor decides on: to the child, its group, every leftover process. Besides it only
//! route.rs (a plain forward, sent as it is read) and terminal.rs (job control) call kill.
//!
//! Identity before signal: a number read from /proc may name another process by the time it is used. So:
//! - the child's group gets one kill(-pgid) only while the child is not reaped (until then its pid, and with it
//!   the group id, cannot be reused); afterwards each member is found and signalled by itself;
//! - grace-init's own children are signalled by pid: no one but grace-init can reap them, so their pids stay
//!   theirs until it does;
//! - any other process is signalled through a pidfd opened once it was found and checked to still be the
//!   process found (same start time); before Linux 5.3 (no pidfd_open), or where a seccomp profile refuses
//!   pidfd_open or pidfd_send_signal, the check is made right before a plain kill, which leaves a window of
//!   microseconds instead of none.
//! - as PID 1, kill(-1) reaches every process in the namespace, all of which are grace-init's to stop.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs;

use nix::errno::Errno;

use crate::procs::{self, PidDir, Proc};
use crate::route::Sent;
use crate::signals::name;
use crate::sys;
use crate::terms::{Reach, Refused, Target, Trouble, Unreached};

/// Knows who grace-init is (PID 1 or a subreaper), its main child, and whether /proc shows its processes.
pub struct Deliverer {
    me: i32,
    /// The main child's pid, which is also its process group id.
    child: i32,
    proc_usable: bool,
    /// Who the stop signal was sent to, and when (boot-time clock ticks), so leftovers are not told twice.
    stop_sent: Cell<Option<(Target, u64)>>,
    /// The leftovers already sent SIGTERM, by pid and start time; pruned to what still exists at every pass.
    told: RefCell<HashSet<(i32, u64)>>,
    /// Without /proc, as PID 1: whether `kill(-1, SIGTERM)` was already sent.
    blanket_sent: Cell<bool>,
    /// Without /proc, as a subreaper: the group was sent SIGTERM (or it was tried) while the child's zombie
    /// still reserved its id; it is tried once.
    group_told: Cell<bool>,
    /// Whether /proc shows every zombie's exit code (CAP_SYS_PTRACE), so a killed one can be told apart.
    sees_exit_codes: bool,
    /// Whether grace-init may signal any user's process (CAP_KILL): as PID 1, `kill(-1)` then reached every
    /// live process, and none needs its own SIGKILL to be counted.
    may_signal_any_user: bool,
    /// As PID 1 with /proc: the namespace's process list, open for the question asked at exit and for every
    /// scan (listing it then takes no descriptor).
    pid_dir: Option<PidDir>,
    /// The processes a SIGKILL was counted for (reached or refused), by pid and start time: a sweep after the
    /// first counts only processes it is the first to reach, so the counts of every sweep add up.
    kill_counted: RefCell<HashSet<(i32, u64)>>,
    /// Targets (a pid, or a negative group id) a signal was refused for (EPERM): each is warned about once.
    refused: RefCell<HashSet<i32>>,
    /// What the last look at /proc could not read, until the loop takes it to report (`take_trouble`).
    trouble: Cell<Option<Trouble>>,
}

impl Deliverer {
    /// Looks at the environment once: our pid, and whether /proc is mounted and belongs to our namespace.
    pub fn probe(child: i32) -> Deliverer {
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let proc_usable =
            fs::read_link("/proc/self").is_ok_and(|link| link.to_string_lossy() == me.to_string());
        if !proc_usable && me == 1 {
            log::debug!("/proc is not this namespace's: leftovers are reached with kill(-1)");
        } else if !proc_usable {
            log::warn!(
                "/proc is not mounted for this PID namespace: leftover processes cannot be found; only the \
                 child's process group is signalled, while its id is known to be the child's"
            );
        }
        Deliverer {
            me,
            child,
            proc_usable,
            stop_sent: Cell::new(None),
            told: RefCell::new(HashSet::new()),
            blanket_sent: Cell::new(false),
            group_told: Cell::new(false),
            sees_exit_codes: proc_usable && procs::sees_every_exit_code(),
            may_signal_any_user: procs::may_signal_any_user(),
            pid_dir: (proc_usable && me == 1).then(open_pid_dir).flatten(),
            kill_counted: RefCell::new(HashSet::new()),
            refused: RefCell::new(HashSet::new()),
            trouble: Cell::new(None),
        }
    }

    /// Every process /proc shows; `None` without a usable /proc, or when it cannot even be listed. What could
    /// not be read is kept for the loop to report (`take_trouble`): it is never taken for gone.
    fn look(&self) -> Option<Vec<Proc>> {
        if !self.proc_usable {
            return None;
        }
        match procs::scan(self.pid_dir.as_ref()) {
            Ok(scan) => {
                if let Some(why) = scan.why {
                    self.trouble.set(Some(Trouble {
                        why,
                        unread: scan.unread,
                    }));
                }
                Some(scan.procs)
            }
            Err(why) => {
                self.trouble.set(Some(Trouble { why, unread: 0 }));
                None
            }
        }
    }

    /// What the last looks at /proc could not read, once.
    pub fn take_trouble(&self) -> Option<Trouble> {
        self.trouble.take()
    }

    fn is_pid1(&self) -> bool {
        self.me == 1
    }

    /// Without /proc the main child's exit must be seen before it is reaped, so that its group can still be
    /// told safely (see `peek_exit`).
    pub fn needs_peek(&self) -> bool {
        !self.proc_usable && !self.is_pid1()
    }

    /// Without /proc, as a subreaper, the child has exited and is not reaped yet: its zombie still holds the
    /// group id, so SIGTERM (and SIGCONT) to the group reaches its members and no one else. Not when the stop
    /// signal already went to the group. The last chance: once the child is reaped the id may be reused.
    /// Returns whether the SIGTERM went out (the shell reports it as `Event::ToldGroup`).
    pub fn tell_group_while_reserved(&self) -> bool {
        let told_by_stop = matches!(
            self.stop_sent.get(),
            Some((Target::Group(_) | Target::Members(_), _))
        );
        if told_by_stop || self.group_told.replace(true) {
            return false;
        }
        let sent = self.send(-self.child, libc::SIGTERM) == Delivery::Sent;
        if sent {
            self.send(-self.child, libc::SIGCONT);
        }
        sent
    }

    /// Sends `signal` to `pid` (negative: a process group). ESRCH is normal; anything else is a warning.
    fn send(&self, pid: i32, signal: i32) -> Delivery {
        self.report(sys::kill(pid, signal), pid, signal)
    }

    /// Says how a forward to the child or its group went: the event loop's own (`forward`), or one sent as the
    /// signal was read, along the supervisor's standing route (see `route::Taker`).
    pub fn report_sent(&self, sent: Sent) {
        let Sent { signal, to, result } = sent;
        if self.report(result, to, signal) == Delivery::Sent {
            if to < 0 {
                log::debug!("forwarded {} to process group {}", name(signal), -to);
            } else {
                log::debug!("forwarded {} to child {to}", name(signal));
            }
        }
    }

    /// Forwards a signal to the child, its process group, or what is left of the group.
    pub fn forward(&self, signal: i32, target: Target) {
        match target {
            Target::Group(pgid) => self.report_sent(Sent {
                signal,
                to: -pgid,
                result: sys::kill(-pgid, signal),
            }),
            Target::Child(pid) => self.report_sent(Sent {
                signal,
                to: pid,
                result: sys::kill(pid, signal),
            }),
            Target::Members(pgid) => match self.look() {
                Some(table) => {
                    // Only grace-init's own descendants: once the group is empty its id may be reused by a
                    // stranger's group (every real member was re-parented below grace-init when the child died).
                    let below = procs::descendants(&table, self.me);
                    let members = below.iter().filter(|p| p.pgrp == pgid && p.counts());
                    let count = members
                        .filter(|p| self.signal_found(p, &[signal]) == Delivery::Sent)
                        .count();
                    log::debug!(
                        "forwarded {} to {count} remaining members of process group {pgid}",
                        name(signal)
                    );
                }
                None => log::debug!(
                    "{} not forwarded: the child is reaped and /proc cannot show its group",
                    name(signal)
                ),
            },
            Target::Rest { group } => match self.signal_rest(signal, group, false).0 {
                Reach::Counted(count) => log::debug!(
                    "forwarded {} to {count} of the processes left",
                    name(signal)
                ),
                Reach::Everyone | Reach::Group(_) => log::debug!(
                    "forwarded {} to every process (kill -1): /proc cannot list them",
                    name(signal)
                ),
                Reach::Nobody => log::debug!(
                    "{} not forwarded: no process left can be found without /proc",
                    name(signal)
                ),
            },
        }
    }

    /// Forwards the stop signal, noting the target and the time. Who it reached is worked out only if leftovers
    /// ever need it (from the processes' start times), so a normal shutdown pays nothing for it. Sent to what
    /// the child left (`--wait-all`), it returns whom it reached (and was refused for), and those it reached are not
    /// sent SIGTERM again.
    pub fn forward_stop(&self, signal: i32, target: Target) -> Option<(Reach, Refused)> {
        self.stop_sent.set(boot_ticks().map(|now| (target, now)));
        if let Target::Rest { group } = target {
            return Some(self.signal_rest(signal, group, true));
        }
        self.forward(signal, target);
        None
    }

    /// Sends `signal` to what is left once the main child ended under `--wait-all` (see `Target::Rest`), each
    /// process once and checked to be the process found. With `remember`, those it reached count as told and
    /// get no leftover SIGTERM. Without /proc, PID 1 reaches them with kill(-1); a subreaper finds nobody.
    fn signal_rest(&self, signal: i32, group: Option<i32>, remember: bool) -> (Reach, Refused) {
        let Some(table) = self.look() else {
            if !self.is_pid1() {
                return (Reach::Nobody, Refused::NONE);
            }
            self.send(-1, signal);
            if remember {
                self.blanket_sent.set(true);
            }
            return (Reach::Everyone, Refused::NONE);
        };
        // Only grace-init's own descendants count as the group's: its id may by now name a stranger's group.
        let below: HashSet<i32> = match group {
            Some(_) => procs::descendants(&table, self.me)
                .iter()
                .map(|p| p.pid)
                .collect(),
            None => HashSet::new(),
        };
        let mut told = self.told.borrow_mut();
        let mut count = 0;
        let mut refused = Refused::NONE;
        for p in table.iter().filter(|p| p.counts() && p.pid != self.me) {
            let root = p.ppid == self.me || (self.is_pid1() && p.ppid == 0);
            let member = group.is_some_and(|g| p.pgrp == g) && below.contains(&p.pid);
            if !(root || member) {
                continue;
            }
            match self.signal_found(p, &[signal]) {
                Delivery::Sent => {
                    count += 1;
                    if remember {
                        told.insert((p.pid, p.start));
                    }
                }
                Delivery::Refused(why) => refused.other(why),
                Delivery::Gone => {}
            }
        }
        (Reach::Counted(count), refused)
    }

    /// Whether the stop signal reached `p`: it is the target, or in the target group, and it started in an
    /// earlier clock tick than the signal was sent (a process started in the same tick counts as not reached:
    /// at worst it is told twice, never skipped).
    fn was_told(&self, p: &Proc) -> bool {
        let Some((target, sent)) = self.stop_sent.get() else {
            return false;
        };
        let member = match target {
            Target::Child(child) => p.pid == child,
            Target::Group(pgid) | Target::Members(pgid) => p.pgrp == pgid,
            // Those it reached outside the group were noted as told when it was sent.
            Target::Rest { group } => group.is_some_and(|g| p.pgrp == g),
        };
        member && p.start < sent
    }

    /// SIGTERM (then SIGCONT, so stopped ones can act on it) to the roots of what is left: grace-init's own
    /// children (orphans re-parented to it) and, as PID 1, processes whose parent is outside the namespace.
    /// A root's descendants are its own to stop, as the app's helpers are while it shuts down. Each process is
    /// told once; with `skip_told`, not at all if the stop signal reached it. Called again after every reap
    /// while processes remain, since a process that exits hands its children over to grace-init. Returns whom
    /// it reached, and whom it was refused for.
    pub fn terminate_leftovers(&self, skip_told: bool) -> (Reach, Refused) {
        let Some(table) = self.look() else {
            return (self.terminate_blind(), Refused::NONE);
        };
        let mut told = self.told.borrow_mut();
        // Forget processes that are gone, so the set stays as small as what is alive and a reused pid (with
        // another start time) is a new process.
        let alive: HashSet<(i32, u64)> = table.iter().map(|p| (p.pid, p.start)).collect();
        told.retain(|key| alive.contains(key));
        let roots = table.iter().filter(|p| {
            p.counts() && p.pid != self.me && (p.ppid == self.me || (self.is_pid1() && p.ppid == 0))
        });
        let mut count = 0;
        let mut refused = Refused::NONE;
        for p in roots {
            if told.contains(&(p.pid, p.start)) || (skip_told && self.was_told(p)) {
                continue;
            }
            told.insert((p.pid, p.start));
            match self.signal_found(p, &[libc::SIGTERM, libc::SIGCONT]) {
                Delivery::Sent => count += 1,
                Delivery::Refused(why) => refused.other(why),
                Delivery::Gone => {}
            }
        }
        (Reach::Counted(count), refused)
    }

    /// Without /proc: as PID 1 everyone gets it once through kill(-1); as a subreaper only the child's group,
    /// and only while its id is known to be the child's.
    fn terminate_blind(&self) -> Reach {
        if self.is_pid1() {
            if self.blanket_sent.replace(true) {
                return Reach::Counted(0);
            }
            self.send(-1, libc::SIGTERM);
            self.send(-1, libc::SIGCONT);
            return Reach::Everyone;
        }
        // A subreaper can only have told the group while the child's zombie reserved its id (see
        // `tell_group_while_reserved`), and that SIGTERM is reported when it is sent, whoever is left now.
        Reach::Nobody
    }

    /// As PID 1 with /proc: whether any process besides grace-init exists in the namespace, children or not.
    pub fn others_in_namespace(&self) -> bool {
        if !self.is_pid1() || !self.proc_usable {
            return false;
        }
        // The common case at exit is "none", told by one read of the namespace's process list. kill(-1, 0)
        // tells it too, but only after a walk of every process on the host (see `PidDir`): it is the fallback
        // for when that read cannot tell.
        match self.pid_dir.as_ref().and_then(PidDir::others_than_pid1) {
            Some(false) => return false,
            Some(true) => {}
            None if sys::kill(-1, 0) == Err(Errno::ESRCH) => return false,
            None => {}
        }
        // A stranger's zombie is its (outside) parent's to reap; a kernel thread is never ours.
        // Could it not be read, the answer is yes: grace-init waits (and its trouble is reported), within the bound.
        self.look()
            .is_none_or(|t| t.iter().any(|p| p.pid != self.me && p.counts()))
    }

    /// SIGKILL to everything left: as PID 1 every process in the namespace, as a subreaper the child's group
    /// (while the child is not reaped) and every descendant. The count leaves out the main child.
    ///
    /// The deadline is now, so what needs no search is killed first: the child's group (while the child's
    /// zombie-to-be keeps its id reserved), then, as PID 1, everyone. Then grace-init yields its CPU to the
    /// processes it just killed, which would otherwise wait for it to finish on the CPU they were woken on,
    /// and only then walks /proc: a subreaper to find the descendants outside the group, PID 1 only to count
    /// (milliseconds, when its pages went cold during the grace period). A process these kills reached is a
    /// zombie by then, or soon, and still listed (grace-init reaps it later). So the count is approximate: a
    /// zombie counts when its exit code says SIGKILL, or when /proc hides the code (another user's process,
    /// without CAP_SYS_PTRACE); one that exited before does not. As PID 1, one reaped at once by its parent (outside
    /// the namespace) counts when it was listed right before the kill and is gone after.
    pub fn kill_all(&self, child_alive: bool) -> (Reach, Refused) {
        if child_alive {
            self.send(-self.child, libc::SIGKILL);
        }
        let mut refused = Refused::NONE;
        // The child by its pid too (it is grace-init's until reaped): the group's kill says nothing of a member
        // that refused it, and the child may have left its group with setsid.
        let kill_child = |refused: &mut Refused| {
            if !child_alive {
                return;
            }
            if let Delivery::Refused(why) = self.send(self.child, libc::SIGKILL) {
                refused.child = true;
                refused.why = Some(why);
            }
        };
        // A live process counts as reached when its own SIGKILL (sent again, found in /proc) goes; one that
        // refuses it does not, whatever the blanket kill returned (it succeeds when anyone got it). Gone meanwhile,
        // it counts when the blanket kill was for it (`blanket`).
        // Each process is counted by the first sweep that reaches (or is refused by) it; later ones still send.
        let first = |p: &Proc| self.kill_counted.borrow_mut().insert((p.pid, p.start));
        let alive = |p: &Proc, blanket: bool, refused: &mut Refused| {
            let delivery = self.signal_found(p, &[libc::SIGKILL]);
            let first = first(p);
            match delivery {
                Delivery::Sent => first,
                Delivery::Gone => first && blanket,
                Delivery::Refused(why) => {
                    if first {
                        refused.other(why);
                    }
                    false
                }
            }
        };
        let reached = |p: &&Proc| {
            !p.kernel
                && p.pid != self.me
                && p.pid != self.child
                && (!p.zombie || p.killed || self.exit_code_hidden(p.pid))
        };
        if self.is_pid1() {
            // Who is there, by pid only (one read of the kept /proc, no stat file): a process entered from outside
            // (`docker exec`) is reaped by its own parent the moment the kill ends it, and would be missing from
            // the count taken after.
            let before = self.pid_dir.as_ref().and_then(|dir| dir.pids().ok());
            self.send(-1, libc::SIGKILL);
            kill_child(&mut refused);
            sys::yield_cpu();
            let reach = match self.look() {
                Some(table) => {
                    let after: HashSet<i32> = table.iter().map(|p| p.pid).collect();
                    let reaped_outside = before.unwrap_or_default().into_iter().filter(|pid| {
                        *pid != self.me && *pid != self.child && !after.contains(pid)
                    });
                    // With CAP_KILL nothing alive refused it; without, each live one is sent its own SIGKILL, and
                    // counted when that goes.
                    let listed = table
                        .iter()
                        .filter(reached)
                        .filter(|p| {
                            if p.zombie || self.may_signal_any_user {
                                first(p)
                            } else {
                                alive(p, true, &mut refused)
                            }
                        })
                        .count();
                    Reach::Counted(listed + reaped_outside.count())
                }
                None => Reach::Everyone,
            };
            return (reach, refused);
        }
        if child_alive {
            // It may have left its group with setsid; its pid is its own until it is reaped.
            kill_child(&mut refused);
            sys::yield_cpu();
        }
        let Some(table) = self.look() else {
            let reach = if child_alive {
                Reach::Group(self.child)
            } else {
                Reach::Nobody
            };
            return (reach, refused);
        };
        let in_killed_group = |p: &Proc| child_alive && p.pgrp == self.child;
        let count = procs::descendants(&table, self.me)
            .iter()
            .filter(reached)
            .filter(|p| {
                if p.zombie {
                    // Died of a SIGKILL: the group's, if it was in the group.
                    in_killed_group(p) && first(p)
                } else {
                    // Alive: signalled by itself too, in case it joined the group after the group's kill.
                    alive(p, in_killed_group(p), &mut refused)
                }
            })
            .count();
        (Reach::Counted(count), refused)
    }

    /// What is still there for grace-init to wait for, the main child left out: its descendants, or as PID 1
    /// every other process; the log names them when grace-init stops waiting, and under `--wait-all` once the
    /// main child ended.
    pub fn survey(&self) -> Unreached {
        let mut unreached = Unreached::default();
        let table = match self.look() {
            Some(table) => table,
            None => {
                let why = self.trouble.get().map_or(Errno::ENOENT, |t| t.why);
                unreached.unreadable = Some(why);
                return unreached;
            }
        };
        let below = if self.is_pid1() {
            table
        } else {
            procs::descendants(&table, self.me)
        };
        let left = below
            .iter()
            .filter(|p| p.counts() && p.pid != self.me && p.pid != self.child);
        for p in left {
            if let Some(slot) = unreached.named.get_mut(unreached.seen) {
                *slot = Some((p.pid, p.name));
            }
            unreached.seen += 1;
            unreached.children_seen += usize::from(p.ppid == self.me);
        }
        unreached
    }

    /// Whether /proc shows grace-init a 0 for `pid`'s exit code whatever it was (see `procs::exit_code_visible`).
    fn exit_code_hidden(&self, pid: i32) -> bool {
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        !self.sees_exit_codes && !procs::exit_code_visible(pid, uid, gid)
    }

    /// SIGKILL to the pre-stop command's process group (it is not reaped yet, so the id is its own).
    pub fn kill_group(&self, group: i32) {
        self.send(-group, libc::SIGKILL);
    }

    /// Logs the outcome of one signal: ESRCH is normal (debug), anything else a warning, and a refusal (EPERM)
    /// only the first time for that target, however often it is tried again. Returns what became of it.
    fn report(&self, result: Result<(), Errno>, pid: i32, signal: i32) -> Delivery {
        let why = match result {
            Ok(()) => return Delivery::Sent,
            Err(Errno::ESRCH) => {
                log::debug!("{} to {pid}: no such process", name(signal));
                return Delivery::Gone;
            }
            Err(why) => why,
        };
        match why {
            Errno::EPERM if !self.refused.borrow_mut().insert(pid) => {
                log::debug!("{} to {pid}: refused again", name(signal));
            }
            Errno::EPERM => {
                log::warn!(
                    "could not send {} to {pid}: not permitted (another user's process while grace-init lacks \
                     CAP_KILL, or a security policy); further refusals for it are not logged",
                    name(signal)
                );
            }
            e => log::warn!("could not send {} to {pid}: {}", name(signal), e.desc()),
        }
        Delivery::Refused(why)
    }

    /// Sends `signals`, in order, to a process found in /proc, making sure it is still that process.
    /// Returns what became of the first one (`Gone` too when it cannot be looked at: that is reported apart).
    fn signal_found(&self, p: &Proc, signals: &[i32]) -> Delivery {
        if p.ppid == self.me {
            // grace-init's own child: only grace-init can reap it, so its pid is still its own.
            return send_each(signals, |s| self.send(p.pid, s));
        }
        // Whether it is still the process found. One that cannot be looked at now is not signalled: that is
        // reported, not taken for gone.
        let same = || match Proc::look(p.pid) {
            Ok(now) => now.start == p.start,
            Err(Errno::ENOENT | Errno::ESRCH) => false,
            Err(why) => {
                self.trouble.set(Some(Trouble { why, unread: 1 }));
                false
            }
        };
        match sys::pidfd_open(p.pid) {
            Ok(pidfd) => {
                // Held now: check it is the process that was found, not a newer one with its number.
                if !same() {
                    return Delivery::Gone;
                }
                send_each(signals, |s| match sys::pidfd_send_signal(&pidfd, s) {
                    // Refused as a call (a seccomp profile: EPERM or ENOSYS), not for this process: the same
                    // check as without a pidfd, then kill(2), which reports a real refusal.
                    Err(Errno::EPERM | Errno::ENOSYS) if !same() => Delivery::Gone,
                    Err(Errno::EPERM | Errno::ENOSYS) => self.send(p.pid, s),
                    result => self.report(result, p.pid, s),
                })
            }
            Err(Errno::ESRCH) => Delivery::Gone,
            Err(_) => {
                // No pidfd (Linux before 5.3, or no descriptor left): check as late as possible, then kill.
                if !same() {
                    return Delivery::Gone;
                }
                send_each(signals, |s| self.send(p.pid, s))
            }
        }
    }
}

/// What became of one signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Sent,
    /// No such process (any more).
    Gone,
    /// Refused for this reason (EPERM): the process is there and did not get it.
    Refused(Errno),
}

/// Sends each of `signals`, in order, with `send`; returns what became of the first one.
fn send_each(signals: &[i32], mut send: impl FnMut(i32) -> Delivery) -> Delivery {
    let mut first = None;
    for &signal in signals {
        let sent = send(signal);
        first.get_or_insert(sent);
    }
    first.unwrap_or(Delivery::Gone)
}

/// Opens the namespace's process list for `others_in_namespace`; without it, kill(-1, 0) answers instead.
fn open_pid_dir() -> Option<PidDir> {
    let dir = PidDir::open();
    if dir.is_none() {
        log::debug!(
            "cannot open /proc: at exit, kill(-1, 0) tells whether other processes are left"
        );
    }
    dir
}

/// The boot-time clock now, in the clock ticks /proc uses for start times.
fn boot_ticks() -> Option<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let hz = u64::try_from(hz).ok()?;
    let secs = u64::try_from(now.tv_sec()).ok()?;
    let nanos = u64::try_from(now.tv_nsec()).ok()?;
    Some(secs * hz + nanos * hz / 1_000_000_000)
}
