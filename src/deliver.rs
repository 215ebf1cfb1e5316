//! Sends signals: to the child, its group, every leftover process. The only caller of kill.

use std::cell::RefCell;
use std::fs;

use nix::errno::Errno;

use crate::signals::name;
use crate::supervisor::Target;
use crate::sys;

/// Knows who grace-init is (PID 1 or a subreaper) and whether /proc shows its own process tree.
pub struct Deliverer {
    me: i32,
    proc_usable: bool,
    /// Who the stop signal was sent to, and when (boot-time clock ticks), so leftovers are not told twice.
    stop_sent: std::cell::Cell<Option<(Target, u64)>>,
    /// The leftover processes already sent SIGTERM.
    terminated: RefCell<Vec<i32>>,
    /// Without /proc, as PID 1: whether `kill(-1, SIGTERM)` was already sent.
    blanket_sent: std::cell::Cell<bool>,
}

impl Deliverer {
    /// Looks at the environment once: our pid, and whether /proc is mounted and belongs to our namespace.
    pub fn probe() -> Deliverer {
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let proc_usable =
            fs::read_link("/proc/self").is_ok_and(|link| link.to_string_lossy() == me.to_string());
        if !proc_usable && me == 1 {
            log::debug!("/proc is not this namespace's: leftovers are reached with kill(-1)");
        } else if !proc_usable {
            log::warn!(
                "/proc is not mounted for this PID namespace: leftover processes that left the child's \
                 process group cannot be found (only the group and, as PID 1, everyone are signalled)"
            );
        }
        Deliverer {
            me,
            proc_usable,
            stop_sent: std::cell::Cell::new(None),
            terminated: RefCell::new(Vec::new()),
            blanket_sent: std::cell::Cell::new(false),
        }
    }

    fn is_pid1(&self) -> bool {
        self.me == 1
    }

    /// Sends `signal` to `pid` (negative: a process group). ESRCH is normal; anything else is a warning.
    pub fn send(&self, pid: i32, signal: i32) -> bool {
        match sys::kill(pid, signal) {
            Ok(()) => true,
            Err(Errno::ESRCH) => {
                log::debug!("{} to {pid}: no such process", name(signal));
                false
            }
            Err(e) => {
                log::warn!("could not send {} to {pid}: {}", name(signal), e.desc());
                false
            }
        }
    }

    /// Forwards a signal to the child or its process group.
    pub fn forward(&self, signal: i32, target: Target) {
        let (pid, whom) = match target {
            Target::Group(pgid) => (-pgid, "process group"),
            Target::Child(pid) => (pid, "child"),
        };
        if self.send(pid, signal) {
            log::debug!("forwarded {} to {whom} {}", name(signal), pid.abs());
        }
    }

    /// Forwards the stop signal, noting the target and the time. Who it reached is worked out only if leftovers
    /// ever need it (from the processes' start times), so a normal shutdown pays nothing for it.
    pub fn forward_stop(&self, signal: i32, target: Target) {
        self.stop_sent.set(boot_ticks().map(|now| (target, now)));
        self.forward(signal, target);
    }

    /// Whether the stop signal reached `pid`: it is the target, or in the target group, and it started in an
    /// earlier clock tick than the signal was sent (a process started in the same tick counts as not reached:
    /// at worst it is told twice, never skipped).
    fn was_told(&self, pid: i32) -> bool {
        let Some((target, sent)) = self.stop_sent.get() else {
            return false;
        };
        let Some(stat) = Stat::read(pid) else {
            return false;
        };
        let member = match target {
            Target::Child(child) => pid == child,
            Target::Group(pgid) => stat.pgrp == pgid,
        };
        member && stat.start_ticks < sent
    }

    /// SIGTERM (then SIGCONT, so stopped ones can act on it) to the roots of what is left: grace-init's own
    /// children (orphans re-parented to it) and, as PID 1, processes whose parent is outside the namespace.
    /// A root's descendants are its own to stop, as the app's helpers are while it shuts down. Each process is
    /// told once; with `skip_told`, not at all if the stop signal reached it. Called again after every reap
    /// while processes remain, since a process that exits hands its children over to grace-init.
    /// Returns how many were signalled; `None` when /proc cannot list them (then, as PID 1, everyone gets it
    /// once through `kill(-1)`).
    pub fn terminate_leftovers(&self, skip_told: bool) -> Option<usize> {
        let Some(roots) = self.roots() else {
            if self.is_pid1() && !self.blanket_sent.replace(true) {
                self.send(-1, libc::SIGTERM);
                self.send(-1, libc::SIGCONT);
            }
            return None;
        };
        let mut terminated = self.terminated.borrow_mut();
        let mut count = 0;
        for pid in roots {
            if terminated.contains(&pid) || (skip_told && self.was_told(pid)) {
                continue;
            }
            terminated.push(pid);
            if self.send(pid, libc::SIGTERM) {
                self.send(pid, libc::SIGCONT);
                count += 1;
            }
        }
        Some(count)
    }

