//! What the catalog records of a media file.

use serde::{Deserialize, Serialize};

/// An exact ratio (a frame rate of 24000/1001, a pixel aspect of 1/1), reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    /// `num/den` reduced; `None` for a zero denominator.
    pub fn new(num: u32, den: u32) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        Some(Self {
            num: num / g,
            den: den / g,
        })
    }

    pub fn value(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// The picture of a clip.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Video {
    /// Our name for the codec, as queries use it: `prores_422_hq`, `prores_4444`,
    /// `dnxhr`, `h264`, `hevc`; otherwise the FourCC in lower case.
    pub codec: String,
    /// The FourCC as stored (`apch`).
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    /// Frames a second, exact (24000/1001).
    pub frame_rate: Option<Rational>,
    /// Pixel aspect ratio (1/1 for square pixels).
    pub pixel_aspect: Option<Rational>,
    /// `progressive`, or for interlaced pictures `tt`, `bb`, `tb`, `bt` (first field
    /// stored and shown), as ffprobe names them.
    pub field_order: Option<String>,
    pub frames: Option<u64>,
}

/// One audio track.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Audio {
    /// `pcm_s24le`, `pcm_s16be`, `aac` …, or the FourCC in lower case.
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// Bits a sample, for PCM.
    pub bits: Option<u16>,
}

/// Where a clip starts, as SMPTE timecode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Timecode {
    /// `10:14:00:00`, or `10:14:00;00` when drop-frame.
    pub start: String,
    /// The same as a frame count from midnight, at `fps` frames a second.
    pub frame: u64,
    /// Timecode frames a second (30 for 29.97 drop-frame).
    pub fps: u32,
    pub drop_frame: bool,
}

/// What the camera wrote about itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Camera {
    pub make: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub lens: Option<String>,
    pub clip_name: Option<String>,
}

/// A Broadcast WAV file's `bext` chunk (EBU Tech 3285).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Bext {
    pub description: String,
    pub originator: String,
    pub originator_reference: String,
    /// `yyyy-mm-dd` and `hh:mm:ss`, as written.
    pub origination_date: String,
    pub origination_time: String,
    /// Samples since midnight of the first sample.
    pub time_reference: u64,
}

/// A recorder's iXML chunk: the production fields an assistant searches by.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ixml {
    pub project: Option<String>,
    pub scene: Option<String>,
    pub take: Option<String>,
    pub tape: Option<String>,
    pub circled: Option<bool>,
    pub track_names: Vec<String>,
}

/// Everything a parser read of one file's header.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaInfo {
    /// `quicktime`, `mp4` or `wav`.
    pub format: String,
    pub duration_s: Option<f64>,
    pub video: Option<Video>,
    pub audio: Vec<Audio>,
    pub timecode: Option<Timecode>,
    /// The reel (tape) name the timecode track or the recorder gives.
    pub reel: Option<String>,
    pub camera: Camera,
    pub bext: Option<Bext>,
    pub ixml: Option<Ixml>,
}
