//! What the media catalog records of a file: its clip's technical metadata as the
//! header parsers read it (`rushes-catalog`), and search results.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An exact ratio (a frame rate of 24000/1001, a pixel aspect of 1/1), reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

    /// As people say a frame rate: up to three places, no trailing zeros (`23.976`, `25`).
    pub fn decimal(&self) -> String {
        let text = format!("{:.3}", self.value());
        text.trim_end_matches('0').trim_end_matches('.').to_string()
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Video {
    /// Our name for the codec, as queries use it: `prores_422_hq`, `prores_4444`,
    /// `dnxhr`, `h264`, `hevc`; otherwise the FourCC in lower case.
    pub codec: String,
    /// The codec's profile as ffprobe names it (`HQ`, `4444`, `DNXHR HQ`), when the
    /// header says.
    #[serde(default)]
    pub profile: Option<String>,
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
    /// Bits a sample of each colour component (DPX 10, EXR 16 for half floats), when
    /// the header says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u16>,
}

/// One audio track.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Audio {
    /// `pcm_s24le`, `pcm_s16be`, `aac` …, or the FourCC in lower case.
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// Bits a sample, for PCM.
    pub bits: Option<u16>,
}

/// Where a clip starts, as SMPTE timecode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Camera {
    pub make: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub lens: Option<String>,
    pub clip_name: Option<String>,
}

/// A Broadcast WAV file's `bext` chunk (EBU Tech 3285).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Ixml {
    pub project: Option<String>,
    pub scene: Option<String>,
    pub take: Option<String>,
    pub tape: Option<String>,
    pub circled: Option<bool>,
    pub track_names: Vec<String>,
}

/// Everything a parser read of one file's header.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct MediaInfo {
    /// `quicktime`, `mp4`, `mxf` or `wav`.
    pub format: String,
    pub duration_s: Option<f64>,
    pub video: Option<Video>,
    pub audio: Vec<Audio>,
    pub timecode: Option<Timecode>,
    /// The reel (tape) name the timecode track or the recorder gives.
    pub reel: Option<String>,
    /// MXF: the material package's UMID (hex): the files of one OP-Atom clip share it.
    #[serde(default)]
    pub package: Option<String>,
    /// MXF: `op1a`, `op-atom` …
    #[serde(default)]
    pub operational_pattern: Option<String>,
    pub camera: Camera,
    pub bext: Option<Bext>,
    pub ixml: Option<Ixml>,
    /// An image sequence (DPX, OpenEXR): its frames; the rest of the record is the
    /// first frame's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Sequence>,
    /// A still's EXIF: when and where it was taken (the camera is in `camera`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exif: Option<Exif>,
}

/// Frames `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FrameRange {
    pub from: u64,
    pub to: u64,
}

/// The frames of an image sequence: one file a frame, numbered in the name
/// (`A003C012.0086400.dpx`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Sequence {
    /// The first and last frame numbers.
    pub first: u64,
    pub last: u64,
    /// Frame files present.
    pub frames: u64,
    /// Digits in the frame numbers (`0086400`: 7).
    pub padding: u8,
    /// Runs of frames missing between the first and the last, first ones first; at most
    /// [`Sequence::GAPS_LISTED`] are listed, `gap_count` says how many there are.
    pub gaps: Vec<FrameRange>,
    pub gap_count: u64,
}

impl Sequence {
    pub const GAPS_LISTED: usize = 1000;

    /// `A003C012.[0086400-0087839].dpx` for the sequence whose path is
    /// `A003C012.#######.dpx`.
    pub fn label(&self, name: &str) -> String {
        let p = usize::from(self.padding);
        let range = format!("[{:0p$}-{:0p$}]", self.first, self.last);
        match name.find('#') {
            Some(at) => {
                let end = name[at..].find(|c| c != '#').map_or(name.len(), |n| at + n);
                format!("{}{range}{}", &name[..at], &name[end..])
            }
            None => format!("{name} {range}"),
        }
    }

