//! What the copy rules would do now, for simulate: per target, the files and bytes a
//! reconcile would copy there, how long that takes at the rate copies last went there,
//! what the target would then hold and cost a month at its price, what reading the new
//! copies back to prove them costs in egress, and what bringing back every released file
//! whose copy is there would cost. Judged as a reconcile judges, over the same walk.

use std::collections::BTreeMap;

use rushes_api as api;
use rushes_api::units::{show_size, show_span};
use rushes_placement::{FileFacts, RuleSet};

use crate::targets::{current_on, is_current, recorded_in, Targets};

/// Copies on one target, counted by the files' records.
#[derive(Default)]
struct Count {
    /// Copies a reconcile would make now.
    files: u64,
    bytes: u64,
    /// Current copies there now (files as they are, or released).
    held: u64,
    /// Bytes of released files that copy holds (what a recall of all would read).
    released: u64,
}

pub struct CopyOutlook<'a> {
    rules: &'a RuleSet,
    now: i64,
    per: BTreeMap<String, Count>,
    /// Files a rule wants copies of that are being written (copied once closed).
    being_written: u64,
}

const GB: f64 = 1e9;

impl<'a> CopyOutlook<'a> {
    pub fn new(rules: &'a RuleSet, now: i64) -> Self {
        Self {
            rules,
            now,
            per: BTreeMap::new(),
            being_written: 0,
        }
    }

    /// One file of the walk (its facts carry the copies' record).
    pub fn judge(&mut self, f: &FileFacts) {
        let proofs = recorded_in(f);
        for p in proofs.iter().filter(|p| f.released || is_current(p, f)) {
            let c = self.per.entry(p.target.clone()).or_default();
            c.held += p.facts.size;
            if f.released {
                c.released += p.facts.size;
            }
        }
        let Some(wish) = self
            .rules
            .copies_for(f, self.now)
            .and_then(|(_, r)| r.copies.as_ref())
        else {
            return;
        };
        if f.released {
            return;
        }
        let has = |t: &String| proofs.iter().any(|p| &p.target == t && is_current(p, f));
        let need = wish
            .copies
            .saturating_sub(current_on(&wish.targets, &proofs, f)) as usize;
        if need == 0 {
            return;
        }
        if f.being_written {
            self.being_written += 1;
            return;
        }
        for t in wish.targets.iter().filter(|t| !has(t)).take(need) {
            let c = self.per.entry(t.clone()).or_default();
            c.files += 1;
            c.bytes += f.size;
        }
    }

    /// Each target's outlook, with its prices and measured rate, and the words for it.
    pub fn finish(self, targets: &Targets) -> (Vec<api::CopyOutlook>, String) {
        let mut out = Vec::new();
        for (target, c) in self.per {
            let terms = targets.terms(&target).unwrap_or_default();
            let rate = targets.rate(&target);
            let stored_after = c.held + c.bytes;
            out.push(api::CopyOutlook {
                seconds: rate.map(|r| c.bytes / r.max(1)),
                rate,
                storage_cost_month: terms.price_gb_month.map(|p| stored_after as f64 / GB * p),
                egress_cost: terms.egress_price_gb.map(|p| c.bytes as f64 / GB * p),
                recall_cost: terms.egress_price_gb.map(|p| c.released as f64 / GB * p),
                target,
                files: c.files,
                bytes: c.bytes,
                stored_after,
                released_bytes: c.released,
            });
        }
        let report = report(&out, self.being_written);
        (out, report)
    }
}

/// The outlook in words, as `rushesctl placement simulate` prints it.
fn report(out: &[api::CopyOutlook], being_written: u64) -> String {
    if out.is_empty() {
        return String::new();
    }
    let money = |v: Option<f64>| v.map_or("no price set".to_string(), |v| format!("{v:.2}"));
    let mut text = String::from("copies:\n");
    for o in out {
        let time = match (o.seconds, o.rate) {
            (Some(s), Some(r)) => format!(", about {} at {}/s", show_span(s), show_size(r)),
            _ => " (no copy rate measured yet)".into(),
        };
        text.push_str(&format!(
            "  to {}: {} files, {}{time}; reading them back to prove them: egress {}\n",
            o.target,
            o.files,
            show_size(o.bytes),
            money(o.egress_cost)
        ));
        text.push_str(&format!(
            "    it would then hold {}: {} a month",
            show_size(o.stored_after),
            money(o.storage_cost_month)
        ));
        if o.released_bytes > 0 {
            text.push_str(&format!(
                "; recalling the {} released from it: egress {}",
                show_size(o.released_bytes),
                money(o.recall_cost)
            ));
        }
        text.push('\n');
    }
    if being_written > 0 {
        text.push_str(&format!(
            "  {being_written} files being written are copied once closed\n"
        ));
    }
    text
}
