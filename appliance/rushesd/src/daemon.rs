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
use crate::rates::Rates;
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
    pub rates: Arc<Rates>,
    /// The media catalog, when it is kept (always on the appliance; `--catalog` on a host).
    pub catalog: Option<Arc<crate::catalog::Catalog>>,
    /// Where copies can go.
    pub targets: Arc<crate::targets::Targets>,
    pub recalls: Arc<crate::recall::Recalls>,
    pub reconcile: Arc<crate::reconcile::Reconcile>,
    /// A pool served over S3 for other boxes' copies.
    pub s3: Arc<crate::s3_endpoint::S3Endpoint>,
    /// Logins, tokens and HTTPS: who may manage the box over the network.
    pub admin: Arc<crate::admin_plane::AdminPlane>,
    /// Signed updates into the idle boot slot, and rollback.
    pub updates: Arc<crate::update::Updates>,
}

impl Daemon {
    /// The media catalog, or why there is none.
    pub fn catalog(&self) -> crate::error::ApiResult<&Arc<crate::catalog::Catalog>> {
        self.catalog.as_ref().ok_or_else(|| {
            crate::error::ApiErr::new(409, "catalog-off", "this rushesd keeps no media catalog")
                .hint("start `rushesd host` with --catalog (the appliance always keeps one)")
        })
    }

    /// The rate rules with what their clients get over the last minute.
    pub fn rates(&self) -> crate::error::ApiResult<rushes_api::Rates> {
        let by_client = self.activity.activity_report("minute", "client")?;
        let by_share = self.activity.activity_report("minute", "share")?;
        Ok(self.rates.status(&by_client, &by_share))
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
        self.reconcile.tick();
        self.s3.apply();
        self.rates.tick();
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
        self.rates.publish_alerts();
        self.core.alerts.list()
    }
}