    /// `86400-87839, 2 gaps (86402-86403, 86500)`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} frames, {}-{}", self.frames, self.first, self.last);
        if self.gap_count > 0 {
            let listed: Vec<String> = self
                .gaps
                .iter()
                .take(5)
                .map(|g| {
                    if g.from == g.to {
                        g.from.to_string()
                    } else {
                        format!("{}-{}", g.from, g.to)
                    }
                })
                .collect();
            let more = if self.gap_count > 5 { ", ..." } else { "" };
            text += &format!(
                ", {} gap{} ({}{more})",
                self.gap_count,
                if self.gap_count == 1 { "" } else { "s" },
                listed.join(", ")
            );
        }
        text
    }
}

/// What a still's EXIF says beyond the camera.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Exif {
    /// When it was taken, as written (`2026:12:05 10:11:12`).
    pub taken: Option<String>,
    /// Degrees, north and east positive.
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// What the catalog knows of one file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Clip {
    pub share: String,
    /// The path inside the share, `/`-separated, without a leading `/`.
    pub path: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub modified: u64,
    /// What its header says, when a parser knows its format and could read it.
    pub media: Option<MediaInfo>,
    /// Why its header could not be read, when it could not.
    pub error: Option<String>,
    /// In search results: the other files of the same clip (an OP-Atom clip's sound
    /// files beside its picture file), by path in the share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

impl Clip {
    /// The clip's id: its share and path (`GET /v1/clips/{id}` takes it URL-encoded).
    pub fn id(&self) -> String {
        format!("{}/{}", self.share, self.path)
    }

    /// The file's name (an image sequence's: `A003C012.#######.dpx`).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The name as people read it: a sequence's with its frame range
    /// (`A003C012.[0086400-0087839].dpx`).
    pub fn display_name(&self) -> String {
        match self.media.as_ref().and_then(|m| m.sequence.as_ref()) {
            Some(seq) => seq.label(self.name()),
            None => self.name().to_string(),
        }
    }

    /// The id as people read it: an image sequence's with its frame range
    /// (`rushes/day1/A003C012.[0086400-0087839].dpx`).
    pub fn label(&self) -> String {
        let name = self.display_name();
        match self.path.rsplit_once('/') {
            Some((dir, _)) => format!("{}/{dir}/{name}", self.share),
            None => format!("{}/{name}", self.share),
        }
    }

    /// What a line of search results shows of it, as text (empty where unknown).
    pub fn summary(&self) -> ClipSummary {
        let m = self.media.as_ref();
        let v = m.and_then(|m| m.video.as_ref());
        ClipSummary {
            codec: v
                .map(|v| v.codec.clone())
                .or_else(|| m.and_then(|m| m.audio.first()).map(|a| a.codec.clone()))
                .or_else(|| self.error.as_ref().map(|_| "unreadable".into()))
                .unwrap_or_default(),
            picture: v
                .map(|v| format!("{}x{}", v.width, v.height))
                .unwrap_or_default(),
            fps: v
                .and_then(|v| v.frame_rate)
                .map(|r| r.decimal())
                .unwrap_or_default(),
            duration: m
                .and_then(|m| m.duration_s)
                .map(|d| format!("{d:.1}s"))
                .unwrap_or_default(),
            timecode: m
                .and_then(|m| m.timecode.as_ref())
                .map(|t| t.start.clone())
                .unwrap_or_default(),
            reel: m.and_then(|m| m.reel.clone()).unwrap_or_default(),
        }
    }
}

/// A clip as a line of search results shows it (see [`Clip::summary`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClipSummary {
    pub codec: String,
    pub picture: String,
    pub fps: String,
    pub duration: String,
    pub timecode: String,
    pub reel: String,
}

/// One value of a facet and how many matches have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// One facet (codec, resolution, fps, camera, share) over all matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Facet {
    pub name: String,
    /// Most first.
    pub values: Vec<FacetCount>,
}

impl Facet {
    /// `codec: prores_4444 2, h264 1`; `None` when no match has a value for it.
    pub fn line(&self) -> Option<String> {
        if self.values.is_empty() {
            return None;
        }
        let values: Vec<String> = self
            .values
            .iter()
            .map(|v| format!("{} {}", v.value, v.count))
            .collect();
        Some(format!("{}: {}", self.name, values.join(", ")))
    }
}

/// One page of results with the facet counts of all matches.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Found {
    /// How many clips match in all.
    pub total: usize,
    pub clips: Vec<Clip>,
    pub facets: Vec<Facet>,
}
