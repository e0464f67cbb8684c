//! The names the SMB audit reader and the audit log need to turn records into words:
//! each SMB share's folder (audit paths are absolute) and each account's uid.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Shares by name, with the name as records carry it and the share's folder; accounts
/// by name, with their uid.
#[derive(Debug, Default)]
pub struct Directory {
    pub shares: HashMap<String, (Arc<str>, PathBuf)>,
    pub uids: HashMap<String, u32>,
}
