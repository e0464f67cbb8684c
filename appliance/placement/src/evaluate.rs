//! Which rule decides a file, and why each other rule did not: first match wins, as in
//! GPFS's ILM. A rule triggered `on watermark` is in play only while the pool it watches
//! is past its high watermark; that is a reason like any other condition.

use serde::Serialize;

use crate::facts::FileFacts;
use crate::rules::{Action, Clock, Condition, Rule, RuleSet, TAGS_XATTR};
use crate::units::{show_size, show_span};

/// The moment rules are applied at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A file was just created: where its data starts.
    Create,
    /// The scheduled run (and simulate): every file against every rule in play.
    Schedule,
}

/// What the rules say of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The index of the rule that matched, if one did.
    pub rule: Option<usize>,
    /// What that rule wants; `None` when no rule matched (the data stays).
    pub action: Option<Action>,
}

/// One rule's verdict on a file, for explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub rule: String,
    pub line: usize,
    pub matched: bool,
    /// Why it matched (its conditions, in words) or the first reason it did not.
    pub why: String,
}

/// Whether the pool named is past its high watermark right now.
pub trait Fill {
    fn over_high(&self, pool: &str) -> bool;
    /// `62 % full, under its high watermark 85 %`, for explain.
    fn describe(&self, pool: &str) -> String;
}

impl RuleSet {
    /// The rule that decides `f` at `trigger`, `now` seconds since the epoch.
    pub fn decide(&self, f: &FileFacts, now: i64, trigger: Trigger, fill: &dyn Fill) -> Decision {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.places()
                && in_play(rule, f, trigger, fill).is_ok()
                && rule.conditions.iter().all(|c| test(c, f, now).is_ok())
            {
                return Decision {
                    rule: Some(i),
                    action: Some(rule.action.clone()),
                };
            }
        }
        Decision {
            rule: None,
            action: None,
        }
    }

    /// The rule that says what copies `f` keeps (the first that matches and has
    /// `copies`), with its index.
    pub fn copies_for(&self, f: &FileFacts, now: i64) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().find(|(_, rule)| {
            rule.copies.is_some() && rule.conditions.iter().all(|c| test(c, f, now).is_ok())
        })
    }

    /// Every rule's verdict on `f`, in order, up to and including the one that decides.
    pub fn explain(
        &self,
        f: &FileFacts,
        now: i64,
        trigger: Trigger,
        fill: &dyn Fill,
    ) -> Vec<Verdict> {
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| r.places()) {
            let failed = in_play(rule, f, trigger, fill)
                .and_then(|()| rule.conditions.iter().try_for_each(|c| test(c, f, now)));
            let matched = failed.is_ok();
            out.push(Verdict {
                rule: rule.name.clone(),
                line: rule.line,
                matched,
                why: match failed {
                    Ok(()) if rule.conditions.is_empty() => "it has no conditions".into(),
                    Ok(()) => rule
                        .conditions
                        .iter()
                        .map(|c| holds(c, f, now))
                        .collect::<Vec<_>>()
                        .join("; "),
                    Err(why) => why,
                },
            });
            if matched {
                break;
            }
        }
        out
    }
}

/// Whether the rule acts at this trigger for this file.
fn in_play(rule: &Rule, f: &FileFacts, trigger: Trigger, fill: &dyn Fill) -> Result<(), String> {
    let t = rule.triggers;
    match trigger {
        Trigger::Create if t.create => Ok(()),
        Trigger::Create => Err("it does not act on new files".into()),
        Trigger::Schedule if t.schedule => Ok(()),
        Trigger::Schedule if t.watermark => {
            let watched = rule
                .conditions
                .iter()
                .find_map(|c| match c {
                    Condition::CurrentPool(p) => Some(p.as_str()),
                    _ => None,
                })
                .unwrap_or(&f.pool);
            if fill.over_high(watched) {
                Ok(())
            } else {
                Err(format!("pool {watched} is {}", fill.describe(watched)))
            }
        }
        Trigger::Schedule => Err("it acts only on new files".into()),
    }
}

fn age(f: &FileFacts, clock: Clock, now: i64) -> Option<u64> {
    let at = match clock {
        Clock::Modified => f.modified,
        Clock::Accessed => f.accessed,
        Clock::Created => f.created?,
    };
    Some(now.saturating_sub(at).max(0) as u64)
}

fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.')
        .filter(|(stem, _)| !stem.is_empty())
        .map(|(_, x)| x.to_ascii_lowercase())
}

fn tags(f: &FileFacts) -> impl Iterator<Item = &str> {
    f.xattr(TAGS_XATTR)
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// `Ok` when `c` holds of `f`; otherwise why not, in words.
fn test(c: &Condition, f: &FileFacts, now: i64) -> Result<(), String> {
    let ok = |holds: bool, why: String| if holds { Ok(()) } else { Err(why) };
    match c {
        Condition::Share(s) => ok(
            &f.share == s,
            format!("it is in share {}, not {s}", f.share),
        ),
        Condition::Path(g) => ok(
            g.is_match(&f.path),
            format!("path {} does not match {}", f.path, g.glob()),
        ),
        Condition::File(g) => ok(
            g.is_match(f.name()),
            format!("name {} does not match {}", f.name(), g.glob()),
        ),
        Condition::Extension(list) => {
            let x = extension(f.name());
            ok(
                x.as_ref().is_some_and(|x| list.contains(x)),
                match x {
                    Some(x) => format!("extension .{x} is not one of .{}", list.join(", .")),
                    None => format!(
                        "the name has no extension, not one of .{}",
                        list.join(", .")
                    ),
                },
            )
        }
        Condition::LargerThan(n) => ok(
            f.size > *n,
            format!("size {} is not above {}", show_size(f.size), show_size(*n)),
        ),
        Condition::SmallerThan(n) => ok(
            f.size < *n,
            format!("size {} is not under {}", show_size(f.size), show_size(*n)),
        ),
        Condition::Owner(uid, name) => {
            ok(f.uid == *uid, format!("owner is uid {}, not {name}", f.uid))
        }
        Condition::Group(gid, name) => {
            ok(f.gid == *gid, format!("group is gid {}, not {name}", f.gid))
        }
        Condition::Age {
            clock,
            older,
            secs,
            text,
        } => match age(f, *clock, now) {
            None => Err(format!("the file system keeps no {} time", clock.word())),
            Some(a) if *older => ok(
                a > *secs,
                format!(
                    "{} {} ago, not more than {text}",
                    clock.word(),
                    show_span(a)
                ),
            ),
            Some(a) => ok(
                a < *secs,
                format!(
                    "{} {} ago, not less than {text}",
                    clock.word(),
                    show_span(a)
                ),
            ),
        },
        Condition::CurrentPool(p) => {
            ok(&f.pool == p, format!("its data is on {}, not {p}", f.pool))
        }
        Condition::Tag(t) => ok(tags(f).any(|x| x == t), format!("it is not tagged {t}")),
        Condition::Xattr { name, value } => match (f.xattr(name), value) {
            (None, _) => Err(format!("it has no {name}")),
            (Some(_), None) => Ok(()),
            (Some(have), Some(want)) => ok(
                have == want.as_slice(),
                format!(
                    "{name} is {:?}, not {:?}",
                    String::from_utf8_lossy(have),
                    String::from_utf8_lossy(want)
                ),
            ),
        },
    }
}

/// How `c` holds of `f`, in words, for a rule that matched.
fn holds(c: &Condition, f: &FileFacts, now: i64) -> String {
    match c {
        Condition::Share(s) => format!("in share {s}"),
        Condition::Path(g) => format!("path matches {}", g.glob()),
        Condition::File(g) => format!("name matches {}", g.glob()),
        Condition::Extension(_) => {
            format!("extension .{}", extension(f.name()).unwrap_or_default())
        }
        Condition::LargerThan(n) => format!("size {} above {}", show_size(f.size), show_size(*n)),
        Condition::SmallerThan(n) => format!("size {} under {}", show_size(f.size), show_size(*n)),
        Condition::Owner(_, name) => format!("owned by {name}"),
        Condition::Group(_, name) => format!("group {name}"),
        Condition::Age {
            clock, text, older, ..
        } => format!(
            "{} {} ago ({} {text})",
            clock.word(),
            show_span(age(f, *clock, now).unwrap_or(0)),
            if *older { "more than" } else { "less than" }
        ),
        Condition::CurrentPool(p) => format!("data on {p}"),
        Condition::Tag(t) => format!("tagged {t}"),
        Condition::Xattr { name, .. } => format!("{name} set"),
    }
}
