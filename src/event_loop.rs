//! The event queue and the loop that drives the script's main coroutine, CraftOS style.
//!
//! The script runs as a coroutine. `os.pullEvent(filter)` is `coroutine.yield(filter)`; the loop
//! takes the next event, skips it if the filter rejects it (as CraftOS-PC does), and resumes the
//! coroutine with it. There is one FIFO queue: events queued from Lua, timers that fired, and
//! events native threads sent are appended in the order they happen, as are requests the Lua
//! thread read itself off parked connections (see [`crate::poller`]). While the queue is empty the
//! loop sleeps until a sender rings (see [`Doorbell`]), a parked connection has a request, or the
//! next timer is due. When events have lately come close together, it first keeps looking for a
//! few tens of microseconds, yielding its core to any thread that wants it (see
//! [`crate::busy_poll`]); an idle server sleeps at once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use mlua::Value;

use crate::busy_poll::BusyPoll;
use crate::event::{Doorbell, Event};
use crate::poller::{Parked, Poller};

/// An event waiting in the queue.
pub enum Queued {
    /// Sent by a native thread; turned into Lua values on delivery.
    Native(Event),
    /// Queued by `os.queueEvent` (name first).
    Lua(Vec<Value>),
    /// A timer fired.
    Timer(u64),
}

impl Queued {
    /// Whether the event is named `name`; checked before any Lua value is built.
    pub fn is_named(&self, name: &str) -> bool {
        match self {
            Queued::Native(ev) => ev.name() == name,
            Queued::Lua(values) => {
                matches!(values.first(), Some(Value::String(s)) if s.as_bytes() == name.as_bytes())
            }
            Queued::Timer(_) => name == "timer",
        }
    }
}

/// Yielded after an event name, asks the runtime to wait for that event while keeping every
/// other event queued (instead of dropping it, as a CraftOS filter does): how `res.flush()` waits
/// for a slow client without losing requests that arrive meanwhile.
pub fn keep_events_marker() -> Value {
    Value::LightUserData(mlua::LightUserData(
        KEEP_EVENTS.as_ptr() as *mut std::ffi::c_void
    ))
}

/// The address behind [`keep_events_marker`]: unique, never dereferenced.
static KEEP_EVENTS: [u8; 1] = [0];

/// An event in the queue, with the parked source that made it, if one did.
struct Entry {
    ev: Queued,
    from: Option<Arc<dyn Parked>>,
}

impl Entry {
    fn of(ev: Queued) -> Entry {
        Entry { ev, from: None }
    }
}

/// `os.queueEvent` found too many events waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// The queue plus the timers, owned by the Lua thread.
pub struct Scheduler {
    rx: Receiver<Event>,
    /// Rung by senders when this side sleeps.
    bell: Arc<Doorbell>,
    queue: VecDeque<Entry>,
    /// How many native events may wait in `queue`; beyond it they stay in the channel, so its
    /// bound pushes back on producers.
    native_cap: usize,
    native_queued: usize,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    active_timers: HashSet<u64>,
    next_timer: u64,
    started: Instant,
    /// What the Lua thread sleeps on, with parked connections, where the system has it.
    poller: Option<Arc<Poller>>,
    /// Parked sources that turned readable, not yet asked for their event.
    ready: Vec<Arc<dyn Parked>>,
    /// Sources whose event was handed to the script, to settle once it has handled it.
    settling: Vec<Arc<dyn Parked>>,
    /// Counts collections, to look at parked connections now and then while the channel is
    /// never empty.
    looks: u32,
    /// How long to keep looking for an event before sleeping.
    busy_poll: BusyPoll,
}

impl Scheduler {
    /// A scheduler reading native events from `rx`, woken by `bell` when it sleeps, looking for
    /// events up to `busy_poll` before sleeping (see [`crate::busy_poll`]).
    pub fn new(
        rx: Receiver<Event>,
        native_cap: usize,
        bell: Arc<Doorbell>,
        busy_poll: Duration,
    ) -> Scheduler {
        let poller = bell.start_poller().cloned();
        Scheduler {
            rx,
            bell,
            poller,
            ready: Vec::new(),
            settling: Vec::new(),
            looks: 0,
            busy_poll: BusyPoll::new(busy_poll),
            queue: VecDeque::new(),
            native_cap: native_cap.max(1),
            native_queued: 0,
            timers: BinaryHeap::new(),
            active_timers: HashSet::new(),
            next_timer: 1,
            started: Instant::now(),
        }
    }

