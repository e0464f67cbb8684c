//! NFS file handles: a share id plus the kernel's persistent handle, authenticated with a
//! keyed hash.
//!
//! Layout (at most 64 bytes, the NFSv3 limit):
//! `version(1) share(4) kernel_type(4) kernel_len(1) kernel_handle(len) mac(8)`.
//!
//! The kernel handle names an inode by number and generation, so a handle stays valid
//! across server restarts and goes stale only when the file is really gone. The MAC,
//! keyed with a secret kept in the state directory, means a client can only present
//! handles this server minted, and it only mints handles for objects inside a share:
//! a crafted handle cannot reach the rest of the file system.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::sys::{KernelHandle, MAX_KERNEL_HANDLE};

const VERSION: u8 = 1;
const HEADER: usize = 10;
const MAC_LEN: usize = 8;

/// The secret that authenticates handles. It must survive restarts, or every client
/// handle goes stale.
#[derive(Clone)]
pub struct HandleKey([u8; 32]);

impl std::fmt::Debug for HandleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandleKey(..)")
    }
}

/// A handle that decoded and authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedHandle {
    pub share: u32,
    pub kernel: KernelHandle,
}

impl HandleKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Load `handle.key` from `state_dir`, creating it (mode 0600) on first start.
    pub fn load_or_create(state_dir: &Path) -> io::Result<Self> {
        let path = state_dir.join("handle.key");
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                let mut key = [0u8; 32];
                f.read_exact(&mut key).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("{} is damaged ({e}); remove it to make a new one (clients will need to remount)", path.display()),
                    )
                })?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(state_dir)?;
                let mut key = [0u8; 32];
                rustix::rand::getrandom(&mut key, rustix::rand::GetRandomFlags::empty())?;
                let tmp = state_dir.join("handle.key.new");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode_0600()
                    .open(&tmp)?;
                f.write_all(&key)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                Ok(Self(key))
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let full = blake3::keyed_hash(&self.0, data);
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&full.as_bytes()[..MAC_LEN]);
        mac
    }

    /// A keyed 8-byte digest of `data`, for verifiers that must be unguessable.
    pub fn digest8(&self, data: &[u8]) -> [u8; 8] {
        self.mac(data)
    }

    pub fn encode(&self, share: u32, kernel: &KernelHandle) -> Vec<u8> {
        let mut fh = Vec::with_capacity(HEADER + kernel.bytes.len() + MAC_LEN);
        fh.push(VERSION);
        fh.extend_from_slice(&share.to_be_bytes());
        fh.extend_from_slice(&kernel.handle_type.to_be_bytes());
        fh.push(kernel.bytes.len() as u8);
        fh.extend_from_slice(&kernel.bytes);
        let mac = self.mac(&fh);
        fh.extend_from_slice(&mac);
        fh
    }

    /// Check and unpack a handle from a client. `None` means it was not minted here
    /// (NFS3ERR_BADHANDLE).
    pub fn decode(&self, fh: &[u8]) -> Option<DecodedHandle> {
        if fh.len() < HEADER + MAC_LEN || fh[0] != VERSION {
            return None;
        }
        let len = fh[9] as usize;
        if len > MAX_KERNEL_HANDLE || fh.len() != HEADER + len + MAC_LEN {
            return None;
        }
        let (body, mac) = fh.split_at(HEADER + len);
        if !constant_time_eq::constant_time_eq(&self.mac(body), mac) {
            return None;
        }
        Some(DecodedHandle {
            share: u32::from_be_bytes([fh[1], fh[2], fh[3], fh[4]]),
            kernel: KernelHandle {
                handle_type: i32::from_be_bytes([fh[5], fh[6], fh[7], fh[8]]),
                bytes: body[HEADER..].to_vec(),
            },
        })
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kh() -> KernelHandle {
        KernelHandle {
            handle_type: 0x81,
            bytes: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        }
    }

    #[test]
    fn roundtrip_fits_nfsv3_limit() {
        let key = HandleKey::from_bytes([7; 32]);
        let fh = key.encode(0xdead_beef, &kh());
        assert!(fh.len() <= 64);
        let d = key.decode(&fh).unwrap();
        assert_eq!((d.share, d.kernel), (0xdead_beef, kh()));
    }

    #[test]
    fn forged_or_foreign_handles_are_rejected() {
        let key = HandleKey::from_bytes([7; 32]);
        let mut fh = key.encode(1, &kh());
        // Pointing the handle at another share or inode breaks the MAC.
        fh[4] ^= 1;
        assert!(key.decode(&fh).is_none());
        fh[4] ^= 1;
        fh[12] ^= 0x40;
        assert!(key.decode(&fh).is_none());
        fh[12] ^= 0x40;
        // Another server's key.
        assert!(HandleKey::from_bytes([8; 32]).decode(&fh).is_none());
        assert!(key.decode(&fh[..fh.len() - 1]).is_none());
        assert!(key.decode(&[]).is_none());
    }

    #[test]
    fn key_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let a = HandleKey::load_or_create(dir.path()).unwrap();
        let b = HandleKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.encode(1, &kh()), b.encode(1, &kh()));
    }
}
