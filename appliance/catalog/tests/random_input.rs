//! Random input, plain and shaped like real files: the parsers never panic, never read
//! past their budget, and answer with a record or an error.

use proptest::prelude::*;
use rushes_catalog::source::READ_BUDGET;
use rushes_catalog::{dpx, exif, exr, mxf, probe, quicktime, wav, Source};

/// A box: size, type, payload.
fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

/// Box types the parser looks into, so that random payloads reach its inner code.
const KINDS: [&[u8; 4]; 14] = [
    b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"stts", b"stco", b"co64", b"mdhd", b"hdlr",
    b"udta", b"meta", b"keys", b"ilst",
];

fn boxes(depth: u32) -> BoxedStrategy<Vec<u8>> {
    let leaf = (0..KINDS.len(), prop::collection::vec(any::<u8>(), 0..96))
        .prop_map(|(k, p)| mp4_box(KINDS[k], &p));
    leaf.prop_recursive(depth, 64, 4, |inner| {
        (0..KINDS.len(), prop::collection::vec(inner, 0..4))
            .prop_map(|(k, kids)| mp4_box(KINDS[k], &kids.concat()))
    })
    .boxed()
}

fn chunk(id: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut c = id.to_vec();
    c.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    c.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        c.push(0);
    }
    c
}

