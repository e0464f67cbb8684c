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

use std::net::IpAddr;

use serde::Deserialize;

pub const FILE: &str = "/cfg/rushes.toml";
/// The generation before the last change, kept by whoever writes the file.
pub const PREVIOUS: &str = "/cfg/rushes.toml.prev";

/// The MTUs init sets: IPv4's minimum up to the largest jumbo frame common NICs take.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=9216;

/// The nameservers the C library reads from resolv.conf; more would be ignored.
pub const MAX_DNS: usize = 3;

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

/// How init brings one NIC up, from its checked settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicPlan {
    /// None: the NIC keeps the MTU its driver gave it.
    pub mtu: Option<u32>,
    pub addressing: Addressing,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Addressing {
    #[default]
    Dhcp,
    Static {
        address: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
        dns: Vec<IpAddr>,
    },
}

impl Addressing {
    /// The address as `ip addr` takes it: `10.10.0.5/24`.
    pub fn cidr(&self) -> Option<String> {
        match self {
            Addressing::Dhcp => None,
            Addressing::Static {
                address, prefix, ..
            } => Some(format!("{address}/{prefix}")),
        }
    }
}

impl Settings {
    /// Parse rushes.toml's text for init's keys.
    pub fn parse(text: &str) -> Result<Settings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The settings of `nic`: its own entry, else a `*` entry.
    pub fn network(&self, nic: &str) -> Option<&Network> {
        self.networks
            .iter()
            .find(|n| n.interface == nic)
            .or_else(|| self.networks.iter().find(|n| n.interface == "*"))
    }

    /// The host name to set, or why the one given cannot be.
    pub fn checked_hostname(&self) -> Option<Result<&str, String>> {
        let name = self.hostname.as_deref()?;
        let valid = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with(['-', '.'])
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        Some(if valid {
            Ok(name)
        } else {
            Err(format!(
                "host name {name:?} is not valid (letters, digits, '-' and '.', at most 63): keeping the default"
            ))
        })
    }

    /// The time zone's name if it can only name a file under /usr/share/zoneinfo.
    pub fn checked_timezone(&self) -> Option<Result<&str, String>> {
        let zone = self.timezone.as_deref()?;
        let plain = !zone.is_empty()
            && zone.len() <= 64
            && zone.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-_".contains(&b))
            });
        Some(if plain {
            Ok(zone)
        } else {
            Err(format!(
                "time zone {zone:?} is not a zone name: keeping UTC"
            ))
        })
    }
}

impl Network {
    /// How to bring the NIC up, and what in its settings had to be passed over. A bad
    /// address never leaves the box unreachable: it falls back to DHCP, and a bad MTU to
    /// the driver's.
    pub fn plan(&self) -> (NicPlan, Vec<String>) {
        let mut problems = Vec::new();
        let mtu = match self.mtu {
            Some(mtu) if MTU_RANGE.contains(&mtu) => Some(mtu),
            Some(mtu) => {
                problems.push(format!(
                    "MTU {mtu} is outside {}..={}: keeping the NIC's own",
                    MTU_RANGE.start(),
                    MTU_RANGE.end()
                ));
                None
            }
            None => None,
        };
        let addressing = match self.address.as_deref() {
            None => Addressing::Dhcp,
            Some(text) => match self.static_addressing(text, &mut problems) {
                Ok(a) => a,
                Err(e) => {
                    problems.push(format!("{e}: using DHCP"));
                    Addressing::Dhcp
                }
            },
        };
        (NicPlan { mtu, addressing }, problems)
    }

