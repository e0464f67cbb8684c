//! What each service may do once started: the account it runs as, the capabilities it
//! and everything it runs can never hold, and no gaining of privileges through exec
//! (`no_new_privs`: a set-user-ID program or file capabilities give nothing).

use rustix::thread::{
    remove_capability_from_bounding_set, set_no_new_privs, set_thread_gid, set_thread_groups,
    set_thread_uid, CapabilitySet,
};

/// Capabilities no service of the appliance uses. Only init reboots and powers off; only
/// chronyd sets the clock; nothing traces other processes, keeps process accounting,
/// loads BPF programs or reads performance counters, runs a MAC policy or the audit
/// subsystem, sets wake alarms or blocks suspend, restores checkpoints, marks files
/// immutable, or configures terminals. Removed from the bounding set, they cannot come
/// back, whatever the service runs.
pub const NEVER: CapabilitySet = CapabilitySet::SYS_BOOT
    .union(CapabilitySet::SYS_TIME)
    .union(CapabilitySet::SYS_PTRACE)
    .union(CapabilitySet::SYS_PACCT)
    .union(CapabilitySet::SYS_TTY_CONFIG)
    .union(CapabilitySet::BPF)
    .union(CapabilitySet::PERFMON)
    .union(CapabilitySet::MAC_OVERRIDE)
    .union(CapabilitySet::MAC_ADMIN)
    .union(CapabilitySet::AUDIT_CONTROL)
    .union(CapabilitySet::AUDIT_READ)
    .union(CapabilitySet::AUDIT_WRITE)
    .union(CapabilitySet::WAKE_ALARM)
    .union(CapabilitySet::BLOCK_SUSPEND)
    .union(CapabilitySet::CHECKPOINT_RESTORE)
    .union(CapabilitySet::LINUX_IMMUTABLE);

/// How far a service is confined.
#[derive(Debug, Clone, Copy)]
pub enum Confinement {
    /// Nothing taken away: the maintenance shell, which is for repairing the box.
    Unconfined,
    /// Root (the service mounts, assembles arrays, serves files as their owners), without
    /// the capabilities in [`NEVER`] other than `keep`, and with `no_new_privs`.
    Root { keep: CapabilitySet },
    /// This account of /etc/passwd with its group alone, no capabilities at all (the
    /// bounding set emptied too) and `no_new_privs`.
    User(&'static str),
}

/// What the child applies before exec, worked out before the fork (the child must not
/// allocate or read files).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Capabilities to remove from the bounding set.
    drop: CapabilitySet,
    no_new_privs: bool,
    /// (uid, gid) to become.
    ids: Option<(u32, u32)>,
}

impl Confinement {
    /// The plan for this confinement, reading /etc/passwd for an account; an account that
    /// is not there is an error (the service is not started rather than run as root).
    pub fn plan(self) -> Result<Plan, String> {
        self.plan_with(&std::fs::read_to_string("/etc/passwd").unwrap_or_default())
    }

    fn plan_with(self, passwd: &str) -> Result<Plan, String> {
        Ok(match self {
            Confinement::Unconfined => Plan {
                drop: CapabilitySet::empty(),
                no_new_privs: false,
                ids: None,
            },
            Confinement::Root { keep } => Plan {
                drop: NEVER.difference(keep),
                no_new_privs: true,
                ids: None,
            },
            Confinement::User(name) => Plan {
                drop: CapabilitySet::all(),
                no_new_privs: true,
                ids: Some(account(passwd, name).ok_or_else(|| {
                    format!("there is no account {name:?} in /etc/passwd to run it as")
                })?),
            },
        })
    }
}

impl Plan {
    /// Apply in the forked child, before exec: only system calls, no allocation.
    pub fn apply(&self) -> std::io::Result<()> {
        for cap in self.drop.iter() {
            match remove_capability_from_bounding_set(cap) {
                // A capability this kernel does not know is one nobody can hold.
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.no_new_privs {
            set_no_new_privs(true)?;
        }
        if let Some((uid, gid)) = self.ids {
            // SAFETY: none needed; these are the raw system calls on the only thread of
            // the forked child, so they change the whole process.
            set_thread_groups(&[])?;
            set_thread_gid(rustix::process::Gid::from_raw(gid))?;
            set_thread_uid(rustix::process::Uid::from_raw(uid))?;
        }
        Ok(())
    }
}

/// (uid, gid) of account `name` in passwd(5) text.
fn account(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        rushes-console:x:120:120:the console:/nonexistent:/usr/sbin/nologin\n";

    #[test]
    fn an_account_runs_with_its_ids_and_nothing_else() {
        let plan = Confinement::User("rushes-console")
            .plan_with(PASSWD)
            .unwrap();
        assert_eq!(plan.ids, Some((120, 120)));
        assert!(plan.no_new_privs);
        assert_eq!(plan.drop, CapabilitySet::all());
    }

    #[test]
    fn a_missing_account_is_refused_not_run_as_root() {
        let err = Confinement::User("nobody-here")
            .plan_with(PASSWD)
            .unwrap_err();
        assert!(err.contains("nobody-here"), "{err}");
    }

    #[test]
    fn root_services_lose_what_none_needs_but_what_they_keep() {
        let plan = Confinement::Root {
            keep: CapabilitySet::SYS_TIME,
        }
        .plan_with(PASSWD)
        .unwrap();
        assert!(plan.drop.contains(CapabilitySet::SYS_BOOT));
        assert!(plan.drop.contains(CapabilitySet::SYS_PTRACE));
        assert!(!plan.drop.contains(CapabilitySet::SYS_TIME));
        // What serving files and pools needs stays.
        for needed in [
            CapabilitySet::SYS_ADMIN,
            CapabilitySet::SYS_MODULE,
            CapabilitySet::MKNOD,
            CapabilitySet::SETUID,
            CapabilitySet::DAC_OVERRIDE,
            CapabilitySet::NET_BIND_SERVICE,
        ] {
            assert!(!plan.drop.contains(needed), "{needed:?}");
        }
        assert!(plan.no_new_privs && plan.ids.is_none());
        let open = Confinement::Unconfined.plan_with(PASSWD).unwrap();
        assert!(open.drop.is_empty() && !open.no_new_privs);
    }
}
