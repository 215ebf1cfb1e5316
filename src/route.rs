//! The standing route: the signals the supervisor only forwards, sent the moment they are read. While its
//! decisions stand, a signal the supervisor would only pass on (rewritten) to the app goes out with one
//! `kill(2)` between the read and the next record, before the clock is read or any other code runs (a
//! forward's latency is mostly the memory touched between the read and the kill); the supervisor is told
//! afterwards. Every other signal waits for the supervisor's `step`. This module also drops the signals
//! grace-init raised itself, so that check is made in one place.

use nix::errno::Errno;

use crate::sys;

/// Signal numbers 0 to 64.
const SIGNALS: usize = 65;

/// Where each signal goes when it is only forwarded: one `kill(2)` target, and what each signal, by number, is
/// sent as (0: not on the route, it goes through `step`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The `kill(2)` target: minus a process group id, or a pid.
    to: i32,
    as_signal: [u8; SIGNALS],
}

impl Route {
    /// The route of a forwarding rule: `decide(signal)` says what `signal`, received now, is sent as and to
    /// whom (the `kill(2)` pid) when forwarding it is all there is to do, and `None` otherwise. Left off the
    /// route: SIGCHLD (it means a reap), the signals no one can send on (KILL, STOP), and any signal `decide`
    /// sends elsewhere than the first it routes.
    pub fn build(mut decide: impl FnMut(i32) -> Option<(i32, i32)>) -> Route {
        let mut route = Route {
            to: 0,
            as_signal: [0; SIGNALS],
        };
        let mut target = None;
        for (signal, slot) in (0i32..).zip(route.as_signal.iter_mut()) {
            if signal == 0 || signal == libc::SIGCHLD || crate::signals::is_uncatchable(signal) {
                continue;
            }
            let Some((as_signal, to)) = decide(signal) else {
                continue;
            };
            if *target.get_or_insert(to) != to {
                continue;
            }
            *slot = u8::try_from(as_signal).unwrap_or(0);
        }
        route.to = target.unwrap_or(0);
        route
    }

    /// What `signal` is forwarded as, if it is on the route.
    pub fn forward_as(&self, signal: i32) -> Option<i32> {
        let slot = self.as_signal.get(usize::try_from(signal).ok()?)?;
        (*slot != 0).then_some(i32::from(*slot))
    }

    /// The `kill(2)` target of every signal on the route.
    pub fn to(&self) -> i32 {
        self.to
    }
}

/// One signal taken from the queue: its number, the pid of its sender (0 for the kernel), and how it went when
/// the route forwarded it as it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub signal: i32,
    pub sender: i32,
    pub sent: Option<Sent>,
}

impl Received {
    /// A signal to act on that did not come through the queue (the parent died during start-up).
    pub fn unsent(signal: i32) -> Received {
        Received {
            signal,
            sender: 0,
            sent: None,
        }
    }
}

/// A signal forwarded as it was read: what it was sent as, to whom (the `kill(2)` pid), and how it went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub signal: i32,
    pub to: i32,
    pub result: Result<(), Errno>,
}

/// Takes the signals of one wake-up, in the order they were read, forwarding those on the route.
pub struct Taker<'a> {
    route: Option<&'a Route>,
    me: i32,
}

impl<'a> Taker<'a> {
    /// For one wake-up: `route` while the supervisor's decisions stand, `me` grace-init's own pid.
    pub fn new(route: Option<&'a Route>, me: i32) -> Taker<'a> {
        Taker { route, me }
    }

    /// Takes one signal from `sender`; `None` for one grace-init raised itself (a SIGPIPE from a write to a
    /// closed stderr), which is no request to forward. SIGCHLD always counts: it is how the kernel reports a
    /// child, with the child as sender. The first signal off the route (SIGCHLD aside, which decides nothing)
    /// ends the routing for the rest of the wake-up, so signals still reach the app in the order they came.
    pub fn take(&mut self, signal: i32, sender: i32) -> Option<Received> {
        if sender == self.me && signal != libc::SIGCHLD {
            return None;
        }
        let mut sent = None;
        if let Some(route) = self.route {
            match route.forward_as(signal) {
                Some(as_signal) => {
                    sent = Some(Sent {
                        signal: as_signal,
                        to: route.to,
                        result: sys::kill(route.to, as_signal),
                    });
                }
                None if signal != libc::SIGCHLD => self.route = None,
                None => {}
            }
        }
        Some(Received {
            signal,
            sender,
            sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_holds_what_the_rule_only_forwards_to_one_target() {
        let route = Route::build(|signal| match signal {
            libc::SIGTERM => None,
            libc::SIGUSR1 => Some((libc::SIGUSR2, -7)),
            libc::SIGURG => Some((libc::SIGURG, 7)),
            s => Some((s, -7)),
        });
        assert_eq!(route.to(), -7);
        assert_eq!(route.forward_as(libc::SIGUSR1), Some(libc::SIGUSR2));
        assert_eq!(route.forward_as(libc::SIGWINCH), Some(libc::SIGWINCH));
        assert_eq!(route.forward_as(64), Some(64));
        // Not routed: a stop signal, another target, SIGCHLD and the uncatchable ones, numbers out of range.
        assert_eq!(route.forward_as(libc::SIGHUP), Some(libc::SIGHUP));
        for signal in [
            libc::SIGTERM,
            libc::SIGURG,
            libc::SIGCHLD,
            libc::SIGKILL,
            libc::SIGSTOP,
            0,
            65,
            -1,
        ] {
            assert_eq!(route.forward_as(signal), None, "signal {signal}");
        }
    }

    #[test]
    fn the_first_signal_off_the_route_ends_routing_and_self_raised_signals_are_dropped() {
        let me = 1000;
        // Routed to a pid no process can have, so the kill fails (ESRCH) and nothing is signalled.
        let route = Route::build(|s| (s != libc::SIGTERM).then_some((s, i32::MAX)));
        let mut taker = Taker::new(Some(&route), me);
        assert_eq!(taker.take(libc::SIGPIPE, me), None);
        let usr1 = taker.take(libc::SIGUSR1, 5).unwrap();
        assert_eq!(
            usr1.sent.map(|s| (s.signal, s.to)),
            Some((libc::SIGUSR1, i32::MAX))
        );
        assert_eq!(usr1.sent.map(|s| s.result), Some(Err(Errno::ESRCH)));
        // SIGCHLD, even from ourselves, is taken and decides nothing: routing goes on.
        let chld = taker.take(libc::SIGCHLD, me).unwrap();
        assert_eq!(chld.sent, None);
        assert!(taker.take(libc::SIGUSR2, 5).unwrap().sent.is_some());
        // The stop signal is off the route: it and everything after it wait for the supervisor.
        assert_eq!(taker.take(libc::SIGTERM, 5).unwrap().sent, None);
        assert_eq!(taker.take(libc::SIGUSR1, 5).unwrap().sent, None);
    }
}
