//! The system side of the harness: starting an init as PID 1 of a fresh PID namespace (clone3), pipes, pidfds,
//! clocks and the /proc readings every metric is made of.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: the same clock the child helper stamps its messages with.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

pub fn sleep_ns(ns: u64) {
    std::thread::sleep(Duration::from_nanos(ns));
}

pub fn sleep_us(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}

pub fn kill(pid: i32, signal: i32) -> bool {
    // SAFETY: plain integers.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Idle processes outside every init's namespace: a busy host in miniature (a node running other containers).
/// They are the children of one leader process, not of the harness, which would otherwise have thousands of
/// children to look through whenever it waits for an init. Each member closes every descriptor and waits in
/// pause(). The leader reports how many it started, then waits for the end of a "stop" pipe: `Drop` closes the
/// harness's end, or the harness dies; the leader then SIGKILLs and reaps its own children (their pids are
/// theirs until it reaps them) and exits, and the harness reaps the leader. Should the leader die, its members
/// die with it (PR_SET_PDEATHSIG).
pub struct IdleCrowd {
    leader: i32,
    started: usize,
    stop: Option<OwnedFd>,
}

impl IdleCrowd {
    /// Starts `n` idle processes (fewer if fork fails: `len` says how many).
    pub fn start(n: usize) -> io::Result<IdleCrowd> {
        let (report_r, report_w) = pipe()?;
        let (stop_r, stop_w) = pipe()?;
        // Allocated before the fork: the leader only writes into it.
        let mut members: Vec<i32> = Vec::with_capacity(n);
        // SAFETY: getpid takes no arguments.
        let harness = unsafe { libc::getpid() };
        // SAFETY: the harness is single-threaded, and between fork and _exit the leader and its members only
        // make system calls and write into memory that is theirs (no allocation: `members` has its room).
        let leader = unsafe { libc::fork() };
        if leader < 0 {
            return Err(io::Error::last_os_error());
        }
        if leader == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != harness {
                    libc::_exit(1);
                }
                let leader = libc::getpid();
                let (keep_report, keep_stop) = (report_w.as_raw_fd(), stop_r.as_raw_fd());
                close_all_but(&[keep_report, keep_stop]);
                for _ in 0..n {
                    match libc::fork() {
                        0 => {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            if libc::getppid() != leader {
                                libc::_exit(1);
                            }
                            close_all_but(&[]);
                            loop {
                                libc::pause();
                            }
                        }
                        pid if pid > 0 => members.push(pid),
                        _ => break,
                    }
                }
                let count = (members.len() as u32).to_ne_bytes();
                libc::write(keep_report, count.as_ptr().cast(), count.len());
                libc::close(keep_report);
                let mut byte = 0u8;
                loop {
                    let got = libc::read(keep_stop, (&raw mut byte).cast(), 1);
                    if got == 0 || (got < 0 && *libc::__errno_location() != libc::EINTR) {
                        break;
                    }
                }
                for &pid in &members {
                    libc::kill(pid, libc::SIGKILL);
                }
                while libc::waitpid(-1, std::ptr::null_mut(), 0) > 0 {}
                libc::_exit(0);
            }
        }
        drop(report_w);
        drop(stop_r);
        let mut count = [0u8; 4];
        let started = io::Read::read_exact(&mut fs::File::from(report_r), &mut count)
            .map_or(0, |()| u32::from_ne_bytes(count) as usize);
        let crowd = IdleCrowd {
            leader,
            started,
            stop: Some(stop_w),
        };
        if started == 0 && n > 0 {
            return Err(io::Error::other("the leader started no idle process"));
        }
        Ok(crowd)
    }

    pub fn len(&self) -> usize {
        self.started
    }
}