    /// grace-init's direct children and, as PID 1, processes entered from outside (parent pid 0 here).
    fn roots(&self) -> Option<Vec<i32>> {
        if !self.proc_usable {
            return None;
        }
        let mut roots = children_of(self.me);
        if self.is_pid1() {
            let entries = fs::read_dir("/proc").ok()?;
            roots.extend(
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                    .filter(|pid| *pid != self.me && Stat::read(*pid).is_some_and(|s| s.ppid == 0)),
            );
        }
        Some(roots)
    }

    /// As PID 1 with /proc: whether any process besides grace-init exists in the namespace, children or not.
    pub fn others_in_namespace(&self) -> bool {
        if !self.is_pid1() || !self.proc_usable {
            return false;
        }
        // kill(-1, 0) asks the kernel in one call whether any other process exists: the common case at exit
        // is "none" (ESRCH), and then /proc need not be read at all.
        if sys::kill(-1, 0) == Err(Errno::ESRCH) {
            return false;
        }
        // A stranger's zombie is its (outside) parent's to reap, and no longer running: it does not count.
        let alive = |pid: i32| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                !matches!(state, Some('Z' | 'X') | None)
            })
        };
        fs::read_dir("/proc").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let pid = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok());
                pid.is_some_and(|pid| pid != self.me && alive(pid))
            })
        })
    }

    /// SIGKILL to everything left: as PID 1 every process in the namespace, as a subreaper the child's
    /// group and every descendant. Returns how many processes there were.
    /// `child_alive`: the main child is not reaped yet, so its pid is still its own and it is killed by pid too
    /// (it may have left its group with setsid).
    pub fn kill_all(&self, group: i32, child_alive: bool) -> usize {
        let pids = self.descendants();
        if self.is_pid1() {
            self.send(-1, libc::SIGKILL);
        } else {
            self.send(-group, libc::SIGKILL);
            if child_alive {
                self.send(group, libc::SIGKILL);
            }
            for pid in pids.iter().flatten() {
                self.send(*pid, libc::SIGKILL);
            }
        }
        pids.map_or(0, |p| p.len())
    }

    /// Whether every process grace-init is responsible for can be reached: as PID 1 `kill(-1)` does it; as a
    /// subreaper only a walk of /proc finds processes that left the child's group.
    pub fn can_find_every_process(&self) -> bool {
        self.is_pid1() || self.proc_usable
    }

    /// SIGKILL to a process group (the pre-stop command's).
    pub fn kill_group(&self, group: i32) {
        self.send(-group, libc::SIGKILL);
    }

    /// Every process grace-init is responsible for; `None` without /proc. As PID 1 that is every process in the
    /// namespace (`docker exec` sessions too, which are not descendants); otherwise every live descendant,
    /// read from /proc/<pid>/task/<tid>/children.
    fn descendants(&self) -> Option<Vec<i32>> {
        if !self.proc_usable {
            return None;
        }
        if self.is_pid1() {
            let entries = fs::read_dir("/proc").ok()?;
            let pids = entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| *pid != self.me)
                .collect();
            return Some(pids);
        }
        let mut found = Vec::new();
        let mut stack = vec![self.me];
        while let Some(parent) = stack.pop() {
            for pid in children_of(parent) {
                found.push(pid);
                stack.push(pid);
            }
        }
        Some(found)
    }
}

/// The children of `parent`, from /proc/<pid>/task/<tid>/children (each is listed under exactly one task).
fn children_of(parent: i32) -> Vec<i32> {
    let mut children = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{parent}/task")) else {
        return children;
    };
    for task in tasks.flatten() {
        if let Ok(list) = fs::read_to_string(task.path().join("children")) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    children
}

/// The fields of /proc/<pid>/stat grace-init needs.
struct Stat {
    /// Parent pid as this namespace sees it (0: outside it).
    ppid: i32,
    pgrp: i32,
    /// Start time in clock ticks since boot.
    start_ticks: u64,
}

impl Stat {
    fn read(pid: i32) -> Option<Stat> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may itself contain spaces or ')'.
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Stat {
            ppid: fields.get(1)?.parse().ok()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }
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
