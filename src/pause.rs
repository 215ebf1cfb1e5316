//! `--pause`: no command. Reap whatever is re-parented to grace-init and sleep without a timer, until a stop
//! signal; then exit 0 (catatonit's `-P`, the infra process of a pod). A loop of its own, apart from the
//! supervisor: there is no child, no grace period and nothing to forward.

use crate::cli::Config;
use crate::exit_code::SETUP_FAILED;
use crate::inbox::Inbox;
use crate::reap::{Change, reap_all, reap_all_named};
use crate::signals::name;
use crate::startup::{Early, register_as_reaper};

/// Runs pause mode; returns grace-init's exit code (0 after a stop signal).
pub fn pause(config: &Config, early: Early) -> i32 {
    let mut inbox = match Inbox::open() {
        Ok(inbox) => inbox,
        Err(e) => {
            log::error!("cannot set up signal handling: {}", e.desc().to_lowercase());
            return SETUP_FAILED;
        }
    };
    let mut received: Vec<crate::route::Received> = register_as_reaper(config, early.parent)
        .into_iter()
        .map(crate::route::Received::unsent)
        .collect();
    let mut keep: Vec<_> = inbox.as_raw_fd().into_iter().collect();
    keep.extend(crate::logging::private_fd());
    // Nothing is started later: the start directory is not needed.
    let _ = crate::hygiene::detach_from_caller(&keep);
    log::debug!("pausing: reaping orphans until a stop signal");
    let stop_signals = &config.policy.stop_signals;
    loop {
        // Whatever exited before the first wait (or between two) is reaped on the first turn too.
        reap(config.policy.warn_reap);
        if let Some(got) = received
            .iter()
            .find(|got| stop_signals.contains(&got.signal))
        {
            log::info!("received {}: leaving pause", name(got.signal));
            return 0;
        }
        for got in received.drain(..).filter(|got| got.signal != libc::SIGCHLD) {
            log::debug!("pause mode: ignoring {}", name(got.signal));
        }
        // Lines are written when there is nothing else to do, never blocking (see logging).
        crate::logging::flush();
        inbox.wait(None, None, &mut received);
    }
}

/// Reaps every exited process; with `warn`, names each one.
fn reap(warn: bool) {
    if warn {
        reap_all_named(|pid, status, comm, _group| {
            let comm = comm.map_or_else(|| "name unknown".to_string(), |c| c.to_string());
            log::warn!("reaped process {pid} ({comm}): it {}", status);
        });
    } else {
        reap_all(false, |pid, change| {
            if let Change::Ended(status) = change {
                log::debug!("reaped process {pid}: {}", status);
            }
        });
    }
}