    /// When the runtime started (for `os.clock` and `os.epoch("ingame")`).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// `os.queueEvent`: appended after everything that already happened. Fails when
    /// `max_lua` events from Lua are already waiting.
    pub fn queue_lua(&mut self, values: Vec<Value>, max_lua: usize) -> Result<(), QueueFull> {
        if self.queue.len() - self.native_queued >= max_lua {
            return Err(QueueFull);
        }
        self.collect();
        self.queue.push_back(Entry::of(Queued::Lua(values)));
        Ok(())
    }

    /// `os.startTimer`: returns the timer id.
    pub fn start_timer(&mut self, after: Duration) -> u64 {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.push(Reverse((Instant::now() + after, id)));
        self.active_timers.insert(id);
        id
    }

    /// `os.cancelTimer`: an unknown or fired id is ignored.
    pub fn cancel_timer(&mut self, id: u64) {
        self.active_timers.remove(&id);
    }

    /// Moves fired timers and arrived native events into the queue, in the order they happened.
    fn collect(&mut self) {
        // No clock read when no timer is set (the common case on the request path).
        if !self.timers.is_empty() {
            let now = Instant::now();
            while let Some(Reverse((due, id))) = self.timers.peek().copied() {
                if due > now {
                    break;
                }
                self.timers.pop();
                if self.active_timers.remove(&id) {
                    self.queue.push_back(Entry::of(Queued::Timer(id)));
                }
            }
        }
        // The script has handled what was delivered since the last look: parked connections
        // whose request it answered are parked again (or handed to their threads).
        if !self.settling.is_empty() {
            self.settling.retain(|source| !source.clone().settle());
        }
        if !self.drain_channel() {
            return;
        }
        // Parked connections: looked at when nothing else is queued, and now and then anyway so
        // a busy channel cannot starve them.
        self.looks = self.looks.wrapping_add(1);
        if let Some(poller) = self.poller.clone() {
            if poller.watching() && (self.queue.is_empty() || self.looks.is_multiple_of(16)) {
                poller.wait(Some(Duration::ZERO), &mut self.ready);
            }
        }
        self.take_ready();
    }

    /// Moves arrived native events into the queue, up to the cap. Returns whether the channel
    /// was emptied.
    fn drain_channel(&mut self) -> bool {
        while self.native_queued < self.native_cap {
            match self.rx.try_recv() {
                Ok(ev) => self.push_native(ev),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return true,
            }
        }
        false
    }

    /// Appends an event that arrived.
    fn push_native(&mut self, ev: Event) {
        self.native_queued += 1;
        self.queue.push_back(Entry::of(Queued::Native(ev)));
    }

    /// Takes `entry` out of the queue to hand it to the script; the parked source it came from
    /// is settled on the next look for events, once the script has handled it.
    fn hand_out(&mut self, entry: Entry) -> Queued {
        if matches!(entry.ev, Queued::Native(_)) {
            self.native_queued -= 1;
        }
        if let Some(source) = entry.from {
            self.settling.push(source);
        }
        entry.ev
    }

