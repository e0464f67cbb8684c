//! SMB as the API offers it: the accounts, Samba kept in line with the shares that are
//! online and served over SMB, the audit reader's directory, and the mDNS announcements
//! (SMB, Time Machine, NFS) by which Macs find the box.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rushes_api::{self as api, Severity};
use rushes_placement::DataPlaces;
use rushes_view::ViewMount;

use crate::alerts::Raise;
use crate::config::UserEntry;
use crate::core::{Core, Event};
use crate::directory::Directory;
use crate::error::{ApiErr, ApiResult};
use crate::samba::{check_password, check_user_name, render, Samba, SmbShare};
use crate::shares::Shares;

/// Where each SMB share's view is mounted for Samba: `VIEWS/SHARE`.
const VIEWS: &str = "/run/rushes/view";

/// The first uid handed out, and the group accounts join by default (`users`).
const FIRST_UID: u32 = 1000;
const DEFAULT_GID: u32 = 100;

pub struct Smb {
    core: Arc<Core>,
    shares: Arc<Shares>,
    /// Samba's files (the appliance only; `rushesd host` serves no SMB).
    samba: Option<Samba>,
    /// Shares and accounts, for the SMB audit reader.
    directory: Arc<RwLock<Directory>>,
    /// The mDNS responder and what it announces.
    mdns: Mutex<Option<(mdns_sd::ServiceDaemon, Announced)>>,
    /// Where files' data is, for the views.
    places: Arc<DataPlaces>,
    /// Each SMB share's view, by share, with the folder it shows.
    views: Mutex<HashMap<String, (PathBuf, ViewMount)>>,
    /// One `apply` at a time: the monitor's tick and an account just added must not
    /// interleave, or the one that read the config first writes last and the account
    /// is missing from /etc/passwd (Samba then refuses its logon) until the next tick.
    applying: Mutex<()>,
    /// Told of each file an SMB writer closes (share, path): the catalog, when kept.
    on_written: Option<OnWritten>,
}

/// Told of each file an SMB writer closed, by share and path inside it.
pub type OnWritten = Arc<dyn Fn(&Arc<str>, &str) + Send + Sync>;

/// The folder of share `share`'s view, when `file` (on the home pool) has its data on
/// another pool and the view is mounted: reading through it reads where the data is.
pub fn view_of_moved(share: &str, file: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).ok()?;
    let size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
    let blocks = i64::try_from(meta.blocks()).unwrap_or(i64::MAX);
    if !rushes_placement::layout::may_be_elsewhere(size, blocks) {
        return None;
    }
    let view = Path::new(VIEWS).join(share);
    // FUSE_SUPER_MAGIC: the view itself, not the empty folder it is mounted on.
    let fuse = rustix::fs::statfs(&view).is_ok_and(|s| s.f_type == 0x6573_5546);
    fuse.then_some(view)
}

impl Smb {
    /// Bring Samba in line now, and again whenever shares or accounts change.
    pub fn start(
        core: Arc<Core>,
        shares: Arc<Shares>,
        samba: Option<Samba>,
        directory: Arc<RwLock<Directory>>,
        places: Arc<DataPlaces>,
        on_written: Option<OnWritten>,
    ) -> Arc<Self> {
        let smb = Arc::new(Self {
            core,
            shares,
            samba,
            directory,
            mdns: Mutex::new(None),
            places,
            views: Mutex::default(),
            applying: Mutex::new(()),
            on_written,
        });
        let weak = Arc::downgrade(&smb);
        smb.core.on(move |event| {
            if matches!(event, Event::SharesChanged | Event::Reset) {
                if let Some(me) = weak.upgrade() {
                    me.apply();
                }
            }
        });
        smb.apply();
        smb
    }

