//! The only module with `unsafe`: thin wrappers over the system calls that nix does not cover for us (real-time
//! signals, raw wait statuses, signalfd records, pidfds, work between fork and exec). Each does one call (or, in
//! a pre-exec hook, the fixed sequence the child needs) and returns what the kernel said; what to make of it is
//! decided by the caller.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::SigSet;

/// `kill(2)` with any signal number, real-time ones included (nix's `Signal` has no names for those).
pub fn kill(pid: i32, signal: i32) -> Result<(), Errno> {
    // SAFETY: kill takes two integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// `sched_yield(2)`: lets the processes this one just woke (with a SIGKILL) run before it goes on.
pub fn yield_cpu() {
    // SAFETY: sched_yield takes no arguments and touches no memory of ours; it cannot fail on Linux.
    unsafe { libc::sched_yield() };
}

/// `waitpid(-1, WNOHANG)` returning the raw status, so a child killed by a real-time signal is never lost
/// (nix turns an unknown signal number into an error after the child was already reaped).
/// `Ok(None)`: children exist but none has changed state.
/// `untraced`: also report children that were stopped (WUNTRACED), for job control under a terminal.
pub fn wait_any_nohang(untraced: bool) -> Result<Option<(i32, i32)>, Errno> {
    let mut status: libc::c_int = 0;
    let flags = if untraced {
        libc::WNOHANG | libc::WUNTRACED
    } else {
        libc::WNOHANG
    };
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
    match pid {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some((pid, status))),
    }
}

/// Asks the kernel to send `signal` to grace-init when its parent dies.
pub fn set_parent_death_signal(signal: i32) -> Result<(), Errno> {
    let arg = libc::c_ulong::try_from(signal).map_err(|_| Errno::EINVAL)?;
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value; no pointers are passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, arg, 0, 0, 0) };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// Sets `signal`'s disposition in grace-init itself to its default (`ignore` false) or to ignored, with no flags
/// and an empty mask, through the raw `rt_sigaction`: the C library refuses the real-time signals it reserves.
pub fn set_disposition(signal: i32, ignore: bool) {
    // All-zero kernel sigactions but for the handler: SIG_DFL (0) or SIG_IGN (1), no flags, empty mask.
    let action = [u64::from(ignore), 0, 0, 0];
    // SAFETY: rt_sigaction reads the 32-byte action above and writes nothing (old action is null).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            action.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

/// Blocks in `read(2)` on a (blocking) signalfd until at least one signal is pending, then takes as many as
/// `buf` holds in that same call: a burst costs one read, an idle wait no poll. Returns how many records it
/// filled, from the start of `buf` (the kernel fills only the records it returns).
pub fn read_signalfd(
    fd: &impl AsRawFd,
    buf: &mut [libc::signalfd_siginfo],
) -> Result<usize, Errno> {
    // SAFETY: the buffer is valid and writable for its whole length, which is what is passed.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            std::mem::size_of_val(buf),
        )
    };
    let n = usize::try_from(n).map_err(|_| Errno::last())?;
    Ok(n / std::mem::size_of::<libc::signalfd_siginfo>())
}

/// An all-zero signalfd record, to size the caller's buffer with.
pub fn empty_siginfo() -> libc::signalfd_siginfo {
    // SAFETY: signalfd_siginfo is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// `sigtimedwait(2)`: takes one pending signal of `set`, waiting at most `timeout` (`None`: as long as it
/// takes), and returns its number and the pid of its sender (0 for the kernel). `Ok(None)`: the time passed.
pub fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> Result<Option<(i32, i32)>, Errno> {
    // SAFETY: timespec is plain old data; all-zero is a valid value.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if let Some(timeout) = timeout {
        // Capped at 68 years, which fits time_t on every target (musl deprecates naming the type itself).
        ts.tv_sec = timeout
            .as_secs()
            .min(i32::MAX.unsigned_abs().into())
            .try_into()
            .unwrap_or_default();
        ts.tv_nsec = libc::c_long::from(timeout.subsec_nanos());
    }
    let ts_ptr = match timeout {
        Some(_) => &raw const ts,
        None => std::ptr::null(),
    };
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // The raw system call, not the C library's wrapper: musl's retries EINTR itself with the original relative
    // timeout (a ptrace attach, a cgroup freeze), which would push the deadline back; the caller recomputes
    // the time left instead. The kernel reads only the first 8 bytes of the set (signals 1 to 64).
    // SAFETY: the set, the siginfo and the timespec (or null: no timeout) are valid for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigtimedwait,
            set.as_ref() as *const libc::sigset_t,
            &mut info as *mut libc::siginfo_t,
            ts_ptr,
            8usize,
        )
    };
    let signal = i32::try_from(rc).unwrap_or(-1);
    if signal < 0 {
        return match Errno::last() {
            Errno::EAGAIN => Ok(None),
            e => Err(e),
        };
    }
    // SAFETY: si_pid reads the sender field, which the kernel fills for every signal (0 when it has none).
    let sender = unsafe { info.si_pid() };
    Ok(Some((signal, sender)))
}

