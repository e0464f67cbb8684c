//! The catalog's index (tantivy) of clips: one document per file, keyed by share and
//! path, with the fields queries name, facets to count by, and the whole record stored
//! beside them. It lives in a folder (on the share's home pool on the appliance) and
//! survives restarts; it can always be rebuilt from the files.

use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    Facet, FacetOptions, Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING,
    TEXT,
};
use tantivy::{
    DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term as IndexTerm,
};

use crate::query::{self, Compare, Term};
use crate::record::{Clip, FacetCount, Found};

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the catalog index failed: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("the catalog index in {path} cannot be opened: {why}")]
    Open { path: String, why: String },
    #[error(transparent)]
    Query(#[from] query::QueryError),
    #[error("the catalog index cannot be read: {0}")]
    Read(#[from] std::io::Error),
}

/// The facets counted for every search.
pub const FACETS: [&str; 5] = ["codec", "resolution", "fps", "camera", "share"];

/// What one index found: how many match, the best with their scores, and each
/// facet's values with their counts.
type Matches = (usize, Vec<(Key, Clip)>, Vec<(String, Vec<(String, u64)>)>);

/// How many match, the best with their sort keys, and the facet counts, from one index.
type Keyed = (
    usize,
    Vec<(Key, tantivy::DocAddress)>,
    tantivy::collector::FacetCounts,
);

/// What results are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Best match first.
    #[default]
    Relevance,
    Name,
    Path,
    Modified,
    Size,
    Duration,
    Timecode,
}

/// An order, and whether it is reversed (largest, newest, last first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub by: Order,
    pub reverse: bool,
}

impl std::str::FromStr for Sort {
    type Err = String;

    /// `name`, `modified`, `-modified` (newest first) …
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (reverse, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let by = match name {
            "" | "relevance" => Order::Relevance,
            "name" => Order::Name,
            "path" => Order::Path,
            "modified" => Order::Modified,
            "size" => Order::Size,
            "duration" => Order::Duration,
            "timecode" | "tc" => Order::Timecode,
            other => return Err(format!("results cannot be sorted by {other:?}")),
        };
        Ok(Self { by, reverse })
    }
}

/// Where a match falls in the order asked for.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Score(f32),
    Number(Option<f64>),
    Text(Option<String>),
}

impl Key {
    /// Best first for scores; otherwise as `sort` asks, with matches that have no value
    /// last either way.
    fn order(&self, other: &Self, sort: Sort) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        fn by<T>(
            a: &Option<T>,
            b: &Option<T>,
            reverse: bool,
            cmp: impl Fn(&T, &T) -> Ordering,
        ) -> Ordering {
            match (a, b) {
                (Some(a), Some(b)) if reverse => cmp(b, a),
                (Some(a), Some(b)) => cmp(a, b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        }
        match (self, other) {
            (Key::Score(a), Key::Score(b)) => b.total_cmp(a),
            (Key::Number(a), Key::Number(b)) => by(a, b, sort.reverse, f64::total_cmp),
            (Key::Text(a), Key::Text(b)) => by(a, b, sort.reverse, |a: &String, b| a.cmp(b)),
            _ => Ordering::Equal,
        }
    }
}

/// A search over one or more indexes.
#[derive(Default)]
pub struct Request<'a> {
    /// The query (see [`crate::query`]).
    pub text: &'a str,
    /// Only these shares.
    pub shares: Option<&'a [String]>,
    pub offset: usize,
    /// Results in the page (1 to 1,000).
    pub limit: usize,
    pub sort: Sort,
    /// Only the clips this says yes to count, in the results, the total and the facets
    /// (an account's permissions); at most [`CHECKED`] matches an index are asked about.
    pub allowed: Option<&'a dyn Fn(&Clip) -> bool>,
}

/// Matches an index gives to [`Request::allowed`] at most.
pub const CHECKED: usize = 100_000;

