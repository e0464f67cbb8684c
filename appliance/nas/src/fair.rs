//! Calls that arrive while others of their connection are being answered (pipelining
//! clients: render nodes, copies, a kernel client's readahead) wait in one queue per
//! client address and user, and a fixed set of workers serves the queues in deficit round
//! robin order by bytes: each queue in turn may spend [`QUANTUM`] bytes of READ or WRITE
//! (other calls count [`SMALL_CALL`]), so one client's hundreds of 1 MiB calls delay
//! another's next call by one call at most, not by its whole backlog.
//!
//! A call that arrives alone never comes here: its connection's thread answers it at
//! once (see [`crate::server`]). Bulk transfers (pipelined READs and WRITEs of [`BULK`]
//! bytes or more) run at the lowest CPU priority ([`BULK_NICE`]), so that when the cores
//! are busy moving a render's frames, the one-at-a-time calls of an editor browsing a bin
//! still get a core as soon as they come; small calls keep the normal priority, so a
//! client's pipelined metadata is not slowed by it, and so do the calls of clients with
//! a reserved rate ([`crate::rates`]), whose playback is what the cores are for.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::rates::{LiveRates, RateRuleSet};

/// Bytes a queue may spend each time its turn comes.
pub const QUANTUM: u64 = 1 << 20;
/// What a call other than READ or WRITE counts, in bytes.
pub const SMALL_CALL: u64 = 4096;
/// How much nicer than the connection threads the workers run (see `nice(2)`).
pub const BULK_NICE: i32 = 19;
/// Calls of at least this many bytes (READ and WRITE) are bulk work.
pub const BULK: u64 = 64 * 1024;

/// Whose calls share a queue: a client address and, when the call says (AUTH_SYS), the
/// user on that client; and, while some rate rule names shares, the call's share, so
/// that a client's calls held by one share's cap do not hold its calls on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub client: IpAddr,
    pub uid: Option<u32>,
    pub share: Option<u32>,
}

/// A call waiting for a worker.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

struct Waiting {
    cost: u64,
    job: Job,
    /// The share its handle names, if it has one.
    share: Option<u32>,
    /// The rate rule it is under, if any.
    cap: Option<usize>,
}

#[derive(Default)]
struct Queue {
    calls: VecDeque<Waiting>,
    deficit: u64,
}

#[derive(Default)]
struct State {
    /// The rate rules the queues' caps index into.
    rules: Arc<RateRuleSet>,
    queues: HashMap<Flow, Queue>,
    /// Flows with calls waiting, in the order their turns come.
    turns: VecDeque<Flow>,
    closed: bool,
}

impl State {
    fn with_rules(rules: Arc<RateRuleSet>) -> Self {
        Self {
            rules,
            ..Default::default()
        }
    }

    /// Count the calls waiting under `rules` from now on.
    fn set_rules(&mut self, rules: Arc<RateRuleSet>) {
        for (flow, queue) in &mut self.queues {
            for waiting in &mut queue.calls {
                waiting.cap = rules.rule_for_call(flow.client, waiting.share);
            }
        }
        self.rules = rules;
    }

    fn push(&mut self, flow: Flow, share: Option<u32>, cost: u64, job: Job) {
        let cap = self.rules.rule_for_call(flow.client, share);
        let queue = self.queues.entry(flow).or_default();
        if queue.calls.is_empty() {
            // A flow that joins gets its first turn's quantum at once.
            queue.deficit = QUANTUM;
            self.turns.push_back(flow);
        }
        queue.calls.push_back(Waiting {
            cost: cost.max(1),
            job,
            share,
            cap,
        });
    }