/// `pidfd_open(2)`: a handle on process `pid` that can never refer to another process, even after it dies
/// and its number is reused. Linux 5.3 or later; ENOSYS before.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags by value.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).map_err(|_| Errno::EINVAL)?;
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `getdents64(2)`: reads the next entries of directory `dir` (`struct linux_dirent64`, see
/// `procs::entry_names`) into `buf`; 0 at the end of the directory.
pub fn read_dir_entries(dir: BorrowedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which is ours and writable.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    usize::try_from(n).map_err(|_| Errno::last())
}

/// `pidfd_send_signal(2)`: signals the process behind `pidfd`, or fails with ESRCH if it is gone.
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> Result<(), Errno> {
    // SAFETY: a valid descriptor, a signal number, no siginfo (null) and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`: whether child `pid` has exited, and how, without
/// reaping it, so its pid (and process group id) stays reserved a little longer. `Ok(None)`: still running.
pub fn peek_exit(pid: i32) -> Result<Option<i32>, Errno> {
    let id = libc::id_t::try_from(pid).map_err(|_| Errno::EINVAL)?;
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: the siginfo is valid and writable for the duration of the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    // SAFETY: after a successful waitid the pid and status fields are filled (pid 0: nothing to report).
    let (found, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if found == 0 {
        return Ok(None);
    }
    // Rebuild a wait(2)-style status so the caller decodes both the same way.
    let raw = if code == libc::CLD_EXITED {
        (status & 0xff) << 8
    } else {
        status & 0x7f
    };
    Ok(Some(raw))
}

/// At most this many pending signals are discarded in a process about to start (see `start_clean`).
const PENDING_BOUND: usize = 4096;

/// Arranges for the command to start clean: in a process group of its own, in the terminal's foreground
/// when `take_terminal`, with every signal disposition at its default, nothing pending and an empty signal
/// mask. Until `setpgid` the forked process is in grace-init's group, with every signal blocked (inherited):
/// a signal sent to that group meanwhile (GNU `timeout` signals its child's whole group) waits pending in it,
/// and grace-init got it as well and acts on it. So it is taken off the queue before anything is unblocked.
pub fn start_clean(command: &mut Command, take_terminal: bool) {
    let hook = move || -> io::Result<()> {
        // SAFETY: runs in the forked child before exec; every call below is async-signal-safe and uses only
        // stack memory, as pre_exec requires.
        unsafe {
            // Taking the terminal from a background group raises SIGTTOU unless it is blocked.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTTOU);
            libc::sigaddset(&mut set, libc::SIGTTIN);
            libc::sigaddset(&mut set, libc::SIGTSTP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if take_terminal {
                // No controlling terminal (ENOTTY) is fine: then there is nothing to hand over.
                libc::tcsetpgrp(0, libc::getpid());
            }
            // The raw system call, because the C library refuses to touch the real-time signals it reserves
            // (32, 33), and those can arrive ignored from whoever started grace-init. An all-zero kernel
            // sigaction is SIG_DFL with no flags and an empty mask on every architecture's layout.
            let default_action = [0u64; 4];
            for signal in 1..=64 {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        signal,
                        default_action.as_ptr(),
                        std::ptr::null_mut::<u64>(),
                        8usize,
                    );
                }
            }
            // Take whatever is pending, one signal per call, without waiting (zero timeout) until none is left
            // (EAGAIN). Queued real-time signals count one each; a bound keeps a flood from holding the start.
            let every_signal: u64 = u64::MAX;
            let no_wait = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            for _ in 0..PENDING_BOUND {
                let taken = libc::syscall(
                    libc::SYS_rt_sigtimedwait,
                    &every_signal as *const u64,
                    std::ptr::null_mut::<libc::siginfo_t>(),
                    &no_wait as *const libc::timespec,
                    8usize,
                );
                if taken <= 0 {
                    break;
                }
            }
            libc::sigemptyset(&mut set);
            libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        }
        Ok(())
    };
    // SAFETY: the hook above only makes async-signal-safe calls and allocates nothing.
    unsafe { command.pre_exec(hook) };
}

/// Ends grace-init at once with `code`. Nothing is buffered (log lines are written whole as they come), and as
/// PID 1 there is nothing to tear down, so the C library's exit handlers are skipped.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns; no Rust destructors need to run here.
    unsafe { libc::_exit(code) }
}

/// `send(2)` with MSG_DONTWAIT (never blocks, whatever the socket's own flags) and MSG_NOSIGNAL (a reader
/// that went away gives EPIPE, not a SIGPIPE).
pub fn send_nonblocking(fd: BorrowedFd, bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the buffer is valid for reading for its whole length, which is what is passed.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| Errno::last())
}