    /// The static addressing of `text`; a gateway or nameserver that is no address is
    /// passed over (the box stays reachable on its own subnet), an address that is none
    /// fails the whole.
    fn static_addressing(
        &self,
        text: &str,
        problems: &mut Vec<String>,
    ) -> Result<Addressing, String> {
        let (ip, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("address {text:?} has no prefix length (10.10.0.5/24)"))?;
        let address: IpAddr = ip
            .parse()
            .map_err(|_| format!("address {text:?} is not an IP address"))?;
        let longest = if address.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= longest)
            .ok_or_else(|| format!("address {text:?} has a prefix length outside 0..={longest}"))?;
        let gateway = self.gateway.as_deref().and_then(|g| {
            let parsed = g
                .parse::<IpAddr>()
                .ok()
                .filter(|ip| ip.is_ipv4() == address.is_ipv4());
            if parsed.is_none() {
                problems.push(format!(
                    "gateway {g:?} is not an address of {text}'s family: no default route"
                ));
            }
            parsed
        });
        let mut dns = Vec::new();
        for d in &self.dns {
            match d.parse::<IpAddr>() {
                Ok(_) if dns.len() == MAX_DNS => {
                    problems.push(format!(
                        "nameserver {d} passed over: at most {MAX_DNS} are used"
                    ));
                }
                Ok(ip) => dns.push(ip),
                Err(_) => problems.push(format!(
                    "nameserver {d:?} is not an IP address: passed over"
                )),
            }
        }
        Ok(Addressing::Static {
            address,
            prefix,
            gateway,
            dns,
        })
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
        let s: Settings = Settings::parse(text).unwrap();
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
        let s = Settings::parse(
            "hostname = \"nas\"\n[[network]]\ninterface = \"*\"\n[[network]]\ninterface = \"eth1\"\naddress = \"10.0.0.2/24\"\nmtu = 9000\n",
        )
        .unwrap();
        assert_eq!(s.network("eth1").unwrap().mtu, Some(9000));
        assert!(s.network("eth0").unwrap().address.is_none());
        // A NIC entry with a misspelt key is refused (its address would be lost).
        assert!(
            Settings::parse("[[network]]\ninterface = \"*\"\nadress = \"10.0.0.2/24\"\n").is_err()
        );
        let with_pools = "schema = 2\nhostname = \"nas\"\n[[pool]]\nname = \"media\"\n[[share]]\nname = \"x\"\n[[user]]\nname = \"editor\"\n";
        assert_eq!(
            Settings::parse(with_pools).unwrap().hostname.as_deref(),
            Some("nas")
        );
    }

    fn plan_of(toml_text: &str) -> (NicPlan, Vec<String>) {
        let s = Settings::parse(toml_text).unwrap();
        s.network("eth0").unwrap().plan()
    }

    #[test]
    fn a_static_address_is_checked_before_ip_sees_it() {
        let (plan, problems) = plan_of(
            "[[network]]\ninterface = \"*\"\naddress = \"10.10.0.5/24\"\ngateway = \"10.10.0.1\"\ndns = [\"10.10.0.1\", \"2001:db8::53\"]\nmtu = 9000\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(plan.mtu, Some(9000));
        assert_eq!(plan.addressing.cidr().as_deref(), Some("10.10.0.5/24"));
        let (plan, problems) =
            plan_of("[[network]]\ninterface = \"eth0\"\naddress = \"2001:db8::5/64\"\ngateway = \"2001:db8::1\"\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(plan.addressing.cidr().as_deref(), Some("2001:db8::5/64"));

        // No address at all, or an option for `ip`: DHCP, and the reason.
        for bad in [
            "10.10.0.5",
            "-force/24",
            "10.10.0.300/24",
            "10.10.0.5/33",
            "dev/24",
            "",
        ] {
            let (plan, problems) = plan_of(&format!(
                "[[network]]\ninterface = \"eth0\"\naddress = \"{bad}\"\n"
            ));
            assert_eq!(plan.addressing, Addressing::Dhcp, "{bad}");
            assert!(problems[0].ends_with("using DHCP"), "{bad}: {problems:?}");
        }
    }

    #[test]
    fn a_bad_gateway_nameserver_or_mtu_is_passed_over_and_the_address_kept() {
        let (plan, problems) = plan_of(
            "[[network]]\ninterface = \"eth0\"\naddress = \"10.0.0.2/24\"\ngateway = \"2001:db8::1\"\ndns = [\"10.0.0.1\\nsearch evil.example\", \"1.1.1.1\", \"8.8.8.8\", \"9.9.9.9\", \"1.0.0.1\"]\nmtu = 100000\n",
        );
        let Addressing::Static {
            gateway, ref dns, ..
        } = plan.addressing
        else {
            panic!("the address is lost: {plan:?}");
        };
        assert_eq!(gateway, None);
        // resolv.conf gets no line of the file's choosing, and three servers at most.
        assert_eq!(
            dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["1.1.1.1", "8.8.8.8", "9.9.9.9"]
        );
        assert_eq!(plan.mtu, None);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("MTU 100000")));
    }

    #[test]
    fn host_names_and_time_zones_name_nothing_else() {
        let check = |name: &str| {
            Settings {
                hostname: Some(name.into()),
                ..Settings::default()
            }
            .checked_hostname()
            .unwrap()
            .is_ok()
        };
        assert!(check("edit-bay-nas") && check("nas01.post.example"));
        assert!(!check("") && !check("-n") && !check("two words") && !check(&"a".repeat(64)));
        let zone = |z: &str| {
            Settings {
                timezone: Some(z.into()),
                ..Settings::default()
            }
            .checked_timezone()
            .unwrap()
            .is_ok()
        };
        assert!(
            zone("Europe/London") && zone("America/Argentina/Buenos_Aires") && zone("Etc/GMT+5")
        );
        assert!(
            !zone("../../etc/shadow")
                && !zone("/etc/passwd")
                && !zone("Europe//London")
                && !zone("")
        );
    }
}