    /// The next call in deficit round robin order, with its cost, skipping flows whose
    /// rate cap is in debt; when every flow waiting is, when the first may go again.
    fn next(&mut self, now: Instant) -> Result<Next, Option<Instant>> {
        let rules = Arc::clone(&self.rules);
        let caps = &*rules;
        if caps.reserving() {
            if let Some(next) = self.next_reserved(caps, now) {
                return Ok(next);
            }
        }
        let mut blocked = 0;
        let mut earliest: Option<Instant> = None;
        loop {
            if blocked >= self.turns.len() {
                return Err(earliest);
            }
            let flow = *self.turns.front().ok_or(None)?;
            let Some(queue) = self.queues.get_mut(&flow) else {
                self.turns.pop_front();
                continue;
            };
            let Some((cost, cap)) = queue.calls.front().map(|w| (w.cost, w.cap)) else {
                self.turns.pop_front();
                self.queues.remove(&flow);
                continue;
            };
            if let Some(at) = cap.and_then(|c| caps.ready_at(c, now)) {
                // Over its cap: the others go first; it waits its debt out in the queue.
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
                self.turns.rotate_left(1);
                blocked += 1;
                continue;
            }
            blocked = 0;
            if queue.deficit < cost {
                // Its turn: it may spend another quantum, after the others have had theirs.
                queue.deficit += QUANTUM;
                if self.turns.len() > 1 {
                    self.turns.rotate_left(1);
                    continue;
                }
                if queue.deficit < cost {
                    continue;
                }
            }
            let Some(waiting) = queue.calls.pop_front() else {
                continue;
            };
            queue.deficit -= waiting.cost;
            if let Some(c) = waiting.cap {
                if waiting.cost > SMALL_CALL {
                    caps.take(c, waiting.cost, now);
                }
            }
            let reserved = waiting.cap.is_some_and(|c| caps.reserves(c));
            if queue.calls.is_empty() {
                // An idle flow keeps no credit (standard DRR).
                self.turns.pop_front();
                self.queues.remove(&flow);
            }
            return Ok(Next {
                job: waiting.job,
                cost: waiting.cost,
                reserved,
            });
        }
    }
}

impl State {
    /// The first call of a flow whose reservation is due (and whose cap, if any, is not
    /// in debt): reserved rates go before best effort.
    fn next_reserved(&mut self, caps: &RateRuleSet, now: Instant) -> Option<Next> {
        let at = self.turns.iter().position(|flow| {
            self.queues
                .get(flow)
                .and_then(|q| q.calls.front())
                .and_then(|w| w.cap)
                .is_some_and(|c| caps.reserved_due(c, now) && caps.ready_at(c, now).is_none())
        })?;
        let flow = self.turns[at];
        let queue = self.queues.get_mut(&flow)?;
        let waiting = queue.calls.pop_front()?;
        if let Some(c) = waiting.cap {
            caps.take(c, waiting.cost, now);
        }
        if queue.calls.is_empty() {
            self.turns.remove(at);
            self.queues.remove(&flow);
        }
        Some(Next {
            job: waiting.job,
            cost: waiting.cost,
            reserved: true,
        })
    }
}

/// A call taken from the queues.
struct Next {
    job: Job,
    cost: u64,
    /// Its client has a reserved rate: it runs at the normal priority, bulk or not.
    reserved: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    rates: Arc<LiveRates>,
}

/// The queues and their workers; the workers leave when this is dropped and the queues
/// are empty.
pub struct FairQueue {
    shared: Arc<Shared>,
}

impl FairQueue {
    /// Start `workers` threads serving the queues, holding clients to the rules in
    /// force in `rates`.
    pub fn start(workers: usize, rates: Arc<LiveRates>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::with_rules(rates.current())),
            ready: Condvar::new(),
            rates,
        });
        for _ in 0..workers.max(1) {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("nfs-worker".into())
                .spawn(move || work(&shared))?;
        }
        Ok(Self { shared })
    }

    /// Queue `job` for `flow`, counting `cost` bytes under the rate rule of its client
    /// and `share` (the share its handle names, if any).
    pub fn push(&self, flow: Flow, share: Option<u32>, cost: u64, job: Job) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if !self.shared.rates.is_current(&state.rules) {
            state.set_rules(self.shared.rates.current());
        }
        state.push(flow, share, cost, job);
        self.shared.ready.notify_one();
    }
}

impl Drop for FairQueue {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.closed = true;
        self.shared.ready.notify_all();
    }
}

