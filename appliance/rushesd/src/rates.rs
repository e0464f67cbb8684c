//! Rate rules: caps and reservations on groups of NFS clients, kept in rushes.toml as
//! `[[rate]]`, put in force at once when the admin changes them, and never promising
//! more than the pools were measured to give: reservations that add up to more than the
//! pools' measured read rates are refused with the figures that limit them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use rushes_api::{self as api, Severity};
use rushes_nas::rates::{RateRule, RateRuleSet};
use rushes_nas::Service;

use crate::alerts::Raise;
use crate::core::{Core, Event};
use crate::error::{ApiErr, ApiResult};
use crate::pools::Pools;

pub struct Rates {
    core: Arc<Core>,
    nas: Arc<Service>,
    pools: Arc<Pools>,
    /// Why the rules in rushes.toml are not in force, if they are not.
    problem: Mutex<Option<String>>,
    /// The rules came with `--config` (a host's rushesd): in force as given, not
    /// managed here.
    from_command_line: bool,
}

/// What the pools can give, as measured.
struct Capacity {
    /// MB/s over the measured pools, each as "NAME N MB/s".
    parts: Vec<String>,
    total_mb_s: f64,
    any: bool,
    unmeasured: Vec<String>,
}

impl Rates {
    /// Put the rules of rushes.toml in force (once the pools they depend on have been
    /// measured, for reservations), and again after a reset of the config.
    pub fn start(
        core: Arc<Core>,
        nas: Arc<Service>,
        pools: Arc<Pools>,
        from_command_line: bool,
    ) -> Arc<Self> {
        let rates = Arc::new(Self {
            core,
            nas,
            pools,
            problem: Mutex::new(None),
            from_command_line,
        });
        if from_command_line {
            return rates;
        }
        rates.apply_config();
        let weak = Arc::downgrade(&rates);
        rates.core.on(move |event| {
            if let (Event::Reset, Some(me)) = (event, weak.upgrade()) {
                me.apply_config();
            }
        });
        rates
    }

    fn problem(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.problem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From the monitor: rules that could not be put in force (a pool not measured yet)
    /// are tried again, so they take effect as soon as they can.
    pub fn tick(&self) {
        if self.problem().is_some() {
            self.apply_config();
        }
        self.publish_alerts();
    }

    fn apply_config(&self) {
        let (rules, unreadable) = self
            .core
            .with_config(|c| (c.rates.clone(), c.rates_problem.clone()));
        let checked = match unreadable {
            Some(why) => Err(why),
            None => self.check(&rules).map_err(|e| match e.hint {
                Some(hint) => format!("{} ({hint})", e.message),
                None => e.message,
            }),
        };
        let mut problem = self.problem();
        match checked {
            Ok(set) => {
                if problem.take().is_some() || set.rules().next().is_some() {
                    for rule in set.rules() {
                        tracing::info!(rule = %rule.name, cap_mb_s = ?rule.cap_mb_s, reserve_mb_s = ?rule.reserve_mb_s, clients = ?rule.clients, "rate rule in force");
                    }
                }
                self.nas.rates.replace(set);
            }
            Err(why) => {
                if problem.as_deref() != Some(why.as_str()) {
                    tracing::error!(error = %why, "the [[rate]] rules in rushes.toml are not used: no client is capped or has a reservation until they are fixed");
                }
                self.nas.rates.replace(RateRuleSet::default());
                *problem = Some(why);
            }
        }
    }

    /// The rules in force, each with what its clients get now (from the activity of the
    /// last minute per client, or per share for a rule on shares), and what the
    /// reservations stand on.
    pub fn status(
        &self,
        by_client: &api::ActivityReport,
        by_share: &api::ActivityReport,
    ) -> api::Rates {
        let set = self.nas.rates.current();
        let rules = set
            .rules()
            .enumerate()
            .map(|(i, rule)| {
                let rows: Vec<&api::ActivityRow> = if rule.shares.is_empty() {
                    by_client
                        .rows
                        .iter()
                        .filter(|row| {
                            row.group
                                .parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| set.rule_for(ip) == Some(i))
                        })
                        .collect()
                } else {
                    by_share
                        .rows
                        .iter()
                        .filter(|row| rule.shares.contains(&row.group))
                        .collect()
                };
                let getting: Vec<api::ClientRate> = rows
                    .into_iter()
                    .map(|row| api::ClientRate {
                        address: row.group.clone(),
                        mb_s: row.bytes_per_s / 1e6,
                    })
                    .collect();
                api::RateStatus {
                    name: rule.name.clone(),
                    clients: rule.clients.iter().map(|n| n.to_string()).collect(),
                    shares: rule.shares.clone(),
                    cap_mb_s: rule.cap_mb_s,
                    reserve_mb_s: rule.reserve_mb_s,
                    // fold, not sum: an empty sum of floats is -0.0.
                    now_mb_s: getting.iter().fold(0.0, |total, c| total + c.mb_s),
                    getting,
                }
            })
            .collect();
        let capacity = self.capacity();
        api::Rates {
            reserved_mb_s: set.rules().filter_map(|r| r.reserve_mb_s).sum(),
            measured_mb_s: capacity.any.then_some(capacity.total_mb_s),
            unmeasured: capacity.unmeasured,
            problem: self.problem().clone(),
            rules,
        }
    }

