//! Reaps every child that has exited: the only caller of waitpid.

use nix::errno::Errno;

use crate::exit_code::ChildStatus;
use crate::sys;

/// Reaps until nothing more is waiting, calling `on_exit` for each reaped process.
/// SIGCHLDs coalesce, so one wake-up may stand for many exits. Returns whether any child is still alive
/// (`ECHILD` means none: an event, not an error).
pub fn reap_all(mut on_exit: impl FnMut(i32, ChildStatus)) -> bool {
    loop {
        match sys::wait_any_nohang() {
            Ok(Some((pid, raw))) => {
                let status = if libc::WIFSIGNALED(raw) {
                    ChildStatus::Killed(libc::WTERMSIG(raw))
                } else {
                    ChildStatus::Exited(libc::WEXITSTATUS(raw))
                };
                on_exit(pid, status);
            }
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

/// Like `reap_all`, and also names each process before it is reaped (for `--warn-reap`): waitid with WNOWAIT
/// finds an exited child and leaves it a zombie, its name is read from /proc, then exactly that child is
/// reaped. Costs an extra system call and a /proc read per exit, so it is used only when asked for.
pub fn reap_all_named(
    mut on_exit: impl FnMut(i32, ChildStatus, Option<crate::comm::Comm>),
) -> bool {
    loop {
        match sys::peek_exited() {
            Ok(Some(pid)) => {
                let name = crate::comm::Comm::of(pid);
                match sys::wait_pid_nohang(pid) {
                    Ok(Some(raw)) => on_exit(pid, decode(raw), name),
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

/// A raw wait status as a `ChildStatus` (the same decoding as in `reap_all`).
fn decode(raw: i32) -> ChildStatus {
    if libc::WIFSIGNALED(raw) {
        ChildStatus::Killed(libc::WTERMSIG(raw))
    } else {
        ChildStatus::Exited(libc::WEXITSTATUS(raw))
    }
}
