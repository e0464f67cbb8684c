//! Shares and their export rules: which clients may reach a share, and as whom.
//!
//! The same model is used by host mode (`rushesd host --config`) and, later, by the
//! appliance's configuration on `RUSHES-CFG`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A host-mode configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address for NFS, MOUNT and portmap on one TCP port (default 127.0.0.1:2049).
    pub listen: Option<SocketAddr>,
    /// Where the server keeps its file-handle key (default /var/lib/rushes).
    pub state_dir: Option<PathBuf>,
    /// The shares to serve.
    #[serde(default, rename = "share")]
    pub shares: Vec<ShareConfig>,
    /// Rate caps and reservations for groups of clients (`[[rate]]`).
    #[serde(default, rename = "rate")]
    pub caps: Vec<crate::rates::RateRule>,
}

/// One exported directory.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShareConfig {
    /// Export name: clients mount `/NAME`.
    pub name: String,
    /// The directory served.
    pub path: PathBuf,
    /// Client rules, first match wins. A client matching no rule is refused.
    #[serde(default = "default_rules", rename = "rule")]
    pub rules: Vec<ExportRule>,
    /// Whether clients may make character and block device nodes (as an unsquashed
    /// root only). Off by default: a media share has no use for them.
    #[serde(default)]
    pub allow_devices: bool,
}

/// Export rules are part of the management API's vocabulary, so the config file, the
/// API and the NFS service share one definition.
pub use rushes_api::{Access, ExportRule};

fn default_rules() -> Vec<ExportRule> {
    vec![ExportRule::default()]
}

/// The identity an operation runs as, after squashing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub gids: Vec<u32>,
}

impl Caller {
    pub const ROOT: Caller = Caller {
        uid: 0,
        gid: 0,
        gids: Vec::new(),
    };

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}

/// The uid (-2) that Windows' Client for NFS sends for an unmapped user.
pub const UNMAPPED: u32 = u32::MAX - 1;

/// How a rule maps the identity a client presents.
pub trait MapCaller {
    /// The identity a caller gets under this rule. `None` means AUTH_NONE (anonymous).
    fn map_caller(&self, presented: Option<(u32, u32, &[u32])>) -> Caller;
}

impl MapCaller for ExportRule {
    fn map_caller(&self, presented: Option<(u32, u32, &[u32])>) -> Caller {
        let anonymous = Caller {
            uid: self.anonuid,
            gid: self.anongid,
            gids: Vec::new(),
        };
        let Some((uid, gid, gids)) = presented else {
            return anonymous;
        };
        // Windows' Client for NFS sends uid -2 for a user it has no mapping for; that
        // user gets the rule's anonymous identity, as over AUTH_NONE.
        if self.all_squash || uid == UNMAPPED {
            return anonymous;
        }
        // -1 is no id: to setfsuid/setfsgid it means "leave it as it is", so a caller
        // presenting it would keep whatever the thread had (root's group, say). It gets
        // the anonymous id instead, as knfsd gives it, and drops out of the group list.
        const NO_ID: u32 = u32::MAX;
        if uid == NO_ID {
            return anonymous;
        }
        let gid = if gid == NO_ID { self.anongid } else { gid };
        let gids = gids.iter().copied().filter(|&g| g != NO_ID);
        if !self.root_squash {
            return Caller {
                uid,
                gid,
                gids: gids.collect(),
            };
        }
        let squash_gid = |g: u32| if g == 0 { self.anongid } else { g };
        Caller {
            uid: if uid == 0 { self.anonuid } else { uid },
            gid: squash_gid(gid),
            gids: gids.map(squash_gid).collect(),
        }
    }
}

/// The first rule of `rules` that covers `client`.
pub fn rule_for(rules: &[ExportRule], client: IpAddr) -> Option<&ExportRule> {
    rules.iter().find(|r| r.matches(client))
}

/// Why a share definition is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("share name {0:?} is not usable: use 1-64 letters, digits, '.', '_' or '-', not starting with '.'")]
    BadName(String),
    #[error("two shares are named {0:?}: share names must be unique")]
    DuplicateName(String),
    #[error("share {name:?} has no export rules, so no client could reach it: add at least one [[share.rule]]")]
    NoRules { name: String },
}

