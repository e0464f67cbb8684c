//! Shares: folders on the pools served over NFS, with their export rules and SMB
//! options, kept in rushes.toml and handed to the NFS service. A share is online while
//! its pool is mounted.

use std::sync::Arc;

use rushes_api::{self as api, Severity};
use rushes_nas::{Service, ShareConfig};
use rushes_storage::xfs;

use crate::alerts::Raise;
use crate::config::ShareEntry;
use crate::core::{Core, Event};
use crate::error::{ApiErr, ApiResult};

pub struct Shares {
    core: Arc<Core>,
    nas: Arc<Service>,
    /// Share names served outside the config (host mode's folders, the RAM share).
    reserved: Vec<String>,
}

impl Shares {
    /// Serve the shares whose pools are mounted; a reset of the config stops them all.
    pub fn start(core: Arc<Core>, nas: Arc<Service>, reserved: Vec<String>) -> Arc<Self> {
        let shares = Arc::new(Self {
            core,
            nas,
            reserved,
        });
        shares.serve_shares();
        let weak = Arc::downgrade(&shares);
        shares.core.on(move |event| {
            if let (Event::Reset, Some(me)) = (event, weak.upgrade()) {
                for share in me.nas.shares() {
                    if !me.reserved.iter().any(|r| **r == *share.name) {
                        me.nas.remove_share(&share.name);
                    }
                }
            }
        });
        shares
    }

    /// Account names a share lists must exist.
    fn check_share_users(&self, users: &[String]) -> ApiResult<()> {
        let known = self.core.with_config(|c| c.users.clone());
        for u in users {
            if !known.iter().any(|e| &e.name == u) {
                return Err(ApiErr::bad_request(format!("there is no account {u:?}"))
                    .hint("add it first with `rushesctl user add`"));
            }
        }
        Ok(())
    }

    /// Publish the alerts of shares that are offline.
    pub fn publish_alerts(&self) {
        let offline = self
            .shares()
            .into_iter()
            .filter(|s| !s.online)
            .map(|s| {
                Raise::new(
                    format!("share-offline:{}", s.name),
                    Severity::Warning,
                    format!(
                        "share {} is offline because pool {} is not available",
                        s.name, s.pool
                    ),
                    "bring the pool back (see its alert); the share returns with it after a restart",
                )
            })
            .collect();
        self.core.alerts.publish("shares", offline);
    }

    fn share_config(&self, entry: &ShareEntry) -> ShareConfig {
        ShareConfig {
            name: entry.name.clone(),
            path: self.core.paths.mountpoint(&entry.pool).join(&entry.name),
            rules: entry.rules.clone(),
            allow_devices: entry.allow_devices,
        }
    }

    fn serve_shares(&self) {
        let shares = self.core.with_config(|c| c.shares.clone());
        for entry in shares {
            let cfg = self.share_config(&entry);
            if !xfs::is_mounted(&self.core.paths.mountpoint(&entry.pool)) {
                tracing::warn!(share = %entry.name, pool = %entry.pool, "share offline: its pool is not available");
                continue;
            }
            match self.nas.put_share(&cfg) {
                Ok(()) => {
                    tracing::info!(share = %entry.name, path = %cfg.path.display(), "exported as /{}", entry.name)
                }
                Err(e) => tracing::error!(share = %entry.name, error = %e, "cannot serve share"),
            }
        }
    }

    fn share_view(&self, entry: &ShareEntry) -> api::Share {
        let cfg = self.share_config(entry);
        api::Share {
            name: entry.name.clone(),
            pool: entry.pool.clone(),
            path: cfg.path.display().to_string(),
            rules: entry.rules.clone(),
            online: self.nas.share_by_path(&entry.name).is_some(),
            smb: entry.smb,
            time_machine: entry.time_machine,
            users: entry.users.clone(),
            allow_devices: entry.allow_devices,
        }
    }

    pub fn shares(&self) -> Vec<api::Share> {
        let shares = self.core.with_config(|c| c.shares.clone());
        shares.iter().map(|s| self.share_view(s)).collect()
    }

    /// The folder of share `name` as it is served now.
    pub fn served_folder(&self, name: &str) -> ApiResult<std::path::PathBuf> {
        match self.nas.share_by_path(name) {
            Some(share) => Ok(share.path.clone()),
            None => Err(ApiErr::not_found(format!(
                "share {name:?} is not served now (there is none, or its pool is offline)"
            ))
            .hint("`rushesctl shares` lists them and whether each is online")),
        }
    }

    pub fn share(&self, name: &str) -> ApiResult<api::Share> {
        let entry = self.share_entry(name)?;
        Ok(self.share_view(&entry))
    }