/// Inputs the fuzzers found a panic with, kept so that it stays fixed.
#[test]
fn inputs_that_once_panicked_are_refused() {
    // A box of 64-bit size 2^64-1 after a box of size 1 header: the next offset
    // overflowed.
    let boxes: &[&[u8]] = &[&[
        0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4,
    ]];
    for bytes in boxes {
        let src = Source::memory(bytes);
        assert!(quicktime::parse(&src).is_err());
        assert!(probe(&src).is_err() || probe(&src).is_ok_and(|i| i.is_none()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_give_a_record_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let src = Source::memory(&bytes);
        let _ = probe(&src);
        let _ = quicktime::parse(&src);
        let _ = wav::parse(&src);
        let _ = mxf::parse(&src);
        let _ = dpx::parse(&src);
        let _ = exr::parse(&src);
        let _ = exif::parse_jpeg(&src);
        let _ = exif::parse_tiff(&src);
        prop_assert!(src.spent() <= READ_BUDGET);
    }

    #[test]
    fn random_dpx_headers_are_read_or_refused(
        big in any::<bool>(),
        fields in prop::collection::vec((0usize..2048, any::<u32>()), 0..64),
    ) {
        // A valid header's skeleton with random words anywhere in it.
        let mut file = vec![0u8; 2048 + 64];
        file[0..4].copy_from_slice(if big { b"SDPX" } else { b"XPDS" });
        let put = |f: &mut Vec<u8>, at: usize, v: u32| {
            let b = if big { v.to_be_bytes() } else { v.to_le_bytes() };
            let end = (at + 4).min(f.len());
            f[at..end].copy_from_slice(&b[..end - at]);
        };
        put(&mut file, 4, 2048);
        put(&mut file, 772, 64);
        put(&mut file, 776, 36);
        file[770] = if big { 0 } else { 1 };
        file[771] = if big { 1 } else { 0 };
        for (at, v) in fields {
            put(&mut file, at, v);
        }
        let src = Source::memory(&file);
        let _ = dpx::parse(&src);
        prop_assert!(src.spent() <= 2048);
    }

    #[test]
    fn random_attributes_in_an_exr_header_are_read_or_refused(
        attrs in prop::collection::vec((0usize..8, prop::collection::vec(any::<u8>(), 0..48), any::<i32>()), 0..10)
    ) {
        let names = ["channels", "compression", "dataWindow", "displayWindow", "framesPerSecond", "timeCode", "reelName", "preview"];
        let kinds = ["chlist", "compression", "box2i", "box2i", "rational", "timecode", "string", "preview"];
        let mut file = vec![0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0];
        for (i, value, lie) in &attrs {
            file.extend_from_slice(names[*i].as_bytes());
            file.push(0);
            file.extend_from_slice(kinds[*i].as_bytes());
            file.push(0);
            // Now and then a size that lies.
            let size = if lie % 7 == 0 { *lie } else { value.len() as i32 };
            file.extend_from_slice(&size.to_le_bytes());
            file.extend_from_slice(value);
        }
        file.push(0);
        let src = Source::memory(&file);
        let _ = exr::parse(&src);
        prop_assert!(src.spent() <= file.len() as u64 * 4 + 4096);
    }

    #[test]
    fn random_exif_directories_are_read_or_refused(
        entries in prop::collection::vec((any::<u16>(), 0u16..14, any::<u32>(), any::<u32>()), 0..40),
        tail in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        // A JPEG whose APP1 holds a TIFF directory of random entries.
        let mut tiff = b"II*\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes());
        tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in &entries {
            let tag = if tag % 3 == 0 { 0x8769 } else { *tag };
            tiff.extend_from_slice(&tag.to_le_bytes());
            tiff.extend_from_slice(&kind.to_le_bytes());
            tiff.extend_from_slice(&(count % 64).to_le_bytes());
            tiff.extend_from_slice(&(value % 512).to_le_bytes());
        }
        tiff.extend(tail);
        let mut file = vec![0xff, 0xd8, 0xff, 0xe1];
        file.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        file.extend_from_slice(b"Exif\0\0");
        file.extend(tiff.clone());
        file.extend_from_slice(&[0xff, 0xc0, 0, 11, 8, 0, 16, 0, 16, 1, 1, 0x11, 0]);
        let src = Source::memory(&file);
        let _ = exif::parse_jpeg(&src);
        prop_assert!(src.spent() <= file.len() as u64 * 2);
        let src = Source::memory(&tiff);
        let _ = exif::parse_tiff(&src);
    }

    #[test]
    fn random_sets_in_an_mxf_header_are_read_or_refused(
        sets in prop::collection::vec((0u16..0x150, prop::collection::vec((any::<u16>(), prop::collection::vec(any::<u8>(), 0..40)), 0..8)), 0..12)
    ) {
        // A partition pack, then local sets of random types with random items.
        let mut meta = Vec::new();
        for (kind, items) in &sets {
            let mut value = Vec::new();
            for (tag, item) in items {
                value.extend_from_slice(&tag.to_be_bytes());
                value.extend_from_slice(&(item.len() as u16).to_be_bytes());
                value.extend_from_slice(item);
            }
            meta.extend_from_slice(&[0x06, 0x0E, 0x2B, 0x34, 0x02, 0x53, 0x01, 0x01, 0x0D, 0x01, 0x01, 0x01, 0x01, 0x01]);
            meta.extend_from_slice(&kind.to_be_bytes());
            meta.push(0x83);
            meta.extend_from_slice(&(value.len() as u32).to_be_bytes()[1..]);
            meta.extend(value);
        }
        let mut pack = vec![0u8; 88];
        pack[32..40].copy_from_slice(&(meta.len() as u64).to_be_bytes());
        let mut file = vec![0x06, 0x0E, 0x2B, 0x34, 0x02, 0x05, 0x01, 0x01, 0x0D, 0x01, 0x02, 0x01, 0x01, 0x02, 0x04, 0x00, 88];
        file.extend(pack);
        file.extend(meta);
        let src = Source::memory(&file);
        let _ = mxf::parse(&src);
        prop_assert!(src.spent() <= file.len() as u64 * 3 + 65_536 * 2);
    }

    #[test]
    fn random_boxes_in_a_movie_are_read_or_refused(kids in prop::collection::vec(boxes(4), 0..6), mdat in 0usize..64) {
        let mut file = mp4_box(b"ftyp", b"qt  \0\0\0\0qt  ");
        file.extend(mp4_box(b"mdat", &vec![0u8; mdat]));
        file.extend(mp4_box(b"moov", &kids.concat()));
        let src = Source::memory(&file);
        let _ = quicktime::parse(&src);
        prop_assert!(src.spent() <= file.len() as u64 * 2);
    }

    #[test]
    fn random_chunks_in_a_wave_are_read_or_refused(
        chunks in prop::collection::vec((0usize..5, prop::collection::vec(any::<u8>(), 0..700)), 0..6)
    ) {
        let ids: [&[u8; 4]; 5] = [b"fmt ", b"bext", b"iXML", b"data", b"ds64"];
        let body: Vec<u8> = chunks.iter().flat_map(|(i, p)| chunk(ids[*i], p)).collect();
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
        file.extend_from_slice(b"WAVE");
        file.extend(body);
        let src = Source::memory(&file);
        let _ = wav::parse(&src);
        prop_assert!(src.spent() <= file.len() as u64);
    }
}