/// Closes every descriptor of the calling process except `keep` (at most two): after a fork without exec,
/// close-on-exec closes nothing.
///
/// # Safety
/// Only between fork and _exit, in a process whose descriptors no one else uses.
unsafe fn close_all_but(keep: &[i32]) {
    let mut keep = [keep.first().copied(), keep.get(1).copied()];
    keep.sort();
    let mut from = 0u32;
    for fd in keep.into_iter().flatten() {
        let fd = fd as u32;
        if fd > from {
            // SAFETY: close_range takes plain integers.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

impl Drop for IdleCrowd {
    fn drop(&mut self) {
        // The end of the stop pipe: the leader kills and reaps its members, then exits.
        self.stop.take();
        // SAFETY: waits for the leader, our child; a null status pointer is allowed.
        unsafe { libc::waitpid(self.leader, std::ptr::null_mut(), 0) };
    }
}

/// One page shared with every child, where the child writes the time just before it calls execve.
pub struct SharedClock {
    ptr: *mut u64,
}

impl SharedClock {
    pub fn new() -> io::Result<SharedClock> {
        // SAFETY: anonymous shared mapping of one page; checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedClock { ptr: ptr.cast() })
    }

    fn read(&self) -> u64 {
        // SAFETY: the page is mapped for the life of the process; volatile because a child wrote it.
        unsafe { std::ptr::read_volatile(self.ptr) }
    }

    fn reset(&self) {
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(self.ptr, 0) };
    }
}

#[repr(C, align(8))]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A pipe; both ends close-on-exec (the child dups the ends it needs onto fixed numbers).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// What a started init gives back: its pid in our namespace, a pidfd, and the harness's ends of the pipes.
pub struct Started {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Messages from the helper (its fd 3).
    pub report: Option<OwnedFd>,
    /// Commands to the helper (its fd 4).
    pub command: Option<OwnedFd>,
    reaped: bool,
}

/// Everything prepared before the clone, so the child only makes async-signal-safe calls.
pub struct Launcher {
    clock: SharedClock,
    devnull: OwnedFd,
    env: Vec<CString>,
    mount_proc: bool,
}

impl Launcher {
    pub fn new(mount_proc: bool) -> io::Result<Launcher> {
        let devnull = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        Ok(Launcher {
            clock: SharedClock::new()?,
            devnull: devnull.into(),
            env: vec![
                CString::new("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                    .unwrap(),
                CString::new("HOME=/").unwrap(),
            ],
            mount_proc,
        })
    }

    /// Starts `argv` (argv[0] is the path) as PID 1 of a new PID and mount namespace with its own /proc,
    /// in a session of its own, stdio on /dev/null. With `pipes`, the helper protocol's fds 3 and 4 are set up.
    pub fn start(&self, argv: &[String], pipes: bool) -> io::Result<Started> {
        let c_argv: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| io::Error::other("NUL in argument")))
            .collect::<io::Result<_>>()?;
        let mut argv_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<*const libc::c_char> = self.env.iter().map(|e| e.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        // The child's ends stay open here until the clone is done, then are dropped with `keep`.
        let mut keep: Vec<OwnedFd> = Vec::new();
        let (mut report, mut command, mut child_report, mut child_command) = (None, None, -1, -1);
        if pipes {
            let (r, w) = pipe()?;
            let (cr, cw) = pipe()?;
            child_report = w.as_raw_fd();
            child_command = cr.as_raw_fd();
            report = Some(r);
            command = Some(cw);
            keep.push(w);
            keep.push(cr);
        }
        let devnull = self.devnull.as_raw_fd();
        let mut pidfd: RawFd = -1;
        let args = CloneArgs {
            flags: (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_PIDFD) as u64,
            pidfd: &mut pidfd as *mut RawFd as u64,
            child_tid: 0,
            parent_tid: 0,
            exit_signal: libc::SIGCHLD as u64,
            stack: 0,
            stack_size: 0,
            tls: 0,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: 0,
        };
        self.clock.reset();
        let path = c_argv[0].as_ptr();
        let mount_proc = self.mount_proc;
        let clock = self.clock.ptr;
        // SAFETY: clone3 without CLONE_VM behaves like fork. The harness is single-threaded, and the child
        // below only makes async-signal-safe system calls on memory prepared before the clone.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: in the child: raw system calls only, then execve or _exit.
            unsafe {
                if mount_proc {
                    libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    );
                    if libc::mount(
                        c"proc".as_ptr(),
                        c"/proc".as_ptr(),
                        c"proc".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ) != 0
                    {
                        libc::_exit(120);
                    }
                }
                // If the harness dies, so does this namespace (PID 1 gone ends every process in it).
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                libc::setsid();
                libc::dup2(devnull, 0);
                libc::dup2(devnull, 1);
                libc::dup2(devnull, 2);
                if child_report >= 0 {
                    // Via high numbers first, so neither end is clobbered nor left close-on-exec.
                    let r = libc::fcntl(child_report, libc::F_DUPFD_CLOEXEC, 10);
                    let c = libc::fcntl(child_command, libc::F_DUPFD_CLOEXEC, 10);
                    libc::dup2(r, 3);
                    libc::dup2(c, 4);
                }
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
                std::ptr::write_volatile(
                    clock,
                    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
                );
                libc::execve(path, argv_ptrs.as_ptr(), env_ptrs.as_ptr());
                libc::_exit(121);
            }
        }
        drop(keep);
        // SAFETY: the kernel returned a fresh pidfd for the child.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        Ok(Started {
            pid: pid as i32,
            pidfd,
            report,
            command,
            reaped: false,
        })
    }

    /// CLOCK_MONOTONIC in the last started child just before its execve (valid once it has exec'd).
    pub fn exec_ns(&self) -> u64 {
        self.clock.read()
    }
}

/// Waits up to `timeout_ms` for `fd` to become readable; true when it did.
pub fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return rc > 0;
    }
}

impl Started {
    /// True while the init has not exited.
    pub fn alive(&self) -> bool {
        !self.reaped && !wait_readable(self.pidfd.as_raw_fd(), 0)
    }

