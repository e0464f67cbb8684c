//! The image's recipe, `image/manifest.toml`: the Debian mirror and suite, the kernel,
//! the packages, and what of them the appliance keeps.

use std::collections::BTreeMap;

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
    /// Drivers the initramfs carries to reach the stick and mount the root image; none
    /// means an initramfs with the whole root file system (the client's).
    #[serde(default)]
    pub boot_modules: Vec<String>,
    pub trim: Vec<String>,
    pub busybox_applets: Vec<String>,
    /// Replace ICU's data library with an empty one (see `icu_data_stub.c`).
    #[serde(default)]
    pub stub_icu_data: bool,
    /// Optional parts kept out of the image and shipped as file systems of their own
    /// (`[extensions.NAME]`), built beside it.
    #[serde(default)]
    pub extensions: BTreeMap<String, Extension>,
}

/// `[extensions.NAME]`: packages an appliance may carry beside its image.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// What it is for, in words.
    pub about: String,
    /// Packages whose files it carries, with their dependencies beyond the image's own.
    pub packages: Vec<String>,
    /// Removed from it, beyond what the image's `trim` removes.
    #[serde(default)]
    pub trim: Vec<String>,
}
