//! The appliance's configuration on RUSHES-CFG (`/cfg/rushes.toml`): pools and shares,
//! beside init's host name and network tables, which are kept as they are.
//!
//! Every change is written to a temporary file, fsync'ed and renamed over the old one,
//! whose last good generation is kept as `rushes.toml.prev`. A file that does not parse
//! falls back to that generation, and the fallback is reported, never hidden.

use std::io::Write;
use std::path::{Path, PathBuf};

use rushes_api::{PoolClass, RaidLevel};
use rushes_nas::ExportRule;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub name: String,
    pub level: RaidLevel,
    pub class: PoolClass,
    /// The md array UUID, as mdadm writes it.
    pub uuid: String,
    /// Serials of the member disks, for the admin's eyes and for spotting a missing one.
    pub members: Vec<String>,
    /// Days between scheduled scrubs; 0 turns them off.
    #[serde(default = "monthly")]
    pub scrub_days: u32,
}

fn monthly() -> u32 {
    30
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareEntry {
    pub name: String,
    pub pool: String,
    #[serde(default = "default_rules", rename = "rule")]
    pub rules: Vec<ExportRule>,
    /// Served over SMB too (default yes).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub smb: bool,
    /// Offered to Macs as a Time Machine destination.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub time_machine: bool,
    /// The accounts that may use the share over SMB; empty means every account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// NFS clients may make device nodes (an unsquashed root only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_devices: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `[[user]]`: an account, the same uid and gid over NFS and SMB. Its SMB password is
/// kept (as Samba's NT hash) in Samba's passdb on RUSHES-CFG, never here.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Its role on the admin plane (web, remote rushesctl); none: no web login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<rushes_api::Role>,
    /// The same password as its SMB one, as an argon2id hash, for web logins once the
    /// account has a role (kept from when the password is set, so a role can be given
    /// later without asking for the password again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_password: Option<String>,
}

fn default_rules() -> Vec<ExportRule> {
    vec![ExportRule::default()]
}

/// `[card]`: how the offload card is run and which bays go through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSettings {
    /// `off`, or `emulated`: the card's engine runs as a host process.
    #[serde(default = "card_off")]
    pub mode: String,
    /// `tcp` or `rdma`.
    #[serde(default = "card_tcp")]
    pub fabric: String,
    #[serde(default, rename = "bay")]
    pub bays: Vec<rushes_api::FabricPath>,
    /// PCI IDs (`vvvv:dddd`) that mean "the offload card is in this box". None are
    /// built in: the K200-LP's IDs are not known to us.
    #[serde(default)]
    pub pci_ids: Vec<String>,
}

fn card_off() -> String {
    "off".into()
}

fn card_tcp() -> String {
    "tcp".into()
}