    /// Asks each parked source that turned readable for its event and queues it. Returns whether
    /// anything was queued (a source's event, or what the channel held before it).
    ///
    /// A source's events must stay in order: a WebSocket reader sends a message through the
    /// channel and only then parks, so the channel is emptied first (what the reader sent before
    /// its socket was watched is in it by then). With the channel not emptied (the queue is at
    /// its cap), the sources wait in `ready`.
    fn take_ready(&mut self) -> bool {
        if self.ready.is_empty() {
            return false;
        }
        let queued = self.queue.len();
        if self.drain_channel() {
            let mut ready = std::mem::take(&mut self.ready);
            for source in ready.drain(..) {
                if let Some(ev) = source.clone().ready() {
                    self.native_queued += 1;
                    self.queue.push_back(Entry {
                        ev: Queued::Native(ev),
                        from: Some(source),
                    });
                }
            }
            self.ready = ready;
        }
        self.queue.len() > queued
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((due, id))) = self.timers.peek().copied() {
            if self.active_timers.contains(&id) {
                return Some(due);
            }
            self.timers.pop();
        }
        None
    }

    /// Whether [`next`](Self::next) would have to wait: nothing is queued, due or arrived.
    pub fn is_idle(&mut self) -> bool {
        self.collect();
        self.queue.is_empty()
    }

    /// Takes the next event, blocking until there is one or `wake` passes (then `None`). The
    /// runtime uses `wake` for work of its own that is due while the script waits.
    pub fn next_until(&mut self, wake: Option<Instant>) -> Option<Queued> {
        loop {
            self.collect();
            if let Some(entry) = self.queue.pop_front() {
                return Some(self.hand_out(entry));
            }
            let timer = self.next_deadline();
            let due = match (timer, wake) {
                (Some(t), Some(w)) => Some(t.min(w)),
                (t, w) => t.or(w),
            };
            // What arrives before the next deadline goes first.
            if !self.wait_event(due) && wake.is_some_and(|w| Instant::now() >= w) {
                // A timer due at the same moment is collected on the next call.
                return None;
            }
        }
    }

    /// Takes the first event named `name` (or `terminate`), leaving every other event queued in
    /// its place; blocks until there is one or `wake` passes (then `None`). Events that arrive
    /// meanwhile are queued behind the others, beyond the native cap if need be: the one waited
    /// for may be behind them in the channel (their producers are bounded by the connections).
    pub fn take_named(&mut self, name: &str, wake: Option<Instant>) -> Option<Queued> {
        loop {
            self.collect();
            while let Ok(ev) = self.rx.try_recv() {
                self.push_native(ev);
            }
            let found = self
                .queue
                .iter()
                .position(|e| e.ev.is_named(name) || e.ev.is_named("terminate"));
            if let Some(entry) = found.and_then(|i| self.queue.remove(i)) {
                return Some(self.hand_out(entry));
            }
            let due = match (self.next_deadline(), wake) {
                (Some(t), Some(w)) => Some(t.min(w)),
                (t, w) => t.or(w),
            };
            if !self.wait_event(due) && wake.is_some_and(|w| Instant::now() >= w) {
                return None;
            }
        }
    }

    /// Waits for events from the channel or parked connections until `due` (forever if `None`)
    /// and queues them; false once `due` has passed with nothing. Looks for a while first if
    /// events came close together lately (see [`crate::busy_poll`]), then sleeps.
    fn wait_event(&mut self, due: Option<Instant>) -> bool {
        if !self.busy_poll.enabled() {
            return self.sleep_event(due);
        }
        let start = Instant::now();
        let budget = self.busy_poll.budget();
        if !budget.is_zero() {
            let until = start + budget;
            if self.look_until(due.map_or(until, |due| due.min(until))) {
                return true;
            }
        }
        let got = self.sleep_event(due);
        self.busy_poll.slept(start.elapsed());
        got
    }

    /// Looks at the channel and the parked connections without sleeping until `until`, yielding
    /// the core between looks to any thread that wants it (a connection thread about to send the
    /// event, a client on the same machine). Returns whether an event was queued.
    ///
    /// The yield matters on a loaded machine: with two CPU-burning processes beside a one-client
    /// `wrk` run, looking with yields gave a median of 45,000 requests per second over five
    /// alternating runs, not looking at all 26,000, and looking with a bare spin 12,000.
    fn look_until(&mut self, until: Instant) -> bool {
        loop {
            if let Ok(ev) = self.rx.try_recv() {
                self.push_native(ev);
                return true;
            }
            if let Some(poller) = &self.poller {
                if poller.watching() {
                    poller.wait(Some(Duration::ZERO), &mut self.ready);
                }
            }
            if self.take_ready() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// Sleeps until an event arrives from the channel or a parked connection, or `due` passes
    /// (then false), and queues what arrived. Sleeps instead of blocking in the channel (see
    /// [`Doorbell`]).
    fn sleep_event(&mut self, due: Option<Instant>) -> bool {
        loop {
            if let Ok(ev) = self.rx.try_recv() {
                self.push_native(ev);
                return true;
            }
            self.bell.going_to_sleep();
            // The last look: an event sent before the flag was up is found here; one sent after
            // it rings the bell.
            if let Ok(ev) = self.rx.try_recv() {
                self.bell.awake();
                self.push_native(ev);
                return true;
            }
            let left = match due {
                Some(due) => {
                    let left = due.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.bell.awake();
                        return false;
                    }
                    Some(left)
                }
                None => None,
            };
            match self.poller.clone() {
                Some(poller) => {
                    poller.wait(left, &mut self.ready);
                    self.bell.awake();
                    if self.take_ready() {
                        return true;
                    }
                }
                None => {
                    match left {
                        Some(left) => std::thread::park_timeout(left),
                        None => std::thread::park(),
                    }
                    self.bell.awake();
                }
            }
        }
    }

    /// At shutdown: drops every queued event (answering any request in one) and stops receiving,
    /// so producers still waiting to send fail at once and answer for themselves.
    pub fn close(&mut self) {
        self.ready.clear();
        self.settling.clear();
        self.queue.clear();
        self.native_queued = 0;
        let rx = std::mem::replace(&mut self.rx, crossbeam_channel::never());
        while rx.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventSender;
    use crate::http::listener::ResponseTracker;
    use std::time::Duration;

    /// Senders on several threads race the Lua side going to sleep: every event must wake it.
    /// A lost wake-up would leave an event in the channel while the receiver sleeps out its
    /// deadline, which the test reports instead of hanging.
    #[test]
    fn no_wake_up_is_lost_when_senders_race_the_receiver_going_to_sleep() {
        senders_race_the_receiver(Duration::ZERO);
    }

    /// The same race with busy polling: the receiver looks, then sleeps, then looks again.
    #[test]
    fn no_wake_up_is_lost_when_the_receiver_busy_polls_before_sleeping() {
        senders_race_the_receiver(Duration::from_micros(50));
    }

    /// Looking finds an event another thread sends meanwhile, and gives up at its deadline when
    /// none comes; it never sleeps, so the sender need not ring.
    #[test]
    fn looking_finds_an_event_sent_meanwhile_and_stops_at_its_deadline() {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let sender = EventSender::new(tx, Arc::new(ResponseTracker::default()));
        let mut scheduler = Scheduler::new(rx, 8, sender.doorbell(), Duration::from_micros(50));
        let start = Instant::now();
        assert!(!scheduler.look_until(start + Duration::from_millis(2)));
        assert!(start.elapsed() >= Duration::from_millis(2));
        let (go, went) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            went.recv().expect("the go-ahead");
            assert!(sender.send_blocking(Event::StreamReady(7)));
        });
        go.send(()).expect("the sender thread");
        // Far longer than the sender can take, even on a loaded machine: only an event that
        // looking misses makes this reach its deadline.
        let deadline = Instant::now() + Duration::from_secs(20);
        assert!(scheduler.look_until(deadline), "the event was not found");
        assert!(Instant::now() < deadline);
        assert!(matches!(
            scheduler.queue.pop_front().map(|e| e.ev),
            Some(Queued::Native(Event::StreamReady(7)))
        ));
        thread.join().expect("sender thread");
    }

    fn senders_race_the_receiver(busy_poll: Duration) {
        const SENDERS: usize = 4;
        const EACH: usize = 20_000;
        let (tx, rx) = crossbeam_channel::bounded(8);
        let sender = EventSender::new(tx, Arc::new(ResponseTracker::default()));
        let mut scheduler = Scheduler::new(rx, 8, sender.doorbell(), busy_poll);
        let threads: Vec<_> = (0..SENDERS)
            .map(|_| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        assert!(sender.send_blocking(Event::StreamReady(i as u64)));
                        // Let the receiver catch up and go to sleep now and then.
                        if i % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for n in 0..SENDERS * EACH {
            // Senders never pause for long, so only a lost wake-up makes a wait reach its
            // deadline (after which the event would be found on the next look).
            let deadline = Instant::now() + Duration::from_secs(10);
            let got = scheduler.wait_event(Some(deadline));
            assert!(
                got && scheduler.queue.pop_front().is_some() && Instant::now() < deadline,
                "event {n}: the receiver slept to its deadline with events sent to it"
            );
        }
        for t in threads {
            t.join().expect("sender thread");
        }
        assert!(
            scheduler.rx.try_recv().is_err(),
            "more events than were sent"
        );
    }
}
