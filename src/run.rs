//! The event loop: start the child, then wait for signals or the next deadline, reap, feed the supervisor
//! and carry out what it decides, until it says exit.

use std::time::Instant;

use nix::unistd::{getpgrp, getpid, isatty, tcgetpgrp};

use crate::cli::Config;
use crate::deliver::Deliverer;
use crate::exit_code::SETUP_FAILED;
use crate::inbox::Inbox;
use crate::reap::reap_all;
use crate::signals::name;
use crate::spawn::{spawn_child, spawn_pre_stop};
use crate::supervisor::{Action, Event, Supervisor};
use crate::sys;

/// Runs the command under supervision and returns grace-init's exit code.
pub fn run(config: Config) -> i32 {
    sys::fill_standard_fds();
    sys::ignore_reserved_signals();
    let inbox = match Inbox::open() {
        Ok(inbox) => inbox,
        Err(e) => {
            log::error!("cannot set up signal handling: {}", e.desc());
            return SETUP_FAILED;
        }
    };
    register_as_reaper(&config);
    let take_terminal = owns_terminal();
    let child = match spawn_child(&config.command, take_terminal) {
        Ok(pid) => pid,
        Err(e) => {
            log::error!("{}", e.message);
            return e.code;
        }
    };
    // From here on grace-init never bails out: errors are warnings, and it exits only when nothing is left.
    log::debug!("started child {child} in its own process group");
    let deliverer = Deliverer::probe();
    let mut supervisor = Supervisor::new(config.policy.clone(), child, Instant::now());
    if !deliverer.can_find_every_process() {
        supervisor.cannot_find_leftovers();
    }
    let mut received = Vec::new();
    loop {
        let timeout = supervisor
            .next_wakeup()
            .map(|at| at.saturating_duration_since(Instant::now()));
        received.clear();
        inbox.wait(timeout, &mut received);
        let now = Instant::now();
        let mut exit = None;
        let mut feed = |event| {
            if exit.is_none() {
                exit = step(event, now, &mut supervisor, &deliverer, &config);
            }
        };
        for signal in received.iter().filter(|&&s| s != libc::SIGCHLD) {
            feed(Event::Signal(*signal));
        }
        // Each reaped process is handled as it comes, so 10,000 orphans need no list of 10,000 events.
        let children_left = reap_all(|pid, status| feed(Event::Reaped { pid, status }));
        feed(Event::Settled { children_left });
        feed(Event::Tick);
        if let Some(code) = exit {
            return code;
        }
    }
}

/// Feeds one event to the supervisor and carries out what it decides; returns the exit code when it is time.
fn step(
    event: Event,
    now: Instant,
    supervisor: &mut Supervisor,
    deliverer: &Deliverer,
    config: &Config,
) -> Option<i32> {
    for action in supervisor.handle(event, now) {
        if let Some(code) = perform(action, supervisor, deliverer, config, now) {
            return Some(code);
        }
    }
    None
}

/// Carries out one action; returns the exit code when it is time to exit.
fn perform(
    action: Action,
    supervisor: &mut Supervisor,
    deliverer: &Deliverer,
    config: &Config,
    now: Instant,
) -> Option<i32> {
    match action {
        Action::Forward { signal, target } => deliverer.forward(signal, target),
        Action::StartPreStop => {
            let line = config.pre_stop.as_deref().unwrap_or_default();
            let outcome = match spawn_pre_stop(line) {
                Ok(pid) => {
                    log::info!("running pre-stop command: {line}");
                    Event::PreStopStarted(pid)
                }
                Err(e) => {
                    log::warn!("cannot run pre-stop command '{line}': {e}");
                    Event::PreStopFailed
                }
            };
            return step(outcome, now, supervisor, deliverer, config);
        }
        Action::KillPreStop(pid) => deliverer.kill_group(pid),
        Action::TerminateLeftovers { skip_group } => {
            let count = deliverer.terminate_leftovers(skip_group);
            log::info!("sent SIGTERM to {count} leftover processes");
            supervisor.note_terminated(count);
        }
        Action::KillAll => {
            let count = deliverer.kill_all(supervisor.child(), supervisor.child_alive());
            log::info!("escalated: SIGKILL to {count} processes");
            supervisor.note_killed(count);
        }
        Action::KillAgain => {
            let count = deliverer.kill_all(supervisor.child(), supervisor.child_alive());
            log::debug!("processes remain after SIGKILL: swept again, {count} found");
        }
        Action::Exit(code) => return Some(code),
    }
    None
}

/// Becomes a child subreaper when not PID 1 (or when asked), so orphans of the child are reaped here too.
fn register_as_reaper(config: &Config) {
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
    if let Some(signal) = config.pdeathsig {
        if pid1 {
            log::debug!("PID 1 has no parent to watch: --pdeathsig ignored");
        } else {
            let parent = nix::unistd::getppid();
            match sys::set_parent_death_signal(signal) {
                // The parent may have died before prctl took effect: then the signal never comes, so raise it now.
                Ok(()) if nix::unistd::getppid() != parent => {
                    let _ = sys::kill(getpid().as_raw(), signal);
                }
                Ok(()) => log::debug!("will receive {} when the parent dies", name(signal)),
                Err(e) => log::warn!("cannot set the parent-death signal: {}", e.desc()),
            }
        }
    }
}

/// True when stdin is a terminal whose foreground group is ours, so the child may take it over.
fn owns_terminal() -> bool {
    let stdin = std::io::stdin();
    isatty(&stdin).unwrap_or(false) && tcgetpgrp(&stdin).is_ok_and(|fg| fg == getpgrp())
}
