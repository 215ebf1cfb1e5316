//! The event loop: start the child, then wait for signals or the next deadline, reap, feed the supervisor
//! and carry out what it decides, until it says exit.

use std::cell::Cell;
use std::time::{Duration, Instant};

use nix::unistd::getpid;

use crate::cgroup::Memory;
use nix::errno::Errno;

use crate::cli::Config;
use crate::death::MemoryLook;
use crate::deliver::Deliverer;
use crate::exit_code::ChildStatus;
use crate::exit_code::SETUP_FAILED;
use crate::inbox::Inbox;
use crate::logging;
use crate::reap::{self, Change, reap_all, reap_all_named};
use crate::route::Received;
use crate::spawn::{spawn_child, spawn_pre_stop};
use crate::startup::{Early, register_as_reaper};
use crate::supervisor::{Action, Event, Left, Output, Supervisor};
use crate::terminal::Terminal;
use crate::termination::TerminationLog;

/// How often to look again at /proc while, as PID 1, only processes that are not its children are left
/// (`docker exec` sessions): they send no SIGCHLD when they exit.
const STRANGER_POLL: Duration = Duration::from_millis(50);

/// Runs the command under supervision and returns grace-init's exit code.
pub fn run(config: Config, early: Early) -> i32 {
    let inbox = match Inbox::open() {
        Ok(inbox) => inbox,
        Err(e) => {
            log::error!("cannot set up signal handling: {}", e.desc().to_lowercase());
            return SETUP_FAILED;
        }
    };
    let orphaned = register_as_reaper(&config, early.parent);
    let terminal = Terminal::detect();
    // Both looked at before the app runs: the OOM kills counted so far, and the file as the app finds it.
    let memory = Memory::open();
    let termination_log = TerminationLog::prepare(&config.termination_log);
    let child = match spawn_child(&config.command, terminal.is_some(), config.user.as_deref()) {
        Ok(pid) => pid,
        Err(e) => {
            // The child may have taken the terminal before its exec failed: the caller gets it back.
            if let Some(terminal) = &terminal {
                terminal.take_back();
            }
            log::error!("{}", e.message);
            if let Some(file) = &termination_log {
                file.write(&format!("grace-init: {}; exit code {}", e.message, e.code));
            }
            return e.code;
        }
    };
    // cwd `/` and no inherited descriptors in grace-init itself (it must not hold a mount busy or a caller's
    // pipe open); the child keeps both.
    let mut keep: Vec<_> = inbox.as_raw_fd().into_iter().collect();
    keep.extend(logging::private_fd());
    keep.extend(terminal.as_ref().map(Terminal::as_raw_fd));
    keep.extend(memory.as_ref().map(Memory::raw_fd));
    let start_dir = crate::hygiene::detach_from_caller(&keep);
    // From here on grace-init never bails out: errors are warnings, and it exits only when nothing is left.
    log::debug!("started child {child} in its own process group");
    let supervisor = Supervisor::new(config.policy.clone(), child, Instant::now());
    let deliverer = Deliverer::probe(child);
    // Job control as if the app ran directly: a child stopped from the terminal (Ctrl-Z) stops grace-init too,
    // so the calling shell gets its prompt back. PID 1 has no caller to hand the terminal to.
    let job_control = terminal.is_some() && getpid().as_raw() != 1;
    // Kept for the process's life: the notes that name it are `Copy` values, formatted after the actions.
    let pre_stop_line: &'static str = config
        .pre_stop
        .clone()
        .map_or("", |line| Box::leak(line.into_boxed_str()));
    let mut event_loop = EventLoop {
        supervisor,
        deliverer,
        config,
        pre_stop_line,
        start_dir,
        out: Output::new(log::max_level()),
        exit: None,
        memory,
    };
    // Nothing is torn down: grace-init ends with _exit, and closing the signalfd or freeing the loop's buffers
    // (which the C library may hand back to the kernel with munmap) would only add system calls on the way out.
    let code = event_loop.supervise(
        std::mem::ManuallyDrop::new(inbox),
        orphaned,
        terminal,
        job_control,
    );
    if let (Some(file), Some(last)) = (&termination_log, event_loop.supervisor.last_word()) {
        file.write(&format!("grace-init: {last}"));
    }
    std::mem::forget(event_loop);
    code
}

/// The event loop's state: the supervisor and what carries out its decisions.
struct EventLoop {
    supervisor: Supervisor,
    deliverer: Deliverer,
    config: Config,
    /// The pre-stop command line (`--pre-stop`), empty without one.
    pre_stop_line: &'static str,
    /// Where the app was started: the pre-stop command runs there too.
    start_dir: Option<std::path::PathBuf>,
    /// Reused for every event: steady state allocates nothing.
    out: Output,
    exit: Option<i32>,
    /// The memory cgroup, to tell an OOM kill from another SIGKILL; `None` where it cannot be read.
    memory: Option<Memory>,
}