struct Fields {
    id: Field,
    share: Field,
    ext: Field,
    format: Field,
    codec: Field,
    reel: Field,
    tape: Field,
    scene: Field,
    take: Field,
    project: Field,
    circled: Field,
    package: Field,
    camera: Field,
    name: Field,
    all: Field,
    width: Field,
    height: Field,
    fps: Field,
    duration: Field,
    channels: Field,
    tc_start: Field,
    tc_end: Field,
    size: Field,
    modified: Field,
    sort_name: Field,
    sort_path: Field,
    facets: Field,
    record: Field,
}

/// The index of one share's clips (or several shares'), open for reading and writing.
pub struct Catalog {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    f: Fields,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let number = INDEXED | FAST;
    let f = Fields {
        id: b.add_text_field("id", STRING | STORED),
        share: b.add_text_field("share", STRING),
        ext: b.add_text_field("ext", STRING),
        format: b.add_text_field("format", STRING),
        codec: b.add_text_field("codec", STRING),
        reel: b.add_text_field("reel", STRING),
        tape: b.add_text_field("tape", STRING),
        scene: b.add_text_field("scene", STRING),
        take: b.add_text_field("take", STRING),
        project: b.add_text_field("project", STRING),
        circled: b.add_text_field("circled", STRING),
        package: b.add_text_field("package", STRING),
        camera: b.add_text_field("camera", TEXT),
        name: b.add_text_field("name", TEXT),
        all: b.add_text_field("all", TEXT),
        width: b.add_u64_field("width", number.clone()),
        height: b.add_u64_field("height", number.clone()),
        fps: b.add_f64_field("fps", number.clone()),
        duration: b.add_f64_field("duration", number.clone()),
        channels: b.add_u64_field("channels", number.clone()),
        tc_start: b.add_f64_field("tc_start", number.clone()),
        tc_end: b.add_f64_field("tc_end", number),
        size: b.add_u64_field("size", FAST),
        modified: b.add_u64_field("modified", FAST),
        sort_name: b.add_text_field("sort_name", STRING | FAST),
        sort_path: b.add_text_field("sort_path", STRING | FAST),
        facets: b.add_facet_field("facets", FacetOptions::default()),
        record: b.add_text_field("record", STORED),
    };
    (b.build(), f)
}

