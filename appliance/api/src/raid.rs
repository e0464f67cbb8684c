//! RAID levels and what they give: how many disks they need, the capacity they leave and
//! how many disk failures they survive.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RaidLevel {
    /// One disk, no redundancy.
    Single,
    Raid0,
    Raid1,
    Raid5,
    Raid6,
    Raid10,
}

impl RaidLevel {
    pub const ALL: [RaidLevel; 6] = [
        RaidLevel::Single,
        RaidLevel::Raid0,
        RaidLevel::Raid1,
        RaidLevel::Raid5,
        RaidLevel::Raid6,
        RaidLevel::Raid10,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RaidLevel::Single => "single",
            RaidLevel::Raid0 => "raid0",
            RaidLevel::Raid1 => "raid1",
            RaidLevel::Raid5 => "raid5",
            RaidLevel::Raid6 => "raid6",
            RaidLevel::Raid10 => "raid10",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        let s = s.trim_start_matches("raid-");
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s || l.as_str().trim_start_matches("raid") == s)
    }

    /// The fewest disks the level works with.
    pub fn min_disks(self) -> usize {
        match self {
            RaidLevel::Single => 1,
            RaidLevel::Raid0 | RaidLevel::Raid1 | RaidLevel::Raid10 => 2,
            RaidLevel::Raid5 => 3,
            RaidLevel::Raid6 => 4,
        }
    }

    /// The most disks the level takes (`single` is one disk).
    pub fn max_disks(self) -> usize {
        match self {
            RaidLevel::Single => 1,
            _ => 64,
        }
    }

    /// Disks that may fail without losing data, with `disks` members.
    pub fn fault_tolerance(self, disks: usize) -> usize {
        match self {
            RaidLevel::Single | RaidLevel::Raid0 => 0,
            RaidLevel::Raid1 => disks.saturating_sub(1),
            RaidLevel::Raid5 => 1,
            RaidLevel::Raid6 => 2,
            // md's near-2 layout: one copy of every block may go.
            RaidLevel::Raid10 => 1,
        }
    }

    /// Usable bytes with `disks` members of which the smallest has `smallest` bytes.
    pub fn usable_bytes(self, disks: usize, smallest: u64) -> u64 {
        let n = disks as u64;
        match self {
            RaidLevel::Single | RaidLevel::Raid0 => smallest * n,
            RaidLevel::Raid1 => smallest,
            RaidLevel::Raid5 => smallest * n.saturating_sub(1),
            RaidLevel::Raid6 => smallest * n.saturating_sub(2),
            RaidLevel::Raid10 => smallest * n / 2,
        }
    }

    /// Whether md can add disks to a running array of this level and spread data onto them.
    pub fn can_grow(self) -> bool {
        matches!(self, RaidLevel::Raid1 | RaidLevel::Raid5 | RaidLevel::Raid6)
    }
}

impl std::fmt::Display for RaidLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_tolerance_of_four_8g_disks() {
        let g = 8u64 << 30;
        assert_eq!(RaidLevel::Raid5.usable_bytes(4, g), 3 * g);
        assert_eq!(RaidLevel::Raid6.usable_bytes(4, g), 2 * g);
        assert_eq!(RaidLevel::Raid10.usable_bytes(4, g), 2 * g);
        assert_eq!(RaidLevel::Raid1.usable_bytes(4, g), g);
        assert_eq!(RaidLevel::Raid6.fault_tolerance(4), 2);
        assert_eq!(RaidLevel::Raid1.fault_tolerance(3), 2);
    }

    #[test]
    fn levels_parse_from_what_admins_type() {
        assert_eq!(RaidLevel::parse("5"), Some(RaidLevel::Raid5));
        assert_eq!(RaidLevel::parse("RAID6"), Some(RaidLevel::Raid6));
        assert_eq!(RaidLevel::parse("raid-10"), Some(RaidLevel::Raid10));
        assert_eq!(RaidLevel::parse("single"), Some(RaidLevel::Single));
        assert_eq!(RaidLevel::parse("7"), None);
    }
}
