//! Placement as the API offers it: the rules in force (rushes.toml's `[placement]`),
//! replacing them only with rules that pass their check, `simulate` over every share's
//! files and `explain` of one file. The rules and plans are `rushes_placement`'s; this
//! file gathers what they look at (pools, shares, accounts, files) and words the answers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rushes_api::{self as api, Severity};
use rushes_placement::{
    evaluate::Trigger, file_facts, scan_share, Action, FillNow, Names, Planner, PoolState,
    RuleError, RuleSet,
};

use crate::alerts::Raise;
use crate::core::Core;
use crate::error::{ApiErr, ApiResult};
use crate::pools::Pools;

/// Moves listed in a plan unless the caller asks for another number.
const DEFAULT_LIST: usize = 20;

pub struct Placement {
    core: Arc<Core>,
    pools: Arc<Pools>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn problems(errors: &[RuleError]) -> Vec<api::RuleProblem> {
    errors
        .iter()
        .map(|e| api::RuleProblem {
            line: e.line,
            rule: e.rule.clone(),
            reason: e.reason.clone(),
        })
        .collect()
}

/// A rules file refused: every reason, one a line.
fn refused(errors: &[RuleError]) -> ApiErr {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    ApiErr::new(422, "rules-refused", lines.join("\n"))
        .hint("fix the lines named and send the whole file again; nothing was changed")
}

impl Placement {
    pub fn start(core: Arc<Core>, pools: Arc<Pools>) -> Arc<Self> {
        let me = Arc::new(Self { core, pools });
        me.publish_alerts();
        me
    }

    /// What rules may name: the shares and pools configured, the accounts.
    fn names(&self) -> Names {
        self.core.with_config(|c| Names {
            shares: c.shares.iter().map(|s| s.name.clone()).collect(),
            pools: c.pools.iter().map(|p| p.name.clone()).collect(),
            users: c.users.iter().map(|u| (u.name.clone(), u.uid)).collect(),
            groups: Vec::new(),
        })
    }

    /// The rules kept in rushes.toml, checked against the box as it is now; their lines
    /// are those of the file on disk when it reads as TOML.
    fn in_force(&self) -> Result<RuleSet, Vec<RuleError>> {
        let on_disk = std::fs::read_to_string(self.core.config_path())
            .ok()
            .filter(|t| t.parse::<toml::Table>().is_ok());
        let text = match on_disk {
            Some(text) => text,
            None => self.core.with_config(|c| c.to_toml()).unwrap_or_default(),
        };
        RuleSet::parse_config(&text, &self.names())
    }

