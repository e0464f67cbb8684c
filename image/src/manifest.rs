//! The image's recipe, `image/manifest.toml`: the Debian mirror and suite, the kernel,
//! the packages, and what of them the appliance keeps.

use serde::Deserialize;

/// `image/manifest.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub mirror: String,
    pub security_mirror: String,
    pub suite: String,
    pub components: Vec<String>,
    pub kernel: String,
    pub packages: Vec<String>,
    pub boot_packages: Vec<String>,
    pub firmware_packages: Vec<String>,
    pub firmware_keep: Vec<String>,
    pub modules_keep: Vec<String>,
    pub trim: Vec<String>,
    pub busybox_applets: Vec<String>,
}
