//! The admin plane's vocabulary: roles, web sessions, API tokens and the box's HTTPS
//! certificate.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a login or a token may do. Each role can do everything the ones before it can.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Dashboards, activity, search, jobs and alerts: looks, changes nothing.
    Viewer,
    /// A viewer who also runs work: jobs, recalls, copies, placement runs, scans,
    /// scrubs, dismissing alerts. No configuration.
    Operator,
    /// Everything, configuration included.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "{other:?} is not a role: say viewer, operator or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A web login: `admin` with the admin password, or an account that has a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    pub user: String,
    pub password: String,
}

/// Who is logged in, and the token every state-changing request of this session must
/// carry in its `X-CSRF-Token` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionInfo {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    /// Seconds of inactivity after which the session ends.
    pub idle_timeout_s: u64,
}

/// Make an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for: `grading-suite`, `backup-script`.
    pub name: String,
    pub role: Role,
    /// How long it lasts: `30d`, `12h`, `1y`. 90 days unless given.
    #[serde(default)]
    pub expires: Option<String>,
}

/// An API token as listed: never the token itself, which is shown once when made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Token {
    pub name: String,
    pub role: Role,
    /// Seconds since the epoch.
    pub created: u64,
    pub expires: u64,
    /// When it was last used (seconds since the epoch), if ever.
    #[serde(default)]
    pub last_used: Option<u64>,
    /// Who made it.
    pub made_by: String,
}

/// A token just made: `secret` is shown this once and kept only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreatedToken {
    pub token: Token,
    pub secret: String,
}

/// The HTTPS side of the box: where it listens and the certificate it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WebInfo {
    /// `0.0.0.0:443`; `null` when the box serves no HTTPS.
    pub listen: Option<String>,
    pub certificate: Option<CertificateInfo>,
}

/// A certificate as an admin checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateInfo {
    /// SHA-256 of the certificate (DER), as `AB:CD:…`: what a browser and `rushesctl
    /// --host` show on first use.
    pub fingerprint: String,
    pub subject: String,
    pub issuer: String,
    /// Seconds since the epoch.
    pub not_after: u64,
    /// Made by the box at its first start (not the facility's own).
    pub self_signed: bool,
}

/// The facility's own certificate: the chain and its private key, as PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
}

/// An account's role on the admin plane; `null` takes its web login away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Option<Role>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_from_least_to_most() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert!("root".parse::<Role>().unwrap_err().contains("viewer"));
        assert_eq!(
            serde_json::to_string(&Role::Admin).unwrap(),
            "\"admin\"".to_string()
        );
    }
}