    /// Bring Samba in line with the config: accounts in `/etc/passwd`, the shares that
    /// are online and served over SMB in `smb.conf`, and the audit reader's directory.
    /// Cheap when nothing changed; the monitor calls it every tick.
    pub fn apply(&self) {
        let _one = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let (users, shares) = self
            .core
            .with_config(|c| (c.users.clone(), c.shares.clone()));
        let mut served = Vec::new();
        let mut directory = Directory::default();
        let mut failed = Vec::new();
        for entry in shares.iter().filter(|s| s.smb) {
            let view = self.shares.share(&entry.name);
            let Ok(view) = view else { continue };
            if !view.online {
                continue;
            }
            // Samba serves the share's namespace through its view, so files whose data
            // placement moved read as themselves; `rushesd host` runs no Samba.
            let path = match &self.samba {
                None => PathBuf::from(&view.path),
                Some(_) => match self.view_of(&entry.name, Path::new(&view.path)) {
                    Ok(path) => path,
                    Err(e) => {
                        tracing::error!(share = %entry.name, error = %e, "share not served over SMB: its view cannot be mounted");
                        failed.push(Raise::new(
                            format!("smb-view:{}", entry.name),
                            Severity::Critical,
                            format!("share {} is not served over SMB: {e}", entry.name),
                            "see `rushesctl logs`; NFS still serves it",
                        ));
                        continue;
                    }
                },
            };
            directory.shares.insert(
                entry.name.clone(),
                (entry.name.as_str().into(), path.clone()),
            );
            served.push(SmbShare {
                name: entry.name.clone(),
                path,
                users: entry.users.clone(),
                time_machine: entry.time_machine,
            });
        }
        for u in &users {
            directory.uids.insert(u.name.clone(), u.uid);
        }
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = directory;
        let Some(samba) = &self.samba else { return };
        if let Err(e) = samba.write_accounts(&users) {
            tracing::error!(error = %e, "cannot write the accounts to /etc/passwd");
        }
        self.core.alerts.publish("smb-views", failed);
        match samba.apply(&render(samba, &served)) {
            Ok(true) => tracing::info!(shares = served.len(), "SMB configuration written"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, conf = %samba.conf.display(), "cannot write the SMB configuration")
            }
        }
        // Views of shares Samba no longer serves go once it has been told.
        let gone: Vec<(PathBuf, ViewMount)> = {
            let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
            let keep: Vec<&str> = served.iter().map(|s| s.name.as_str()).collect();
            let names: Vec<String> = views
                .keys()
                .filter(|n| !keep.contains(&n.as_str()))
                .cloned()
                .collect();
            names.iter().filter_map(|n| views.remove(n)).collect()
        };
        for (_, view) in gone {
            view.unmount();
        }
        self.announce(&served);
    }

    /// Share `name`'s view over its folder `root`, mounted when it is not yet.
    fn view_of(&self, name: &str, root: &Path) -> Result<PathBuf, rushes_view::ViewError> {
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((shown, view)) = views.get(name) {
            if shown == root {
                return Ok(view.mountpoint().to_path_buf());
            }
        }
        if let Some((_, old)) = views.remove(name) {
            old.unmount();
        }
        let on_written = self.on_written.clone().map(|tell| {
            let share: Arc<str> = name.into();
            Arc::new(move |path: &str| tell(&share, path)) as rushes_view::OnWritten
        });
        let view = rushes_view::mount(
            name,
            root,
            &Path::new(VIEWS).join(name),
            Arc::clone(&self.places),
            on_written,
        )?;
        let path = view.mountpoint().to_path_buf();
        views.insert(name.to_string(), (root.to_path_buf(), view));
        Ok(path)
    }

    pub fn users(&self) -> Vec<api::User> {
        let users = self.core.with_config(|c| c.users.clone());
        let with_password = self
            .samba
            .as_ref()
            .map(|s| s.with_password())
            .unwrap_or_default();
        users
            .into_iter()
            .map(|u| api::User {
                smb_password: with_password.contains(&u.name),
                role: u.role,
                name: u.name,
                uid: u.uid,
                gid: u.gid,
            })
            .collect()
    }

    pub fn create_user(&self, req: api::CreateUser) -> ApiResult<api::User> {
        check_user_name(&req.name).map_err(|e| ApiErr::new(400, "bad-name", e))?;
        check_password(&req.password).map_err(|e| ApiErr::new(400, "bad-password", e))?;
        // Host mode runs no Samba: its accounts name uids over NFS and log in to the
        // admin plane.
        let samba = self.samba.as_ref();
        let web_password = Some(crate::settings::hash_password(&req.password)?);
        let entry = {
            let users = &self.core.with_config(|c| c.users.clone());
            if users.iter().any(|u| u.name == req.name) {
                return Err(ApiErr::new(
                    409,
                    "exists",
                    format!("there is an account called {} already", req.name),
                )
                .hint("`rushesctl user passwd NAME` changes its password"));
            }
            let uid = match req.uid {
                Some(uid) if uid < FIRST_UID => {
                    return Err(ApiErr::new(
                        400,
                        "bad-uid",
                        format!("uid {uid} is a system account's"),
                    )
                    .hint(format!("use {FIRST_UID} or above")))
                }
                Some(uid) if users.iter().any(|u| u.uid == uid) => {
                    return Err(ApiErr::new(
                        409,
                        "uid-taken",
                        format!("uid {uid} belongs to another account"),
                    ))
                }
                Some(uid) => uid,
                None => (FIRST_UID..)
                    .find(|uid| !users.iter().any(|u| u.uid == *uid))
                    .unwrap_or(FIRST_UID),
            };
            UserEntry {
                name: req.name.clone(),
                uid,
                gid: req.gid.unwrap_or(DEFAULT_GID),
                role: req.role,
                web_password,
            }
        };
        // The account goes into the config first, so every later `apply_smb` (the
        // monitor's too) keeps it in /etc/passwd, where smbpasswd looks for it.
        self.core
            .save_config(|c| c.users.push(entry.clone()))
            .map_err(ApiErr::failed)?;
        self.apply();
        if let Some(samba) = samba {
            if let Err(e) = samba.set_password(&entry.name, &req.password) {
                let _ = self
                    .core
                    .save_config(|c| c.users.retain(|u| u.name != entry.name));
                self.apply();
                return Err(ApiErr::failed(e));
            }
        }
        tracing::info!(user = %entry.name, uid = entry.uid, gid = entry.gid, role = ?entry.role, "account added");
        Ok(api::User {
            name: entry.name,
            uid: entry.uid,
            gid: entry.gid,
            smb_password: samba.is_some(),
            role: entry.role,
        })
    }

    pub fn set_user_password(&self, name: &str, req: api::UserPassword) -> ApiResult<()> {
        check_password(&req.password).map_err(|e| ApiErr::new(400, "bad-password", e))?;
        self.user_entry(name)?;
        if let Some(samba) = &self.samba {
            samba
                .set_password(name, &req.password)
                .map_err(ApiErr::failed)?;
        }
        let hash = crate::settings::hash_password(&req.password)?;
        self.core
            .save_config(|c| {
                if let Some(u) = c.users.iter_mut().find(|u| u.name == name) {
                    u.web_password = Some(hash);
                }
            })
            .map_err(ApiErr::failed)?;
        tracing::info!(user = name, "password changed");
        Ok(())
    }

    /// Give `name` a role on the admin plane, or take it away.
    pub fn set_user_role(&self, name: &str, role: Option<api::Role>) -> ApiResult<api::User> {
        let entry = self.user_entry(name)?;
        if role.is_some() && entry.web_password.is_none() {
            return Err(ApiErr::new(
                409,
                "no-web-password",
                format!("{name}'s password was set before web logins existed, so the box cannot check it"),
            )
            .hint(format!("set it again (`rushesctl user passwd {name}`), then give the role")));
        }
        self.core
            .save_config(|c| {
                if let Some(u) = c.users.iter_mut().find(|u| u.name == name) {
                    u.role = role;
                }
            })
            .map_err(ApiErr::failed)?;
        tracing::info!(user = name, role = ?role, "admin-plane role set");
        self.users()
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| ApiErr::not_found(format!("there is no account {name:?}")))
    }

    /// Forget an account. Its files keep their uid on the pools.
    pub fn delete_user(&self, name: &str) -> ApiResult<()> {
        self.user_entry(name)?;
        if let Some(samba) = &self.samba {
            samba.delete_password(name);
        }
        self.core
            .save_config(|c| {
                c.users.retain(|u| u.name != name);
                for s in &mut c.shares {
                    s.users.retain(|u| u != name);
                }
            })
            .map_err(ApiErr::failed)?;
        self.apply();
        tracing::info!(user = name, "account removed (its files keep their owner)");
        Ok(())
    }

    fn user_entry(&self, name: &str) -> ApiResult<UserEntry> {
        self.core
            .with_config(|c| c.users.iter().find(|u| u.name == name).cloned())
            .ok_or_else(|| {
                ApiErr::not_found(format!("there is no account {name:?}"))
                    .hint("`rushesctl users` lists them")
            })
    }
}

