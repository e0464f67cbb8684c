//! The rules file (`[[pool]]` watermarks and `[[rule]]`s, in order) as the admin writes
//! it, and its check: every refusal names the line and the reason, and nothing is
//! compiled (nothing can move) until the whole file passes.

use std::collections::HashSet;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::units::parse_size;

/// The extended attribute holding a file's tags (`grade,hero`), which `tag` matches.
pub const TAGS_XATTR: &str = "user.rushes.tags";

/// A rules file, or the `[placement]` table of rushes.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// How often the scheduled run reconciles every file with its rule (`6h`, `1d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Spanned<String>>,
    /// How old a copy's last proof may get before a reconcile reads it back again
    /// (`30d`): each run proves again the copies gone stale, a rolling sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Spanned<String>>,
    #[serde(default, rename = "pool", skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Spanned<PoolEntry>>,
    #[serde(default, rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Spanned<RuleEntry>>,
}

/// `[[pool]]`: a pool's watermarks. Past `high` % full, rules triggered `on watermark`
/// move its files away, `weight` first, until it is back under `low` %.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    pub name: String,
    pub high: u8,
    pub low: u8,
    /// Which files leave first: `oldest-access` (default), `oldest-modify`, `largest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
    /// How long the pool may stay past `high` before an alert says runs are not bringing
    /// it down (`15m` if not set; a minute at least).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_after: Option<String>,
}

/// `[[rule]]`: conditions on a file (all must hold), and what should be true of it:
/// where its data is (`place`, `pin`, `exclude`), how many proven copies it has on
/// which targets (`copies` and `targets`, on any rule; `copy` rules say only that).
/// Placement and copies each take the first rule that matches and says something of
/// them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    pub name: String,
    /// `place` (on `pool`), `pin` (never moves), `exclude` (no rule moves it) or `copy`
    /// (copies only).
    pub action: String,
    /// Proven copies the file keeps, on `targets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u32>,
    /// The targets copies go to, first ones first: `copies = 2` on three targets uses
    /// the third when one of the first two cannot take a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// When a `place` rule acts: `create`, `schedule`, `watermark` (default: create and
    /// schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// A pattern on the path inside the share: `grade/**`, `*/renders/*.exr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A pattern on the file's own name: `*_prores.mov`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub larger_than: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smaller_than: Option<String>,
    /// An account name or a uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A group name or a gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_older_than: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_newer_than: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessed_older_than: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessed_newer_than: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_older_than: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_newer_than: Option<String>,
    /// The pool the file's data is on now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pool: Option<String>,
    /// One of the file's tags (the `user.rushes.tags` attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `user.NAME=VALUE`, or `user.NAME` for "has that attribute".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xattr: Option<String>,
}

/// What the box knows that rules may name.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub shares: Vec<String>,
    pub pools: Vec<String>,
    /// Accounts and groups by name, for `owner` and `group`.
    pub users: Vec<(String, u32)>,
    pub groups: Vec<(String, u32)>,
    /// Targets copies may go to.
    pub targets: Vec<String>,
}

/// One reason a rules file is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}{}: {reason}", rule.as_ref().map(|r| format!(" (rule {r:?})")).unwrap_or_default())]
pub struct RuleError {
    pub line: usize,
    pub rule: Option<String>,
    pub reason: String,
}

/// The clock a file's age is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Modified,
    Accessed,
    Created,
}

impl Clock {
    pub fn word(self) -> &'static str {
        match self {
            Clock::Modified => "modified",
            Clock::Accessed => "accessed",
            Clock::Created => "created",
        }
    }
}

/// One condition of a rule, compiled.
#[derive(Debug, Clone)]
pub enum Condition {
    Share(String),
    Path(GlobMatcher),
    File(GlobMatcher),
    Extension(Vec<String>),
    LargerThan(u64),
    SmallerThan(u64),
    Owner(u32, String),
    Group(u32, String),
    /// Older than `secs` (or newer, when `older` is false) by `clock`.
    Age {
        clock: Clock,
        older: bool,
        secs: u64,
        text: String,
    },
    CurrentPool(String),
    Tag(String),
    Xattr {
        name: String,
        value: Option<Vec<u8>>,
    },
}

