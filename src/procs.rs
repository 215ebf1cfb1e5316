//! Finds processes: one pass over /proc/<pid>/stat gives every process's parent, group, start time and state.
//! Children and descendants are derived from the parent field, so nothing depends on
//! /proc/<pid>/task/<tid>/children (which needs CONFIG_PROC_CHILDREN and which the kernel calls unreliable
//! while children exit). Kernel threads (a root PID namespace's, when grace-init is a VM's init) are never
//! counted. This module only looks; `deliver` signals.

use std::cell::Cell;

use nix::errno::Errno;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsFd;

use crate::comm::Comm;
use crate::sys;

/// The kernel marks its own threads with this flag in the `flags` field of /proc/<pid>/stat.
const PF_KTHREAD: u64 = 0x0020_0000;

/// One process, as /proc/<pid>/stat showed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    /// Its name: whatever bytes it was given, cut to 15.
    pub name: Comm,
    /// Parent pid as this namespace sees it (0: outside it, e.g. entered with `docker exec`).
    pub ppid: i32,
    pub pgrp: i32,
    /// Start time in clock ticks since boot: with the pid, it names one process for good.
    pub start: u64,
    /// Exited, not yet reaped: it runs nothing and cannot be signalled. Not a process whose main thread
    /// exited while other threads run: /proc shows it as `Z` too, yet it lives and must be signalled.
    pub zombie: bool,
    /// A zombie whose `exit_code` says it died of SIGKILL, so the count of an escalation can tell it from one
    /// that was dead before. False too where /proc hides the field (see `exit_code_visible`), and on kernels
    /// before 6.15 for a leader whose other threads outlived it.
    pub killed: bool,
    /// A kernel thread: never grace-init's to signal or wait for.
    pub kernel: bool,
}

impl Proc {
    /// Parses /proc/<pid>/stat as the kernel writes it: `pid (name) state ppid ...`. The name is whatever bytes
    /// the process was given (cut to 15 bytes, perhaps inside a UTF-8 character, and free to hold ')', spaces
    /// and newlines), so the line is bytes, and the fields are those after the last ')'.
    pub fn parse(pid: i32, stat: &[u8]) -> Option<Proc> {
        let open = stat.iter().position(|&b| b == b'(')?;
        let close = stat.iter().rposition(|&b| b == b')')?;
        let name = Comm::exact(stat.get(open + 1..close)?);
        let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?;
        let ppid: i32 = fields.next()?.parse().ok()?;
        let pgrp: i32 = fields.next()?.parse().ok()?;
        // session, tty_nr, tpgid, then flags.
        let flags: u64 = fields.nth(3)?.parse().ok()?;
        // minflt .. num_threads: num_threads is the 11th field after flags, starttime the 2nd after that.
        let threads: u64 = fields.nth(10)?.parse().ok()?;
        let start: u64 = fields.nth(1)?.parse().ok()?;
        // exit_code, the 52nd field (Linux 3.5+; 0 when we may not see it): the wait status of a zombie.
        let exit_code: i32 = fields.nth(29).and_then(|f| f.parse().ok()).unwrap_or(0);
        let zombie = matches!(state, "Z" | "X") && threads <= 1;
        Some(Proc {
            pid,
            name,
            ppid,
            pgrp,
            start,
            zombie,
            killed: zombie && exit_code & 0x7f == libc::SIGKILL,
            kernel: flags & PF_KTHREAD != 0,
        })
    }

    /// Reads one process; `None` when it is gone, or cannot be looked at.
    pub fn read(pid: i32) -> Option<Proc> {
        Proc::look(pid).ok()
    }

    /// Reads one process. ENOENT or ESRCH: it is gone. Any other error: it could not be looked at (EMFILE with no
    /// descriptor left, EPERM under hidepid=1), which says nothing about whether it lives; EINVAL: a line that
    /// does not parse.
    pub fn look(pid: i32) -> Result<Proc, Errno> {
        let stat = fs::read(format!("/proc/{pid}/stat")).map_err(|e| errno_of(&e))?;
        Proc::parse(pid, &stat).ok_or(Errno::EINVAL)
    }

