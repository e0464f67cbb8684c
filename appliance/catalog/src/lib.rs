//! Technical metadata of media files, read from their headers with bounded reads (never
//! the whole file): what the catalog records of each clip. Each format has its own
//! parser ([`quicktime`] for QuickTime and MP4, [`mxf`] for MXF OP1a and OP-Atom,
//! [`wav`] for Broadcast WAV, [`dpx`] and [`exr`] for the frames of image sequences,
//! which [`sequence`] groups into clips, [`exif`] for JPEG and TIFF stills); [`probe`]
//! picks one by the file's first bytes. A file no parser knows, or one whose header is
//! damaged, still gets a record: its error says what was wrong. [`index`] keeps the
//! records in a tantivy index that [`query`]'s language searches.

pub mod dpx;
pub mod exif;
pub mod exr;
pub mod extract;
pub mod index;
pub mod mxf;
pub mod query;
pub mod quicktime;
pub mod record;
pub mod sequence;
pub mod source;
pub mod timecode;
pub mod wav;

pub use index::Catalog;
pub use record::{Audio, Bext, Camera, Ixml, MediaInfo, Rational, Timecode, Video};
pub use record::{Clip, Found};
pub use source::{ParseError, Source};

/// Read the header of the file behind `src` with the parser its first bytes call for.
/// `Ok(None)`: not a format this crate knows.
pub fn probe(src: &Source<'_>) -> Result<Option<MediaInfo>, ParseError> {
    let head = src.read_at(0, src.len().min(12) as usize)?;
    if quicktime::looks_like(&head) {
        return quicktime::parse(src).map(Some);
    }
    if wav::looks_like(&head) {
        return wav::parse(src).map(Some);
    }
    if dpx::looks_like(&head) {
        return dpx::parse(src).map(Some);
    }
    if exr::looks_like(&head) {
        return exr::parse(src).map(Some);
    }
    if exif::looks_like_jpeg(&head) {
        return exif::parse_jpeg(src).map(Some);
    }
    if exif::looks_like_tiff(&head) {
        return exif::parse_tiff(src).map(Some);
    }
    if mxf::looks_like(&src.read_at(0, 13)?) {
        return mxf::parse(src).map(Some);
    }
    // MXF may start after a run-in of up to 64 KiB: look for its partition pack there.
    let window = src.read_at(0, src.len().min(65_536) as usize)?;
    if window.windows(13).any(mxf::looks_like) {
        return mxf::parse(src).map(Some);
    }
    Ok(None)
}