/// What a matching rule wants true of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "pool")]
pub enum Action {
    Place(String),
    Pin,
    Exclude,
    /// Says nothing of placement: the rule keeps copies only.
    Copy,
}

/// What a rule wants of a file's copies: `copies` proven ones on `targets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyWish {
    pub copies: u32,
    pub targets: Vec<String>,
}

/// When a rule acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Triggers {
    pub create: bool,
    pub schedule: bool,
    pub watermark: bool,
}

impl Triggers {
    const ALL: Triggers = Triggers {
        create: true,
        schedule: true,
        watermark: true,
    };

    fn covers(self, other: Triggers) -> bool {
        (self.create || !other.create)
            && (self.schedule || !other.schedule)
            && (self.watermark || !other.watermark)
    }

    pub fn words(self) -> Vec<&'static str> {
        let mut w = Vec::new();
        for (on, word) in [
            (self.create, "create"),
            (self.schedule, "schedule"),
            (self.watermark, "watermark"),
        ] {
            if on {
                w.push(word);
            }
        }
        w
    }
}

/// A rule that passed its check.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub line: usize,
    pub conditions: Vec<Condition>,
    pub action: Action,
    pub triggers: Triggers,
    pub copies: Option<CopyWish>,
}

impl Rule {
    /// Whether it says where data goes (a `copy` rule does not).
    pub fn places(&self) -> bool {
        self.action != Action::Copy
    }
}

/// Which files leave a full pool first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weight {
    OldestAccess,
    OldestModify,
    Largest,
}

/// A pool's watermarks, in percent of its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watermark {
    pub pool: String,
    pub high: u8,
    pub low: u8,
    pub weight: Weight,
    /// Seconds past `high` before the pool-stays-full alert.
    pub alert_after: u64,
}

/// How long a pool may stay past its high watermark before an alert, unless its
/// `alert_after` says otherwise: runs are not bringing it down (no rule moves its
/// files, or their target is full or refusing).
pub const STAYS_FULL_SECS: u64 = 900;

/// A checked rules file: what simulate, explain and the mover run on.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub watermarks: Vec<Watermark>,
    /// Seconds between scheduled runs, if they are on.
    pub every: Option<u64>,
    /// Seconds after which a copy's proof is stale and read back again.
    pub audit: Option<u64>,
}

