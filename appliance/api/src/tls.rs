//! HTTPS to a box from another machine: the box's certificate is trusted by its SHA-256
//! fingerprint (pinned on first use, as SSH pins host keys), not by a CA: each box makes
//! its own certificate at its first start.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// SHA-256 of a certificate (DER) as `AB:CD:…`: what the box's console, `rushesctl web`
/// and a browser show.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Two fingerprints as people type them: any case, with or without colons or a
/// `SHA256:` prefix.
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .trim_start_matches("SHA256:")
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .map(|c| c.to_ascii_uppercase())
            .collect::<String>()
    };
    let (a, b) = (norm(a), norm(b));
    a.len() == 64 && a == b
}

/// Accepts the one certificate whose fingerprint is pinned, and notes what it saw.
#[derive(Debug)]
struct Pinned {
    pin: Option<String>,
    seen: Mutex<Option<String>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint(end_entity);
        let good = self
            .pin
            .as_deref()
            .is_some_and(|p| same_fingerprint(p, &seen));
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
        if good {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate not pinned".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// ring's provider: rustls deprecates it for want of post-quantum key exchange, which
/// only the aws-lc-rs provider has, at minutes of C on every cold build.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration that trusts only the certificate `pin` names (none: nothing),
/// and the verifier that notes the fingerprint it was shown.
fn pinned(pin: Option<&str>) -> std::io::Result<(rustls::ClientConfig, Arc<Pinned>)> {
    let provider = provider();
    let verifier = Arc::new(Pinned {
        pin: pin.map(str::to_string),
        seen: Mutex::new(None),
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    Ok((config, verifier))
}

/// A client configuration for HTTPS to another box: its certificate is trusted by the
/// fingerprint `pin` alone, whatever names it carries (a box reached by its address).
pub fn pinned_client_config(pin: &str) -> std::io::Result<rustls::ClientConfig> {
    pinned(Some(pin)).map(|(config, _)| config)
}

/// A TLS connection to a box whose certificate must have the pinned fingerprint.
pub struct PinnedStream {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    verifier: Arc<Pinned>,
}

impl PinnedStream {
    /// Connect to `address` (`HOST:PORT`); the handshake happens on the first read or
    /// write, and fails there unless the box shows the certificate `pin` names.
    pub fn connect(address: &str, pin: Option<&str>, timeout: Duration) -> std::io::Result<Self> {
        let host = address
            .rsplit_once(':')
            .map_or(address, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("the name has no address"))?;
        let tcp = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(15)))?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        let (config, verifier) = pinned(pin)?;
        let name = ServerName::try_from(host.to_string()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{host:?} is not a host name or address"),
            )
        })?;
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        Ok(Self {
            tls: rustls::StreamOwned::new(conn, tcp),
            verifier,
        })
    }

    /// The fingerprint of the certificate the box showed, once the handshake got that far.
    pub fn seen(&self) -> Option<String> {
        self.verifier
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl std::io::Read for PinnedStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tls.read(buf)
    }
}

impl std::io::Write for PinnedStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tls.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tls.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_compare_as_people_type_them() {
        let fp = fingerprint(b"x");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(same_fingerprint(&fp, &fp.replace(':', "").to_lowercase()));
        assert!(same_fingerprint(&format!("SHA256:{fp}"), &fp));
        assert!(!same_fingerprint(&fp, &fingerprint(b"y")));
        assert!(!same_fingerprint("", ""));
    }
}