/// Makes the command drop to `uid`, `gid` and the supplementary `groups` (`None`: keep those held) between
/// fork and exec (after `start_clean`'s hook, so the process group and the terminal are set up first, with
/// root's rights). The group list is built before the fork and moved into the hook, so nothing is allocated
/// in the child.
pub fn switch_user(command: &mut Command, uid: u32, gid: u32, groups: Option<Vec<libc::gid_t>>) {
    let hook = move || -> io::Result<()> {
        // SAFETY: runs in the forked child before exec. setgroups, setresgid and setresuid are plain system
        // call wrappers (async-signal-safe); `groups` is a live, initialised slice whose length is passed
        // with it, and nothing here allocates.
        unsafe {
            if let Some(groups) = &groups {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::setresgid(gid, gid, gid) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setresuid(uid, uid, uid) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    };
    // SAFETY: the hook above only makes async-signal-safe calls and allocates nothing.
    unsafe { command.pre_exec(hook) };
}

/// Socket activation: sets `LISTEN_PID` to the child's own pid between fork and exec. The `NAME=digits`
/// string is written into a buffer owned by the hook (no allocation in the child) and installed with
/// `putenv`, which stores the pointer: the buffer lives in the child's copy of the hook until exec copies
/// the environment. For this to reach the program, the `Command` must exec with the process's `environ`,
/// which std does exactly when no variable was changed through the `Command` (`env`, `env_remove`,
/// `env_clear`): callers must keep it so.
pub fn set_listen_pid_in_child(command: &mut Command) {
    const NAME: &[u8] = b"LISTEN_PID=";
    let mut buffer = [0u8; 40];
    let hook = move || -> io::Result<()> {
        // SAFETY: getpid is async-signal-safe and returns the child's own pid.
        let pid = unsafe { libc::getpid() };
        let mut digits = [0u8; 20];
        let mut n = u64::try_from(pid).unwrap_or(0);
        let mut len = 0;
        loop {
            if let Some(slot) = digits.get_mut(len) {
                *slot = b'0' + (n % 10) as u8;
            }
            len += 1;
            n /= 10;
            if n == 0 || len >= digits.len() {
                break;
            }
        }
        let mut at = 0;
        for &b in NAME.iter().chain(digits.iter().take(len).rev()) {
            if let Some(slot) = buffer.get_mut(at) {
                *slot = b;
            }
            at += 1;
        }
        // The buffer holds 40 bytes; "LISTEN_PID=" and 20 digits take 31, so the terminator always fits.
        if let Some(slot) = buffer.get_mut(at) {
            *slot = 0;
        }
        // SAFETY: `buffer` is NUL-terminated (above) and stays alive and unmoved in this process until exec.
        // putenv allocates nothing when the variable already exists (it replaces the pointer in place; the
        // caller only asks for this when LISTEN_PID is set), and even were it to allocate: grace-init is
        // single-threaded, so no other thread can have held the allocator's lock across the fork.
        let rc = unsafe { libc::putenv(buffer.as_mut_ptr().cast()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook above only makes async-signal-safe calls (getpid, putenv replacing an entry in place)
    // and allocates nothing.
    unsafe { command.pre_exec(hook) };
}

/// Sets a variable in grace-init's own environment (inherited by what it starts afterwards).
pub(crate) fn set_env(name: &str, value: &str) {
    // SAFETY: called only on grace-init's single thread before it starts processes; no other thread reads
    // or writes the environment concurrently.
    unsafe { std::env::set_var(name, value) };
}

/// Removes a variable from grace-init's own environment.
pub(crate) fn remove_env(name: &str) {
    // SAFETY: as in `set_env`: grace-init has a single thread.
    unsafe { std::env::remove_var(name) };
}

/// `close_range(first, last, 0)`: closes every descriptor in the range. ENOSYS on kernels before 5.9.
pub(crate) fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes integers only; closing descriptors touches no memory of ours. Callers pass
    // only descriptors grace-init itself does not use (Rust objects owning one are excluded by the caller).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// `close(fd)`, errors ignored (EBADF for a descriptor that was not open is the expected one).
pub(crate) fn close_fd(fd: i32) {
    // SAFETY: close takes an integer; as with close_range, only descriptors nothing of ours owns are passed.
    unsafe { libc::close(fd) };
}

/// `waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`: the pid of a child that has exited, left unreaped (a
/// zombie, so its /proc entry can still be read). `Ok(None)`: children exist but none has exited.
pub fn peek_exited() -> Result<Option<i32>, Errno> {
    // SAFETY: an all-zero siginfo_t is a valid value; waitid writes into it and reads nothing else of ours.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid and writable for the duration of the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(Errno::last());
    }
    // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed: no child ready), whose si_pid is valid.
    let pid = unsafe { info.si_pid() };
    Ok((pid > 0).then_some(pid))
}

/// `waitpid(pid, WNOHANG)` returning the raw status; `Ok(None)` when it has not exited.
pub fn wait_pid_nohang(pid: i32) -> Result<Option<i32>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match rc {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        _ => Ok(Some(status)),
    }
}

/// `pwritev2(fd, bytes, -1, RWF_NOWAIT)`: a write that fails with EAGAIN instead of waiting, through a
/// description that stays blocking for everyone else who shares it. Pipes take it since Linux 6.4; before, and
/// on a pipe someone has spliced into (the kernel then stops offering it for that description, because a
/// splice can block), it fails with EOPNOTSUPP.
pub fn write_nowait(fd: BorrowedFd, bytes: &[u8]) -> Result<usize, Errno> {
    let iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: one iovec describing `bytes`, which the kernel only reads; offset -1 (low half -1, high half 0 on
    // a 64-bit kernel) means "the current position", as write(2).
    let n = unsafe {
        libc::syscall(
            libc::SYS_pwritev2,
            fd.as_raw_fd(),
            &raw const iov,
            1,
            -1 as libc::c_long,
            0 as libc::c_long,
            libc::RWF_NOWAIT,
        )
    };
    usize::try_from(n).map_err(|_| Errno::last())
}

/// The pipe behind `fd`: its capacity in bytes (`fcntl(F_GETPIPE_SZ)`) and how many unread bytes it holds
/// (`ioctl(FIONREAD)`).
pub fn pipe_fill(fd: BorrowedFd) -> Result<(usize, usize), Errno> {
    // SAFETY: F_GETPIPE_SZ takes no argument and returns an integer.
    let size = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    let size = usize::try_from(size).map_err(|_| Errno::last())?;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int into `queued`, which is valid and writable for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut queued) };
    if rc != 0 {
        return Err(Errno::last());
    }
    Ok((size, usize::try_from(queued).map_err(|_| Errno::EINVAL)?))
}
