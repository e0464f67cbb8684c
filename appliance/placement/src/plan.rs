//! Simulate: run the rules over every file without moving anything, and say which
//! files would move where, how many bytes, how long at the measured rate, which moves
//! could not happen and why, and which pools would still be past their watermarks.
//!
//! Two phases, as GPFS's mmapplypolicy: first each file is judged by the first rule
//! that matches; then the moves are chosen, scheduled ones in the order found and,
//! for each pool past its high watermark, its candidates heaviest first until the pool
//! would be under its low one. A move whose target cannot hold it, or will not take
//! data (degraded, read-only, missing), is held with the reason and counts nowhere.

use std::cmp::Reverse;
use std::collections::HashMap;

use rushes_api::PoolOutlook;
use serde::Serialize;

use crate::evaluate::{Fill, Trigger};
use crate::facts::FileFacts;
use crate::rules::{Action, RuleSet, Weight};
use crate::units::{show_size, show_span};

/// A pool as simulate and the mover see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolState {
    pub name: String,
    pub size: u64,
    pub used: u64,
    /// Why the pool takes no data now (degraded, read-only, missing), if it does not.
    pub refuses: Option<String>,
}

/// Why a move is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Because {
    /// A rule places the file elsewhere than it is.
    Rule,
    /// Its pool is past its high watermark and a watermark rule picked it.
    Watermark,
}

/// One file's data going from one pool to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub share: String,
    pub path: String,
    pub from: String,
    pub to: String,
    pub bytes: u64,
    pub rule: String,
    pub because: Because,
}

/// A move the plan wants but cannot make now, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    #[serde(flatten)]
    pub wanted: Move,
    pub reason: String,
}

/// What simulate found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub files_seen: u64,
    pub moves: Vec<Move>,
    pub held: Vec<Held>,
    pub pools: Vec<PoolOutlook>,
    pub bytes: u64,
    /// The move rate the estimate uses (bytes a second), when one was measured.
    pub rate: Option<u64>,
    /// How long the moves would take at that rate.
    pub seconds: Option<u64>,
}

/// `used` as a whole percentage of `size` (rounded down).
pub fn percent(used: u64, size: u64) -> u64 {
    (used as u128 * 100 / size.max(1) as u128) as u64
}

/// The pools' fill as it stands, against the rules' watermarks.
pub struct FillNow<'a> {
    pub rules: &'a RuleSet,
    pub pools: &'a [PoolState],
}

impl Fill for FillNow<'_> {
    fn over_high(&self, pool: &str) -> bool {
        match (
            self.rules.watermark(pool),
            self.pools.iter().find(|p| p.name == pool),
        ) {
            (Some(w), Some(p)) => percent(p.used, p.size) > w.high as u64,
            _ => false,
        }
    }

    fn describe(&self, pool: &str) -> String {
        let full = self
            .pools
            .iter()
            .find(|p| p.name == pool)
            .map(|p| format!("{} % full", percent(p.used, p.size)))
            .unwrap_or_else(|| "not known to the box".into());
        match self.rules.watermark(pool) {
            Some(w) if self.over_high(pool) => {
                format!("{full}, past its high watermark {} %", w.high)
            }
            Some(w) => format!("{full}, under its high watermark {} %", w.high),
            None => format!("{full}, and has no watermarks"),
        }
    }
}

/// The ordering key of a watermark candidate: larger goes first.
fn weight(w: Weight, f: &FileFacts) -> i64 {
    match w {
        Weight::OldestAccess => -f.accessed,
        Weight::OldestModify => -f.modified,
        Weight::Largest => f.size.min(i64::MAX as u64) as i64,
    }
}

/// Room accounting while moves are chosen.
struct Ledger<'a> {
    pools: &'a [PoolState],
    used: HashMap<&'a str, u64>,
}

impl<'a> Ledger<'a> {
    fn new(pools: &'a [PoolState]) -> Self {
        Self {
            pools,
            used: pools.iter().map(|p| (p.name.as_str(), p.used)).collect(),
        }
    }

