//! Reaps every child that has exited: the only caller of waitpid.

use nix::errno::Errno;

use crate::exit_code::ChildStatus;
use crate::sys;

/// What one waitpid result was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The process ended and is reaped.
    Ended(ChildStatus),
    /// The process was stopped by this signal (reported only when asked for, under job control).
    Stopped(i32),
}

/// Decodes a raw wait status.
pub fn decode(raw: i32) -> Change {
    if libc::WIFSTOPPED(raw) {
        Change::Stopped(libc::WSTOPSIG(raw))
    } else if libc::WIFSIGNALED(raw) && libc::WCOREDUMP(raw) {
        Change::Ended(ChildStatus::Dumped(libc::WTERMSIG(raw)))
    } else if libc::WIFSIGNALED(raw) {
        Change::Ended(ChildStatus::Killed(libc::WTERMSIG(raw)))
    } else {
        Change::Ended(ChildStatus::Exited(libc::WEXITSTATUS(raw)))
    }
}

/// Reaps until nothing more is waiting, calling `on_change` for each process reaped (or stopped, with
/// `untraced`). SIGCHLDs coalesce, so one wake-up may stand for many exits. Returns whether any child is
/// still there (`ECHILD` means none: an event, not an error).
pub fn reap_all(untraced: bool, mut on_change: impl FnMut(i32, Change)) -> bool {
    loop {
        match sys::wait_any_nohang(untraced) {
            Ok(Some((pid, raw))) => on_change(pid, decode(raw)),
            Ok(None) => return true,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return false,
            Err(e) => {
                log::warn!("waitpid failed: {e}");
                return true;
            }
        }
    }
}

/// Whether child `pid` has ended, without reaping it (its pid and group id stay reserved until it is).
pub fn peek(pid: i32) -> Option<ChildStatus> {
    match sys::peek_exit(pid).ok()?.map(decode)? {
        Change::Ended(status) => Some(status),
        Change::Stopped(_) => None,
    }
}

/// Like `reap_all`, and also names each process before it is reaped (for `--warn-reap`): waitid with WNOWAIT
/// finds an exited child and leaves it a zombie, its name and process group are read from /proc, then exactly
/// that child is reaped. Costs an extra system call and two /proc reads per exit, so it is used only when asked
/// for.
pub fn reap_all_named(
    mut on_exit: impl FnMut(i32, ChildStatus, Option<crate::comm::Comm>, Option<i32>),
) -> bool {
    loop {
        match sys::peek_exited() {
            Ok(Some(pid)) => {
                let name = crate::comm::Comm::of(pid);
                let group = crate::procs::Proc::read(pid).map(|p| p.pgrp);
                match sys::wait_pid_nohang(pid) {
                    Ok(Some(raw)) => match decode(raw) {
                        Change::Ended(status) => on_exit(pid, status, name, group),
                        Change::Stopped(_) => continue,
                    },
                    Ok(None) | Err(Errno::EINTR) => continue,
                    Err(Errno::ECHILD) => return false,
                    Err(e) => {
                        log::warn!("waitpid failed: {e}");
                        return true;
                    }
                }
            }
            Ok(None) => return true,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return false,
            Err(e) => {
                log::warn!("waitid failed: {e}");
                return true;
            }
        }
    }
}
