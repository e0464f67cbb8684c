//! Copies of share files on targets elsewhere (S3 and S3-compatible stores, Google Cloud
//! Storage, Azure Blob, a folder such as an LTFS or gateway mount): where a file's copy
//! goes (its key is its share and path, so any S3 tool reads it), how it is uploaded
//! with the file's owner, mode, times and content hash as the object's metadata, and
//! when it counts: only once what the target holds has been read back and hashes as the
//! file did.

mod store;
mod target;

pub use rushes_api::TargetPlace;
pub use store::{Audit, FileFacts, Proof, Retention, Store, VERSIONS};
pub use target::{install_tls, Secret, Target};

/// What went wrong with a target, in words an admin can act on.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("target {target} is not usable: {why}")]
    Config { target: String, why: String },
    #[error("target {target} refused our credentials ({why}): check its access key and secret")]
    Refused { target: String, why: String },
    #[error("target {target} could not {op}: {why}")]
    Target {
        target: String,
        op: &'static str,
        why: String,
    },
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} changed while it was copied to {target}; it is copied again later")]
    Changed { target: String, path: String },
    #[error("the copy of {key} on {target} is not proven: {why}")]
    Unproven {
        target: String,
        key: String,
        why: String,
    },
}

impl CopyError {
    /// An object store's error, said of target `target` doing `op`.
    fn of(target: &str, op: &'static str, e: object_store::Error) -> Self {
        match e {
            object_store::Error::Unauthenticated { source, .. }
            | object_store::Error::PermissionDenied { source, .. } => Self::Refused {
                target: target.into(),
                why: source.to_string(),
            },
            e => Self::Target {
                target: target.into(),
                op,
                why: e.to_string(),
            },
        }
    }
}
