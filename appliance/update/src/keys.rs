//! The keys bundles are signed with, and the files they are kept in: one line each,
//! `rushes-update-key <hex>` for a public key and `rushes-update-secret <hex>` for a
//! signing key.

use std::path::Path;

use ed25519_dalek::{Signer, Verifier};

use crate::Refused;

const PUBLIC_TAG: &str = "rushes-update-key";
const SECRET_TAG: &str = "rushes-update-secret";

/// A key the box trusts bundles from.
#[derive(Clone, Debug)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// The key a bundle is signed with. Kept outside the checkout (`make bundle`).
pub struct SecretKey(ed25519_dalek::SigningKey);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The short name of a public key people compare: its first 16 hex digits of blake3.
pub(crate) fn fingerprint(key: &[u8; 32]) -> String {
    blake3::hash(key).to_hex()[..16].to_string()
}

impl PublicKey {
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.trim().strip_prefix(PUBLIC_TAG)?.trim();
        ed25519_dalek::VerifyingKey::from_bytes(&unhex::<32>(hex)?)
            .ok()
            .map(Self)
    }

    pub fn to_line(&self) -> String {
        format!("{PUBLIC_TAG} {}\n", hex(self.0.as_bytes()))
    }

    /// A key from its 32 bytes; None when they are not a point of the curve.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .map(Self)
    }

    pub fn bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), Refused> {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0
            .verify(message, &signature)
            .map_err(|_| Refused::BadSignature)
    }

    /// Every `*.pub` in `dir`; one that does not parse is reported, not taken.
    pub fn load_dir(dir: &Path) -> (Vec<PublicKey>, Vec<String>) {
        let (mut keys, mut problems) = (Vec::new(), Vec::new());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (keys, problems);
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        paths.sort();
        for path in paths {
            match std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| Self::parse(&t))
            {
                Some(k) => keys.push(k),
                None => problems.push(format!(
                    "{} is not a Rushes update key ({PUBLIC_TAG} and 64 hex digits)",
                    path.display()
                )),
            }
        }
        (keys, problems)
    }
}

impl SecretKey {
    /// A new key from the kernel's random numbers.
    pub fn generate() -> std::io::Result<Self> {
        let mut seed = [0u8; 32];
        let mut filled = 0;
        while filled < seed.len() {
            filled += rustix::rand::getrandom(
                &mut seed[filled..],
                rustix::rand::GetRandomFlags::empty(),
            )?;
        }
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.trim().strip_prefix(SECRET_TAG)?.trim();
        Some(Self(ed25519_dalek::SigningKey::from_bytes(&unhex::<32>(
            hex,
        )?)))
    }

    pub fn to_line(&self) -> String {
        format!("{SECRET_TAG} {}\n", hex(&self.0.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}
