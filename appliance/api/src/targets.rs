//! Targets of copies: where they are, as `rushes.toml` keeps them and the API shows them
//! (never a secret), and what a check of one found.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a target is. Its secret (S3's secret key, Azure's access key, GCS's service
/// account key) is not part of it: rushesd keeps secrets sealed apart and never gives
/// them back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TargetPlace {
    /// AWS S3, or any S3-compatible store at `endpoint` (path-style requests).
    S3 {
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default = "default_region")]
        region: String,
        access_key: String,
        /// The endpoint's certificate, trusted by its SHA-256 fingerprint alone (another
        /// Rushes box's own certificate, as its `rushesctl s3 show` prints it); without
        /// one, an https endpoint's certificate must chain to a public CA.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// Google Cloud Storage.
    Gcs { bucket: String },
    /// Azure Blob storage (`endpoint` for a private or emulated one:
    /// `http://host:10000/ACCOUNT`).
    Azure {
        account: String,
        container: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
    },
    /// A folder on the box: an LTFS tape, a gateway's mount, another disk.
    Folder { path: String },
}

fn default_region() -> String {
    "us-east-1".into()
}

impl TargetPlace {
    /// Its kind in a word: s3, gcs, azure, folder.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::S3 { .. } => "s3",
            Self::Gcs { .. } => "gcs",
            Self::Azure { .. } => "azure",
            Self::Folder { .. } => "folder",
        }
    }

    /// Whether this kind of target needs a secret.
    pub fn needs_secret(&self) -> bool {
        !matches!(self, Self::Folder { .. })
    }
}

/// What a target keeps, and what it costs; all of it optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetTerms {
    /// How long copies that are no longer current (older versions of changed files,
    /// the copies of removed files) stay on the target before a reconcile deletes
    /// them: "90d", "12w". Not set: they are kept for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// What a GB stored costs a month, in the facility's currency (for simulate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_gb_month: Option<f64>,
    /// What a GB read back (egress, a recall) costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_price_gb: Option<f64>,
}

/// `[[target]]` in rushes.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetEntry {
    pub name: String,
    // Before `place`: a flattened struct takes its own fields, and the place (which
    // refuses fields it does not know) gets the rest.
    #[serde(flatten)]
    pub terms: TargetTerms,
    #[serde(flatten)]
    pub place: TargetPlace,
}

/// A target to add or change (`PUT /v1/targets/NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetTarget {
    #[serde(flatten)]
    pub terms: TargetTerms,
    #[serde(flatten)]
    pub place: TargetPlace,
    /// Its secret; left out when a target is changed, the one kept is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A target as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetView {
    pub name: String,
    #[serde(flatten)]
    pub terms: TargetTerms,
    #[serde(flatten)]
    pub place: TargetPlace,
    /// rushesd holds a secret for it (which it never shows).
    pub has_secret: bool,
    /// How it answered its last check (rushesd checks every target every few minutes,
    /// and at once when one is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<TargetHealth>,
    /// What the files' records say is proven there, as of the last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<TargetStored>,
}

/// How a target answered its last check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetHealth {
    pub ok: bool,
    /// When, seconds since the epoch.
    pub checked_at: u64,
    /// The check's round trip (put, read back, remove), milliseconds.
    pub took_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Copies proven on a target, by the files' own records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetStored {
    /// Current copies (of files as they are now, or released), and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// When they were counted (the end of a reconcile), seconds since the epoch.
    pub counted_at: u64,
}

/// `[s3_endpoint]` in rushes.toml: this box serves a pool as an S3 endpoint, where other
/// Rushes boxes (or any S3 tool) keep their copies; objects live in the pool's `s3/`
/// folder, a bucket a folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3EndpointEntry {
    /// Where it listens: `0.0.0.0:9000`.
    pub listen: String,
    /// The pool it keeps objects on.
    pub pool: String,
}

/// `[[s3_key]]`: a key that signs requests to this box's S3 endpoint. Its secret is
/// sealed apart and shown once, when made. A key reaches one bucket, named after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct S3KeyEntry {
    pub name: String,
    pub access_key: String,
}

/// `GET /v1/s3`: the S3 endpoint as set, where it serves now, and its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct S3Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<S3EndpointEntry>,
    /// `ADDR from FOLDER` while it serves; why not, when set but not serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The SHA-256 fingerprint of the certificate it serves HTTPS with (the box's own),
    /// for the other boxes to pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub keys: Vec<S3KeyEntry>,
}

