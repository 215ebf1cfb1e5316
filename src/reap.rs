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