/// Check the names and rules of a set of shares.
pub fn validate(shares: &[ShareConfig]) -> Result<(), ShareError> {
    let mut seen = std::collections::HashSet::new();
    for share in shares {
        let name = &share.name;
        let ok_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with('.') {
            return Err(ShareError::BadName(name.clone()));
        }
        if !seen.insert(name.as_str()) {
            return Err(ShareError::DuplicateName(name.clone()));
        }
        if share.rules.is_empty() {
            return Err(ShareError::NoRules { name: name.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn config_defaults_are_rw_root_squash_everyone() {
        let cfg: ServerConfig = toml::from_str(
            r#"
            [[share]]
            name = "rushes"
            path = "/srv/rushes"
            "#,
        )
        .unwrap();
        let rule = &cfg.shares[0].rules[0];
        assert!(rule.root_squash && !rule.all_squash && !rule.read_only());
        assert!(rule.matches(ip("192.0.2.7")) && rule.matches(ip("2001:db8::1")));
    }

    #[test]
    fn first_matching_rule_wins_and_mapped_v4_matches() {
        let cfg: ServerConfig = toml::from_str(
            r#"
            [[share]]
            name = "grade"
            path = "/srv/grade"
            [[share.rule]]
            clients = ["10.1.0.0/16"]
            access = "rw"
            root_squash = false
            [[share.rule]]
            clients = ["10.0.0.0/8"]
            access = "ro"
            "#,
        )
        .unwrap();
        let rules = &cfg.shares[0].rules;
        assert!(!rule_for(rules, ip("10.1.2.3")).unwrap().read_only());
        assert!(rule_for(rules, ip("::ffff:10.9.9.9")).unwrap().read_only());
        assert!(rule_for(rules, ip("192.168.1.1")).is_none());
    }

    #[test]
    fn squashing() {
        let rule = ExportRule::default();
        let root = rule.map_caller(Some((0, 0, &[0, 5])));
        assert_eq!(
            (root.uid, root.gid, root.gids),
            (65534, 65534, vec![65534, 5])
        );
        let user = rule.map_caller(Some((1000, 100, &[])));
        assert_eq!((user.uid, user.gid), (1000, 100));
        let all = ExportRule {
            all_squash: true,
            anonuid: 2000,
            anongid: 2001,
            ..ExportRule::default()
        };
        assert_eq!(all.map_caller(Some((1000, 100, &[]))).uid, 2000);
        assert_eq!(rule.map_caller(None).uid, 65534);
        let anon = ExportRule {
            anonuid: 3000,
            anongid: 3001,
            root_squash: false,
            ..ExportRule::default()
        };
        let windows = anon.map_caller(Some((UNMAPPED, UNMAPPED, &[])));
        assert_eq!((windows.uid, windows.gid), (3000, 3001));
        assert_eq!(anon.map_caller(None).gid, 3001);
        // -1 would leave the thread's id as it was (root's group after root's work).
        for rule in [&rule, &anon] {
            let none = rule.map_caller(Some((1000, u32::MAX, &[u32::MAX, 7])));
            assert_eq!((none.gid, none.gids), (rule.anongid, vec![7]));
            assert_eq!(rule.map_caller(Some((u32::MAX, 5, &[]))).uid, rule.anonuid);
        }
    }

    #[test]
    fn bad_names_and_unknown_keys_are_refused() {
        let share = |name: &str| ShareConfig {
            name: name.into(),
            path: "/x".into(),
            rules: default_rules(),
            allow_devices: false,
        };
        assert!(validate(&[share("ok-name_1.2")]).is_ok());
        for bad in ["", "..", ".hidden", "a/b", "x y"] {
            assert!(validate(&[share(bad)]).is_err(), "{bad:?} accepted");
        }
        assert!(validate(&[share("a"), share("a")]).is_err());
        let typo =
            toml::from_str::<ServerConfig>("[[share]]\nname='a'\npath='/x'\nroot_sqash=true");
        assert!(typo.is_err());
    }
}
