//! The signal path allocates nothing: a forwarded signal, a 10,000-orphan reap and a whole shutdown at the
//! default log level run through the supervisor without a single heap allocation once its buffers exist.
//!
//! Why this is a test and not a benchmark: an allocation is deterministic, a latency is not. On the machines
//! grace-init runs on, a malloc and a free on the way to a `kill` cost more than the `kill` (cold allocator
//! code and metadata pages); before this test, every forwarded signal formatted a debug line nobody read, and
//! the shutdown's three info lines took 35 mallocs, 17 reallocs and 37 frees.

// A counting global allocator is the only way to see allocations from outside; it is test code, and the one
// unsafe block in it only passes calls through to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, Instant};

use grace_init::exit_code::ChildStatus;
use grace_init::signals::Rewrites;
use grace_init::supervisor::{Event, Left, Output, Supervisor};
use grace_init::terms::{PRE_STOP_LIMIT_WITHOUT_TIMEOUT, Policy};
use log::LevelFilter;

/// The system allocator, counting the allocations made by the current thread (tests run in parallel).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed through to the system allocator unchanged; the counter is a const-initialised
// thread-local Cell, which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations (and reallocations) `work` made on this thread.
fn allocations_in(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

const CHILD: i32 = 4242;

fn policy() -> Policy {
    Policy {
        timeout: Some(Duration::from_secs(30)),
        drain_delay: Duration::ZERO,
        pre_stop: false,
        pre_stop_limit: PRE_STOP_LIMIT_WITHOUT_TIMEOUT,
        stop_signals: vec![libc::SIGTERM, libc::SIGINT],
        rewrites: Rewrites::default(),
        single_child: false,
        expect_exit: vec![],
        warn_reap: false,
        wait_all: false,
    }
}

/// What the shell does with one event: step, then take the lines and the actions.
fn feed(sup: &mut Supervisor, out: &mut Output, event: Event, now: Instant) -> usize {
    sup.step(event, now, out);
    // Formatted as the shell formats them, into a writer that keeps nothing: what is measured is the
    // formatting itself.
    let mut said = 0;
    for (_, note) in out.notes() {
        let _ = write!(std::io::sink(), "{note}");
        said += 1;
    }
    out.clear_notes();
    out.actions.clear();
    said
}

#[test]
fn a_forwarded_signal_allocates_nothing_at_the_default_level() {
    let t0 = Instant::now();
    let mut sup = Supervisor::new(policy(), CHILD, t0);
    let mut out = Output::new(LevelFilter::Info);
    let made = allocations_in(|| {
        for signal in [libc::SIGUSR1, libc::SIGHUP, libc::SIGWINCH, 40] {
            sup.step(Event::Signal(signal), t0, &mut out);
            assert_eq!(out.actions.len(), 1, "forwarded");
            out.actions.clear();
            feed(&mut sup, &mut out, Event::Tick, t0);
        }
    });
    assert_eq!(made, 0, "allocations for four forwarded signals");
}

#[test]
fn reaping_orphans_allocates_nothing_at_the_default_level() {
    let t0 = Instant::now();
    let mut sup = Supervisor::new(policy(), CHILD, t0);
    let mut out = Output::new(LevelFilter::Info);
    let made = allocations_in(|| {
        for pid in 10_000..20_000 {
            let reaped = Event::Reaped {
                pid,
                status: ChildStatus::Exited(0),
                name: None,
                memory: None,
            };
            feed(&mut sup, &mut out, reaped, t0);
        }
        feed(&mut sup, &mut out, Event::Settled(Left::Children), t0);
    });
    assert_eq!(made, 0, "allocations for 10,000 reaped orphans");
}

#[test]
fn a_whole_shutdown_formats_its_lines_without_allocating() {
    let t0 = Instant::now();
    let mut sup = Supervisor::new(policy(), CHILD, t0);
    let mut out = Output::new(LevelFilter::Info);
    let mut said = 0;
    let made = allocations_in(|| {
        said += feed(&mut sup, &mut out, Event::Signal(libc::SIGTERM), t0);
        let later = t0 + Duration::from_millis(350);
        let reaped = Event::Reaped {
            pid: CHILD,
            status: ChildStatus::Killed(libc::SIGTERM),
            name: None,
            memory: None,
        };
        said += feed(&mut sup, &mut out, reaped, later);
        said += feed(&mut sup, &mut out, Event::Settled(Left::Nothing), later);
    });
    // received + forwarding, the child's exit, the summary: the lines were said, and cost nothing.
    assert!(said >= 4, "{said} lines");
    assert_eq!(made, 0, "allocations for a whole shutdown");
}
