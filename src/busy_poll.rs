//! How long the Lua thread keeps looking for its next event before it goes to sleep.
//!
//! Sleeping and being woken is the dearest part of a request that arrives soon after the last
//! one: the Lua thread's core goes idle, and the next request must wake it (on a virtual machine,
//! an exit to the hypervisor and an interrupt back). When events come close together, looking
//! again for a few tens of microseconds catches the next one for less CPU than that round trip:
//! measured with one keep-alive client on loopback (README, "Performance"), twice the requests per
//! second at less CPU per request. When they do not, looking is wasted, so the time is adapted the
//! way Linux's `haltpoll` idle governor adapts its polling: it grows while waits are short enough
//! that looking longer would have caught the event, and shrinks to nothing once waits run past
//! the limit. An idle server therefore sleeps at once; a busy one looks before it sleeps.

use std::time::Duration;

/// The adaptive budget: how long to look before sleeping, within `0..=max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BusyPoll {
    /// The limit ([`crate::Config::busy_poll`]); zero: never look, sleep at once.
    max: Duration,
    /// How long the next wait looks before it sleeps.
    budget: Duration,
}

impl BusyPoll {
    /// A budget that starts at nothing and may grow to `max`.
    pub(crate) fn new(max: Duration) -> BusyPoll {
        BusyPoll {
            max,
            budget: Duration::ZERO,
        }
    }

    /// How long the next wait should look before sleeping (zero: sleep at once).
    pub(crate) fn budget(&self) -> Duration {
        self.budget
    }

    /// Whether busy polling is on at all (so a wait need not time itself).
    pub(crate) fn enabled(&self) -> bool {
        !self.max.is_zero()
    }

    /// A wait that looked and then slept ended after `waited` in all. A wait within the limit
    /// would have been caught by looking longer: the budget doubles (from a quarter of the
    /// limit), up to the limit. A longer one would not: the budget halves, and below a quarter of
    /// the limit it is dropped. A wait that looking ended is not reported (the budget was right).
    pub(crate) fn slept(&mut self, waited: Duration) {
        if self.max.is_zero() {
            return;
        }
        let start = self.max / 4;
        if waited <= self.max {
            self.budget = (self.budget * 2).max(start).min(self.max);
        } else {
            self.budget /= 2;
            if self.budget < start {
                self.budget = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_micros(50);

    #[test]
    fn starts_by_sleeping_at_once() {
        assert_eq!(BusyPoll::new(MAX).budget(), Duration::ZERO);
    }

    #[test]
    fn short_waits_grow_the_budget_to_the_limit_and_no_further() {
        let mut poll = BusyPoll::new(MAX);
        let mut seen = Vec::new();
        for _ in 0..5 {
            poll.slept(Duration::from_micros(30));
            seen.push(poll.budget().as_nanos());
        }
        assert_eq!(seen, [12_500, 25_000, 50_000, 50_000, 50_000]);
    }

    #[test]
    fn long_waits_shrink_the_budget_to_nothing() {
        let mut poll = BusyPoll::new(MAX);
        for _ in 0..3 {
            poll.slept(Duration::from_micros(10));
        }
        assert_eq!(poll.budget(), MAX);
        let mut seen = Vec::new();
        for _ in 0..4 {
            poll.slept(Duration::from_millis(5));
            seen.push(poll.budget().as_nanos());
        }
        assert_eq!(seen, [25_000, 12_500, 0, 0]);
        // A short wait starts it again.
        poll.slept(MAX);
        assert_eq!(poll.budget(), MAX / 4);
    }

    #[test]
    fn a_zero_limit_never_looks() {
        let mut poll = BusyPoll::new(Duration::ZERO);
        assert!(!poll.enabled());
        for _ in 0..4 {
            poll.slept(Duration::ZERO);
        }
        assert_eq!(poll.budget(), Duration::ZERO);
    }
}
