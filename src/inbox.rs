//! Receives signals: blocks them all at start and takes them from the queue, in batches from a blocking
//! signalfd while nothing is timed, one by one with `sigtimedwait` while a deadline is armed. Either way a
//! wake-up costs one system call, and a deadline costs none of its own.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::supervisor::Route;
use crate::sys;

/// Blocks every signal that can be blocked, the fault signals (SEGV, ABRT, ...) included, so that one sent
/// with kill(1) is queued and forwarded like any other. A real fault in grace-init still ends it: the kernel
/// forces those through a block (and abort() unblocks SIGABRT itself). Blocked signals queue up until they
/// are read, even for PID 1.
pub fn block_signals() -> Result<SigSet, Errno> {
    let mask = SigSet::all();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None)?;
    Ok(mask)
}

/// The signal queue of grace-init.
pub struct Inbox {
    fd: SignalFd,
    mask: SigSet,
    me: i32,
    batch: Vec<sys::Received>,
    /// The records one read fills, allocated once.
    records: Vec<libc::signalfd_siginfo>,
}

impl Inbox {
    /// Opens the signalfd for every signal `block_signals` blocked (and blocks them, should that not have run).
    pub fn open() -> Result<Inbox, Errno> {
        let mut mask = block_signals()?;
        // SIGKILL and SIGSTOP cannot be caught; signalfd ignores them, sigtimedwait must not be asked for them.
        mask.remove(Signal::SIGKILL);
        mask.remove(Signal::SIGSTOP);
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?;
        Ok(Inbox {
            fd,
            mask,
            me: std::process::id().try_into().unwrap_or(0),
            batch: Vec::with_capacity(sys::SIGNAL_BATCH),
            records: vec![sys::empty_siginfo(); sys::SIGNAL_BATCH],
        })
    }

    /// The signalfd's number, for the list of descriptors grace-init keeps (issue 12's fd hygiene).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sleeps until a signal arrives or `deadline` passes (`None`: no deadline), then appends what arrived to
    /// `received` (nothing when the deadline passed first). Signals `route` covers are forwarded as they are
    /// read, and come back marked as sent (only in the wait without a deadline, the app's steady state).
    pub fn wait(
        &mut self,
        deadline: Option<Instant>,
        route: Option<&Route>,
        received: &mut Vec<sys::Received>,
    ) {
        self.batch.clear();
        let outcome = match deadline {
            None => {
                let routing = route.map(|r| sys::Routing {
                    to: r.to,
                    table: r.table(),
                    me: self.me,
                });
                sys::read_signals(&self.fd, &mut self.records, routing, &mut self.batch)
            }
            Some(at) => {
                // Rounded up to the microsecond: the kernel's timer never fires early, so the loop never
                // wakes before the deadline only to sleep again.
                let left = at.saturating_duration_since(Instant::now());
                let left = std::time::Duration::from_micros(
                    u64::try_from(left.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX),
                );
                sys::wait_signal(&self.mask, left).map(|got| self.batch.extend(got))
            }
        };
        match outcome {
            Ok(()) | Err(Errno::EINTR) => {}
            Err(e) => log::warn!("waiting for signals failed: {}", e.desc()),
        }
        for got in &self.batch {
            // A signal grace-init raised itself (a SIGPIPE from a write to a closed stderr) is not a request to
            // forward. SIGCHLD always counts: it is how the kernel reports a child, with the child as sender.
            if got.sender == self.me && got.signal != libc::SIGCHLD {
                continue;
            }
            received.push(*got);
        }
    }
}