    fn capacity(&self) -> Capacity {
        let mut c = Capacity {
            parts: Vec::new(),
            total_mb_s: 0.0,
            any: false,
            unmeasured: Vec::new(),
        };
        for (pool, read) in self.pools.read_rates() {
            match read {
                Some(r) => {
                    c.parts.push(format!("{pool} {:.0} MB/s", r.mb_s));
                    c.total_mb_s += r.mb_s;
                    c.any = true;
                }
                None => c.unmeasured.push(pool),
            }
        }
        c
    }

    /// Whether `rules` can be put in force: each usable, and the reservations within
    /// what the pools were measured to give.
    fn check(&self, rules: &[RateRule]) -> ApiResult<RateRuleSet> {
        let set = RateRuleSet::new(rules).map_err(|e| ApiErr::bad_request(e.to_string()))?;
        let reserved: u64 = rules.iter().filter_map(|r| r.reserve_mb_s).sum();
        if reserved == 0 {
            return Ok(set);
        }
        let capacity = self.capacity();
        let unmeasured = if capacity.unmeasured.is_empty() {
            String::new()
        } else {
            format!("; not measured yet: {}", capacity.unmeasured.join(", "))
        };
        if !capacity.any {
            let hint = if capacity.unmeasured.is_empty() {
                "make a pool first: reservations are checked against what the pools can give"
                    .to_string()
            } else {
                format!(
                    "a pool is measured by itself once it is whole and idle; or run `rushesctl pool measure {}`",
                    capacity.unmeasured[0]
                )
            };
            return Err(ApiErr::new(
                409,
                "not-measured",
                format!("no pool's read rate has been measured{unmeasured}, so a reservation of {reserved} MB/s cannot be promised"),
            )
            .hint(hint));
        }
        self.check_share_pools(rules)?;
        if reserved as f64 > capacity.total_mb_s {
            return Err(ApiErr::new(
                409,
                "over-capacity",
                format!(
                    "the reservations would add up to {reserved} MB/s, more than the pools can give: {} measured ({}){unmeasured}",
                    format_args!("{:.0} MB/s", capacity.total_mb_s),
                    capacity.parts.join(", ")
                ),
            )
            .hint("lower or remove a reservation (rushesctl rate list); after adding disks, measure the pool again: rushesctl pool measure NAME"));
        }
        Ok(set)
    }

    /// Reservations on shares of one pool must fit in that pool's measured rate.
    fn check_share_pools(&self, rules: &[RateRule]) -> ApiResult<()> {
        let pool_of: HashMap<String, String> = self.core.with_config(|c| {
            c.shares
                .iter()
                .map(|s| (s.name.clone(), s.pool.clone()))
                .collect()
        });
        let reads: HashMap<String, f64> = self
            .pools
            .read_rates()
            .into_iter()
            .filter_map(|(pool, r)| Some((pool, r?.mb_s)))
            .collect();
        // Per pool: the reservations of rules whose shares are all on it.
        let mut on_pool: BTreeMap<&str, (u64, Vec<&str>)> = BTreeMap::new();
        for r in rules.iter().filter(|r| !r.shares.is_empty()) {
            let Some(reserve) = r.reserve_mb_s else {
                continue;
            };
            let pools: BTreeSet<&str> = r
                .shares
                .iter()
                .filter_map(|s| pool_of.get(s).map(String::as_str))
                .collect();
            if let (1, Some(pool)) = (pools.len(), pools.first()) {
                let entry = on_pool.entry(pool).or_default();
                entry.0 += reserve;
                entry.1.push(&r.name);
            }
        }
        for (pool, (reserved, names)) in on_pool {
            let Some(&rate) = reads.get(pool) else {
                continue;
            };
            if reserved as f64 > rate {
                return Err(ApiErr::new(
                    409,
                    "over-capacity",
                    format!(
                        "the reservations on shares of pool {pool} ({}) would add up to {reserved} MB/s, more than it can give: it reads at {rate:.0} MB/s (measured)",
                        names.join(", ")
                    ),
                )
                .hint("lower or remove a reservation (rushesctl rate list), or measure the pool again after adding disks: rushesctl pool measure NAME"));
            }
        }
        Ok(())
    }