fn work(shared: &Shared) {
    let mut niceness = Niceness::default();
    loop {
        let next = {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if !shared.rates.is_current(&state.rules) {
                    state.set_rules(shared.rates.current());
                }
                let wake = match state.next(Instant::now()) {
                    Ok(next) => break next,
                    Err(wake) => wake,
                };
                if state.closed {
                    return;
                }
                state = match wake {
                    // Calls wait for their cap: look again when the first may go.
                    Some(at) => {
                        let wait = at.saturating_duration_since(Instant::now());
                        shared
                            .ready
                            .wait_timeout(state, wait)
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    }
                    None => shared.ready.wait(state).unwrap_or_else(|p| p.into_inner()),
                };
            }
        };
        niceness.bulk(next.cost >= BULK && !next.reserved);
        (next.job)();
    }
}

/// A thread's CPU priority: its own for calls someone waits on one at a time and for
/// small calls, [`BULK_NICE`] for bulk transfers. Only where the thread may raise its
/// priority back (root, as the appliance runs); elsewhere it stays as it is.
#[derive(Debug, Default)]
pub struct Niceness {
    /// The nice value to return to, while lowered.
    lowered_from: Option<i32>,
}

impl Niceness {
    /// Whether the thread does bulk work now.
    pub fn bulk(&mut self, bulk: bool) {
        match (bulk, self.lowered_from) {
            (true, None) => self.lower(),
            (false, Some(was)) => {
                self.lowered_from = None;
                let tid = rustix::thread::gettid();
                if let Err(e) = rustix::process::setpriority_process(Some(tid), was) {
                    tracing::debug!(error = %e, "cannot restore a thread's CPU priority");
                }
            }
            _ => {}
        }
    }