    /// Waits up to `timeout_ms` for the init to exit; returns the time it was seen gone and its wait status.
    pub fn wait_exit(&mut self, timeout_ms: i32) -> Option<(u64, i32)> {
        if self.reaped {
            return None;
        }
        if !wait_readable(self.pidfd.as_raw_fd(), timeout_ms) {
            return None;
        }
        let t = now_ns();
        Some((t, self.reap()))
    }

    /// Blocks in waitpid (the most direct way to learn of the exit) and returns the time and the status.
    pub fn wait_exit_blocking(&mut self) -> (u64, i32) {
        let status = self.reap();
        (now_ns(), status)
    }

    fn reap(&mut self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid c_int.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        self.reaped = true;
        status
    }

    /// Reads one helper message, waiting up to `timeout_ms`.
    pub fn read_msg(&self, timeout_ms: i32) -> Option<Msg> {
        let fd = self.report.as_ref()?.as_raw_fd();
        let deadline = now_ns() + timeout_ms as u64 * 1_000_000;
        let mut buf = [0u8; 24];
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_sub(now_ns()) / 1_000_000;
            if !wait_readable(fd, left.max(if got > 0 { 100 } else { 0 }) as i32) {
                return None;
            }
            // SAFETY: reading into the unfilled tail of `buf`.
            let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return None;
            }
            got += n as usize;
        }
        Some(Msg {
            kind: i32::from_ne_bytes(buf[0..4].try_into().unwrap()),
            value: u64::from_ne_bytes(buf[8..16].try_into().unwrap()),
            ns: u64::from_ne_bytes(buf[16..24].try_into().unwrap()),
        })
    }

    /// Reads messages until one of `kind` (others are skipped), waiting up to `timeout_ms` in all.
    pub fn expect(&self, kind: i32, timeout_ms: i32) -> Option<Msg> {
        let deadline = now_ns() + timeout_ms as u64 * 1_000_000;
        loop {
            let left = (deadline.saturating_sub(now_ns()) / 1_000_000) as i32;
            let msg = self.read_msg(left.max(1))?;
            if msg.kind == kind {
                return Some(msg);
            }
            if msg.kind == 'E' as i32 {
                return None;
            }
            if now_ns() > deadline {
                return None;
            }
        }
    }

    /// Writes bytes to the helper's command pipe.
    pub fn command(&self, bytes: &[u8]) -> bool {
        let Some(fd) = self.command.as_ref() else {
            return false;
        };
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        n == bytes.len() as isize
    }

    /// Ends the init (SIGKILL to a namespace's PID 1 ends the whole namespace) and reaps it.
    pub fn kill_and_reap(&mut self) {
        if !self.reaped {
            kill(self.pid, libc::SIGKILL);
            self.reap();
        }
    }

    /// Asks politely (SIGTERM), then SIGKILL after `grace_ms`.
    pub fn stop(&mut self, grace_ms: i32) -> Option<i32> {
        if self.reaped {
            return None;
        }
        kill(self.pid, libc::SIGTERM);
        if let Some((_, status)) = self.wait_exit(grace_ms) {
            return Some(status);
        }
        self.kill_and_reap();
        None
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// One message from the helper.
#[derive(Clone, Copy, Debug)]
pub struct Msg {
    pub kind: i32,
    pub value: u64,
    pub ns: u64,
}

/// A pidfd for any process (to learn when it dies without being its parent).
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        None
    } else {
        // SAFETY: a fresh descriptor from the kernel.
        Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }
}

/// A field of /proc/PID/status, in its own unit (kB for memory, a count for context switches).
pub fn status_field(pid: i32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_value(&text, field)
}

fn field_value(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Pss of a process in kB, from smaps_rollup.
pub fn pss_kb(pid: i32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    field_value(&text, "Pss")
}

/// Voluntary plus involuntary context switches of every thread of a process.
pub fn context_switches(pid: i32) -> Option<u64> {
    let mut total = 0;
    let mut any = false;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Ok(text) = fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        total += field_value(&text, "voluntary_ctxt_switches").unwrap_or(0)
            + field_value(&text, "nonvoluntary_ctxt_switches").unwrap_or(0);
        any = true;
    }
    any.then_some(total)
}

/// The children of a (single-threaded) process, as pids in our namespace.
pub fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a process has more than one child, reading only the head of the children list: cheap even with
/// thousands of children, and it holds the kernel's task-list lock for only a few entries.
pub fn has_more_than_one_child(path: &CString) -> bool {
    // SAFETY: a NUL-terminated path; the fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 32];
    // SAFETY: reading into a stack buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: closing the descriptor we opened.
    unsafe { libc::close(fd) };
    if n <= 0 {
        return false;
    }
    let text = &buf[..n as usize];
    // "123 456 ..." : a space followed by a digit means a second pid.
    text.windows(2)
        .any(|w| w[0] == b' ' && w[1].is_ascii_digit())
}

/// The state letter of a process (R, S, Z, ...) from /proc/PID/stat.
pub fn state(pid: i32) -> Option<char> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

pub fn is_root() -> bool {
    // SAFETY: no arguments.
    unsafe { libc::geteuid() == 0 }
}
