//! The daemon's subsystems side by side, as the management API and the metrics see
//! them, and the monitor that gives each its turn. Made in `main.rs`; no subsystem
//! knows this struct.

use std::sync::Arc;
use std::time::Duration;

use rushes_api as api;

use crate::activity::Activity;
use crate::card::Card;
use crate::core::Core;
use crate::fabrics::Fabrics;
use crate::placement::Placement;
use crate::pools::Pools;
use crate::settings::System;
use crate::shares::Shares;
use crate::smb::Smb;

pub struct Daemon {
    pub core: Arc<Core>,
    pub pools: Arc<Pools>,
    pub shares: Arc<Shares>,
    pub fabrics: Arc<Fabrics>,
    pub card: Arc<Card>,
    pub smb: Arc<Smb>,
    pub system: Arc<System>,
    pub activity: Arc<Activity>,
    pub placement: Arc<Placement>,
}

impl Daemon {
    /// The rate rules with what their clients get over the last minute.
    pub fn rates(&self) -> crate::error::ApiResult<Vec<rushes_api::RateStatus>> {
        let rates = self.shares.rate_rules();
        let by_client = self.activity.activity_report("minute", "client")?;
        Ok(rates
            .rules()
            .enumerate()
            .map(|(i, rule)| {
                let getting: Vec<rushes_api::ClientRate> = by_client
                    .rows
                    .iter()
                    .filter(|row| {
                        row.group
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| rates.rule_for(ip) == Some(i))
                    })
                    .map(|row| rushes_api::ClientRate {
                        address: row.group.clone(),
                        mb_s: row.bytes_per_s / 1e6,
                    })
                    .collect();
                rushes_api::RateStatus {
                    name: rule.name.clone(),
                    clients: rule.clients.iter().map(|n| n.to_string()).collect(),
                    cap_mb_s: rule.cap_mb_s,
                    reserve_mb_s: rule.reserve_mb_s,
                    // fold, not sum: an empty sum of floats is -0.0.
                    now_mb_s: getting.iter().fold(0.0, |total, c| total + c.mb_s),
                    getting,
                }
            })
            .collect())
    }

    /// One look at everything: rescan disks when due, then each subsystem's turn
    /// (pulled members, reconnects, the card's health, scrubs, alerts).
    pub fn tick(&self) {
        if self.core.inventory.due() {
            self.core.inventory.rescan();
        }
        self.pools.tick();
        self.fabrics.tick();
        self.card.tick();
        self.shares.publish_alerts();
        self.smb.apply();
        self.activity.tick();
        self.placement.tick();
    }

    /// Run the monitor until the process ends.
    pub fn monitor(&self) {
        loop {
            if self.core.wait(Duration::from_secs(2)) {
                // Let udev write its data about a new device before reading it.
                std::thread::sleep(Duration::from_millis(300));
            }
            self.tick();
        }
    }

    /// The open alerts, each subsystem's freshly published.
    pub fn alerts(&self) -> Vec<api::Alert> {
        self.pools.publish_alerts();
        self.fabrics.publish_alerts();
        self.card.publish_alerts();
        self.shares.publish_alerts();
        self.placement.publish_alerts();
        self.core.alerts.list()
    }
}
