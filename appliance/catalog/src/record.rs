//! What the catalog records of a media file: the API's types (`rushes_api::media`), so
//! that clients read them without this crate.

pub use rushes_api::media::*;