    /// Take the move if its target will have it; otherwise why not.
    fn take(&mut self, m: &Move) -> Result<(), String> {
        let Some(to) = self.pools.iter().find(|p| p.name == m.to) else {
            return Err(format!("pool {} is missing: moves to it are paused", m.to));
        };
        if let Some(why) = &to.refuses {
            return Err(format!("pool {} receives nothing while {why}", m.to));
        }
        let used = self.used[to.name.as_str()];
        if used.saturating_add(m.bytes) > to.size {
            return Err(format!(
                "pool {} cannot hold it: {} free, {} needed",
                m.to,
                show_size(to.size.saturating_sub(used)),
                show_size(m.bytes)
            ));
        }
        *self.used.get_mut(to.name.as_str()).expect("pool counted") += m.bytes;
        if let Some(from) = self.used.get_mut(m.from.as_str()) {
            *from = from.saturating_sub(m.bytes);
        }
        Ok(())
    }
}

/// Run `rules` over `files` (every file of every share), against `pools` as they are,
/// at `now`, estimating time at `rate` bytes a second if given.
pub fn simulate(
    rules: &RuleSet,
    pools: &[PoolState],
    files: impl IntoIterator<Item = FileFacts>,
    now: i64,
    rate: Option<u64>,
) -> Plan {
    let mut planner = Planner::new(rules, pools, now, rate);
    for f in files {
        planner.judge(&f);
    }
    planner.finish()
}

/// A simulate fed one file at a time, as a scan finds them: only the moves are kept.
pub struct Planner<'a> {
    rules: &'a RuleSet,
    pools: &'a [PoolState],
    now: i64,
    plan: Plan,
    scheduled: Vec<Move>,
    candidates: HashMap<String, Vec<(i64, Move)>>,
}

impl<'a> Planner<'a> {
    pub fn new(rules: &'a RuleSet, pools: &'a [PoolState], now: i64, rate: Option<u64>) -> Self {
        Self {
            rules,
            pools,
            now,
            plan: Plan {
                rate,
                ..Plan::default()
            },
            scheduled: Vec::new(),
            candidates: HashMap::new(),
        }
    }

    /// Phase one for one file: the first rule that matches it.
    pub fn judge(&mut self, f: &FileFacts) {
        let rules = self.rules;
        self.plan.files_seen += 1;
        let fill = FillNow {
            rules,
            pools: self.pools,
        };
        let decision = rules.decide(f, self.now, Trigger::Schedule, &fill);
        let (Some(i), Some(Action::Place(to))) = (decision.rule, decision.action) else {
            return;
        };
        if to == f.pool {
            return;
        }
        let rule = &rules.rules[i];
        let by_watermark = !rule.triggers.schedule;
        let m = Move {
            share: f.share.clone(),
            path: f.path.clone(),
            from: f.pool.clone(),
            to,
            bytes: f.size,
            rule: rule.name.clone(),
            because: if by_watermark {
                Because::Watermark
            } else {
                Because::Rule
            },
        };
        if f.being_written {
            self.plan.held.push(Held {
                wanted: m,
                reason: "it is open for writing: it moves once its writers close".into(),
            });
        } else if by_watermark {
            let key = rules.watermark(&f.pool).map_or(0, |w| weight(w.weight, f));
            self.candidates
                .entry(f.pool.clone())
                .or_default()
                .push((key, m));
        } else {
            self.scheduled.push(m);
        }
    }

