//! Finds processes: one pass over /proc/<pid>/stat gives every process's parent, group, start time and state.
//! Children and descendants are derived from the parent field, so nothing depends on
//! /proc/<pid>/task/<tid>/children (which needs CONFIG_PROC_CHILDREN and which the kernel calls unreliable
//! while children exit). Kernel threads (a root PID namespace's, when grace-init is a VM's init) are never
//! counted. This module only looks; `deliver` signals.

use std::collections::HashMap;
use std::fs;

/// The kernel marks its own threads with this flag in the `flags` field of /proc/<pid>/stat.
const PF_KTHREAD: u64 = 0x0020_0000;

/// One process, as /proc/<pid>/stat showed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    /// Parent pid as this namespace sees it (0: outside it, e.g. entered with `docker exec`).
    pub ppid: i32,
    pub pgrp: i32,
    /// Start time in clock ticks since boot: with the pid, it names one process for good.
    pub start: u64,
    /// Exited, not yet reaped: it runs nothing and cannot be signalled.
    pub zombie: bool,
    /// A kernel thread: never grace-init's to signal or wait for.
    pub kernel: bool,
}

impl Proc {
    /// Parses the text of /proc/<pid>/stat.
    pub fn parse(pid: i32, stat: &str) -> Option<Proc> {
        // Fields after the command name, which is in parentheses and may itself contain spaces or ')'.
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?;
        let ppid: i32 = fields.next()?.parse().ok()?;
        let pgrp: i32 = fields.next()?.parse().ok()?;
        // session, tty_nr, tpgid, then flags.
        let flags: u64 = fields.nth(3)?.parse().ok()?;
        // minflt .. starttime: starttime is the 13th field after flags.
        let start: u64 = fields.nth(12)?.parse().ok()?;
        Some(Proc {
            pid,
            ppid,
            pgrp,
            start,
            zombie: matches!(state, "Z" | "X"),
            kernel: flags & PF_KTHREAD != 0,
        })
    }

    /// Reads one process; `None` when it is gone (or /proc is not there).
    pub fn read(pid: i32) -> Option<Proc> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Proc::parse(pid, &stat)
    }

    /// Whether grace-init may have to signal or wait for it: a live user-space process.
    pub fn counts(&self) -> bool {
        !self.zombie && !self.kernel
    }
}

/// Every process /proc lists, read in one pass; `None` when /proc cannot be read.
pub fn scan() -> Option<Vec<Proc>> {
    let entries = fs::read_dir("/proc").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(Proc::read)
            .collect(),
    )
}

/// The processes below `root` in `table` (not `root` itself), found through their parent fields.
pub fn descendants(table: &[Proc], root: i32) -> Vec<Proc> {
    let mut by_parent: HashMap<i32, Vec<Proc>> = HashMap::new();
    for p in table {
        by_parent.entry(p.ppid).or_default().push(*p);
    }
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(parent) = stack.pop() {
        for child in by_parent.remove(&parent).unwrap_or_default() {
            stack.push(child.pid);
            found.push(child);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_parsed_even_with_odd_command_names() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        let p = Proc::parse(42, line).expect("parsed");
        assert_eq!((p.ppid, p.pgrp, p.start), (7, 42, 123456));
        assert!(p.counts());
        let zombie = "43 (x) Z 1 43 43 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
        assert!(!Proc::parse(43, zombie).expect("parsed").counts());
        assert_eq!(Proc::parse(1, "garbage"), None);
    }

    #[test]
    fn kernel_threads_are_recognised_from_the_real_proc() {
        // This test process runs in the machine's root PID namespace, where pid 2 is kthreadd.
        if let Some(kthreadd) = Proc::read(2) {
            assert!(kthreadd.kernel, "{kthreadd:?}");
            assert!(!kthreadd.counts());
        }
        let me = Proc::read(std::process::id() as i32).expect("own stat");
        assert!(!me.kernel && me.counts());
    }

    #[test]
    fn descendants_follow_parent_fields() {
        let p = |pid, ppid| Proc {
            pid,
            ppid,
            pgrp: pid,
            start: 0,
            zombie: false,
            kernel: false,
        };
        let table = [p(1, 0), p(5, 1), p(6, 5), p(7, 6), p(9, 8)];
        let mut found: Vec<i32> = descendants(&table, 1).iter().map(|p| p.pid).collect();
        found.sort();
        assert_eq!(found, vec![5, 6, 7]);
    }
}
