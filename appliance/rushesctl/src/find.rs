//! `rushesctl find`: the services appliances announce over mDNS/DNS-SD, heard the way
//! Finder hears them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The service types a Rushes appliance announces.
const SERVICES: [&str; 4] = [
    "_smb._tcp.local.",
    "_adisk._tcp.local.",
    "_nfs._tcp.local.",
    "_device-info._tcp.local.",
];

/// One announced service instance.
#[derive(Debug, serde::Serialize)]
pub struct Found {
    /// `_smb._tcp`, `_adisk._tcp`, …
    pub service: String,
    /// The instance name, e.g. `rushes` or `projects on rushes`.
    pub name: String,
    pub host: String,
    pub addresses: Vec<String>,
    pub port: u16,
    pub txt: BTreeMap<String, String>,
}

/// Listen for `listen` and return every instance resolved, sorted by service and name.
pub fn browse(listen: Duration) -> Result<Vec<Found>, mdns_sd::Error> {
    let daemon = mdns_sd::ServiceDaemon::new()?;
    let receivers = SERVICES
        .iter()
        .map(|ty| daemon.browse(ty))
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = Instant::now() + listen;
    let mut found: BTreeMap<(String, String), Found> = BTreeMap::new();
    while Instant::now() < deadline {
        for events in &receivers {
            while let Ok(event) = events.try_recv() {
                let mdns_sd::ServiceEvent::ServiceResolved(info) = event else {
                    continue;
                };
                let service = info.ty_domain.trim_end_matches(".local.").to_string();
                let name = info
                    .get_fullname()
                    .strip_suffix(&format!(".{}", info.ty_domain))
                    .unwrap_or(info.get_fullname())
                    .to_string();
                let mut addresses: Vec<String> = info
                    .get_addresses()
                    .iter()
                    .map(|ip| ip.to_ip_addr().to_string())
                    .collect();
                addresses.sort();
                let txt = info
                    .get_properties()
                    .iter()
                    .map(|p| (p.key().to_string(), p.val_str().to_string()))
                    .collect();
                found.insert(
                    (service.clone(), name.clone()),
                    Found {
                        service,
                        name,
                        host: info.get_hostname().to_string(),
                        addresses,
                        port: info.get_port(),
                        txt,
                    },
                );
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = daemon.shutdown();
    Ok(found.into_values().collect())
}