/// `POST /v1/s3/keys`: a new key for another box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddS3Key {
    /// The key's name, which is also its bucket's: the other box's name (`site-b`).
    pub name: String,
}

/// A new key, with its secret: shown this once, never again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NewS3Key {
    pub name: String,
    pub access_key: String,
    pub secret: String,
    /// The bucket it reaches.
    pub bucket: String,
}

/// What the copy rules would do now on one target (part of a simulate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CopyOutlook {
    pub target: String,
    /// Copies a reconcile would make there now, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// The rate copies last went there (bytes a second), and how long these would take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// What it would hold then, by the files' records, and what that costs a month at
    /// the target's price.
    pub stored_after: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_cost_month: Option<f64>,
    /// What reading the new copies back costs (each is read back whole before it counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_cost: Option<f64>,
    /// Bytes of released files whose copy is there, and what recalling all of them
    /// from it would cost.
    pub released_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall_cost: Option<f64>,
}

/// Copy files or folders of a share to a target (`POST /v1/copies`), as a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyFiles {
    pub target: String,
    pub share: String,
    /// Paths inside the share; a folder brings every file under it.
    pub paths: Vec<String>,
}

/// Read back the recorded copies of files or folders of a share (`POST
/// /v1/copies/audit`), as a job: each copy proven again, or dropped with an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditCopies {
    pub share: String,
    pub paths: Vec<String>,
}

/// Release files or folders of a share to their copies (`POST /v1/copies/release`), as
/// a job: each file with enough proven copies of its bytes as they are now gives its
/// blocks back and stays as a stub (path, size, owner, mode, times, handle, inode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFiles {
    pub share: String,
    pub paths: Vec<String>,
    /// Proven copies a file must have to be released (at least 1; 1 when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u32>,
}

/// Bring released files or folders of a share back from their copies (`POST
/// /v1/copies/recall`), as a job with progress in bytes; files a client waits for go
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecallFiles {
    pub share: String,
    pub paths: Vec<String>,
}

/// Where a file stands with its copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CopyState {
    /// On the box only: no copy proven.
    Resident,
    /// On the box, and proven on at least one target as it is now.
    Premigrated,
    /// Changed since its last proven copy.
    Dirty,
    /// Released: a stub on the box, its bytes on its copies; a read brings them back.
    Migrated,
}

/// One proven copy of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CopyRecord {
    pub target: String,
    /// Its key on the target (`SHARE/PATH`).
    pub key: String,
    pub size: u64,
    /// blake3 of the bytes copied, hex.
    pub blake3: String,
    /// When it was last read back and found whole, seconds since the epoch.
    pub proven_at: u64,
    /// The file is still what was copied (same size and modification time).
    pub current: bool,
}

/// A file's copies (`GET /v1/copies?share=S&path=P`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileCopies {
    pub share: String,
    pub path: String,
    pub state: CopyState,
    pub copies: Vec<CopyRecord>,
}

/// What a check of a target found (`POST /v1/targets/NAME/check`): a small object put,
/// read back and removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetCheck {
    pub name: String,
    pub ok: bool,
    /// How long the round trip took, milliseconds.
    pub took_ms: u64,
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_terms_sit_beside_its_place_and_unknown_fields_are_still_refused() {
        let text = "name = \"tape\"\nkind = \"folder\"\npath = \"/mnt/ltfs\"\nretention = \"90d\"\nprice_gb_month = 0.004\n";
        let entry: TargetEntry = toml::from_str(text).unwrap();
        assert_eq!(entry.terms.retention.as_deref(), Some("90d"));
        assert_eq!(entry.terms.price_gb_month, Some(0.004));
        assert_eq!(
            entry.place,
            TargetPlace::Folder {
                path: "/mnt/ltfs".into()
            }
        );
        let back: TargetEntry = toml::from_str(&toml::to_string(&entry).unwrap()).unwrap();
        assert_eq!(back, entry);
        let typo = text.replace("retention", "retension");
        let e = toml::from_str::<TargetEntry>(&typo).unwrap_err();
        assert!(e.to_string().contains("retension"), "{e}");
    }
}