// ---- DNS-SD: how Macs find the box ------------------------------------------------

/// What is announced: (service type, instance, port, TXT records) each.
pub type Announced = Vec<(String, String, u16, Vec<(String, String)>)>;

/// The services to announce for these shares.
pub fn announcements(host: &str, shares: &[SmbShare]) -> Announced {
    let mut out = vec![
        (
            "_smb._tcp.local.".to_string(),
            host.to_string(),
            445,
            vec![],
        ),
        // Finder draws the box with a rack server's icon.
        (
            "_device-info._tcp.local.".to_string(),
            host.to_string(),
            9,
            vec![("model".to_string(), "RackMac".to_string())],
        ),
    ];
    let machines: Vec<&SmbShare> = shares.iter().filter(|s| s.time_machine).collect();
    if !machines.is_empty() {
        let mut txt = vec![("sys".to_string(), "waMa=0,adVF=0x100".to_string())];
        for (i, s) in machines.iter().enumerate() {
            txt.push((format!("dk{i}"), format!("adVN={},adVF=0x82", s.name)));
        }
        out.push(("_adisk._tcp.local.".to_string(), host.to_string(), 9, txt));
    }
    for s in shares {
        out.push((
            "_nfs._tcp.local.".to_string(),
            format!("{} on {host}", s.name),
            2049,
            vec![("path".to_string(), format!("/{}", s.name))],
        ));
    }
    out
}

