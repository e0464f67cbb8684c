//! A target as `rushes.toml` names it, and the object store it opens.

use std::sync::Arc;

use object_store::ObjectStore;
use rushes_api::TargetPlace;
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

/// A target: its name, where it is, and its secret (S3's secret key, Azure's access
/// key, GCS's service account JSON; a folder has none).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub place: TargetPlace,
    pub secret: Option<Secret>,
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
        let secret = || {
            self.secret
                .as_ref()
                .map(Secret::expose)
                .ok_or_else(|| CopyError::Config {
                    target: self.name.clone(),
                    why: "it has no secret: set one (rushesctl target set NAME ... --secret-stdin)"
                        .into(),
                })
        };
        Ok(match &self.place {
            TargetPlace::S3 {
                bucket,
                endpoint,
                region,
                access_key,
                fingerprint,
            } => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_client_options(client_options())
                    .with_retry(retries())
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key)
                    .with_secret_access_key(secret()?)
                    // The body is not hashed into the signature: a copy counts only once
                    // read back and hashed anyway, and signing hashed every byte (SHA-256)
                    // on both sides, a third of the copy's time.
                    .with_unsigned_payload(true);
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(pin) = fingerprint {
                    b = b.with_http_connector(PinnedConnector { pin: pin.clone() });
                }
                (Arc::new(b.build().map_err(bad)?), true)
            }
            TargetPlace::Gcs { bucket } => (
                Arc::new(
                    object_store::gcp::GoogleCloudStorageBuilder::new()
                        .with_client_options(client_options())
                        .with_retry(retries())
                        .with_bucket_name(bucket)
                        .with_service_account_key(secret()?)
                        .build()
                        .map_err(bad)?,
                ),
                true,
            ),
            TargetPlace::Azure {
                account,
                container,
                endpoint,
            } => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_client_options(client_options())
                    .with_retry(retries())
                    .with_account(account)
                    .with_container_name(container)
                    .with_access_key(secret()?);
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_endpoint(endpoint.clone())
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                (Arc::new(b.build().map_err(bad)?), true)
            }
            TargetPlace::Folder { path } => {
                let path = std::path::Path::new(path);
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

/// HTTPS to another box, trusting its own certificate by fingerprint: object_store's
/// client otherwise wants a certificate that chains to a CA and names the host.
#[derive(Debug)]
struct PinnedConnector {
    pin: String,
}

impl object_store::client::HttpConnector for PinnedConnector {
    fn connect(
        &self,
        _options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let generic = |e: &dyn std::fmt::Display| object_store::Error::Generic {
            store: "S3",
            source: e.to_string().into(),
        };
        let tls = rushes_api::tls::pinned_client_config(&self.pin).map_err(|e| generic(&e))?;
        // As client_options() says, and object_store's own timeout for a whole request.
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| generic(&e))?;
        Ok(object_store::client::HttpClient::new(client))
    }
}

/// A store that does not answer is given up on in seconds, not minutes: a check from
/// the API waits for it, and copies are tried again at the next reconcile anyway.
fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new().with_connect_timeout(std::time::Duration::from_secs(5))
}

fn retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(20),
        ..Default::default()
    }
}

/// rustls with ring, once per process (object_store's HTTPS needs a provider). rustls
/// deprecates ring's provider for want of post-quantum key exchange, which only its
/// aws-lc-rs provider has; that one costs minutes of C on every cold build.
#[allow(deprecated)]
pub fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_never_shows_its_secret() {
        let t = Target {
            name: "wasabi".into(),
            place: TargetPlace::S3 {
                bucket: "rushes".into(),
                endpoint: Some("https://s3.wasabisys.com".into()),
                region: "us-east-1".into(),
                access_key: "AK".into(),
                fingerprint: None,
            },
            secret: Some(Secret::new("SK-very-secret")),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("SK-very-secret"), "{shown}");
        let mut no_secret = t.clone();
        no_secret.secret = None;
        let e = no_secret.open().err().unwrap();
        assert!(e.to_string().contains("it has no secret"), "{e}");
    }

    #[test]
    fn a_folder_that_is_not_there_is_refused_with_its_path() {
        let t = Target {
            name: "tape".into(),
            place: TargetPlace::Folder {
                path: "/nonexistent/ltfs".into(),
            },
            secret: None,
        };
        let e = t.open().err().unwrap();
        assert!(
            e.to_string()
                .contains("/nonexistent/ltfs is not a folder here"),
            "{e}"
        );
    }
}