/// The line (from 1) holding byte `offset` of `source`.
pub fn line_of(source: &str, offset: usize) -> usize {
    source.as_bytes()[..offset.min(source.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A file that is not TOML, or has a field no rule takes, refused at its line.
fn toml_refusal(source: &str, e: &toml::de::Error) -> Vec<RuleError> {
    vec![RuleError {
        line: e.span().map_or(1, |s| line_of(source, s.start)),
        rule: None,
        reason: e.message().to_string(),
    }]
}

impl RuleSet {
    /// Read and check a standalone rules file.
    pub fn parse(source: &str, names: &Names) -> Result<RuleSet, Vec<RuleError>> {
        let file: RulesFile = toml::from_str(source).map_err(|e| toml_refusal(source, &e))?;
        Self::check(&file, source, names)
    }

    /// Read and check the `[placement]` table of rushes.toml (`source`), its lines
    /// counted in that file; a file without one has no rules.
    pub fn parse_config(source: &str, names: &Names) -> Result<RuleSet, Vec<RuleError>> {
        #[derive(Deserialize)]
        struct Config {
            #[serde(default)]
            placement: Option<RulesFile>,
        }
        let config: Config = toml::from_str(source).map_err(|e| toml_refusal(source, &e))?;
        Self::check(&config.placement.unwrap_or_default(), source, names)
    }

    /// Check `file`, read from `source` (whose spans it carries), against `names`. All
    /// refusals are returned together, so one pass fixes them.
    pub fn check(file: &RulesFile, source: &str, names: &Names) -> Result<RuleSet, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut set = RuleSet::default();
        for (field, value, slot, why) in [
            (
                "every",
                &file.every,
                &mut set.every,
                "a scheduled run walks every file",
            ),
            (
                "audit",
                &file.audit,
                &mut set.audit,
                "every run would read every copy back",
            ),
        ] {
            let Some(value) = value else { continue };
            let line = line_of(source, value.span().start);
            match rushes_api::calendar::parse_span(value.get_ref()) {
                Ok(secs) if secs >= 60 => *slot = Some(secs),
                Ok(_) => errors.push(RuleError {
                    line,
                    rule: None,
                    reason: format!("`{field}` is under a minute: {why}"),
                }),
                Err(reason) => errors.push(RuleError {
                    line,
                    rule: None,
                    reason,
                }),
            }
        }
        for entry in &file.pools {
            let line = line_of(source, entry.span().start);
            match check_pool(entry.get_ref(), names) {
                Ok(w) if set.watermarks.iter().any(|o| o.pool == w.pool) => {
                    errors.push(RuleError {
                        line,
                        rule: None,
                        reason: format!("pool {:?} has watermarks twice", w.pool),
                    })
                }
                Ok(w) => set.watermarks.push(w),
                Err(reason) => errors.push(RuleError {
                    line,
                    rule: None,
                    reason,
                }),
            }
        }
        let mut seen = HashSet::new();
        for entry in &file.rules {
            let e = entry.get_ref();
            let line = line_of(source, entry.span().start);
            let fail = |reason: String| RuleError {
                line,
                rule: Some(e.name.clone()),
                reason,
            };
            if e.name.trim().is_empty() {
                errors.push(fail(
                    "the rule has no name: give it one to find it in explain".into(),
                ));
                continue;
            }
            if !seen.insert(e.name.clone()) {
                errors.push(fail("another rule has this name".into()));
                continue;
            }
            match check_rule(e, names, &set.watermarks) {
                Ok((conditions, action, triggers, copies)) => {
                    let rule = Rule {
                        name: e.name.clone(),
                        line,
                        conditions,
                        action,
                        triggers,
                        copies,
                    };
                    // A rule after one that matches every file is dead for what both say.
                    if let Some(earlier) = set.rules.iter().find(|r| {
                        r.conditions.is_empty()
                            && ((rule.places() && r.places() && r.triggers.covers(rule.triggers))
                                || (rule.copies.is_some() && r.copies.is_some()))
                    }) {
                        errors.push(fail(format!(
                            "never reached: rule {:?} (line {}) before it matches every file",
                            earlier.name, earlier.line
                        )));
                    }
                    set.rules.push(rule);
                }
                Err(reasons) => errors.extend(reasons.into_iter().map(fail)),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The extended attributes the rules read (besides the location), so a scan reads
    /// no others.
    pub fn xattr_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for c in self.rules.iter().flat_map(|r| &r.conditions) {
            let name = match c {
                Condition::Tag(_) => TAGS_XATTR,
                Condition::Xattr { name, .. } => name.as_str(),
                _ => continue,
            };
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    }

    pub fn watermark(&self, pool: &str) -> Option<&Watermark> {
        self.watermarks.iter().find(|w| w.pool == pool)
    }

    /// Whether a watermark rule moves files off `pool` when it is past its high mark.
    pub fn empties(&self, pool: &str) -> bool {
        self.rules.iter().any(|r| {
            r.triggers.watermark
                && matches!(&r.action, Action::Place(to) if to != pool)
                && r.conditions
                    .iter()
                    .any(|c| matches!(c, Condition::CurrentPool(p) if p == pool))
        })
    }
}

fn known(kind: &str, name: &str, all: &[String]) -> Result<(), String> {
    if all.iter().any(|n| n == name) {
        Ok(())
    } else if all.is_empty() {
        Err(format!(
            "there is no {kind} {name:?}: the box has no {kind}s yet"
        ))
    } else {
        Err(format!(
            "there is no {kind} {name:?}: {kind}s are {}",
            all.join(", ")
        ))
    }
}

fn check_pool(e: &PoolEntry, names: &Names) -> Result<Watermark, String> {
    known("pool", &e.name, &names.pools)?;
    if e.high == 0 || e.high > 100 {
        return Err(format!("high {} is not a percentage from 1 to 100", e.high));
    }
    if e.low >= e.high {
        return Err(format!(
            "low {} must be under high {}: moves stop at low",
            e.low, e.high
        ));
    }
    let weight = match e.weight.as_deref().unwrap_or("oldest-access") {
        "oldest-access" => Weight::OldestAccess,
        "oldest-modify" => Weight::OldestModify,
        "largest" => Weight::Largest,
        other => {
            return Err(format!(
                "weight {other:?} is not one of oldest-access, oldest-modify, largest"
            ))
        }
    };
    let alert_after = match e.alert_after.as_deref() {
        None => STAYS_FULL_SECS,
        Some(text) => match rushes_api::calendar::parse_span(text) {
            Ok(secs) if secs >= 60 => secs,
            Ok(_) => {
                return Err(format!(
                    "alert_after {text:?} is under a minute: a run needs longer than that to bring a pool down"
                ))
            }
            Err(reason) => return Err(format!("alert_after: {reason}")),
        },
    };
    Ok(Watermark {
        pool: e.name.clone(),
        high: e.high,
        low: e.low,
        weight,
        alert_after,
    })
}

fn glob(field: &str, pattern: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{field} {pattern:?} is not a pattern: {}", e.kind()))
}

fn id_of(field: &str, text: &str, known: &[(String, u32)]) -> Result<u32, String> {
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    known
        .iter()
        .find(|(n, _)| n == text)
        .map(|(_, id)| *id)
        .ok_or_else(|| format!("{field} {text:?} is neither a known name nor a number"))
}

type Checked = (Vec<Condition>, Action, Triggers, Option<CopyWish>);

fn check_rule(
    e: &RuleEntry,
    names: &Names,
    watermarks: &[Watermark],
) -> Result<Checked, Vec<String>> {
    let mut errors = Vec::new();
    let mut conditions = Vec::new();
    let mut add = |c: Result<Condition, String>| match c {
        Ok(c) => conditions.push(c),
        Err(reason) => errors.push(reason),
    };
    if let Some(share) = &e.share {
        add(known("share", share, &names.shares).map(|_| Condition::Share(share.clone())));
    }
    if let Some(path) = &e.path {
        add(
            if path.starts_with('/') || path.split('/').any(|p| p == "..") {
                Err(format!(
                    "path {path:?} must be inside the share: no leading / and no .."
                ))
            } else {
                glob("path", path).map(Condition::Path)
            },
        );
    }
    if let Some(file) = &e.file {
        add(if file.contains('/') {
            Err(format!(
                "file {file:?} is a name, not a path: use `path` for folders"
            ))
        } else {
            glob("file", file).map(Condition::File)
        });
    }
    if let Some(exts) = &e.extension {
        add(if exts.is_empty() {
            Err("extension lists none: it would match no file".into())
        } else {
            Ok(Condition::Extension(
                exts.iter()
                    .map(|x| x.trim_start_matches('.').to_ascii_lowercase())
                    .collect(),
            ))
        });
    }
    let larger = e.larger_than.as_deref().map(parse_size);
    let smaller = e.smaller_than.as_deref().map(parse_size);
    if let (Some(Ok(l)), Some(Ok(s))) = (&larger, &smaller) {
        if l >= s {
            add(Err(format!(
                "larger_than {} and smaller_than {} leave no size between them",
                e.larger_than.as_deref().unwrap_or_default(),
                e.smaller_than.as_deref().unwrap_or_default()
            )));
        }
    }
    if let Some(l) = larger {
        add(l
            .map(Condition::LargerThan)
            .map_err(|r| format!("larger_than: {r}")));
    }
    if let Some(s) = smaller {
        add(s
            .map(Condition::SmallerThan)
            .map_err(|r| format!("smaller_than: {r}")));
    }
    if let Some(owner) = &e.owner {
        add(id_of("owner", owner, &names.users).map(|id| Condition::Owner(id, owner.clone())));
    }
    if let Some(group) = &e.group {
        add(id_of("group", group, &names.groups).map(|id| Condition::Group(id, group.clone())));
    }
    for (clock, older, text, field) in [
        (
            Clock::Modified,
            true,
            &e.modified_older_than,
            "modified_older_than",
        ),
        (
            Clock::Modified,
            false,
            &e.modified_newer_than,
            "modified_newer_than",
        ),
        (
            Clock::Accessed,
            true,
            &e.accessed_older_than,
            "accessed_older_than",
        ),
        (
            Clock::Accessed,
            false,
            &e.accessed_newer_than,
            "accessed_newer_than",
        ),
        (
            Clock::Created,
            true,
            &e.created_older_than,
            "created_older_than",
        ),
        (
            Clock::Created,
            false,
            &e.created_newer_than,
            "created_newer_than",
        ),
    ] {
        if let Some(text) = text {
            add(rushes_api::calendar::parse_span(text)
                .map(|secs| Condition::Age {
                    clock,
                    older,
                    secs,
                    text: text.clone(),
                })
                .map_err(|r| format!("{field}: {r}")));
        }
    }
    for clock in [Clock::Modified, Clock::Accessed, Clock::Created] {
        let bound = |want_older: bool| {
            conditions.iter().find_map(|c| match c {
                Condition::Age {
                    clock: k,
                    older,
                    secs,
                    ..
                } if *k == clock && *older == want_older => Some(*secs),
                _ => None,
            })
        };
        if let (Some(older), Some(newer)) = (bound(true), bound(false)) {
            if newer <= older {
                errors.push(format!(
                    "{0}_older_than and {0}_newer_than leave no age between them",
                    clock.word()
                ));
            }
        }
    }
    if let Some(pool) = &e.current_pool {
        match known("pool", pool, &names.pools) {
            Ok(()) => conditions.push(Condition::CurrentPool(pool.clone())),
            Err(r) => errors.push(format!("current_pool: {r}")),
        }
    }
    if let Some(tag) = &e.tag {
        if tag.is_empty() || tag.contains(',') {
            errors.push(format!(
                "tag {tag:?} must be one non-empty tag, without commas"
            ));
        } else {
            conditions.push(Condition::Tag(tag.clone()));
        }
    }
    if let Some(x) = &e.xattr {
        let (name, value) = match x.split_once('=') {
            Some((n, v)) => (n, Some(v.as_bytes().to_vec())),
            None => (x.as_str(), None),
        };
        if !name.starts_with("user.") || name.len() <= 5 {
            errors.push(format!(
                "xattr {name:?} must be a user.* attribute (the others are the system's)"
            ));
        } else {
            conditions.push(Condition::Xattr {
                name: name.to_string(),
                value,
            });
        }
    }
    let action = match (e.action.as_str(), &e.pool) {
        ("place", Some(pool)) => match known("pool", pool, &names.pools) {
            Ok(()) => Some(Action::Place(pool.clone())),
            Err(r) => {
                errors.push(r);
                None
            }
        },
        ("place", None) => {
            errors.push("place needs `pool`: the pool the data should be on".into());
            None
        }
        ("pin" | "exclude", Some(_)) => {
            errors.push(format!(
                "{} takes no pool: it keeps the data where it is",
                e.action
            ));
            None
        }
        ("pin", None) => Some(Action::Pin),
        ("exclude", None) => Some(Action::Exclude),
        ("copy", Some(_)) => {
            errors.push("copy takes no pool: it keeps copies and moves nothing".into());
            None
        }
        ("copy", None) => Some(Action::Copy),
        (other, _) => {
            errors.push(format!(
                "action {other:?} is not one of place, pin, exclude, copy"
            ));
            None
        }
    };
    let copies = match (e.copies, &e.targets) {
        (None, None) => {
            if e.action == "copy" {
                errors.push("copy needs `copies` and `targets`: how many, and where".into());
            }
            None
        }
        (Some(_), None) => {
            errors.push("`copies` needs `targets`: where the copies go".into());
            None
        }
        (None, Some(_)) => {
            errors.push("`targets` needs `copies`: how many copies to keep".into());
            None
        }
        (Some(n), Some(targets)) => {
            let mut ok = true;
            for t in targets {
                if let Err(r) = known("target", t, &names.targets) {
                    errors.push(format!("targets: {r}"));
                    ok = false;
                }
            }
            let mut seen = HashSet::new();
            if let Some(twice) = targets.iter().find(|t| !seen.insert(t.as_str())) {
                errors.push(format!("targets names {twice:?} twice"));
                ok = false;
            }
            if n == 0 || n as usize > targets.len() {
                errors.push(format!(
                    "copies = {n} on {} target(s): from 1 to as many as the targets",
                    targets.len()
                ));
                ok = false;
            }
            ok.then(|| CopyWish {
                copies: n,
                targets: targets.clone(),
            })
        }
    };
    let mut triggers = Triggers::default();
    match (e.action.as_str(), &e.on) {
        ("pin" | "exclude" | "copy", Some(_)) => {
            errors.push(format!("{} holds at every trigger: drop `on`", e.action))
        }
        ("pin" | "exclude" | "copy", None) => triggers = Triggers::ALL,
        (_, None) => {
            triggers.create = true;
            triggers.schedule = true;
        }
        (_, Some(words)) => {
            if words.is_empty() {
                errors.push("`on` lists no trigger: the rule would never act".into());
            }
            for w in words {
                match w.as_str() {
                    "create" => triggers.create = true,
                    "schedule" => triggers.schedule = true,
                    "watermark" => triggers.watermark = true,
                    other => errors.push(format!(
                        "on {other:?} is not one of create, schedule, watermark"
                    )),
                }
            }
        }
    }
    if let Some(Action::Place(to)) = &action {
        if e.current_pool.as_deref() == Some(to.as_str()) {
            errors.push(format!(
                "it places data on {to:?} that is already on {to:?}: it moves nothing"
            ));
        }
        if triggers.watermark {
            match &e.current_pool {
                None => errors.push(
                    "on watermark needs `current_pool`: the pool whose watermarks trigger it"
                        .into(),
                ),
                Some(from) if !watermarks.iter().any(|w| &w.pool == from) => errors.push(format!(
                    "on watermark, but pool {from:?} has no [[pool]] watermarks"
                )),
                Some(_) => {}
            }
        }
    }
    match action {
        Some(action) if errors.is_empty() => Ok((conditions, action, triggers, copies)),
        _ => Err(errors),
    }
}

/// A condition as the rules file writes it: `path = "grade/**"`.
impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Share(s) => write!(f, "share = {s:?}"),
            Condition::Path(g) => write!(f, "path = {:?}", g.glob().glob()),
            Condition::File(g) => write!(f, "file = {:?}", g.glob().glob()),
            Condition::Extension(x) => write!(f, "extension = {x:?}"),
            Condition::LargerThan(n) => {
                write!(f, "larger_than = {:?}", crate::units::show_size(*n))
            }
            Condition::SmallerThan(n) => {
                write!(f, "smaller_than = {:?}", crate::units::show_size(*n))
            }
            Condition::Owner(_, o) => write!(f, "owner = {o:?}"),
            Condition::Group(_, g) => write!(f, "group = {g:?}"),
            Condition::Age {
                clock, older, text, ..
            } => write!(
                f,
                "{}_{}_than = {text:?}",
                clock.word(),
                if *older { "older" } else { "newer" }
            ),
            Condition::CurrentPool(p) => write!(f, "current_pool = {p:?}"),
            Condition::Tag(t) => write!(f, "tag = {t:?}"),
            Condition::Xattr { name, value: None } => write!(f, "xattr = {name:?}"),
            Condition::Xattr {
                name,
                value: Some(v),
            } => {
                write!(f, "xattr = \"{name}={}\"", String::from_utf8_lossy(v))
            }
        }
    }
}
