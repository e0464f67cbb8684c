//! SMPTE timecode from frame counts, drop-frame included.

use crate::record::Timecode;

/// The timecode of frame `frame` counted from midnight at `fps` timecode frames a second
/// (a whole number: 30 for 29.97), dropping frame numbers 0 and 1 (4x that at 120) of
/// each minute but every tenth when `drop_frame`.
pub fn from_frame(frame: u64, fps: u32, drop_frame: bool) -> Timecode {
    let fps = fps.max(1);
    let f = u64::from(fps);
    let mut n = frame;
    if drop_frame && fps.is_multiple_of(30) {
        // Frame numbers dropped each minute, and frames in ten minutes.
        let drop = 2 * f / 30;
        let per_10min = f * 600 - 9 * drop;
        let per_min = f * 60 - drop;
        let tens = n / per_10min;
        let rest = n % per_10min;
        n += 9 * drop * tens;
        if rest > drop {
            n += drop * ((rest - drop) / per_min);
        }
    }
    let (h, m, s, ff) = (n / (f * 3600) % 24, n / (f * 60) % 60, n / f % 60, n % f);
    labelled([h, m, s, ff], frame, fps, drop_frame)
}

/// The timecode whose label is `h:m:s:f` (as DPX and OpenEXR store it) at `fps`
/// timecode frames a second: its frame count from midnight leaves out the frame numbers
/// drop-frame skips.
pub fn from_parts([h, m, s, f]: [u64; 4], fps: u32, drop_frame: bool) -> Timecode {
    let fps = fps.max(1);
    let mut frame = ((h * 60 + m) * 60 + s) * u64::from(fps) + f;
    if drop_frame {
        let minutes = h * 60 + m;
        frame = frame.saturating_sub(2 * u64::from(fps / 30) * (minutes - minutes / 10));
    }
    labelled([h, m, s, f], frame, fps, drop_frame)
}

fn labelled([h, m, s, f]: [u64; 4], frame: u64, fps: u32, drop_frame: bool) -> Timecode {
    Timecode {
        start: format!(
            "{h:02}:{m:02}:{s:02}{}{f:02}",
            if drop_frame { ';' } else { ':' }
        ),
        frame,
        fps,
        drop_frame,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_drop_counts_every_frame() {
        let tc = from_frame(((10 * 60 + 14) * 60) * 24, 24, false);
        assert_eq!(tc.start, "10:14:00:00");
        assert_eq!(from_frame(25, 24, false).start, "00:00:01:01");
    }

    #[test]
    fn drop_frame_skips_two_numbers_a_minute_but_every_tenth() {
        // 29.97: after 00:00:59;29 comes 00:01:00;02.
        assert_eq!(from_frame(1799, 30, true).start, "00:00:59;29");
        assert_eq!(from_frame(1800, 30, true).start, "00:01:00;02");
        // Ten minutes hold 17,982 frames and 00:10:00;00 is not dropped.
        assert_eq!(from_frame(17982, 30, true).start, "00:10:00;00");
        // An hour is 107,892 frames.
        assert_eq!(from_frame(107_892, 30, true).start, "01:00:00;00");
    }
}