impl Default for CardSettings {
    fn default() -> Self {
        Self {
            mode: card_off(),
            fabric: card_tcp(),
            bays: Vec::new(),
            pci_ids: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplianceConfig {
    pub pools: Vec<PoolConfig>,
    pub shares: Vec<ShareEntry>,
    pub users: Vec<UserEntry>,
    /// Paths to NVMe-oF subsystems, connected at boot before pools are assembled.
    pub fabrics: Vec<rushes_api::FabricPath>,
    /// Discovery controllers the admin asked before.
    pub discovery: Vec<rushes_api::Discover>,
    /// The offload card: its mode, fabric, and the bays that go through it.
    pub card: CardSettings,
    /// `[placement]`: the placement rules and watermarks, as checked by
    /// `rushes_placement` (kept as a table here, so this file knows nothing of rules).
    pub placement: Option<toml::Table>,
    /// `[[rate]]`: caps and reservations on groups of NFS clients.
    pub rates: Vec<rushes_nas::rates::RateRule>,
    /// Why the `[[rate]]` rules in the file cannot be read, if so; they are kept in
    /// `other` as written, and none is used.
    pub rates_problem: Option<String>,
    /// `[[target]]`: where copies can go (their secrets are kept apart, sealed).
    pub targets: Vec<rushes_api::TargetEntry>,
    /// `[s3_endpoint]` and `[[s3_key]]`: a pool served over S3 for other boxes' copies,
    /// and the keys they sign with (their secrets are kept apart, sealed).
    pub s3_endpoint: Option<rushes_api::S3EndpointEntry>,
    pub s3_keys: Vec<rushes_api::S3KeyEntry>,
    /// Everything else in the file (host name, network): init's, kept unchanged.
    pub other: toml::Table,
}

/// The layout of rushes.toml this rushesd reads and writes, kept in its `schema` key.
/// Version 1 is the layout from before the key was written.
pub const SCHEMA: i64 = 2;

/// Bring a file of an older layout up to [`SCHEMA`], one version at a time; a file of
/// a newer layout (written by a newer release) is refused, not misread.
fn migrate(table: &mut toml::Table) -> Result<(), String> {
    let version = match table.remove("schema") {
        None => 1,
        Some(toml::Value::Integer(n)) => n,
        Some(other) => return Err(format!("schema = {other} is not a version number")),
    };
    if version > SCHEMA {
        return Err(format!(
            "it has layout version {version}, written by a newer Rushes; this one reads up to {SCHEMA}"
        ));
    }
    if version < 1 {
        return Err(format!("layout version {version} never existed"));
    }
    if version < 2 {
        from_1_to_2(table);
    }
    Ok(())
}

/// Version 2 changed nothing but writing the version itself: a version 1 file reads
/// as it is. The next change of layout adds its step beside this one.
fn from_1_to_2(_table: &mut toml::Table) {}

impl ApplianceConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        migrate(&mut table)?;
        let take = |table: &mut toml::Table, key: &str| {
            table
                .remove(key)
                .unwrap_or_else(|| toml::Value::Array(vec![]))
        };
        let pools = take(&mut table, "pool")
            .try_into()
            .map_err(|e: toml::de::Error| format!("[[pool]]: {e}"))?;
        let shares = take(&mut table, "share")
            .try_into()
            .map_err(|e: toml::de::Error| format!("[[share]]: {e}"))?;
        let users = take(&mut table, "user")
            .try_into()
            .map_err(|e: toml::de::Error| format!("[[user]]: {e}"))?;
        let fabrics = take(&mut table, "fabric")
            .try_into()
            .map_err(|e: toml::de::Error| format!("[[fabric]]: {e}"))?;
        let discovery = take(&mut table, "discovery")
            .try_into()
            .map_err(|e: toml::de::Error| format!("[[discovery]]: {e}"))?;
        let card = match table.remove("card") {
            Some(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| format!("[card]: {e}"))?,
            None => CardSettings::default(),
        };
        // A rate rule that does not read is not worth losing the whole file for: it is
        // kept as written, reported, and no rate rule is used.
        let (rates, rates_problem) = match table.remove("rate") {
            None => (Vec::new(), None),
            Some(value) => match value.clone().try_into() {
                Ok(rates) => (rates, None),
                Err(e) => {
                    table.insert("rate".into(), value);
                    (Vec::new(), Some(format!("[[rate]]: {e}")))
                }
            },
        };
        let targets = take(&mut table, "target")
            .try_into()
            .map_err(|e: toml::de::Error| format!("[[target]]: {e}"))?;
        let s3_endpoint = match table.remove("s3_endpoint") {
            Some(v) => Some(
                v.try_into()
                    .map_err(|e: toml::de::Error| format!("[s3_endpoint]: {e}"))?,
            ),
            None => None,
        };
        let s3_keys = take(&mut table, "s3_key")
            .try_into()
            .map_err(|e: toml::de::Error| format!("[[s3_key]]: {e}"))?;
        let placement = match table.remove("placement") {
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => return Err("placement must be a table: [placement]".into()),
            None => None,
        };
        Ok(Self {
            pools,
            shares,
            users,
            fabrics,
            discovery,
            card,
            placement,
            rates,
            rates_problem,
            targets,
            s3_endpoint,
            s3_keys,
            other: table,
        })
    }

    pub fn to_toml(&self) -> Result<String, String> {
        // The version first, where an admin reading the file sees it.
        let mut table = toml::Table::new();
        table.insert("schema".into(), toml::Value::Integer(SCHEMA));
        table.extend(self.other.clone());
        if !self.pools.is_empty() {
            table.insert("pool".into(), value(&self.pools)?);
        }
        if !self.shares.is_empty() {
            table.insert("share".into(), value(&self.shares)?);
        }
        if !self.users.is_empty() {
            table.insert("user".into(), value(&self.users)?);
        }
        if !self.fabrics.is_empty() {
            table.insert("fabric".into(), value(&self.fabrics)?);
        }
        if !self.discovery.is_empty() {
            table.insert("discovery".into(), value(&self.discovery)?);
        }
        if self.card != CardSettings::default() {
            table.insert("card".into(), value(&self.card)?);
        }
        if let Some(placement) = &self.placement {
            table.insert("placement".into(), toml::Value::Table(placement.clone()));
        }
        if !self.rates.is_empty() {
            table.insert("rate".into(), value(&self.rates)?);
        }
        if !self.targets.is_empty() {
            table.insert("target".into(), value(&self.targets)?);
        }
        if let Some(endpoint) = &self.s3_endpoint {
            table.insert("s3_endpoint".into(), value(endpoint)?);
        }
        if !self.s3_keys.is_empty() {
            table.insert("s3_key".into(), value(&self.s3_keys)?);
        }
        toml::to_string(&table).map_err(|e| e.to_string())
    }

    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }
}

