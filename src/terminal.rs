//! Job control for a run started in the foreground of a terminal: the child takes the terminal over, and
//! grace-init takes it back when the child ends or is stopped, stopping along with it as a shell's job would.
//! It reaches the terminal through a descriptor of its own, since its stdin is /dev/null once the child runs.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::unistd::{Pid, getpgid, getpgrp, getpid, getppid, getsid, isatty, tcgetpgrp, tcsetpgrp};

use crate::logging;
use crate::signals::name;
use crate::sys;

/// The terminal grace-init was started in the foreground of: the child takes it over, and gets it back
/// from the child when the child ends or is stopped, as a shell does with its jobs.
pub struct Terminal {
    /// grace-init's own process group: the caller's job.
    ours: Pid,
    /// A copy of stdin as it was at start (the terminal), close-on-exec.
    fd: OwnedFd,
}

impl Terminal {
    /// `Some` when stdin is a terminal whose foreground group is ours, so the child may take it over.
    pub fn detect() -> Option<Terminal> {
        let stdin = std::io::stdin();
        let ours = getpgrp();
        let owned = isatty(&stdin).unwrap_or(false) && tcgetpgrp(&stdin).is_ok_and(|fg| fg == ours);
        if !owned {
            return None;
        }
        match stdin.as_fd().try_clone_to_owned() {
            Ok(fd) => Some(Terminal { ours, fd }),
            Err(e) => {
                log::warn!("cannot keep the terminal ({e}): the child does not take it over");
                None
            }
        }
    }

    /// The descriptor grace-init keeps for the terminal (not to be closed with the inherited ones).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes grace-init's group the foreground again (SIGTTOU is blocked, so this works from the background),
    /// so whoever started it can read the terminal once it is gone.
    pub fn take_back(&self) {
        if let Err(e) = tcsetpgrp(&self.fd, self.ours) {
            log::debug!("cannot take the terminal back: {}", e.desc());
        }
    }

    /// Whether grace-init's process group is orphaned (POSIX): no parent in the same session but another
    /// group, which is how a job-control shell would hold it (`ssh -t host grace-init ...`, `setsid -c` make
    /// grace-init lead its own session, and then nobody would send it SIGCONT).
    fn orphaned(&self) -> bool {
        let parent = getppid();
        let same_session = match (getsid(Some(parent)), getsid(None)) {
            (Ok(theirs), Ok(ours)) => theirs == ours,
            _ => false,
        };
        let other_group = getpgid(Some(parent)).is_ok_and(|group| group != self.ours);
        !(same_session && other_group)
    }

    /// The child was stopped from the terminal (Ctrl-Z): stop grace-init too, so the calling shell sees its
    /// job stopped and gets its prompt back; when continued in the foreground (`fg`), give the terminal back
    /// to the child and continue it.
    pub fn suspend_with(&self, child: i32, signal: i32) {
        if ![libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&signal) {
            return;
        }
        if self.orphaned() {
            // As if the app ran directly: the kernel does not stop an orphaned process group for the terminal's
            // TSTP, and no shell would ever continue grace-init. Undo the stop instead.
            log::debug!(
                "child {child} stopped by {}, but no job-control shell can continue grace-init: continuing it",
                name(signal)
            );
            let _ = sys::kill(-child, libc::SIGCONT);
            return;
        }
        log::debug!("child {child} stopped by {}: stopping too", name(signal));
        self.take_back();
        logging::flush();
        // SIGSTOP cannot be blocked: grace-init stops here until the shell sends SIGCONT.
        let _ = sys::kill(getpid().as_raw(), libc::SIGSTOP);
        if tcgetpgrp(&self.fd).is_ok_and(|fg| fg == self.ours) {
            let _ = tcsetpgrp(&self.fd, Pid::from_raw(child));
        }
        let _ = sys::kill(-child, libc::SIGCONT);
        log::debug!("continued: child {child} continued");
    }
}