impl Catalog {
    /// Open the index in `dir`, making it if it is not there.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let open_err = |why: String| IndexError::Open {
            path: dir.display().to_string(),
            why,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let (schema, f) = schema();
        let directory =
            tantivy::directory::MmapDirectory::open(dir).map_err(|e| open_err(e.to_string()))?;
        let index = match Index::open_or_create(directory, schema.clone()) {
            Ok(index) => index,
            // An index an older rushesd made, with other fields: it is only ever a copy of
            // what the files say, so it is made again (the scan at start fills it).
            Err(tantivy::TantivyError::SchemaError(why)) => {
                std::fs::remove_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
                std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
                let directory = tantivy::directory::MmapDirectory::open(dir)
                    .map_err(|e| open_err(e.to_string()))?;
                let _ = why;
                Index::create(directory, schema, Default::default())?
            }
            Err(e) => return Err(e.into()),
        };
        Self::with(index, f)
    }

    /// An index in memory (tests, benches).
    pub fn in_memory() -> Result<Self, IndexError> {
        let (schema, f) = schema();
        Self::with(Index::create_in_ram(schema), f)
    }

    fn with(index: Index, f: Fields) -> Result<Self, IndexError> {
        let writer = index.writer_with_num_threads(1, 32 << 20)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            reader,
            writer: Mutex::new(writer),
            f,
        })
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, IndexWriter> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Put `clip` in the index, in place of what it had at the same share and path.
    /// Seen by searches after [`Self::commit`].
    pub fn put(&self, clip: &Clip) -> Result<(), IndexError> {
        let doc = self.document(clip);
        let writer = self.writer();
        writer.delete_term(IndexTerm::from_field_text(self.f.id, &clip.id()));
        writer.add_document(doc)?;
        Ok(())
    }

    /// Take the clip at `share`/`path` out.
    pub fn remove(&self, share: &str, path: &str) {
        self.writer().delete_term(IndexTerm::from_field_text(
            self.f.id,
            &format!("{share}/{path}"),
        ));
    }

    /// Make what was put and removed visible to searches, and durable.
    pub fn commit(&self) -> Result<(), IndexError> {
        self.writer().commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Close the index once its merges are done, so that nothing of it stays open
    /// (its pool is about to be unmounted).
    pub fn close(self) -> Result<(), IndexError> {
        let writer = self.writer.into_inner().unwrap_or_else(|p| p.into_inner());
        writer.wait_merging_threads()?;
        Ok(())
    }

    /// Clips in the index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The clip at `share`/`path`, if the index has it.
    pub fn get(&self, share: &str, path: &str) -> Result<Option<Clip>, IndexError> {
        let id = IndexTerm::from_field_text(self.f.id, &format!("{share}/{path}"));
        let query = TermQuery::new(id, IndexRecordOption::Basic);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        match top.first() {
            Some((_, at)) => Ok(self.clip(&searcher.doc(*at)?)),
            None => Ok(None),
        }
    }

    /// Every clip under `share` whose path starts with `prefix` (a folder moved or
    /// removed takes its clips with it).
    pub fn paths_under(&self, share: &str, prefix: &str) -> Result<Vec<String>, IndexError> {
        let mut out = Vec::new();
        self.each_path_under(share, prefix, |p| out.push(p.to_string()))?;
        Ok(out)
    }

    /// [`Self::paths_under`] one at a time, in no set order, read from the index's
    /// sorted ids alone: no record is loaded, and a share of a million clips costs a
    /// scan no more memory than one of ten.
    pub fn each_path_under(
        &self,
        share: &str,
        prefix: &str,
        mut each: impl FnMut(&str),
    ) -> Result<(), IndexError> {
        let start = format!("{share}/{prefix}");
        let searcher = self.reader.searcher();
        for segment in searcher.segment_readers() {
            let ids = segment.inverted_index(self.f.id)?;
            let alive = segment.alive_bitset();
            let mut terms = ids.terms().range().ge(start.as_bytes()).into_stream()?;
            while terms.advance() {
                let Some(id) = std::str::from_utf8(terms.key())
                    .ok()
                    .filter(|id| id.starts_with(&start))
                else {
                    break;
                };
                // A clip put again, or removed, leaves its old id in its segment until
                // a merge: only an id that a live document still holds counts.
                let live = match alive {
                    None => true,
                    Some(alive) => {
                        let mut docs = ids
                            .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
                        let mut doc = docs.doc();
                        while doc != tantivy::TERMINATED && !alive.is_alive(doc) {
                            doc = docs.advance();
                        }
                        doc != tantivy::TERMINATED
                    }
                };
                if live {
                    each(&id[share.len() + 1..]);
                }
            }
        }
        Ok(())
    }

    /// The clips matching `text` (see [`crate::query`]), `limit` from `offset`, with the
    /// facet counts of all of them; `shares` keeps results to those shares when given.
    pub fn search(
        &self,
        text: &str,
        shares: Option<&[String]>,
        offset: usize,
        limit: usize,
    ) -> Result<Found, IndexError> {
        search_all(
            &[self],
            &Request {
                text,
                shares,
                offset,
                limit,
                ..Default::default()
            },
        )
    }

    /// The query `terms` make, kept to `shares` when given.
    fn query(&self, terms: &[Term], shares: Option<&[String]>) -> Box<dyn Query> {
        let mut must: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .flat_map(|t| self.clauses(t))
            .map(|q| (Occur::Must, q))
            .collect();
        if let Some(shares) = shares {
            let any: Vec<(Occur, Box<dyn Query>)> = shares
                .iter()
                .map(|s| (Occur::Should, self.keyword(self.f.share, s)))
                .collect();
            must.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if must.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(must))
        }
    }

    /// The best `top` matches in `sort`'s order with their sort keys, the number of
    /// matches, and the facet counts.
    fn matches(
        &self,
        terms: &[Term],
        shares: Option<&[String]>,
        top: usize,
        sort: Sort,
    ) -> Result<Matches, IndexError> {
        let query = self.query(terms, shares);
        let mut facets = FacetCollector::for_field("facets");
        for f in FACETS {
            facets.add_facet(Facet::from(&format!("/{f}")));
        }
        let searcher = self.reader.searcher();
        let order = if sort.reverse {
            tantivy::Order::Desc
        } else {
            tantivy::Order::Asc
        };
        let limit = TopDocs::with_limit(top.max(1));
        // The count, the best with their keys, and the facets, in one pass.
        fn run<C: tantivy::collector::Collector>(
            searcher: &tantivy::Searcher,
            query: &dyn Query,
            best: C,
            facets: FacetCollector,
            key: impl Fn(<C::Fruit as IntoIterator>::Item) -> (Key, tantivy::DocAddress),
        ) -> tantivy::Result<Keyed>
        where
            C::Fruit: IntoIterator,
        {
            let (n, best, counts) = searcher.search(query, &(Count, best, facets))?;
            Ok((n, best.into_iter().map(key).collect(), counts))
        }
        let number = |(v, a): (Option<u64>, _)| (Key::Number(v.map(|v| v as f64)), a);
        let (q, s) = (query.as_ref(), &searcher);
        let (total, best, counts) = match sort.by {
            Order::Relevance => run(s, q, limit.order_by_score(), facets, |(v, a)| {
                (Key::Score(v), a)
            })?,
            Order::Name => run(
                s,
                q,
                limit.order_by_string_fast_field("sort_name", order),
                facets,
                |(v, a)| (Key::Text(v), a),
            )?,
            Order::Path => run(
                s,
                q,
                limit.order_by_string_fast_field("sort_path", order),
                facets,
                |(v, a)| (Key::Text(v), a),
            )?,
            Order::Modified => run(
                s,
                q,
                limit.order_by_fast_field("modified", order),
                facets,
                number,
            )?,
            Order::Size => run(
                s,
                q,
                limit.order_by_fast_field("size", order),
                facets,
                number,
            )?,
            Order::Duration | Order::Timecode => {
                let field = if sort.by == Order::Duration {
                    "duration"
                } else {
                    "tc_start"
                };
                run(
                    s,
                    q,
                    limit.order_by_fast_field::<f64>(field, order),
                    facets,
                    |(v, a)| (Key::Number(v), a),
                )?
            }
        };
        let mut clips = Vec::new();
        for (key, at) in best {
            if let Some(clip) = self.clip(&searcher.doc(at)?) {
                clips.push((key, clip));
            }
        }
        let facets = FACETS
            .iter()
            .map(|f| {
                let values = counts
                    .top_k(format!("/{f}").as_str(), 50)
                    .into_iter()
                    .map(|(facet, n)| {
                        let value = facet
                            .to_path()
                            .last()
                            .map(|s| s.to_string())
                            .unwrap_or_default();
                        (value, n)
                    })
                    .collect();
                (f.to_string(), values)
            })
            .collect();
        Ok((total, clips, facets))
    }

    fn keyword(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            IndexTerm::from_field_text(field, &value.to_lowercase()),
            IndexRecordOption::Basic,
        ))
    }

    fn words(&self, field: Field, text: &str) -> Vec<Box<dyn Query>> {
        tokens(text)
            .into_iter()
            .map(|w| -> Box<dyn Query> {
                Box::new(TermQuery::new(
                    IndexTerm::from_field_text(field, &w),
                    IndexRecordOption::Basic,
                ))
            })
            .collect()
    }

    fn clauses(&self, term: &Term) -> Vec<Box<dyn Query>> {
        let f = &self.f;
        match term {
            Term::Word(w) => self.words(f.all, w),
            Term::Text { field, value } => {
                let field = if *field == "camera" { f.camera } else { f.name };
                self.words(field, value)
            }
            Term::Keyword { field, value } => {
                let field = match *field {
                    "codec" => f.codec,
                    "reel" => f.reel,
                    "tape" => f.tape,
                    "scene" => f.scene,
                    "take" => f.take,
                    "project" => f.project,
                    "share" => f.share,
                    "ext" => f.ext,
                    "format" => f.format,
                    "package" => f.package,
                    _ => f.circled,
                };
                vec![self.keyword(field, value)]
            }
            Term::Number { field, compare } => {
                let float = |field: Field, c: &Compare, slack: f64| -> Box<dyn Query> {
                    let t = |v: f64| IndexTerm::from_field_f64(field, v);
                    let (lo, hi) = match *c {
                        Compare::Eq(v) => {
                            (Bound::Included(t(v - slack)), Bound::Included(t(v + slack)))
                        }
                        Compare::Gt(v) => (Bound::Excluded(t(v)), Bound::Unbounded),
                        Compare::Ge(v) => (Bound::Included(t(v)), Bound::Unbounded),
                        Compare::Lt(v) => (Bound::Unbounded, Bound::Excluded(t(v))),
                        Compare::Le(v) => (Bound::Unbounded, Bound::Included(t(v))),
                    };
                    Box::new(RangeQuery::new(lo, hi))
                };
                let whole = |field: Field, c: &Compare| -> Box<dyn Query> {
                    let t = |v: f64| IndexTerm::from_field_u64(field, v.max(0.0) as u64);
                    let (lo, hi) = match *c {
                        Compare::Eq(v) => (Bound::Included(t(v)), Bound::Included(t(v))),
                        Compare::Gt(v) => (Bound::Excluded(t(v)), Bound::Unbounded),
                        Compare::Ge(v) => (Bound::Included(t(v)), Bound::Unbounded),
                        Compare::Lt(v) => (Bound::Unbounded, Bound::Excluded(t(v))),
                        Compare::Le(v) => (Bound::Unbounded, Bound::Included(t(v))),
                    };
                    Box::new(RangeQuery::new(lo, hi))
                };
                vec![match *field {
                    "width" => whole(f.width, compare),
                    "height" => whole(f.height, compare),
                    "channels" => whole(f.channels, compare),
                    // 23.976 names 24000/1001 (23.97602…).
                    "fps" => float(f.fps, compare, 0.005),
                    _ => float(f.duration, compare, 0.5),
                }]
            }
            Term::Timecode { from, to } => {
                // Spans that overlap: starting by the end, ending after the start.
                vec![
                    Box::new(RangeQuery::new(
                        Bound::Unbounded,
                        Bound::Included(IndexTerm::from_field_f64(f.tc_start, *to + 1.0)),
                    )),
                    Box::new(RangeQuery::new(
                        Bound::Included(IndexTerm::from_field_f64(f.tc_end, *from)),
                        Bound::Unbounded,
                    )),
                ]
            }
        }
    }

    fn clip(&self, doc: &TantivyDocument) -> Option<Clip> {
        let json = doc.get_first(self.f.record)?.as_str()?;
        serde_json::from_str(json).ok()
    }

    fn document(&self, clip: &Clip) -> TantivyDocument {
        let f = &self.f;
        let mut doc = TantivyDocument::default();
        let lower = |s: &str| s.to_lowercase();
        doc.add_text(f.id, clip.id());
        doc.add_u64(f.size, clip.size);
        doc.add_u64(f.modified, clip.modified);
        doc.add_text(f.sort_name, lower(clip.name()));
        doc.add_text(f.sort_path, lower(&clip.path));
        doc.add_text(f.share, lower(&clip.share));
        doc.add_text(f.name, clip.name());
        let ext = clip
            .name()
            .rsplit_once('.')
            .map(|(_, e)| lower(e))
            .unwrap_or_default();
        doc.add_text(f.ext, &ext);
        let mut all = vec![clip.name().to_string(), clip.path.replace('/', " ")];
        for (facet, value) in facet_values(clip) {
            doc.add_facet(f.facets, Facet::from_path([facet, value.as_str()]));
        }
        if let Some(m) = &clip.media {
            doc.add_text(f.format, &m.format);
            if let Some(v) = &m.video {
                doc.add_text(f.codec, lower(&v.codec));
                all.push(v.codec.clone());
                doc.add_u64(f.width, u64::from(v.width));
                doc.add_u64(f.height, u64::from(v.height));
                if let Some(r) = v.frame_rate {
                    doc.add_f64(f.fps, r.value());
                }
            }
            if let Some(d) = m.duration_s {
                doc.add_f64(f.duration, d);
            }
            let channels: u64 = m.audio.iter().map(|a| u64::from(a.channels)).sum();
            if !m.audio.is_empty() {
                doc.add_u64(f.channels, channels);
            }
            if let Some(package) = &m.package {
                doc.add_text(f.package, lower(package));
            }
            if let Some(reel) = &m.reel {
                doc.add_text(f.reel, lower(reel));
                all.push(reel.clone());
            }
            if let Some(tc) = &m.timecode {
                let fps = f64::from(tc.fps.max(1));
                let start = tc_label_seconds(&tc.start, fps);
                let frames = m
                    .video
                    .as_ref()
                    .and_then(|v| v.frames)
                    .map(|n| n as f64 / fps)
                    .or(m.duration_s)
                    .unwrap_or(0.0);
                doc.add_f64(f.tc_start, start);
                doc.add_f64(f.tc_end, start + frames);
            }
            let c = &m.camera;
            let camera = camera_name(c);
            if !camera.is_empty() {
                doc.add_text(f.camera, &camera);
                all.push(camera);
            }
            all.extend(c.clip_name.iter().cloned());
            if let Some(x) = &m.ixml {
                for (field, value) in [
                    (f.scene, &x.scene),
                    (f.take, &x.take),
                    (f.tape, &x.tape),
                    (f.project, &x.project),
                ] {
                    if let Some(v) = value {
                        doc.add_text(field, lower(v));
                        all.push(v.clone());
                    }
                }
                if let Some(circled) = x.circled {
                    doc.add_text(f.circled, circled.to_string());
                }
                all.extend(x.track_names.iter().cloned());
            }
            if let Some(b) = &m.bext {
                all.push(b.description.clone());
            }
        }
        doc.add_text(f.all, all.join(" "));
        doc.add_text(
            f.record,
            serde_json::to_string(clip).unwrap_or_else(|_| "{}".into()),
        );
        doc
    }
}

