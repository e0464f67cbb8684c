//! A target as `rushes.toml` names it, and the object store it opens.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::CopyError;

/// A credential: never printed, in logs or errors.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Where copies go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TargetKind {
    /// AWS S3 or any S3-compatible store (`endpoint` for those, path-style requests).
    S3 {
        bucket: String,
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default = "default_region")]
        region: String,
        access_key: String,
        secret_key: Secret,
    },
    /// Google Cloud Storage, with a service account's JSON key.
    Gcs {
        bucket: String,
        service_account_key: Secret,
    },
    /// Azure Blob storage (`endpoint` for a private or emulated one:
    /// `http://host:10000/ACCOUNT`).
    Azure {
        account: String,
        container: String,
        access_key: Secret,
        #[serde(default)]
        endpoint: Option<String>,
    },
    /// A folder: an LTFS tape, a gateway's mount, another disk.
    Folder { path: PathBuf },
}

fn default_region() -> String {
    "us-east-1".into()
}

/// A target: its name and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    #[serde(flatten)]
    pub kind: TargetKind,
}

impl Target {
    /// The object store behind this target, and whether it keeps user metadata on
    /// objects (a folder does not: its metadata goes beside the copies).
    pub(crate) fn open(&self) -> Result<(Arc<dyn ObjectStore>, bool), CopyError> {
        install_tls();
        let bad = |e: object_store::Error| CopyError::Config {
            target: self.name.clone(),
            why: e.to_string(),
        };
        Ok(match &self.kind {
            TargetKind::S3 {
                bucket,
                endpoint,
                region,
                access_key,
                secret_key,
            } => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key)
                    .with_secret_access_key(secret_key.expose());
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                (Arc::new(b.build().map_err(bad)?), true)
            }
            TargetKind::Gcs {
                bucket,
                service_account_key,
            } => (
                Arc::new(
                    object_store::gcp::GoogleCloudStorageBuilder::new()
                        .with_bucket_name(bucket)
                        .with_service_account_key(service_account_key.expose())
                        .build()
                        .map_err(bad)?,
                ),
                true,
            ),
            TargetKind::Azure {
                account,
                container,
                access_key,
                endpoint,
            } => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(container)
                    .with_access_key(access_key.expose());
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_endpoint(endpoint.clone())
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                (Arc::new(b.build().map_err(bad)?), true)
            }
            TargetKind::Folder { path } => {
                if !path.is_dir() {
                    return Err(CopyError::Config {
                        target: self.name.clone(),
                        why: format!("{} is not a folder here (is it mounted?)", path.display()),
                    });
                }
                (
                    Arc::new(
                        object_store::local::LocalFileSystem::new_with_prefix(path).map_err(bad)?,
                    ),
                    false,
                )
            }
        })
    }
}

/// rustls with ring, once per process (object_store's HTTPS needs a provider). rustls
/// deprecates ring's provider for want of post-quantum key exchange, which only its
/// aws-lc-rs provider has; that one costs minutes of C on every cold build.
#[allow(deprecated)]
fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_from_toml_and_never_show_their_secrets() {
        let t: Target = toml_like(
            r#"{"name":"wasabi","kind":"s3","bucket":"rushes","endpoint":"https://s3.wasabisys.com","access_key":"AK","secret_key":"SK-very-secret"}"#,
        );
        assert_eq!(t.name, "wasabi");
        let shown = format!("{t:?}");
        assert!(!shown.contains("SK-very-secret"), "{shown}");
        let TargetKind::S3 { region, .. } = &t.kind else {
            panic!("{t:?}")
        };
        assert_eq!(region, "us-east-1");
        let e = serde_json::from_str::<Target>(r#"{"name":"x","kind":"ftp"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }

    fn toml_like(json: &str) -> Target {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_folder_that_is_not_there_is_refused_with_its_path() {
        let t = Target {
            name: "tape".into(),
            kind: TargetKind::Folder {
                path: "/nonexistent/ltfs".into(),
            },
        };
        let e = t.open().err().unwrap();
        assert!(
            e.to_string()
                .contains("/nonexistent/ltfs is not a folder here"),
            "{e}"
        );
    }
}