    /// Phase two: choose the moves, and see where the pools end.
    pub fn finish(self) -> Plan {
        let Planner {
            rules,
            pools,
            mut plan,
            scheduled,
            mut candidates,
            ..
        } = self;
        let mut ledger = Ledger::new(pools);
        let place = |m: Move, plan: &mut Plan, ledger: &mut Ledger<'_>| match ledger.take(&m) {
            Ok(()) => {
                plan.bytes += m.bytes;
                plan.moves.push(m);
            }
            Err(reason) => plan.held.push(Held { wanted: m, reason }),
        };
        for m in scheduled {
            place(m, &mut plan, &mut ledger);
        }
        for pool in pools {
            let (Some(w), Some(mut list)) =
                (rules.watermark(&pool.name), candidates.remove(&pool.name))
            else {
                continue;
            };
            list.sort_by_key(|(key, _)| Reverse(*key));
            let low = pool.size as u128 * w.low as u128 / 100;
            for (_, m) in list {
                if (ledger.used[pool.name.as_str()] as u128) <= low {
                    break;
                }
                place(m, &mut plan, &mut ledger);
            }
        }
        plan.pools = pools
            .iter()
            .map(|p| {
                let w = rules.watermark(&p.name);
                let after = ledger.used[p.name.as_str()];
                PoolOutlook {
                    pool: p.name.clone(),
                    size_bytes: p.size,
                    used_now: p.used,
                    used_after: after,
                    high: w.map(|w| w.high),
                    low: w.map(|w| w.low),
                    above_high_after: w.is_some_and(|w| percent(after, p.size) > w.high as u64),
                }
            })
            .collect();
        plan.seconds = plan.rate.filter(|&r| r > 0).map(|r| plan.bytes.div_ceil(r));
        plan
    }
}

impl Plan {
    /// The plan in words, as `rushesctl placement simulate` prints it: totals by route,
    /// the pools before and after, and what is held back and why (at most `list` of each).
    pub fn report(&self, list: usize) -> String {
        let mut out = String::new();
        // (from, to, files, bytes), in the order routes first appear.
        let mut routes: Vec<(&str, &str, u64, u64)> = Vec::new();
        for m in &self.moves {
            match routes.iter_mut().find(|r| r.0 == m.from && r.1 == m.to) {
                Some(r) => {
                    r.2 += 1;
                    r.3 += m.bytes;
                }
                None => routes.push((&m.from, &m.to, 1, m.bytes)),
            }
        }
        out.push_str(&format!(
            "{} files looked at; {} would move, {}",
            self.files_seen,
            self.moves.len(),
            show_size(self.bytes)
        ));
        match (self.seconds, self.rate) {
            (Some(s), Some(r)) => {
                out.push_str(&format!(", about {} at {}/s\n", show_span(s), show_size(r)))
            }
            _ => out.push_str(" (no move rate measured yet, so no time estimate)\n"),
        }
        for (from, to, n, bytes) in &routes {
            out.push_str(&format!(
                "  {from} -> {to}: {n} files, {}\n",
                show_size(*bytes)
            ));
        }
        for m in self.moves.iter().take(list) {
            out.push_str(&format!(
                "  move {}/{} {} -> {} ({}, rule {})\n",
                m.share,
                m.path,
                m.from,
                m.to,
                show_size(m.bytes),
                m.rule
            ));
        }
        if self.moves.len() > list {
            out.push_str(&format!("  … and {} more moves\n", self.moves.len() - list));
        }
        out.push_str("pools:\n");
        for p in &self.pools {
            let marks = match (p.high, p.low) {
                (Some(h), Some(l)) => format!(" (watermarks {h} % / {l} %)"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  {}: {} % now, {} % after{marks}{}\n",
                p.pool,
                percent(p.used_now, p.size_bytes),
                percent(p.used_after, p.size_bytes),
                if p.above_high_after {
                    " - STILL ABOVE ITS HIGH WATERMARK"
                } else {
                    ""
                }
            ));
        }
        if !self.held.is_empty() {
            out.push_str(&format!("held back: {} moves\n", self.held.len()));
            for h in self.held.iter().take(list) {
                out.push_str(&format!(
                    "  {}/{} -> {}: {}\n",
                    h.wanted.share, h.wanted.path, h.wanted.to, h.reason
                ));
            }
        }
        out
    }
}