/// The facets a clip is counted under, with its value for each.
fn facet_values(clip: &Clip) -> Vec<(&'static str, String)> {
    let mut out = vec![("share", clip.share.clone())];
    let Some(m) = &clip.media else {
        return out;
    };
    if let Some(v) = &m.video {
        out.push(("codec", v.codec.clone()));
        out.push(("resolution", format!("{}x{}", v.width, v.height)));
        if let Some(r) = v.frame_rate {
            out.push(("fps", r.decimal()));
        }
    }
    let camera = camera_name(&m.camera);
    if !camera.is_empty() {
        out.push(("camera", camera));
    }
    out
}

/// The camera as searched and counted: make and model (`ARRI ALEXA 35`).
fn camera_name(c: &crate::record::Camera) -> String {
    [&c.make, &c.model]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words as the default tokenizer makes them: lower case, split at what is not a letter
/// or a digit.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A timecode label as seconds since midnight (frames as a fraction at `fps`).
fn tc_label_seconds(label: &str, fps: f64) -> f64 {
    let n: Vec<f64> = label
        .split([':', ';'])
        .filter_map(|p| p.parse().ok())
        .collect();
    match n.as_slice() {
        [h, m, s, f] => h * 3600.0 + m * 60.0 + s + f / fps,
        _ => 0.0,
    }
}

/// Search several indexes (one a share) as one: results merged in the order asked,
/// `limit` from `offset`; totals and facet counts added up.
pub fn search_all(catalogs: &[&Catalog], req: &Request<'_>) -> Result<Found, IndexError> {
    let terms = query::parse(req.text)?;
    let limit = req.limit.clamp(1, 1000);
    let top = match req.allowed {
        // Every match is asked about (up to a bound), for a true total and facets.
        Some(_) => CHECKED,
        None => req.offset.saturating_add(limit).min(100_000),
    };
    let mut total = 0;
    // The sort key, then which index and the rank it gave: ties keep tantivy's own order
    // (by document), which is the same whatever the page, so pages never overlap.
    let mut all: Vec<(Key, usize, usize, Clip)> = Vec::new();
    let mut counts: std::collections::BTreeMap<String, std::collections::HashMap<String, u64>> =
        Default::default();
    for (which, c) in catalogs.iter().enumerate() {
        let (n, clips, facets) = c.matches(&terms, req.shares, top, req.sort)?;
        match req.allowed {
            None => {
                total += n;
                for (facet, values) in facets {
                    let slot = counts.entry(facet).or_default();
                    for (value, n) in values {
                        *slot.entry(value).or_default() += n;
                    }
                }
                all.extend(
                    clips
                        .into_iter()
                        .enumerate()
                        .map(|(rank, (key, clip))| (key, which, rank, clip)),
                );
            }
            Some(allowed) => {
                for (rank, (key, clip)) in clips.into_iter().enumerate() {
                    if !allowed(&clip) {
                        continue;
                    }
                    total += 1;
                    for (facet, value) in facet_values(&clip) {
                        *counts
                            .entry(facet.to_string())
                            .or_default()
                            .entry(value)
                            .or_default() += 1;
                    }
                    all.push((key, which, rank, clip));
                }
            }
        }
    }
    let sort = req.sort;
    all.sort_by(|a, b| {
        a.0.order(&b.0, sort)
            .then_with(|| (a.1, a.2).cmp(&(b.1, b.2)))
    });
    let offset = req.offset;
    // The files of one OP-Atom clip (one material package) are one result: the first
    // found, with the others as its members.
    let mut clips: Vec<Clip> = Vec::new();
    let mut first_of: std::collections::HashMap<(String, String), usize> = Default::default();
    for (_, _, _, clip) in all {
        let package = clip
            .media
            .as_ref()
            .filter(|m| m.operational_pattern.as_deref() == Some("op-atom"))
            .and_then(|m| m.package.clone());
        match package.map(|p| (clip.share.clone(), p)) {
            Some(key) => match first_of.get(&key) {
                Some(&at) => {
                    clips[at].members.push(clip.path);
                    total -= 1;
                }
                None => {
                    first_of.insert(key, clips.len());
                    clips.push(clip);
                }
            },
            None => clips.push(clip),
        }
    }
    let clips = clips.into_iter().skip(offset).take(limit).collect();
    let facets = FACETS
        .iter()
        .map(|f| {
            let mut values: Vec<FacetCount> = counts
                .remove(*f)
                .unwrap_or_default()
                .into_iter()
                .map(|(value, count)| FacetCount { value, count })
                .collect();
            values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            values.truncate(20);
            crate::record::Facet {
                name: f.to_string(),
                values,
            }
        })
        .collect();
    Ok(Found {
        total,
        clips,
        facets,
    })
}
