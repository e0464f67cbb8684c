//! The settings on RUSHES-CFG that init applies itself at boot: the host name and each
//! NIC's addressing (DHCP unless an address is given). Everything else is rushesd's.
//!
//! ```toml
//! hostname = "rushes-01"
//! [[network]]
//! interface = "enp1s0"        # or "*" for every wired NIC
//! address = "10.10.0.5/24"    # leave out for DHCP
//! gateway = "10.10.0.1"
//! dns = ["10.10.0.1"]
//! mtu = 9000                  # jumbo frames for the edit network
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::log::Ring;

pub const FILE: &str = "/cfg/rushes.toml";
/// The generation before the last change, kept by whoever writes the file.
pub const PREVIOUS: &str = "/cfg/rushes.toml.prev";

/// What init reads of rushes.toml. The file is rushesd's, which writes many more tables
/// (pools, shares, accounts, placement rules, rate rules, copy targets …) and adds new
/// ones as it grows; init takes its own keys and leaves every other one alone, so that
/// a table it has never heard of (written by a newer rushesd, or kept across a rollback)
/// never costs the box its address and name.
#[derive(Debug, Default, Deserialize)]
pub struct Settings {
    pub hostname: Option<String>,
    #[serde(default, rename = "network")]
    pub networks: Vec<Network>,
    /// IANA zone name; /etc/localtime points at it.
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub interface: String,
    pub address: Option<String>,
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    pub mtu: Option<u32>,
}

impl Settings {
    /// The settings of `nic`: its own entry, else a `*` entry.
    pub fn network(&self, nic: &str) -> Option<&Network> {
        self.networks
            .iter()
            .find(|n| n.interface == nic)
            .or_else(|| self.networks.iter().find(|n| n.interface == "*"))
    }
}

fn parse(path: &Path) -> Result<Option<Settings>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Load the settings. A damaged file falls back to the previous generation, then to the
/// defaults (DHCP everywhere), never to a box that cannot be reached.
pub fn load(ring: &mut Ring) -> Settings {
    match parse(Path::new(FILE)) {
        Ok(Some(s)) => return s,
        Ok(None) => return Settings::default(),
        Err(e) => ring.push(
            "init",
            &format!("{FILE} is damaged ({e}); trying the previous generation"),
        ),
    }
    match parse(Path::new(PREVIOUS)) {
        Ok(Some(s)) => {
            ring.push("init", &format!("using {PREVIOUS}"));
            s
        }
        _ => {
            ring.push(
                "init",
                "no usable settings: DHCP on every NIC, default host name",
            );
            Settings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rushesds_other_tables_never_cost_the_box_its_address() {
        // rushes.toml as rushesd writes it once rules, rate caps and copy targets are
        // set, plus a table no version knows yet.
        let text = r#"schema = 2
hostname = "edit-bay-nas"
timezone = "Europe/London"
ntp = ["pool.ntp.org"]

[[network]]
interface = "*"
address = "10.10.0.5/24"
gateway = "10.10.0.1"
mtu = 9000

[admin]
password = "$argon2id$v=19$..."

[[pool]]
name = "media"

[[share]]
name = "projects"
pool = "media"

[[user]]
name = "editor"

[card]
mode = "off"

[placement]
high = 85

[[placement.rule]]
name = "rushes-fast"

[[rate]]
name = "render"

[[target]]
name = "vault"

[s3_endpoint]
pool = "media"

[[s3_key]]
name = "other-box"

[future_table]
anything = true
"#;
        let s: Settings = toml::from_str(text).unwrap();
        assert_eq!(s.hostname.as_deref(), Some("edit-bay-nas"));
        assert_eq!(s.timezone.as_deref(), Some("Europe/London"));
        let nic = s.network("enp1s0").unwrap();
        assert_eq!(
            (nic.address.as_deref(), nic.gateway.as_deref(), nic.mtu),
            (Some("10.10.0.5/24"), Some("10.10.0.1"), Some(9000))
        );
    }

    #[test]
    fn nic_entry_beats_wildcard() {
        let s: Settings = toml::from_str(
            "hostname = \"nas\"\n[[network]]\ninterface = \"*\"\n[[network]]\ninterface = \"eth1\"\naddress = \"10.0.0.2/24\"\nmtu = 9000\n",
        )
        .unwrap();
        assert_eq!(s.network("eth1").unwrap().mtu, Some(9000));
        assert!(s.network("eth0").unwrap().address.is_none());
        // A NIC entry with a misspelt key is refused (its address would be lost).
        assert!(toml::from_str::<Settings>(
            "[[network]]\ninterface = \"*\"\nadress = \"10.0.0.2/24\"\n"
        )
        .is_err());
        let with_pools = "schema = 2\nhostname = \"nas\"\n[[pool]]\nname = \"media\"\n[[share]]\nname = \"x\"\n[[user]]\nname = \"editor\"\n";
        assert_eq!(
            toml::from_str::<Settings>(with_pools)
                .unwrap()
                .hostname
                .as_deref(),
            Some("nas")
        );
    }
}
