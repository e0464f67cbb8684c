//! The certificate the box shows over HTTPS: made at its first start (self-signed, ten
//! years), or the facility's own, installed only after it is checked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rushes_api::{fingerprint, CertificateInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The files in the state folder.
const CERT_FILE: &str = "web-certificate.pem";
const KEY_FILE: &str = "web-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the certificate is not PEM with a CERTIFICATE block: {0}")]
    NoCertificate(String),
    #[error("the key is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {0}")]
    NoKey(String),
    #[error("the certificate cannot be read as X.509: {0}")]
    NotX509(String),
    #[error("the key does not belong to the certificate")]
    KeyMismatch,
    #[error("the key's type is not one this box can sign with: {0}")]
    UnusableKey(String),
    #[error("the certificate is not valid now (valid from {not_before} to {not_after}, seconds since the epoch)")]
    NotValidNow { not_before: i64, not_after: i64 },
    #[error("cannot make the box's certificate: {0}")]
    Make(String),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A certificate chain with its key, checked and ready to serve.
#[derive(Debug)]
pub struct BoxCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    pub info: CertificateInfo,
}

fn now_secs() -> i64 {
    crate::since_epoch().as_secs() as i64
}

impl BoxCertificate {
    /// Check a chain and its key: PEM, X.509, valid now, and the key signs for the
    /// certificate.
    pub fn parse(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::NoCertificate(e.to_string()))?;
        let Some(leaf) = chain.first() else {
            return Err(CertError::NoCertificate(
                "no CERTIFICATE block found".into(),
            ));
        };
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertError::NoKey(e.to_string()))?;
        let (_, x509) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| CertError::NotX509(e.to_string()))?;
        let validity = x509.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        let now = now_secs();
        if now < not_before || now > not_after {
            return Err(CertError::NotValidNow {
                not_before,
                not_after,
            });
        }
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| CertError::UnusableKey(e.to_string()))?;
        rustls::sign::CertifiedKey::new(chain.clone(), signer)
            .keys_match()
            .map_err(|_| CertError::KeyMismatch)?;
        let subject = x509.subject().to_string();
        let issuer = x509.issuer().to_string();
        let info = CertificateInfo {
            fingerprint: fingerprint(leaf),
            self_signed: subject == issuer,
            subject,
            issuer,
            not_after: not_after.max(0) as u64,
        };
        Ok(Self { chain, key, info })
    }

    /// The certificate kept in `dir`, or a new self-signed one for `names` (host names
    /// and addresses) written there first.
    pub fn load_or_make(dir: &Path, names: &[String]) -> Result<Self, CertError> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if let (Ok(cert), Ok(key)) = (std::fs::read(&cert_path), std::fs::read(&key_path)) {
            match Self::parse(&cert, &key) {
                Ok(c) => return Ok(c),
                Err(e) => tracing::error!(error = %e, path = %cert_path.display(),
                    "the kept web certificate is not usable; making a new one"),
            }
        }
        let (cert, key) = make_self_signed(names)?;
        write_pair(dir, cert.as_bytes(), key.as_bytes())?;
        tracing::info!(path = %cert_path.display(), "made the box's web certificate");
        Self::parse(cert.as_bytes(), key.as_bytes())
    }

    /// A rustls server configuration that shows this certificate (HTTP/1.1 only).
    /// ring's provider: rustls deprecates it for want of post-quantum key exchange,
    /// which only the aws-lc-rs provider has, at minutes of C on every cold build.
    #[allow(deprecated)]
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::UnusableKey(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| CertError::UnusableKey(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn make_self_signed(names: &[String]) -> Result<(String, String), CertError> {
    let mut names: Vec<String> = names.to_vec();
    if names.is_empty() {
        names.push("rushes".into());
    }
    let mut params =
        rcgen::CertificateParams::new(names.clone()).map_err(|e| CertError::Make(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, names[0].clone());
    dn.push(rcgen::DnType::OrganizationName, "Rushes appliance");
    params.distinguished_name = dn;
    // Ten years from a day ago (a clock a little behind still accepts it).
    let year = 1970 + now_secs() / 31_556_952;
    params.not_before = rcgen::date_time_ymd(year as i32 - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year as i32 + 10, 1, 1);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CertError::Make(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| CertError::Make(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Write both files whole (a power cut leaves the old pair or the new one), the key
/// readable by root only.
fn write_pair(dir: &Path, cert: &[u8], key: &[u8]) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Io { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("make", dir))?;
    for (name, bytes, mode) in [(KEY_FILE, key, 0o600), (CERT_FILE, cert, 0o644)] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.new"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("write", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("replace", &path))?;
    }
    Ok(())
}

/// The TLS configuration the listener uses, replaced whole when a certificate is
/// installed: connections already open keep the one they started with.
#[derive(Debug)]
pub struct Tls {
    dir: PathBuf,
    current: RwLock<(Arc<rustls::ServerConfig>, CertificateInfo)>,
}

impl Tls {
    /// The certificate kept in `dir` (made when there is none).
    pub fn open(dir: &Path, names: &[String]) -> Result<Self, CertError> {
        let cert = BoxCertificate::load_or_make(dir, names)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            current: RwLock::new((cert.server_config()?, cert.info)),
        })
    }

    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()).0)
    }

    pub fn info(&self) -> CertificateInfo {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Check and install the facility's certificate; on any error the old one stays in
    /// use and on disk.
    pub fn install(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertificateInfo, CertError> {
        let checked = BoxCertificate::parse(cert_pem, key_pem)?;
        let config = checked.server_config()?;
        // Written only once checked and usable, so a refused one leaves the old on disk.
        write_pair(&self.dir, cert_pem, key_pem)?;
        let info = checked.info.clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (config, checked.info);
        tracing::info!(fingerprint = %info.fingerprint, subject = %info.subject, "web certificate installed");
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_makes_its_certificate_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = BoxCertificate::load_or_make(dir.path(), &["rushes.local".into()]).unwrap();
        let again = BoxCertificate::load_or_make(dir.path(), &["other".into()]).unwrap();
        assert_eq!(first.info.fingerprint, again.info.fingerprint);
        assert!(first.info.self_signed);
        assert!(
            first.info.subject.contains("rushes.local"),
            "{}",
            first.info.subject
        );
        assert_eq!(first.info.fingerprint.len(), 32 * 3 - 1);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        assert!(first.server_config().is_ok());
    }

    #[test]
    fn a_bad_certificate_is_refused_and_the_old_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::open(dir.path(), &["box".into()]).unwrap();
        let before = tls.info();
        let (other_cert, other_key) = make_self_signed(&["other".into()]).unwrap();
        let (_, third_key) = make_self_signed(&["third".into()]).unwrap();
        // Not PEM, a key of another certificate, a key that is not a key.
        let cases: [(&[u8], &[u8]); 3] = [
            (b"hello", other_key.as_bytes()),
            (other_cert.as_bytes(), third_key.as_bytes()),
            (
                other_cert.as_bytes(),
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
        ];
        for (cert, key) in cases {
            assert!(tls.install(cert, key).is_err());
            assert_eq!(tls.info(), before);
        }
        let kept = BoxCertificate::load_or_make(dir.path(), &[]).unwrap();
        assert_eq!(kept.info.fingerprint, before.fingerprint);
        // The right pair goes in, and stays after a restart.
        let installed = tls
            .install(other_cert.as_bytes(), other_key.as_bytes())
            .unwrap();
        assert_ne!(installed.fingerprint, before.fingerprint);
        let reopened = Tls::open(dir.path(), &[]).unwrap();
        assert_eq!(reopened.info().fingerprint, installed.fingerprint);
    }
}