    fn lower(&mut self) {
        static MAY_RAISE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if !*MAY_RAISE.get_or_init(|| rustix::process::geteuid().is_root()) {
            return;
        }
        let tid = rustix::thread::gettid();
        let Ok(now) = rustix::process::getpriority_process(Some(tid)) else {
            return;
        };
        if now < BULK_NICE && rustix::process::setpriority_process(Some(tid), BULK_NICE).is_ok() {
            self.lowered_from = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn flow(last: u8, uid: u32) -> Flow {
        Flow {
            client: IpAddr::from([10, 0, 0, last]),
            uid: Some(uid),
            share: None,
        }
    }

    /// Queue calls without workers and take them in order: which flow each came from.
    fn order(calls: &[(Flow, u64)]) -> Vec<Flow> {
        let (tx, rx) = mpsc::channel();
        let mut state = State::default();
        for &(f, cost) in calls {
            let tx = tx.clone();
            state.push(f, None, cost, Box::new(move || tx.send(f).unwrap()));
        }
        while let Ok(next) = state.next(Instant::now()) {
            (next.job)();
        }
        drop(tx);
        rx.iter().collect()
    }

    #[test]
    fn a_small_call_waits_for_one_big_call_not_for_the_whole_backlog() {
        let (render, editor) = (flow(1, 0), flow(2, 1000));
        let mut calls: Vec<(Flow, u64)> = (0..100).map(|_| (render, QUANTUM)).collect();
        calls.push((editor, SMALL_CALL));
        let served = order(&calls);
        let at = served.iter().position(|&f| f == editor).unwrap();
        assert!(at <= 1, "the editor's call came {at}th");
        assert_eq!(served.len(), 101);
    }

    #[test]
    fn two_busy_clients_share_by_bytes_and_users_of_one_client_are_apart() {
        let (a, b, a2) = (flow(1, 0), flow(2, 0), flow(1, 501));
        let mut calls = Vec::new();
        for _ in 0..40 {
            calls.push((a, QUANTUM));
            calls.push((a, QUANTUM));
        }
        for _ in 0..320 {
            calls.push((b, QUANTUM / 4));
        }
        for _ in 0..10 {
            calls.push((a2, QUANTUM));
        }
        let served = order(&calls);
        // Over the first 30 calls of flow `a`, `b` gets about as many bytes.
        let first_a: Vec<usize> = served
            .iter()
            .enumerate()
            .filter(|(_, &f)| f == a)
            .map(|(i, _)| i)
            .take(30)
            .collect();
        let upto = *first_a.last().unwrap();
        let b_bytes = served[..upto].iter().filter(|&&f| f == b).count() as u64 * QUANTUM / 4;
        let a_bytes = 30 * QUANTUM;
        assert!(
            b_bytes.abs_diff(a_bytes) <= 2 * QUANTUM,
            "a got {a_bytes} bytes while b got {b_bytes}"
        );
        // The other user on a's machine is not behind a's backlog.
        let first_a2 = served.iter().position(|&f| f == a2).unwrap();
        assert!(first_a2 < 6, "user 501 waited {first_a2} calls");
    }

    /// Client 10.0.0.1 under a 10 MB/s cap.
    fn render_capped_at_10_mb_s() -> RateRuleSet {
        RateRuleSet::new(&[crate::rates::RateRule {
            name: "render".into(),
            clients: vec!["10.0.0.1/32".parse().unwrap()],
            shares: Vec::new(),
            cap_mb_s: Some(10),
            reserve_mb_s: None,
        }])
        .unwrap()
    }

    #[test]
    fn a_capped_flow_waits_in_its_queue_while_others_go() {
        let caps = render_capped_at_10_mb_s();
        let (render, editor) = (flow(1, 0), flow(2, 0));
        let mut state = State::with_rules(Arc::new(caps));
        let now = Instant::now();
        for _ in 0..3 {
            state.push(render, None, QUANTUM, Box::new(|| ()));
        }
        // The bucket holds 1 MiB at 10 MB/s: one call goes, then the cap is in debt.
        assert!(state.next(now).is_ok());
        assert!(state.next(now).is_ok());
        let wake = match state.next(now) {
            Err(Some(at)) => at,
            _ => panic!("a flow in debt must wait"),
        };
        assert!(wake > now + std::time::Duration::from_millis(50));
        // Another client's call goes meanwhile.
        state.push(editor, None, QUANTUM, Box::new(|| ()));
        assert!(state.next(now).is_ok());
        // Once the debt is paid, the capped flow goes on.
        assert!(state.next(wake).is_ok());
    }

    #[test]
    fn rules_put_in_force_hold_calls_already_queued() {
        let render = flow(1, 0);
        let mut state = State::default();
        for _ in 0..3 {
            state.push(render, None, QUANTUM, Box::new(|| ()));
        }
        let caps = render_capped_at_10_mb_s();
        state.set_rules(Arc::new(caps));
        let now = Instant::now();
        // As above: the 1 MiB bucket lets one call go into debt, then the flow waits.
        assert!(state.next(now).is_ok());
        assert!(state.next(now).is_ok());
        assert!(matches!(state.next(now), Err(Some(_))));
        // Rules removed: it goes at once.
        state.set_rules(Arc::default());
        assert!(state.next(now).is_ok());
    }

    #[test]
    fn a_reserved_flow_goes_first_until_its_rate_is_served() {
        use crate::rates::RateRule;
        let caps = RateRuleSet::new(&[RateRule {
            name: "suite-3".into(),
            clients: vec!["10.0.0.2/32".parse().unwrap()],
            shares: Vec::new(),
            cap_mb_s: None,
            reserve_mb_s: Some(20),
        }])
        .unwrap();
        let (render, suite) = (flow(1, 0), flow(2, 0));
        let mut state = State::with_rules(Arc::new(caps));
        let (tx, rx) = mpsc::channel();
        for f in [render, render, render, render, suite, suite, suite, suite] {
            let tx = tx.clone();
            state.push(f, None, QUANTUM, Box::new(move || tx.send(f).unwrap()));
        }
        // 20 MB/s holds 2 MB: the suite's first two calls go before the render's
        // backlog, then the two share call for call.
        let now = Instant::now();
        while let Ok(next) = state.next(now) {
            (next.job)();
        }
        drop(tx);
        let order: Vec<Flow> = rx.iter().collect();
        assert_eq!(&order[..2], &[suite, suite]);
        assert_eq!(order.iter().filter(|&&f| f == suite).count(), 4);
    }

    #[test]
    fn workers_run_every_call_and_leave_when_dropped() {
        let queue = FairQueue::start(3, Default::default()).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..200u64 {
            let tx = tx.clone();
            queue.push(
                flow((i % 5) as u8, 0),
                None,
                SMALL_CALL,
                Box::new(move || tx.send(i).unwrap()),
            );
        }
        drop(tx);
        let mut got: Vec<u64> = rx.iter().take(200).collect();
        got.sort();
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        drop(queue);
    }
}
