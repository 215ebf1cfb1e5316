//! Receives signals: blocks them all at start and takes them from the queue, in batches from a blocking
//! signalfd while nothing is timed, one by one with `sigtimedwait` while a deadline is armed. Either way a
//! wake-up costs one system call, and a deadline costs none of its own. Where signalfd is refused (a seccomp
//! profile: EPERM or ENOSYS), every wait is a `sigtimedwait`, as in the C inits that have no signalfd.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::route::{Received, Route, Taker};
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

/// A wait shorter than this sleeps to the deadline in one go.
const ONE_LEG: Duration = Duration::from_millis(100);
/// The least a long wait stops short of its deadline.
const LAST_LEG: Duration = Duration::from_millis(4);

/// How long to sleep towards a deadline `left` away. A long wait stops short, by 1/128 of it and at least
/// `LAST_LEG`, and the loop sleeps the rest anew: two things a long sleep meets on virtual machines made the
/// SIGKILL land milliseconds after the deadline. The timer fires late in proportion to the sleep, and the
/// first steps after a long sleep run on memory the host let go cold (docs/benchmarks.md has the
/// measurements). The short last leg is neither. One more
/// wake-up per deadline, and none while nothing is timed (an idle app). Rounded up to the microsecond, so
/// the last leg never ends before the deadline only to sleep again.
fn first_leg(left: Duration) -> Duration {
    let leg = if left > ONE_LEG {
        left - (left / 128).max(LAST_LEG)
    } else {
        left
    };
    Duration::from_micros(u64::try_from(leg.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX))
}

/// How many signals one blocking read of the signalfd takes at most (the rest stay queued in the kernel and are
/// read on the next, immediate, turn of the loop).
pub const SIGNAL_BATCH: usize = 16;

/// The signal queue of grace-init.
pub struct Inbox {
    /// `None` where signalfd is refused: then signals are taken with `sigtimedwait` only.
    fd: Option<SignalFd>,
    mask: SigSet,
    me: i32,
    /// The records one read fills, allocated once and reused: nothing is cleared or allocated per wake-up.
    records: Vec<libc::signalfd_siginfo>,
}

impl Inbox {
    /// Opens the signalfd for every signal `block_signals` blocked (and blocks them, should that not have run).
    pub fn open() -> Result<Inbox, Errno> {
        let mut mask = block_signals()?;
        // SIGKILL and SIGSTOP cannot be caught; signalfd ignores them, sigtimedwait must not be asked for them.
        mask.remove(Signal::SIGKILL);
        mask.remove(Signal::SIGSTOP);
        let fd = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Some(fd),
            Err(e @ (Errno::EPERM | Errno::ENOSYS)) => {
                log::info!(
                    "signalfd is refused ({}): signals are taken with sigtimedwait",
                    e.desc().to_lowercase()
                );
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Inbox {
            fd,
            mask,
            me: std::process::id().try_into().unwrap_or(0),
            records: vec![sys::empty_siginfo(); SIGNAL_BATCH],
        })
    }

    /// The signalfd's number, if there is one, for the descriptors grace-init keeps when it closes what it
    /// inherited.
    pub fn as_raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Sleeps until a signal arrives or `deadline` passes (`None`: no deadline), then appends what arrived to
    /// `received` (nothing when the deadline passed first). Signals on `route` are forwarded as they are taken
    /// (see `route::Taker`), and come back marked as sent.
    pub fn wait(
        &mut self,
        deadline: Option<Instant>,
        route: Option<&Route>,
        received: &mut Vec<Received>,
    ) {
        let mut taker = Taker::new(route, self.me);
        let outcome = match (deadline, &self.fd) {
            (None, Some(fd)) => sys::read_signalfd(fd, &mut self.records).map(|n| {
                for info in self.records.iter().take(n) {
                    let signal = i32::try_from(info.ssi_signo).unwrap_or(0);
                    let sender = i32::try_from(info.ssi_pid).unwrap_or(0);
                    received.extend(taker.take(signal, sender));
                }
            }),
            (deadline, _) => {
                let timeout =
                    deadline.map(|at| first_leg(at.saturating_duration_since(Instant::now())));
                sys::wait_signal(&self.mask, timeout).map(|got| {
                    if let Some((signal, sender)) = got {
                        received.extend(taker.take(signal, sender));
                    }
                })
            }
        };
        match outcome {
            Ok(()) | Err(Errno::EINTR) => {}
            Err(e) => log::warn!("waiting for signals failed: {}", e.desc()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_wait_stops_short_and_the_last_leg_goes_to_the_deadline() {
        let ms = Duration::from_millis;
        // Short waits, the last legs: to the deadline, rounded up to the microsecond.
        assert_eq!(first_leg(Duration::ZERO), Duration::ZERO);
        assert_eq!(first_leg(Duration::from_nanos(1)), Duration::from_micros(1));
        assert_eq!(first_leg(ms(5)), ms(5));
        assert_eq!(first_leg(ONE_LEG), ONE_LEG);
        // Long ones stop at least LAST_LEG short, and 1/128 short once that is more.
        assert_eq!(first_leg(ms(101)), ms(97));
        assert_eq!(first_leg(ms(1000)), Duration::from_micros(992_188));
        assert_eq!(first_leg(ms(30_000)), Duration::from_micros(29_765_625));
        // A chain of legs ends at the deadline, even with the timer firing 0.1 % late: a 30 s wait takes three.
        let mut left = ms(30_000);
        let mut legs = 1;
        while first_leg(left) < left {
            let leg = first_leg(left);
            left -= leg + leg / 1000;
            legs += 1;
            assert!(legs < 10, "the legs do not converge: {left:?} left");
        }
        assert_eq!(legs, 3);
    }
}