    /// Rules kept in rushes.toml that no longer pass (a hand edit, a pool or share
    /// they name removed) raise an alert: nothing moves until they are fixed.
    pub fn publish_alerts(&self) {
        let raised = match self.in_force() {
            Ok(_) => Vec::new(),
            Err(errors) => vec![Raise::new(
                "placement-rules-refused",
                Severity::Warning,
                format!(
                    "the placement rules in rushes.toml are refused, so no data moves: {}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                "fix them and send them again with `rushesctl placement set FILE`",
            )],
        };
        self.core.alerts.publish("placement", raised);
    }

    pub fn view(&self) -> api::Placement {
        match self.in_force() {
            Ok(rules) => view_of(&rules),
            Err(errors) => api::Placement {
                problems: problems(&errors),
                ..api::Placement::default()
            },
        }
    }

    /// Put `text` in force, if every rule of it passes.
    pub fn set(&self, req: api::PlacementRules) -> ApiResult<api::Placement> {
        let rules = RuleSet::parse(&req.text, &self.names()).map_err(|e| refused(&e))?;
        let table: toml::Table = req
            .text
            .parse()
            .map_err(|e: toml::de::Error| ApiErr::bad_request(e.to_string()))?;
        self.core
            .save_config(|c| c.placement = (!table.is_empty()).then_some(table))
            .map_err(ApiErr::failed)?;
        tracing::info!(rules = rules.rules.len(), "placement rules in force");
        self.publish_alerts();
        Ok(view_of(&rules))
    }

    fn pool_states(&self) -> Vec<PoolState> {
        self.pools
            .pools()
            .into_iter()
            .map(|p| PoolState {
                refuses: match p.state {
                    api::PoolState::Online => None,
                    api::PoolState::Degraded => Some("it is degraded".into()),
                    api::PoolState::Failed => Some("it has failed".into()),
                    api::PoolState::Missing => Some("its disks are missing".into()),
                },
                name: p.name,
                size: p.size_bytes,
                used: p.used_bytes,
            })
            .collect()
    }

    /// Shares with their home pool and where their files are.
    fn shares(&self) -> Vec<(String, String, std::path::PathBuf)> {
        self.core.with_config(|c| {
            c.shares
                .iter()
                .map(|s| {
                    let root = self.core.paths.mountpoint(&s.pool).join(&s.name);
                    (s.name.clone(), s.pool.clone(), root)
                })
                .collect()
        })
    }

    /// Run the rules in force (or `req.text`) over every file, moving nothing.
    pub fn simulate(&self, req: api::SimulateRequest) -> ApiResult<api::PlacementPlan> {
        let rules = match &req.text {
            Some(text) => RuleSet::parse(text, &self.names()).map_err(|e| refused(&e))?,
            None => self.in_force().map_err(|e| {
                refused(&e).hint(
                    "the rules in force are refused; fix them, or simulate others with --rule FILE",
                )
            })?,
        };
        let list = req.list.unwrap_or(DEFAULT_LIST).min(10_000);
        let pools = self.pool_states();
        let wanted = rules.xattr_names();
        let mut planner = Planner::new(&rules, &pools, now(), None);
        let mut skipped = Vec::new();
        for (share, home, root) in self.shares() {
            if !rushes_storage::xfs::is_mounted(&self.core.paths.mountpoint(&home)) {
                skipped.push(format!("share {share}: pool {home} is not mounted"));
                continue;
            }
            if let Err(e) = scan_share(&share, &root, &home, &wanted, |f| planner.judge(&f)) {
                skipped.push(format!("share {share}: {e}"));
            }
        }
        let plan = planner.finish();
        let mut report = plan.report(list);
        for s in &skipped {
            report.push_str(&format!("not looked at: {s}\n"));
        }
        let planned = |m: &rushes_placement::Move, held: Option<String>| api::PlannedMove {
            share: m.share.clone(),
            path: m.path.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            bytes: m.bytes,
            rule: m.rule.clone(),
            because: match m.because {
                rushes_placement::Because::Rule => "rule".into(),
                rushes_placement::Because::Watermark => "watermark".into(),
            },
            held,
        };
        Ok(api::PlacementPlan {
            files_seen: plan.files_seen,
            moves: plan
                .moves
                .iter()
                .take(list)
                .map(|m| planned(m, None))
                .collect(),
            moves_total: plan.moves.len() as u64,
            bytes: plan.bytes,
            held: plan
                .held
                .iter()
                .take(list)
                .map(|h| planned(&h.wanted, Some(h.reason.clone())))
                .collect(),
            held_total: plan.held.len() as u64,
            pools: plan.pools.clone(),
            rate: plan.rate,
            seconds: plan.seconds,
            skipped,
            report,
        })
    }

    /// Which rule decides `path` (`SHARE/PATH/IN/IT`), and why the others before it did not.
    pub fn explain(&self, path: &str) -> ApiResult<api::PlacementExplain> {
        let rules = self.in_force().map_err(|e| {
            refused(&e)
                .hint("the rules in force are refused; fix them first (`rushesctl placement`)")
        })?;
        let trimmed = path.trim_start_matches('/');
        let (share, inside) = trimmed.split_once('/').ok_or_else(|| {
            ApiErr::bad_request(format!(
                "{path:?} names no file: give SHARE/PATH, e.g. media/day1/A001.mov"
            ))
        })?;
        let (_, home, root) = self
            .shares()
            .into_iter()
            .find(|(name, _, _)| name == share)
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no share {share:?}"))
                    .hint("`rushesctl shares` lists them")
            })?;
        let facts =
            file_facts(share, &root, &home, inside, &rules.xattr_names()).map_err(|e| match e {
                rushes_placement::FileError::Io { .. } => ApiErr::not_found(e.to_string()),
                _ => ApiErr::bad_request(e.to_string()),
            })?;
        let pools = self.pool_states();
        let fill = FillNow {
            rules: &rules,
            pools: &pools,
        };
        let at = now();
        let verdicts = rules.explain(&facts, at, Trigger::Schedule, &fill);
        let decision = rules.decide(&facts, at, Trigger::Schedule, &fill);
        let outcome = match (&decision.action, decision.rule) {
            (Some(Action::Place(to)), Some(i)) if *to == facts.pool => {
                format!(
                    "rule {} places it on {to}, where it is",
                    rules.rules[i].name
                )
            }
            (Some(Action::Place(to)), Some(i)) => {
                format!(
                    "rule {} moves it from {} to {to}",
                    rules.rules[i].name, facts.pool
                )
            }
            (Some(Action::Pin), Some(i)) => {
                format!("rule {} pins it on {}", rules.rules[i].name, facts.pool)
            }
            (Some(Action::Exclude), Some(i)) => {
                format!("rule {} excludes it: no rule moves it", rules.rules[i].name)
            }
            _ => format!("no rule matches: its data stays on {}", facts.pool),
        };
        let at_create = rules
            .decide(&facts, at, Trigger::Create, &fill)
            .rule
            .map(|i| rules.rules[i].name.clone());
        Ok(api::PlacementExplain {
            share: share.to_string(),
            path: inside.to_string(),
            size_bytes: facts.size,
            pool: facts.pool.clone(),
            verdicts: verdicts
                .into_iter()
                .map(|v| api::RuleVerdict {
                    rule: v.rule,
                    matched: v.matched,
                    why: v.why,
                })
                .collect(),
            outcome,
            at_create,
        })
    }
}

fn view_of(rules: &RuleSet) -> api::Placement {
    api::Placement {
        rules: rules
            .rules
            .iter()
            .map(|r| api::PlacementRule {
                name: r.name.clone(),
                action: match &r.action {
                    Action::Place(_) => "place",
                    Action::Pin => "pin",
                    Action::Exclude => "exclude",
                }
                .into(),
                pool: match &r.action {
                    Action::Place(p) => Some(p.clone()),
                    _ => None,
                },
                on: r.triggers.words().into_iter().map(String::from).collect(),
                conditions: r.conditions.iter().map(|c| c.to_string()).collect(),
            })
            .collect(),
        watermarks: rules
            .watermarks
            .iter()
            .map(|w| api::PoolWatermark {
                pool: w.pool.clone(),
                high: w.high,
                low: w.low,
                weight: match w.weight {
                    rushes_placement::Weight::OldestAccess => "oldest-access",
                    rushes_placement::Weight::OldestModify => "oldest-modify",
                    rushes_placement::Weight::Largest => "largest",
                }
                .into(),
            })
            .collect(),
        every_secs: rules.every,
        problems: Vec::new(),
    }
}