impl Smb {
    /// Announce SMB, Time Machine and NFS over mDNS when what is served changed. Only the
    /// appliance announces; a development host keeps quiet.
    fn announce(&self, shares: &[SmbShare]) {
        if !self.core.paths.appliance {
            return;
        }
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let wanted = announcements(&host, shares);
        let mut guard = self.mdns.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_some_and(|(_, last)| *last == wanted) {
            return;
        }
        // One responder for the life of rushesd, told only what changed: a service
        // withdrawn and announced again by a second responder could see the first one's
        // goodbye arrive after its own announcement, and listeners drop it.
        let (daemon, last) = match guard.take() {
            Some(running) => running,
            None => match mdns_sd::ServiceDaemon::new() {
                Ok(d) => (d, Vec::new()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start mDNS: Macs will not see the box in Finder");
                    return;
                }
            },
        };
        for (ty, instance, _, _) in last.iter().filter(|a| !wanted.contains(a)) {
            let _ = daemon.unregister(&format!("{instance}.{ty}"));
        }
        let host_name = format!("{host}.local.");
        for (ty, instance, port, txt) in wanted.iter().filter(|a| !last.contains(a)) {
            let props: Vec<(&str, &str)> =
                txt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let info = mdns_sd::ServiceInfo::new(ty, instance, &host_name, "", *port, &props[..])
                .map(|i| i.enable_addr_auto());
            match info.map(|i| daemon.register(i)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(service = %ty, error = %e, "cannot announce over mDNS")
                }
            }
        }
        tracing::info!(services = wanted.len(), "announced over mDNS");
        *guard = Some((daemon, wanted));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn time_machine_shares_are_announced_as_disks() {
        let share = |name: &str, tm| SmbShare {
            name: name.into(),
            path: PathBuf::from("/x"),
            users: vec![],
            time_machine: tm,
        };
        let a = announcements("rushes", &[share("projects", false), share("backup", true)]);
        let find = |ty: &str| a.iter().filter(|s| s.0 == ty).collect::<Vec<_>>();
        assert_eq!(find("_smb._tcp.local.")[0].2, 445);
        let adisk = find("_adisk._tcp.local.");
        assert_eq!(adisk.len(), 1);
        assert!(adisk[0]
            .3
            .contains(&("dk0".to_string(), "adVN=backup,adVF=0x82".to_string())));
        assert_eq!(find("_nfs._tcp.local.").len(), 2);
        let a = announcements("rushes", &[share("projects", false)]);
        assert!(a.iter().all(|s| s.0 != "_adisk._tcp.local."));
    }
}