    /// Add the rule `name`, or change it in place; `before` puts it ahead of another
    /// (the first rule that covers a client is its rule). In force at once.
    pub fn set_rule(&self, name: &str, req: api::SetRate) -> ApiResult<()> {
        self.managed()?;
        check_rule_name(name)?;
        let mut clients = Vec::new();
        for c in &req.clients {
            clients.push(c.parse::<ipnet::IpNet>().map_err(|_| {
                ApiErr::bad_request(format!("{c:?} is not a network"))
                    .hint("give networks as CIDR, e.g. 10.0.20.0/24 or 10.0.30.3/32")
            })?);
        }
        // Shares served: the config's, and a host's folders.
        let known = self.nas.shares();
        for share in &req.shares {
            if !known.iter().any(|s| *s.name == **share) {
                return Err(ApiErr::not_found(format!("there is no share {share:?}"))
                    .hint("rushesctl shares lists them"));
            }
        }
        let rule = RateRule {
            name: name.to_string(),
            clients,
            shares: req.shares.clone(),
            cap_mb_s: req.cap_mb_s,
            reserve_mb_s: req.reserve_mb_s,
        };
        let mut rules = self.core.with_config(|c| c.rates.clone());
        let at = rules.iter().position(|r| r.name == name);
        match (&req.before, at) {
            (None, Some(at)) => rules[at] = rule,
            (before, at) => {
                if let Some(at) = at {
                    rules.remove(at);
                }
                let to = match before {
                    None => rules.len(),
                    Some(other) => {
                        rules.iter().position(|r| &r.name == other).ok_or_else(|| {
                            ApiErr::not_found(format!(
                                "there is no rate rule {other:?} to put it before"
                            ))
                        })?
                    }
                };
                rules.insert(to, rule);
            }
        }
        let set = self.check(&rules)?;
        self.save(rules, set)
    }

    /// Remove the rule `name`; its clients go back to best effort at once.
    pub fn delete_rule(&self, name: &str) -> ApiResult<()> {
        self.managed()?;
        let mut rules = self.core.with_config(|c| c.rates.clone());
        let before = rules.len();
        rules.retain(|r| r.name != name);
        if rules.len() == before {
            return Err(ApiErr::not_found(format!("there is no rate rule {name:?}"))
                .hint("rushesctl rate list shows them"));
        }
        // Fewer rules reserve less: no capacity check to pass.
        let set = RateRuleSet::new(&rules).map_err(|e| ApiErr::bad_request(e.to_string()))?;
        self.save(rules, set)
    }

    fn managed(&self) -> ApiResult<()> {
        if self.from_command_line {
            return Err(ApiErr::new(
                409,
                "rules-from-command-line",
                "this rushesd's rate rules come from its --config file",
            )
            .hint("edit that file and restart rushesd"));
        }
        Ok(())
    }

    fn save(&self, rules: Vec<RateRule>, set: RateRuleSet) -> ApiResult<()> {
        self.core
            .save_config(|c| {
                c.rates = rules;
                // Rules that did not read are replaced by these.
                c.rates_problem = None;
                c.other.remove("rate");
            })
            .map_err(ApiErr::failed)?;
        for rule in set.rules() {
            tracing::info!(rule = %rule.name, cap_mb_s = ?rule.cap_mb_s, reserve_mb_s = ?rule.reserve_mb_s, clients = ?rule.clients, "rate rule in force");
        }
        self.nas.rates.replace(set);
        *self.problem() = None;
        self.publish_alerts();
        Ok(())
    }

    pub fn publish_alerts(&self) {
        let current = self
            .problem()
            .as_ref()
            .map(|why| {
                Raise::new(
                    "rate-rules",
                    Severity::Warning,
                    format!("The [[rate]] rules in rushes.toml are not used: {why}"),
                    "Fix or remove the rule (rushesctl rate set/delete); until then no client is capped or has a reservation",
                )
            })
            .into_iter()
            .collect();
        self.core.alerts.publish("rates", current);
    }
}

/// Rule names appear in URLs, logs and the console: keep them plain.
fn check_rule_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(
            ApiErr::bad_request(format!("rate rule name {name:?} is not usable"))
                .hint("use 1-64 letters, digits, '-', '_' or '.'"),
        )
    }
}
