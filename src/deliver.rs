//! Sends signals: to the child, its group, every leftover process. The only caller of kill.

use std::fs;

use nix::errno::Errno;

use crate::signals::name;
use crate::supervisor::Target;
use crate::sys;

/// Knows who grace-init is (PID 1 or a subreaper) and whether /proc shows its own process tree.
pub struct Deliverer {
    me: i32,
    proc_usable: bool,
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
        Deliverer { me, proc_usable }
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

    /// SIGTERM (then SIGCONT, so stopped ones can act on it) to every process left, except members of
    /// `skip_group`. Returns how many were signalled; `None` when /proc cannot list them (then, as PID 1,
    /// everyone gets it through `kill(-1)`).
    pub fn terminate_leftovers(&self, skip_group: Option<i32>) -> Option<usize> {
        let Some(pids) = self.descendants() else {
            if self.is_pid1() {
                self.send(-1, libc::SIGTERM);
                self.send(-1, libc::SIGCONT);
            }
            return None;
        };
        let mut count = 0;
        for pid in pids {
            let in_skipped_group = skip_group.is_some_and(|group| {
                nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
                    .is_ok_and(|g| g.as_raw() == group)
            });
            if in_skipped_group {
                continue;
            }
            if self.send(pid, libc::SIGTERM) {
                self.send(pid, libc::SIGCONT);
                count += 1;
            }
        }
        Some(count)
    }

    /// As PID 1 with /proc: whether any process besides grace-init exists in the namespace, children or not.
    pub fn others_in_namespace(&self) -> bool {
        if !self.is_pid1() || !self.proc_usable {
            return false;
        }
        let me = self.me.to_string();
        fs::read_dir("/proc").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name != me.as_str() && name.bytes().all(|b| b.is_ascii_digit())
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
            let Ok(tasks) = fs::read_dir(format!("/proc/{parent}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let Ok(children) = fs::read_to_string(task.path().join("children")) else {
                    continue;
                };
                // Each child is listed under exactly one task of its parent, so there are no duplicates.
                for pid in children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    found.push(pid);
                    stack.push(pid);
                }
            }
        }
        Some(found)
    }
}
