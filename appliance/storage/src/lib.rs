//! Disks and pools of the Rushes appliance. Today: the block-device inventory.

pub mod inventory;
