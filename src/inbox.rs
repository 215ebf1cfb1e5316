//! Receives signals: blocks them all at start, reads them from a signalfd, and waits for one or a deadline.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals kernel faults raise in grace-init itself: left unblocked so a fault still ends it visibly.
const FAULTS: [Signal; 7] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// At most this many signals are read per wake-up: the rest stay queued in the kernel and are read on the next
/// (immediate) turn of the loop, so a storm of queued real-time signals never grows grace-init's memory.
const BATCH: usize = 64;

/// Blocks every catchable signal but the fault signals; returns the mask. Blocked signals queue up until the
/// signalfd reads them, even for PID 1.
pub fn block_signals() -> Result<SigSet, Errno> {
    let mut mask = SigSet::all();
    for fault in FAULTS {
        mask.remove(fault);
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None)?;
    Ok(mask)
}

/// The open signalfd.
pub struct Inbox {
    fd: SignalFd,
    me: i32,
}

impl Inbox {
    /// Opens the signalfd for every signal `block_signals` blocked (and blocks them, should that not have run).
    pub fn open() -> Result<Inbox, Errno> {
        let mask = block_signals()?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Inbox {
            fd,
            me: std::process::id().try_into().unwrap_or(0),
        })
    }

    /// Sleeps until a signal arrives or `timeout` passes (`None`: no timeout), then appends every pending
    /// signal (at most `BATCH`) to `received`. A timeout is rounded up to the next millisecond so the loop never wakes early.
    pub fn wait(&self, timeout: Option<Duration>, received: &mut Vec<i32>) {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => {
                let ms = t.as_nanos().div_ceil(1_000_000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => return,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => log::warn!("waiting for signals failed: {e}"),
        }
        self.drain(received);
    }

    /// The signalfd's number, for the list of descriptors grace-init keeps (issue 12's fd hygiene).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn drain(&self, received: &mut Vec<i32>) {
        while received.len() < BATCH {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    let signal = i32::try_from(info.ssi_signo).unwrap_or(0);
                    // A SIGPIPE from our own write to a closed stderr is not a request to forward. It is
                    // dropped silently: logging it would write to the same broken stderr, raise another
                    // SIGPIPE, and never end.
                    if info.ssi_pid != 0
                        && i32::try_from(info.ssi_pid) == Ok(self.me)
                        && signal != libc::SIGCHLD
                    {
                        continue;
                    }
                    received.push(signal);
                }
                Ok(None) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("reading signals failed: {e}");
                    return;
                }
            }
        }
    }
}
