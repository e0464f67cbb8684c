//! Where each file's data belongs across the box's pools: the placement rules (ordered,
//! first match wins), their check, and what they say: `explain` for one file, and
//! `simulate` over every file, which the mover's plans are made from.

pub mod evaluate;
pub mod facts;
pub mod plan;
pub mod rules;
pub mod units;

pub use evaluate::{Decision, Fill, Trigger, Verdict};
pub use facts::{file_facts, scan_share, FileError, FileFacts, ScanError, POOL_XATTR};
pub use plan::{simulate, Because, FillNow, Held, Move, Plan, Planner, PoolState};
pub use rules::{Action, Names, RuleError, RuleSet, RulesFile, Watermark, Weight, TAGS_XATTR};