    fn share_entry(&self, name: &str) -> ApiResult<ShareEntry> {
        self.core
            .with_config(|c| c.shares.iter().find(|s| s.name == name).cloned())
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no share {name:?}"))
                    .hint("`rushesctl shares` lists them")
            })
    }

    pub fn create_share(&self, req: api::CreateShare) -> ApiResult<api::Share> {
        let rules: Vec<rushes_nas::ExportRule> = match &req.rules {
            Some(rules) => rules.clone(),
            None => vec![Default::default()],
        };
        self.check_share_users(&req.users)?;
        let entry = ShareEntry {
            name: req.name.clone(),
            pool: req.pool.clone(),
            rules,
            smb: req.smb.unwrap_or(true),
            time_machine: req.time_machine,
            users: req.users.clone(),
            allow_devices: req.allow_devices,
        };
        let cfg = self.share_config(&entry);
        rushes_nas::share::validate(std::slice::from_ref(&cfg)).map_err(|e| {
            ApiErr::new(400, "bad-name", e.to_string())
                .hint("a share is a folder directly on its pool: its name cannot contain '/' or start with '.'")
        })?;
        {
            if self
                .core
                .with_config(|c| c.shares.iter().any(|s| s.name == req.name))
                || self.reserved.contains(&req.name)
            {
                return Err(ApiErr::new(
                    409,
                    "exists",
                    format!("a share called {} exists already", req.name),
                ));
            }
        }
        if !self.core.with_config(|c| c.pool(&req.pool).is_some()) {
            return Err(
                ApiErr::not_found(format!("there is no pool {:?}", req.pool))
                    .hint("`rushesctl pools` lists them"),
            );
        }
        let pool_dir = self.core.paths.mountpoint(&req.pool);
        if !xfs::is_mounted(&pool_dir) {
            return Err(ApiErr::new(
                409,
                "pool-unavailable",
                format!("pool {} is not mounted", req.pool),
            )
            .hint("see `rushesctl pool show` and the alerts"));
        }
        match std::fs::create_dir(&cfg.path) {
            Ok(()) => {
                // Edit suites write as their own users: the folder starts open to all,
                // and the admin narrows it (or the export rules) as the facility needs.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&cfg.path, std::fs::Permissions::from_mode(0o777))
                    .map_err(|e| {
                        ApiErr::failed(format!(
                            "cannot set the mode of {}: {e}",
                            cfg.path.display()
                        ))
                    })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(ApiErr::failed(format!(
                    "cannot create {}: {e}",
                    cfg.path.display()
                )))
            }
        }
        self.nas
            .put_share(&cfg)
            .map_err(|e| ApiErr::failed(e.to_string()))?;
        if let Err(e) = self.core.save_config(|c| c.shares.push(entry.clone())) {
            self.nas.remove_share(&entry.name);
            return Err(ApiErr::failed(e));
        }
        self.core.emit(Event::SharesChanged);
        tracing::info!(share = %entry.name, path = %cfg.path.display(), smb = entry.smb, "share created, exported as /{}", entry.name);
        Ok(self.share_view(&entry))
    }

    /// Change a share's export rules or SMB options; what the request leaves out stays.
    pub fn update_share(&self, name: &str, req: api::UpdateShare) -> ApiResult<api::Share> {
        let mut entry = self.share_entry(name)?;
        if let Some(users) = &req.users {
            self.check_share_users(users)?;
            entry.users = users.clone();
        }
        if let Some(rules) = req.rules {
            entry.rules = rules;
        }
        if let Some(smb) = req.smb {
            entry.smb = smb;
        }
        if let Some(time_machine) = req.time_machine {
            entry.time_machine = time_machine;
        }
        if let Some(allow) = req.allow_devices {
            entry.allow_devices = allow;
        }
        let cfg = self.share_config(&entry);
        rushes_nas::share::validate(std::slice::from_ref(&cfg))
            .map_err(|e| ApiErr::bad_request(e.to_string()))?;
        if self.nas.share_by_path(name).is_some() {
            self.nas
                .put_share(&cfg)
                .map_err(|e| ApiErr::failed(e.to_string()))?;
        }
        self.core
            .save_config(|c| {
                if let Some(s) = c.shares.iter_mut().find(|s| s.name == name) {
                    *s = entry.clone();
                }
            })
            .map_err(ApiErr::failed)?;
        self.core.emit(Event::SharesChanged);
        tracing::info!(share = name, smb = entry.smb, time_machine = entry.time_machine, users = ?entry.users, "share changed");
        Ok(self.share_view(&entry))
    }

    /// Stop serving a share and forget it; its folder and files stay on the pool.
    pub fn delete_share(&self, name: &str) -> ApiResult<()> {
        self.share_entry(name)?;
        self.core
            .save_config(|c| c.shares.retain(|s| s.name != name))
            .map_err(ApiErr::failed)?;
        self.nas.remove_share(name);
        self.core.emit(Event::SharesChanged);
        tracing::info!(share = name, "share deleted (its files stay on the pool)");
        Ok(())
    }
}
