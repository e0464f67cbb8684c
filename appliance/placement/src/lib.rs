//! Where each file's data belongs across the box's pools: the placement rules (ordered,
//! first match wins), their check, and what they say: `explain` for one file, and
//! `simulate` over every file, which the mover's plans are made from; the namespace
//! layer that says where a file's data is now, and the mover that changes it.

pub mod evaluate;
pub mod facts;
pub mod layout;
pub mod mover;
pub mod plan;
pub mod rules;
pub mod stub;
pub use rushes_api::units;

pub use evaluate::{Decision, Fill, Trigger, Verdict};
pub use facts::{file_facts, scan_share, FileError, FileFacts, ScanError};
pub use layout::{DataLocation, DataPlaces, IoTicket, Resolved, DATA_XATTR};
pub use mover::{move_file, recover, MoveError, MoveSpec, MoveWatch, Moved, Recovered};
pub use plan::{simulate, Because, FillNow, Held, Move, Plan, Planner, PoolState};
pub use rules::{
    Action, CopyWish, Names, Rule, RuleError, RuleSet, RulesFile, Watermark, Weight, TAGS_XATTR,
};
