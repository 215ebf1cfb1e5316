//! The event loop: start the child, then wait for signals or the next deadline, reap, feed the supervisor
//! and carry out what it decides, until it says exit.

use std::time::{Duration, Instant};

use nix::unistd::{Pid, getpgrp, getpid, getppid, isatty, tcgetpgrp};

use crate::cli::Config;
use crate::deliver::Deliverer;
use crate::exit_code::SETUP_FAILED;
use crate::inbox::{Inbox, block_signals};
use crate::reap::{reap_all, reap_all_named};
use crate::signals::name;
use crate::spawn::{spawn_child, spawn_pre_stop};
use crate::supervisor::{Action, Event, Supervisor};
use crate::sys;

/// How often to look again at /proc while, as PID 1, only processes that are not its children are left
/// (`docker exec` sessions): they send no SIGCHLD when they exit.
const STRANGER_POLL: Duration = Duration::from_millis(50);

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
        sys::ignore_reserved_signals();
        Early { parent: getppid() }
    }
}

/// Runs the command under supervision and returns grace-init's exit code.
pub fn run(config: Config, early: Early) -> i32 {
    let inbox = match Inbox::open() {
        Ok(inbox) => inbox,
        Err(e) => {
            log::error!("cannot set up signal handling: {}", e.desc());
            return SETUP_FAILED;
        }
    };
    let orphaned = register_as_reaper(&config, early.parent);
    let take_terminal = owns_terminal();
    let child = match spawn_child(&config.command, take_terminal, config.user.as_deref()) {
        Ok(pid) => pid,
        Err(e) => {
            log::error!("{}", e.message);
            return e.code;
        }
    };
    // issue 12: cwd `/` and no inherited descriptors in grace-init itself; the child keeps both.
    crate::hygiene::detach_from_caller(&[inbox.as_raw_fd()]);
    // From here on grace-init never bails out: errors are warnings, and it exits only when nothing is left.
    log::debug!("started child {child} in its own process group");
    let deliverer = Deliverer::probe();
    let mut supervisor = Supervisor::new(config.policy.clone(), child, Instant::now());
    if !deliverer.can_find_every_process() {
        supervisor.cannot_find_leftovers();
    }
    let mut received: Vec<i32> = orphaned.into_iter().collect();
    let mut strangers_left = false;
    // Reap on the first turn (the child may already be gone), then only when a SIGCHLD came, a wait timed out
    // or strangers are watched: a wake-up for a forwarded signal then costs a read and a kill, nothing more.
    let mut must_reap = true;
    loop {
        if received.is_empty() {
            let mut timeout = supervisor
                .next_wakeup()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if strangers_left {
                timeout = Some(timeout.map_or(STRANGER_POLL, |t| t.min(STRANGER_POLL)));
            }
            inbox.wait(timeout, &mut received);
            must_reap |= received.is_empty();
        }
        must_reap |= strangers_left || received.contains(&libc::SIGCHLD);
        log::trace!("woke up: signals {received:?}");
        let now = Instant::now();
        let mut exit = None;
        let mut feed = |supervisor: &mut Supervisor, event| {
            if exit.is_none() {
                exit = step(event, now, supervisor, &deliverer, &config);
            }
        };
        for signal in received.drain(..).filter(|&s| s != libc::SIGCHLD) {
            feed(&mut supervisor, Event::Signal(signal));
        }
        // Each reaped process is handled as it comes, so 10,000 orphans need no list of 10,000 events.
        if std::mem::take(&mut must_reap) {
            // issue 12: --warn-reap names each process before reaping it; the default path does not pay for it.
            let children_left = if config.policy.warn_reap {
                reap_all_named(|pid, status, name| {
                    feed(&mut supervisor, Event::Reaped { pid, status, name })
                })
            } else {
                reap_all(|pid, status| {
                    let name = None;
                    feed(&mut supervisor, Event::Reaped { pid, status, name })
                })
            };
            // As PID 1, processes that are not our children (entered with nsenter / docker exec) count too.
            strangers_left = !children_left && deliverer.others_in_namespace();
            supervisor.note_only_strangers(strangers_left);
            let children_left = children_left || strangers_left;
            feed(&mut supervisor, Event::Settled { children_left });
        }
        feed(&mut supervisor, Event::Tick);
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
        Action::ForwardStop { signal, target } => deliverer.forward_stop(signal, target),
        Action::StartPreStop => {
            let line = config.pre_stop.as_deref().unwrap_or_default();
            let outcome = match spawn_pre_stop(line, config.user.as_deref()) {
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
        Action::TerminateLeftovers { skip_told } => {
            match deliverer.terminate_leftovers(skip_told) {
                Some(0) => log::debug!("no leftover process to send SIGTERM to"),
                Some(count) => {
                    log::info!("sent SIGTERM to {}", processes(count));
                    supervisor.note_terminated(count);
                }
                None => {
                    log::info!("sent SIGTERM to every process (kill -1): /proc cannot list them")
                }
            }
        }
        Action::KillAll => {
            let count = deliverer.kill_all(supervisor.child(), supervisor.child_alive());
            log::info!("escalated: SIGKILL to {}", processes(count));
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

/// "1 process", "3 processes".
fn processes(count: usize) -> String {
    if count == 1 {
        "1 process".to_string()
    } else {
        format!("{count} processes")
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

/// True when stdin is a terminal whose foreground group is ours, so the child may take it over.
fn owns_terminal() -> bool {
    let stdin = std::io::stdin();
    isatty(&stdin).unwrap_or(false) && tcgetpgrp(&stdin).is_ok_and(|fg| fg == getpgrp())
}