fn value<T: Serialize>(v: &T) -> Result<toml::Value, String> {
    toml::Value::try_from(v).map_err(|e| e.to_string())
}

/// The config file and its previous generation.
#[derive(Debug, Clone)]
pub struct ConfigStore {
    pub path: PathBuf,
}

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    pub config: ApplianceConfig,
    /// Set when the file was damaged and something older is in use.
    pub problem: Option<String>,
}

fn read(path: &Path) -> Result<Option<ApplianceConfig>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => ApplianceConfig::parse(&text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

impl ConfigStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn previous(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".prev");
        p.into()
    }

    pub fn load(&self) -> Loaded {
        let damage = match read(&self.path) {
            Ok(Some(config)) => {
                return Loaded {
                    config,
                    problem: None,
                }
            }
            Ok(None) => {
                return Loaded {
                    config: ApplianceConfig::default(),
                    problem: None,
                }
            }
            Err(e) => e,
        };
        let prev = self.previous();
        match read(&prev) {
            Ok(Some(config)) => Loaded {
                config,
                problem: Some(format!(
                    "{} is damaged ({damage}); running from the previous generation {}",
                    self.path.display(),
                    prev.display()
                )),
            },
            _ => Loaded {
                config: ApplianceConfig::default(),
                problem: Some(format!(
                    "{} is damaged ({damage}) and no previous generation is usable; no pools or shares are configured",
                    self.path.display()
                )),
            },
        }
    }

    /// Write `config` atomically; a current file that parses becomes the previous
    /// generation (a damaged one is left aside as `.bad`, so it never replaces a good
    /// `.prev`).
    pub fn save(&self, config: &ApplianceConfig) -> std::io::Result<()> {
        let text = config
            .to_toml()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("toml.new");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        match read(&self.path) {
            Ok(Some(_)) => {
                let prev = self.previous();
                let prev_tmp = self.path.with_extension("toml.prev.new");
                std::fs::copy(&self.path, &prev_tmp)?;
                std::fs::File::open(&prev_tmp)?.sync_all()?;
                std::fs::rename(&prev_tmp, prev)?;
            }
            Ok(None) => {}
            Err(_) => {
                std::fs::rename(&self.path, self.path.with_extension("toml.bad"))?;
            }
        }
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ApplianceConfig {
        let mut c = ApplianceConfig::parse(
            "hostname = \"bay-nas\"\n[[network]]\ninterface = \"*\"\nmtu = 9000\n",
        )
        .unwrap();
        c.pools.push(PoolConfig {
            name: "media".into(),
            level: RaidLevel::Raid5,
            class: PoolClass::Fast,
            uuid: "a:b:c:d".into(),
            members: vec!["S1".into(), "S2".into(), "S3".into()],
            scrub_days: 30,
        });
        c.shares.push(ShareEntry {
            name: "projects".into(),
            pool: "media".into(),
            rules: default_rules(),
            smb: true,
            time_machine: true,
            users: vec!["editor".into()],
            allow_devices: false,
        });
        c.users.push(UserEntry {
            name: "editor".into(),
            uid: 1000,
            gid: 100,
            ..Default::default()
        });
        c
    }

    #[test]
    fn init_settings_survive_a_round_trip() {
        let c = sample();
        let text = c.to_toml().unwrap();
        let back = ApplianceConfig::parse(&text).unwrap();
        assert_eq!(back, c);
        assert!(text.contains("hostname = \"bay-nas\""), "{text}");
        assert!(text.contains("mtu = 9000"), "{text}");
    }

    #[test]
    fn saves_keep_the_previous_generation_and_damage_falls_back_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(dir.path().join("rushes.toml"));
        assert_eq!(store.load().config, ApplianceConfig::default());
        let first = sample();
        store.save(&first).unwrap();
        let mut second = first.clone();
        second.shares.clear();
        store.save(&second).unwrap();
        assert_eq!(store.load().config, second);
        assert_eq!(read(&store.previous()).unwrap().unwrap(), first);

        // A torn or hand-broken file: the previous generation is used, and said so.
        std::fs::write(&store.path, "[[pool]]\nname = \"media\"\nlevel = ").unwrap();
        let loaded = store.load();
        assert_eq!(loaded.config, first);
        assert!(loaded.problem.unwrap().contains("previous generation"));

        // Saving over the damaged file keeps the good previous generation.
        store.save(&second).unwrap();
        assert_eq!(read(&store.previous()).unwrap().unwrap(), first);
        assert!(dir.path().join("rushes.toml.bad").exists());
    }

    #[test]
    fn a_file_of_the_previous_layout_loads_and_is_saved_in_this_one() {
        // A rushes.toml as version 1 wrote it: no schema key.
        let v1 = "hostname = \"nas\"\n\n[[pool]]\nname = \"media\"\nlevel = \"raid5\"\nclass = \"capacity\"\nuuid = \"u\"\nmembers = [\"S1\", \"S2\", \"S3\"]\nscrub_days = 30\n\n[[share]]\nname = \"projects\"\npool = \"media\"\n";
        let config = ApplianceConfig::parse(v1).unwrap();
        assert_eq!(config.pools[0].name, "media");
        assert_eq!(config.shares[0].pool, "media");
        assert_eq!(
            config.other.get("hostname").and_then(|v| v.as_str()),
            Some("nas")
        );
        assert!(!config.other.contains_key("schema"));
        let saved = config.to_toml().unwrap();
        assert!(saved.starts_with("schema = 2\n"), "{saved}");
        assert_eq!(ApplianceConfig::parse(&saved).unwrap(), config);
    }

    #[test]
    fn a_file_of_a_newer_layout_is_refused_and_the_previous_generation_used() {
        let err = ApplianceConfig::parse("schema = 3\nhostname = \"nas\"\n").unwrap_err();
        assert!(err.contains("newer"), "{err}");
        assert!(ApplianceConfig::parse("schema = \"two\"\n").is_err());
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(dir.path().join("rushes.toml"));
        store.save(&sample()).unwrap();
        store.save(&sample()).unwrap();
        std::fs::write(&store.path, "schema = 3\n").unwrap();
        let loaded = store.load();
        assert_eq!(loaded.config, sample());
        assert!(loaded.problem.unwrap().contains("newer"));
    }

    #[test]
    fn unknown_pool_fields_are_refused() {
        let e = ApplianceConfig::parse(
            "[[pool]]\nname = \"m\"\nlevel = \"raid5\"\nclass = \"fast\"\nuuid = \"x\"\nmembers = []\ncolour = 1\n",
        )
        .unwrap_err();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn rate_rules_round_trip_and_an_unreadable_one_is_kept_as_written() {
        let text = "[[rate]]\nname = \"render\"\nclients = [\"10.0.20.0/24\"]\ncap_mb_s = 1000\n";
        let c = ApplianceConfig::parse(text).unwrap();
        assert_eq!(c.rates.len(), 1);
        assert_eq!(c.rates[0].cap_mb_s, Some(1000));
        assert_eq!(ApplianceConfig::parse(&c.to_toml().unwrap()).unwrap(), c);

        // A typo in a rule costs the rules, not the pools and shares beside them.
        let typo = format!("{text}cap_mbs = 5\n[[share]]\nname = \"p\"\npool = \"m\"\n");
        let c = ApplianceConfig::parse(&typo).unwrap();
        assert!(c.rates.is_empty());
        assert_eq!(c.shares.len(), 1);
        assert!(
            c.rates_problem
                .as_deref()
                .is_some_and(|p| p.contains("cap_mbs")),
            "{:?}",
            c.rates_problem
        );
        assert!(c.to_toml().unwrap().contains("cap_mbs = 5"));
    }
}