impl EventLoop {
    fn supervise(
        &mut self,
        mut inbox: std::mem::ManuallyDrop<Inbox>,
        orphaned: Option<i32>,
        terminal: Option<Terminal>,
        job_control: bool,
    ) -> i32 {
        let child = self.supervisor.child();
        let mut received: Vec<Received> = orphaned.into_iter().map(Received::unsent).collect();
        received.reserve(crate::inbox::SIGNAL_BATCH);
        let mut strangers_left = false;
        // Reap on the first turn (the child may already be gone), then only when a SIGCHLD came, a wait timed
        // out or strangers are watched: a wake-up for a forwarded signal then costs a read and a kill.
        let mut must_reap = true;
        // What start-up had to say (a missing /proc, a refused subreaper) goes out now, not at the first event.
        logging::flush();
        loop {
            if received.is_empty() {
                let mut deadline = self.supervisor.next_wakeup();
                if strangers_left {
                    let poll_at = Instant::now() + STRANGER_POLL;
                    deadline = Some(deadline.map_or(poll_at, |d| d.min(poll_at)));
                }
                // Signals the supervisor only forwards go out as they are read (see `Route`).
                let route = self.supervisor.route();
                inbox.wait(deadline, route, &mut received);
                must_reap |= received.is_empty();
            }
            must_reap |= strangers_left;
            log::trace!("woke up: signals {received:?}");
            let now = Instant::now();
            for got in received.drain(..) {
                if got.signal == libc::SIGCHLD {
                    must_reap = true;
                } else if let Some(sent) = got.sent {
                    // "received", then "forwarded": the log reads as for any other signal.
                    self.feed(Event::Forwarded(got.signal), now);
                    self.deliverer.report_sent(sent);
                } else {
                    self.feed(Event::Signal(got.signal), now);
                }
            }
            if std::mem::take(&mut must_reap) {
                strangers_left = self.reap(child, terminal.as_ref(), job_control, now);
            }
            self.feed(Event::Tick, now);
            // Everything this wake-up had to do is done: now, and only now, its lines are written.
            logging::flush();
            if let Some(code) = self.exit {
                return code;
            }
        }
    }

    /// One reap pass: every exit is handled as it comes (10,000 orphans need no list of 10,000 events).
    /// Returns whether only processes that are not grace-init's children are left (PID 1 only).
    fn reap(
        &mut self,
        child: i32,
        terminal: Option<&Terminal>,
        job_control: bool,
        now: Instant,
    ) -> bool {
        // Without /proc, a subreaper looks at the child's exit before reaping it: while the zombie is there its
        // group id cannot be reused, so what is left of the group can be told with one kill(-pgid). Whether
        // anyone was left to hear it is known only from waitpid below.
        // Not under --wait-all: what the child leaves is waited for, not told.
        let told_group = self.deliverer.needs_peek()
            && !self.config.policy.wait_all
            && self.supervisor.child_alive()
            && reap::peek(child).is_some()
            && self.deliverer.tell_group_while_reserved();
        // Whether a process besides the main child was reaped in this pass: it was there when the group was told.
        let reaped_other = Cell::new(false);
        let on_exit = |event_loop: &mut EventLoop, pid, status, name| {
            reaped_other.set(reaped_other.get() || pid != child);
            if pid == child {
                if let Some(terminal) = terminal {
                    terminal.take_back();
                }
            }
            let memory = event_loop.look_at_memory(pid == child, status);
            event_loop.feed(
                Event::Reaped {
                    pid,
                    status,
                    name,
                    memory,
                },
                now,
            );
        };
        let on_change = |event_loop: &mut EventLoop, pid, change| match change {
            Change::Ended(status) => on_exit(event_loop, pid, status, None),
            Change::Stopped(signal) => {
                if let (true, Some(terminal)) = (pid == child && job_control, terminal) {
                    terminal.suspend_with(child, signal);
                }
            }
        };
        let children_left = if self.config.policy.warn_reap {
            // --warn-reap names each process before reaping it; the default path does not pay for it.
            let left = reap_all_named(|pid, status, name, group| {
                let pre_stop = self.supervisor.pre_stop_group();
                if group.is_some() && group == pre_stop && Some(pid) != pre_stop {
                    let helper = Event::PreStopHelperReaped { pid, status, name };
                    self.feed(helper, now);
                } else {
                    on_exit(self, pid, status, name);
                }
            });
            // It reports exits only: under job control, a second pass picks up a child stopped from the terminal.
            if left && job_control {
                reap_all(true, |pid, change| on_change(self, pid, change))
            } else {
                left
            }
        } else {
            reap_all(job_control, |pid, change| on_change(self, pid, change))
        };
        // The group's SIGTERM can have reached someone besides the child's zombie only if another process was
        // there: one reaped in this pass (it may have exited of that very SIGTERM) or one still left. Every member
        // of the group was the child's descendant, and so grace-init's child once the child had exited.
        if told_group && (children_left || reaped_other.get()) {
            self.feed(Event::ToldGroup(child), now);
        }
        // As PID 1, processes that are not our children (entered with nsenter / docker exec) count too.
        let left = if children_left {
            Left::Children
        } else if self.deliverer.others_in_namespace() {
            Left::Strangers
        } else {
            Left::Nothing
        };
        self.report_trouble(now);
        self.feed(Event::Settled(left), now);
        left == Left::Strangers
    }

