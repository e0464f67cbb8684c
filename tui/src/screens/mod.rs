//! The console's screens, one folder each. A screen keeps its own state, says what a
//! key means on it (its messages), changes itself on a message (update) and draws
//! itself from the API's snapshot (view); see `screen.rs`. The router in `app.rs`
//! only picks the screen, handles the keys no screen takes, and fetches the snapshot.

pub mod activity;
pub mod alerts;
pub mod dashboard;
pub mod disks;
pub mod find;
pub mod locked;
pub mod logs;
pub mod network;
pub mod placement;
pub mod pools;
pub mod power;
pub mod shares;
pub mod wizard;