    /// Whether grace-init may have to signal or wait for it: a live user-space process.
    pub fn counts(&self) -> bool {
        !self.zombie && !self.kernel
    }
}

/// The capability that lets /proc show any process's private fields (`exit_code` among them).
const CAP_SYS_PTRACE: u32 = 19;

/// The capability that lets a process signal any other (of its user namespace) whatever its user.
const CAP_KILL: u32 = 5;

/// Whether this process has `cap` in its effective set.
fn has_capability(cap: u32) -> bool {
    status_line("self", "CapEff:")
        .and_then(|caps| u64::from_str_radix(caps.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

/// Whether /proc shows this process every other process's `exit_code`: it has CAP_SYS_PTRACE. Docker's and
/// containerd's default capability sets leave it out.
pub fn sees_every_exit_code() -> bool {
    has_capability(CAP_SYS_PTRACE)
}

/// Whether this process may signal any process of its user namespace: it has CAP_KILL. Without it a signal
/// to another user's process is refused (EPERM), even from PID 1.
pub fn may_signal_any_user() -> bool {
    has_capability(CAP_KILL)
}

/// Whether /proc shows `pid`'s `exit_code` to a process with user `uid` and group `gid` and no CAP_SYS_PTRACE:
/// only when that process's real, effective, saved and filesystem ids are all these (the kernel's
/// ptrace-read check; a zombie has no memory left whose dumpability could matter). Otherwise the field reads 0.
pub fn exit_code_visible(pid: i32, uid: u32, gid: u32) -> bool {
    let all = |key: &str, id: u32| {
        status_line(&pid.to_string(), key).is_some_and(|ids| {
            ids.split_whitespace()
                .all(|n| n.parse::<u32>().is_ok_and(|n| n == id))
        })
    };
    all("Uid:", uid) && all("Gid:", gid)
}

/// The rest of the line starting with `key` in /proc/<pid>/status. The file is read as bytes: its `Name:` line
/// holds the process's name, which need not be UTF-8.
fn status_line(pid: &str, key: &str) -> Option<String> {
    let status = fs::read(format!("/proc/{pid}/status")).ok()?;
    status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(key.as_bytes()))
        .and_then(|rest| std::str::from_utf8(rest).ok())
        .map(str::to_string)
}

/// The errno behind an I/O error (EIO when it has none).
fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// One pass over /proc: the processes read, and those listed that could not be read (not those gone meanwhile).
#[derive(Debug, Default)]
pub struct Scan {
    pub procs: Vec<Proc>,
    /// How many listed processes could not be read, and why (the first error).
    pub unread: usize,
    pub why: Option<Errno>,
}

/// Every process /proc lists, read in one pass, through `kept` (/proc held open since the start, so listing it
/// takes no descriptor) or a fresh open. `Err` when the list itself cannot be read. A process that is gone by the
/// time it is read is left out; one that cannot be read is counted in `Scan::unread`, never taken for gone.
pub fn scan(kept: Option<&PidDir>) -> Result<Scan, Errno> {
    let pids = match kept {
        Some(dir) => dir.pids()?,
        None => fs::read_dir("/proc")
            .map_err(|e| errno_of(&e))?
            .map(|e| e.map_err(|e| errno_of(&e)))
            .filter_map(|e| match e {
                Ok(e) => e.file_name().to_str()?.parse::<i32>().ok().map(Ok),
                Err(errno) => Some(Err(errno)),
            })
            .collect::<Result<Vec<i32>, Errno>>()?,
    };
    let mut scan = Scan {
        procs: Vec::with_capacity(pids.len()),
        ..Scan::default()
    };
    for pid in pids {
        match Proc::look(pid) {
            Ok(p) => scan.procs.push(p),
            Err(Errno::ENOENT | Errno::ESRCH) => {}
            Err(errno) => {
                scan.unread += 1;
                scan.why.get_or_insert(errno);
            }
        }
    }
    Ok(scan)
}

/// Where PID 1's entry sits in /proc's directory stream. The kernel lists its own files first, then "self" and
/// "thread-self" at 256 and 257, then each process at 258 + its pid (`TGID_OFFSET` in fs/proc/base.c, since
/// Linux 3.17). Read from here, PID 1 sees itself, then only the other processes of its namespace. Its own
/// entry is always there (hidepid never hides a process from itself), so a read that does not start with "1"
/// says the layout is another, and then nothing is concluded from it (see `others_after_pid1`).
const PID1_POS: u64 = 259;

/// Room for PID 1's entry and the next: a read that returns only "1" and still had this much room left ended
/// because nothing followed, not because the buffer was full.
const ENTRIES_BUF: usize = 512;

/// The PID namespace's /proc, kept open from the start so that PID 1 can ask at exit whether any other process
/// is left, in one `getdents64`, and list its processes without a descriptor of its own (short of descriptors,
/// a scan then needs one, for each stat file in turn). The kernel's answer to `kill(-1, 0)` is the same, but
/// it walks every process of the host under the task-list lock, which costs in proportion to the host's
/// processes, not the namespace's (docs/design.md has the measurements).
pub struct PidDir {
    dir: File,
    /// Whether the stream stands at `PID1_POS`: true after opening, false once read.
    positioned: Cell<bool>,
}

impl PidDir {
    /// Opens /proc (close-on-exec) and moves to PID 1's entry; `None` when /proc cannot be read.
    pub fn open() -> Option<PidDir> {
        let mut dir = File::open("/proc").ok()?;
        dir.seek(SeekFrom::Start(PID1_POS)).ok()?;
        Some(PidDir {
            dir,
            positioned: Cell::new(true),
        })
    }

    /// Whether /proc lists a process other than PID 1 (a zombie too): `None` when that cannot be told from
    /// the entries read (a read error, or a layout other than the one expected), so the caller looks further.
    pub fn others_than_pid1(&self) -> Option<bool> {
        if !self.positioned.replace(false) {
            (&self.dir).seek(SeekFrom::Start(PID1_POS)).ok()?;
        }
        let mut buf = [0u8; ENTRIES_BUF];
        let n = sys::read_dir_entries(self.dir.as_fd(), &mut buf).ok()?;
        others_after_pid1(buf.get(..n)?, ENTRIES_BUF)
    }

    /// Every pid /proc lists, read from the start of the kept stream.
    pub fn pids(&self) -> Result<Vec<i32>, Errno> {
        self.positioned.set(false);
        (&self.dir)
            .seek(SeekFrom::Start(0))
            .map_err(|e| errno_of(&e))?;
        let mut pids = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = sys::read_dir_entries(self.dir.as_fd(), &mut buf)?;
            if n == 0 {
                return Ok(pids);
            }
            let names = entry_names(buf.get(..n).unwrap_or_default());
            pids.extend(
                names.filter_map(|name| std::str::from_utf8(name).ok()?.parse::<i32>().ok()),
            );
        }
    }
}

/// Reads the entries of a getdents64 call into a buffer of `capacity` bytes, made from `PID1_POS`: `Some(true)`
/// when "1" comes first and another pid follows, `Some(false)` when "1" is all there was, and `None` when the
/// entries are not laid out as expected (no "1" first, a name that is no pid) or the buffer was too full to
/// tell that nothing followed.
fn others_after_pid1(buf: &[u8], capacity: usize) -> Option<bool> {
    /// The largest record of one pid: 19 bytes of header, 7 digits and a NUL, rounded up to 8 bytes.
    const PID_RECORD_MAX: usize = 32;
    let mut names = entry_names(buf);
    if names.next()? != b"1" {
        return None;
    }
    match names.next() {
        Some(name) if !name.is_empty() && name.iter().all(u8::is_ascii_digit) => Some(true),
        Some(_) => None,
        None => (buf.len() + PID_RECORD_MAX <= capacity).then_some(false),
    }
}

/// The names in a buffer of `struct linux_dirent64`: inode (8 bytes), offset (8), record length (2), type
/// (1), then the NUL-terminated name, padded to the record length. Stops at a malformed record.
fn entry_names(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    const NAME_AT: usize = 19;
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*rest.get(16)?, *rest.get(17)?]));
        let (record, after) = rest.split_at_checked(len).filter(|_| len > NAME_AT)?;
        rest = after;
        let padded = record.get(NAME_AT..)?;
        padded.split(|&b| b == 0).next()
    })
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
        let line =
            b"42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        let p = Proc::parse(42, line).expect("parsed");
        assert_eq!((p.ppid, p.pgrp, p.start), (7, 42, 123456));
        assert_eq!(p.name.to_string(), "a) b (c)");
        assert!(p.counts());
        let zombie = b"43 (x) Z 1 43 43 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
        let dead = Proc::parse(43, zombie).expect("parsed");
        assert!(!dead.counts() && !dead.killed);
        assert_eq!(Proc::parse(1, b"garbage"), None);
        // A name the kernel cut inside a UTF-8 character (a script worker_数据同步.py), or given with
        // prctl(PR_SET_NAME): ')', spaces, a newline, bytes that are no UTF-8 at all.
        for name in [
            &b"worker_\xe6\x95\xb0\xe6\x8d\xae\xe5\x90"[..],
            b"a) b\nc\xe6\x95",
            b") ) (",
            b"\xff\xfe",
            b"",
        ] {
            let mut line = b"44 (".to_vec();
            line.extend_from_slice(name);
            line.extend_from_slice(b") S 1 44 44 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0\n");
            let p = Proc::parse(44, &line).unwrap_or_else(|| panic!("{name:?} not parsed"));
            assert_eq!((p.ppid, p.pgrp, p.start), (1, 44, 555), "{name:?}");
            assert_eq!(p.name, Comm::exact(name), "{name:?}");
        }
    }

    /// A whole stat line of a zombie leader: 52 fields, `threads` at 20 and `exit_code` at 52.
    fn zombie_line(threads: u32, exit_code: i32) -> String {
        let mut fields = vec!["0".to_string(); 52];
        fields[0] = "50".into();
        fields[1] = "(app)".into();
        fields[2] = "Z".into();
        fields[3] = "1".into();
        fields[4] = "50".into();
        fields[19] = threads.to_string();
        fields[21] = "777".into();
        fields[51] = exit_code.to_string();
        fields.join(" ")
    }

    fn parse_zombie(threads: u32, exit_code: i32) -> Option<Proc> {
        Proc::parse(50, zombie_line(threads, exit_code).as_bytes())
    }

    #[test]
    fn a_leader_whose_threads_live_on_is_no_zombie_and_a_zombie_knows_it_was_killed() {
        // Main thread gone (pthread_exit), another running: /proc says Z, but it lives.
        let living = parse_zombie(2, 0).expect("parsed");
        assert!(
            living.counts() && !living.zombie && !living.killed,
            "{living:?}"
        );
        assert_eq!(living.start, 777);
        let killed = parse_zombie(1, libc::SIGKILL).expect("parsed");
        assert!(killed.zombie && killed.killed, "{killed:?}");
        // Exited 0 (status 0), or killed by SIGTERM with a core dump flag: dead, but not by a SIGKILL.
        for status in [0, 3 << 8, libc::SIGTERM | 0x80] {
            let dead = parse_zombie(1, status).expect("parsed");
            assert!(dead.zombie && !dead.killed, "{status}: {dead:?}");
        }
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
            name: Comm::exact(b"p"),
            ppid,
            pgrp: pid,
            start: 0,
            zombie: false,
            killed: false,
            kernel: false,
        };
        let table = [p(1, 0), p(5, 1), p(6, 5), p(7, 6), p(9, 8)];
        let mut found: Vec<i32> = descendants(&table, 1).iter().map(|p| p.pid).collect();
        found.sort();
        assert_eq!(found, vec![5, 6, 7]);
    }

    /// One `struct linux_dirent64` record for `name`, padded to 8 bytes as the kernel does.
    fn record(name: &str) -> Vec<u8> {
        let len = (19 + name.len() + 1).next_multiple_of(8);
        let mut r = vec![0u8; len];
        r[16..18].copy_from_slice(&u16::try_from(len).unwrap().to_ne_bytes());
        r[18] = 4;
        r[19..19 + name.len()].copy_from_slice(name.as_bytes());
        r
    }

    #[test]
    fn directory_records_give_their_names_and_only_a_list_starting_at_pid1_is_believed() {
        let list = |names: &[&str]| -> Vec<u8> { names.iter().flat_map(|n| record(n)).collect() };
        let names_of = list(&["self", "thread-self", "1", "12345"]);
        let names: Vec<&[u8]> = entry_names(&names_of).collect();
        assert_eq!(names, [&b"self"[..], b"thread-self", b"1", b"12345"]);
        // PID 1, then someone else: yes. PID 1 alone, with room to spare: no.
        assert_eq!(others_after_pid1(&list(&["1", "2"]), 512), Some(true));
        assert_eq!(others_after_pid1(&list(&["1", "4194304"]), 512), Some(true));
        assert_eq!(others_after_pid1(&list(&["1"]), 512), Some(false));
        // PID 1 alone, but the buffer was too full to know nothing followed: cannot be told.
        assert_eq!(others_after_pid1(&list(&["1"]), 40), None);
        // Any other layout cannot be told: nothing at all (PID 1 always sees itself), a list that does not
        // start at "1" (an older kernel's offsets, or the kernel's own files), a name that is no pid after it.
        assert_eq!(others_after_pid1(&[], 512), None);
        assert_eq!(others_after_pid1(&list(&["2", "3"]), 512), None);
        assert_eq!(others_after_pid1(&list(&["self", "1"]), 512), None);
        assert_eq!(others_after_pid1(&list(&["1", "self"]), 512), None);
        // A truncated or malformed record ends the list instead of being read past.
        let mut cut = record("77");
        cut.truncate(10);
        assert_eq!(entry_names(&cut).count(), 0);
        let mut zero = list(&["1"]);
        zero[16..18].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(others_after_pid1(&zero, 512), None);
        let mut long = list(&["1"]);
        long[16..18].copy_from_slice(&4096u16.to_ne_bytes());
        assert_eq!(others_after_pid1(&long, 512), None);
    }

    #[test]
    fn the_real_proc_lists_processes_from_pid_1_on_and_can_be_asked_again() {
        // This test runs in the machine's root namespace, where pid 1 is the machine's init and other
        // processes (this one) follow it: the first entries read from `PID1_POS` are "1" and another pid, so
        // the answer is a plain yes, each time it is asked.
        let dir = PidDir::open().expect("/proc opens");
        assert_eq!(dir.others_than_pid1(), Some(true));
        assert_eq!(dir.others_than_pid1(), Some(true));
        // Listing every pid through it moves the stream; the question is still answered after.
        let me = std::process::id() as i32;
        let pids = dir.pids().expect("pids");
        assert!(pids.contains(&1) && pids.contains(&me), "{pids:?}");
        assert_eq!(dir.others_than_pid1(), Some(true));
        let scan = scan(Some(&dir)).expect("scan");
        assert!(scan.procs.iter().any(|p| p.pid == me), "{scan:?}");
        assert_eq!((scan.unread, scan.why), (0, None));
    }
}
