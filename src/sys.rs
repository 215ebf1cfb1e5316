//! The only module with `unsafe`: thin wrappers over the libc calls that nix does not cover for us
//! (real-time signals, raw wait statuses, work between fork and exec).
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;

/// `kill(2)` with any signal number, real-time ones included (nix's `Signal` has no names for those).
pub fn kill(pid: i32, signal: i32) -> Result<(), Errno> {
    // SAFETY: kill takes two integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// `waitpid(-1, WNOHANG)` returning the raw status, so a child killed by a real-time signal is never lost
/// (nix turns an unknown signal number into an error after the child was already reaped).
/// `Ok(None)`: children exist but none has changed state.
pub fn wait_any_nohang() -> Result<Option<(i32, i32)>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
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

/// Ignores the real-time signals the C library reserves for itself (32 and 33 with glibc; none with musl).
/// They cannot be blocked, so they never reach the signalfd, and their default action would end grace-init
/// (and orphan the app) when it is not PID 1. The child gets them back at their default in `start_clean`.
pub fn ignore_reserved_signals() {
    // An all-zero kernel sigaction but for the handler: SIG_IGN (1), no flags, empty mask.
    let ignore = [1u64, 0, 0, 0];
    for signal in 32..libc::SIGRTMIN() {
        // SAFETY: rt_sigaction reads the 32-byte action above and writes nothing (old action is null).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                ignore.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
}

/// Arranges for the command to start clean: in a process group of its own, in the terminal's foreground
/// when `take_terminal`, with every signal disposition at its default and an empty signal mask.
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
