//! The NFSv3 file service of Rushes: ONC RPC over TCP and UDP, the portmapper, MOUNT,
//! NFSv3, and NLM locking with its status monitor, over local directories, with
//! per-share export rules and real POSIX semantics.
//!
//! # Design
//! nfsserve supplies the RFC 1813 data types and their XDR encoders; the RPC layer,
//! dispatch and file-system semantics are ours, because nfsserve's own layer passes no
//! caller identity to the file system, lacks COMMIT and LINK, and its handles do not
//! survive a restart. Handles wrap the kernel's persistent file handles
//! (`name_to_handle_at`), authenticated with a keyed hash ([`handle`]). Operations run
//! as the caller's squashed identity ([`sys::run_as`]), on the connection's own thread
//! when a call comes alone and by fair-queued workers otherwise ([`fair`]), so the kernel enforces
//! permissions. Attributes already read are kept, true by fanotify, for READDIRPLUS
//! ([`attrs`]). Every call's outcome goes through one
//! [`activity::OpObserver`].
//!
//! # Current limitations
//! NFSv3 over TCP only (MOUNT, NLM and NSM over UDP too); no NFSv4 or RPCSEC_GSS. A share does not cross into file systems mounted below it.

pub mod activity;
pub mod attrs;
pub mod callback;
pub mod connections;
pub mod drc;
pub mod fair;
pub mod fasthash;
pub mod handle;
pub mod locks;
pub mod mount;
pub mod nfs3;
pub mod nlm;
pub mod nsm;
pub mod paths;
pub mod peer_warnings;
pub mod portmap;
pub mod programs;
pub mod rates;
pub mod rollup;
pub mod rpc;
pub mod server;
pub mod service;
pub mod share;
pub mod share_id;
pub mod sys;
pub mod xdr;

pub use server::NfsServer;
pub use service::{Service, ServiceError};
pub use share::{ExportRule, ServerConfig, ShareConfig};
