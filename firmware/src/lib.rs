//! The firmware of the Rushes offload card: the engine that runs on the card (or, on a
//! host without one, as an emulated card) and speaks NVMe/TCP to external SSD bays.
//!
//! - the NVMe/TCP wire format: PDUs ([`pdu`]), commands ([`command`]) and the
//!   discovery log page ([`discovery`]), with their byte layouts pinned by tests;
//! - the initiator that speaks it to bays ([`initiator`]);
//! - how a card presents namespaces to the host: ublk devices ([`export`]);
//! - how rushesd drives a card: the [`card::OffloadCard`] trait over JSON-RPC, and the
//!   emulated card that answers it ([`emulated`]);
//! - the firmware bundle and its A/B slots ([`bundle`]).
//!
//! The ublk export, the emulated card and `rushes-card` are behind the `engine`
//! feature (on by default); rushesd and rushes-storage use the rest without it.

pub mod bundle;
pub mod capture;
pub mod card;
pub mod command;
pub mod discovery;
#[cfg(feature = "engine")]
pub mod emulated;
#[cfg(feature = "engine")]
pub mod export;
pub mod initiator;
pub mod pdu;
