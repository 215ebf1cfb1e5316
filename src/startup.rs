//! Start-up shared by the supervised run and `--pause`: what is done before the command line is parsed (signals
//! blocked, inherited dispositions reset, the parent noted), and registering as the reaper of orphans with the
//! parent-death signal armed.

use nix::unistd::{Pid, getpid, getppid};

use crate::cli::Config;
use crate::inbox::block_signals;
use crate::signals::name;
use crate::sys;

/// What must be done before the command line is even parsed.
pub struct Early {
    /// The parent when grace-init started: if it has changed by the time --pdeathsig is armed, it died.
    pub(crate) parent: Pid,
}

impl Early {
    /// Blocks signals (they queue until the loop reads them) and notes the parent.
    pub fn capture() -> Early {
        // On failure Inbox::open tries again and reports the error, once logging is set up.
        let _ = block_signals();
        reset_inherited_dispositions();
        Early { parent: getppid() }
    }
}

/// Puts every signal disposition grace-init inherited back to its default, in grace-init itself: whoever
/// started it may have left SIGCHLD ignored (`trap '' CHLD` survives exec), and then the kernel reaps the
/// children itself and no exit status ever arrives. The real-time signals the C library reserves (32 and 33
/// with glibc; none with musl) are ignored instead: they cannot be blocked, so they never reach the signal
/// queue, and their default action would end grace-init (and orphan the app) when it is not PID 1.
/// Signals are blocked when this runs, so nothing is delivered in between.
fn reset_inherited_dispositions() {
    for signal in 1..=64 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            sys::set_disposition(signal, (32..libc::SIGRTMIN()).contains(&signal));
        }
    }
}

/// Becomes a child subreaper when not PID 1 (or when asked), so orphans of the child are reaped here too, and
/// arms --pdeathsig. Returns the parent-death signal when the parent already died since grace-init started.
pub fn register_as_reaper(config: &Config, parent_at_start: Pid) -> Option<i32> {
    let pid1 = getpid().as_raw() == 1;
    if !pid1 || config.force_subreaper {
        match nix::sys::prctl::set_child_subreaper(true) {
            Ok(()) => log::debug!("not PID 1: registered as child subreaper"),
            Err(e) => log::warn!(
                "cannot register as child subreaper ({}): orphans will not be reaped here",
                e.desc()
            ),
        }
    }
    let signal = config.pdeathsig?;
    if pid1 {
        log::debug!("PID 1 has no parent to watch: --pdeathsig ignored");
        return None;
    }
    if let Err(e) = sys::set_parent_death_signal(signal) {
        log::warn!("cannot set the parent-death signal: {}", e.desc());
        return None;
    }
    // The parent may have died before prctl took effect: then the kernel never sends it, so act on it now.
    if getppid() != parent_at_start {
        log::info!(
            "the parent died during start-up: acting on {}",
            name(signal)
        );
        return Some(signal);
    }
    log::debug!("will receive {} when the parent dies", name(signal));
    None
}
