//! The firmware of the Rushes offload card: the engine that runs on the card (or, on a
//! host without one, as an emulated card) and speaks NVMe/TCP to external SSD bays.
//!
//! Today: the NVMe/TCP PDU codec ([`pdu`]) and the discovery log page ([`discovery`]),
//! with their byte layouts pinned by tests. The initiator, the card's management
//! interface and the bundle format follow.

pub mod discovery;
pub mod pdu;