    /// Asks the memory cgroup about a death that may need explaining: any SIGKILL before grace-init sent its
    /// own, and the app's end with code 137 (a SIGKILL, or a shell around the app passing one on), the only
    /// code an OOM kill leaves. One read of the kill counter; the limit and the peak only when the count rose.
    /// A clean exit costs nothing.
    fn look_at_memory(&mut self, main: bool, status: ChildStatus) -> Option<MemoryLook> {
        let unexplained = status.signal() == Some(libc::SIGKILL) && !self.supervisor.sent_sigkill();
        let app_137 = main && status.code() == 128 + libc::SIGKILL;
        if !unexplained && !app_137 {
            return None;
        }
        let memory = self.memory.as_mut()?;
        let look = memory.look()?;
        let counted = |kills: u64| (kills > 0).then(|| memory.report(kills));
        Some(MemoryLook {
            new: counted(look.new),
            since_start: counted(look.since_start),
        })
    }

    /// Feeds one event to the supervisor, queues its lines, and carries out what it decides.
    fn feed(&mut self, event: Event, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        self.supervisor.step(event, now, &mut self.out);
        // Most events (a forwarded signal, a reaped orphan) neither act nor say anything at the default level:
        // they end here, which is most of the work of reaping 10,000 orphans.
        if self.out.actions.is_empty() && !self.out.has_notes() {
            return;
        }
        let said = self
            .out
            .has_notes()
            .then(|| (self.out.take_notes(), logging::mark()));
        let mut actions = std::mem::take(&mut self.out.actions);
        for action in actions.drain(..) {
            if self.exit.is_none() {
                self.perform(action, now);
                self.report_trouble(now);
            }
        }
        // Give the (now empty) buffer back unless a nested event put one in its place.
        if self.out.actions.is_empty() {
            self.out.actions = actions;
        }
        // Only now, with the signals sent, are the notes formatted, straight into the logger's queue, ahead of
        // what the actions logged: the order is that of events, the cost comes after the work. They are
        // written with the wake-up's flush.
        if let Some((said, mark)) = said {
            logging::queue_at(mark, || {
                for &(level, note) in &said {
                    let fields = note.fields();
                    if fields.is_empty() {
                        log::log!(target: "grace_init::supervisor", level, "{note}");
                    } else {
                        logging::log_with("grace_init::supervisor", level, &note, &fields);
                    }
                }
            });
            self.out.reuse_notes(said);
        }
    }

    /// Tells the supervisor what the deliverer's last looks at /proc could not read, if anything.
    fn report_trouble(&mut self, now: Instant) {
        if let Some(trouble) = self.deliverer.take_trouble() {
            self.feed(Event::CouldNotLook(trouble), now);
        }
    }

    /// Carries out one action.
    fn perform(&mut self, action: Action, now: Instant) {
        let deliverer = &self.deliverer;
        match action {
            Action::Forward { signal, target } => deliverer.forward(signal, target),
            Action::ForwardStop { signal, target } => {
                if let Some((reach, refused)) = deliverer.forward_stop(signal, target) {
                    self.feed(Event::ToldRest(reach, refused), now);
                }
            }
            Action::ListRest => {
                let running = deliverer.survey();
                self.feed(Event::Listed(running), now);
            }
            Action::StartPreStop => {
                let line = self.pre_stop_line;
                let spawned =
                    spawn_pre_stop(line, self.config.user.as_deref(), self.start_dir.as_deref());
                let outcome = match spawned {
                    Ok(pid) => Event::PreStopStarted { pid, line },
                    Err(e) => Event::PreStopFailed {
                        line,
                        why: e.raw_os_error().map_or(Errno::EINVAL, Errno::from_raw),
                    },
                };
                self.feed(outcome, now);
            }
            Action::KillPreStop(pid) => deliverer.kill_group(pid),
            Action::TerminateLeftovers { skip_told } => {
                let (reach, refused) = deliverer.terminate_leftovers(skip_told);
                self.feed(Event::Terminated(reach, refused), now);
            }
            Action::KillAll | Action::KillAgain => {
                let (reach, refused) = deliverer.kill_all(self.supervisor.child_alive());
                self.feed(Event::Killed(reach, refused), now);
            }
            Action::Survey => {
                let unreached = deliverer.survey();
                self.feed(Event::Surveyed(unreached), now);
            }
            Action::Exit(code) => self.exit = Some(code),
        }
    }
}
