//! The tree's shape: no import circles between the files of any crate. A file that
//! names another crate module (`use crate::pools::Pools`, `crate::core::Core`, a root
//! file's `config::ConfigStore`, a `super::` path) depends on that module's file; a
//! circle of such dependencies is a hub that will not come apart, and this test names
//! it, with what ties each link.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate of the workspace, by the folder its `src` is in.
const CRATES: &[&str] = &[
    "appliance/api",
    "appliance/nas",
    "appliance/storage",
    "appliance/rushesd",
    "appliance/rushesctl",
    "appliance/init",
    "image",
    "tui",
    "firmware",
    "tests",
];

/// A crate's module files by module path (`[]` is the root, `["screens", "pools"]` is
/// `src/screens/pools.rs` or `src/screens/pools/mod.rs`).
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
            let path = e.path();
            if path.is_dir() {
                // `src/bin` holds separate crates, each a root of its own.
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            match parts.last().map(String::as_str) {
                Some("mod") => {
                    parts.pop();
                }
                Some("main" | "lib") if parts.len() == 1 => parts.clear(),
                _ => {}
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The code of a file without comments and without its test module (tests name the
/// file they test through `super::`, which is no dependency).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        // A re-export (`pub use client::Client;` in a root) hands a name on; it is not
        // a use of the module.
        .filter(|l| !l.trim_start().starts_with("pub use "))
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file names: `crate::a::b`, `super::a`, `self::a`, and from a
/// module that declares children, `child::x`. `use` groups (`crate::{a, b::c}`) are
/// split into their paths.
fn named_paths(code: &str, here: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !ident(bytes[i]) || (i > 0 && (ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        // A path starts here: read `seg::seg::…`, stopping at a group.
        let mut segs: Vec<String> = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            segs.push(code[start..j].to_string());
            if code[j..].starts_with("::")
                && code[j + 2..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                j += 2;
            } else {
                break;
            }
        }
        let group = code[j..].starts_with("::{");
        // `pub(crate)`, `pub(super)` and a method's `self.` name no module.
        let names_something = segs.len() > 1 || group;
        let base: Option<Vec<String>> = match segs[0].as_str() {
            _ if !names_something => None,
            "crate" => Some(segs[1..].to_vec()),
            "super" => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                (ups <= here.len()).then(|| {
                    let mut p = here[..here.len() - ups].to_vec();
                    p.extend(segs[ups..].iter().cloned());
                    p
                })
            }
            "self" => {
                let mut p = here.to_vec();
                p.extend(segs[1..].iter().cloned());
                Some(p)
            }
            first if children.contains(first) => {
                let mut p = here.to_vec();
                p.extend(segs.iter().cloned());
                Some(p)
            }
            _ => None,
        };
        if let Some(base) = base {
            if group {
                // `crate::{a::X, b}`: each item of the group is a path below `base`.
                let open = j + 2;
                let mut depth = 0;
                let mut end = open;
                for (k, c) in code[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + k;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                for item in code[open + 1..end].split(',') {
                    let first: Vec<String> = item
                        .trim()
                        .split("::")
                        .map(|s| s.trim().to_string())
                        .take_while(|s| {
                            !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                        })
                        .collect();
                    let mut p = base.clone();
                    p.extend(first);
                    out.push(p);
                }
                j = end;
            } else {
                out.push(base);
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// A module path: `[]` for the root, `["screens", "pools"]`.
type Module = Vec<String>;
/// Each module file's dependencies on the others.
type Edges = BTreeMap<Module, BTreeSet<Module>>;

/// The module file a path lands in: the longest prefix that is a module.
fn owner<'a>(path: &[String], mods: &'a BTreeMap<Vec<String>, PathBuf>) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| mods.get_key_value(&path[..n]).map(|(k, _)| k))
}

/// Strongly connected groups of more than one file (Tarjan).
fn circles(edges: &Edges) -> Vec<Vec<Module>> {
    struct T<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<Vec<String>>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Vec<String>) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.edges.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut group = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                group.push(w.clone());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                t.out.push(group);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// Each crate's file-to-file dependencies.
fn dependencies(src: &Path) -> (BTreeMap<Module, PathBuf>, Edges) {
    let mods = modules(src);
    let mut edges: Edges = BTreeMap::new();
    for (here, file) in &mods {
        let text = std::fs::read_to_string(file).unwrap();
        let children: BTreeSet<String> = mods
            .keys()
            .filter(|k| k.len() == here.len() + 1 && k.starts_with(here))
            .map(|k| k[here.len()].clone())
            .collect();
        let deps = edges.entry(here.clone()).or_default();
        for path in named_paths(&code(&text), here, &children) {
            if let Some(to) = owner(&path, &mods) {
                if to != here {
                    deps.insert(to.clone());
                }
            }
        }
    }
    (mods, edges)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn no_crate_has_an_import_circle_between_its_files() {
    let mut found = Vec::new();
    for krate in CRATES {
        let src = root().join(krate).join("src");
        let (mods, edges) = dependencies(&src);
        for group in circles(&edges) {
            let files: Vec<String> = group
                .iter()
                .map(|m| mods[m].strip_prefix(root()).unwrap().display().to_string())
                .collect();
            let links: Vec<String> = group
                .iter()
                .flat_map(|m| {
                    edges[m]
                        .iter()
                        .filter(|to| group.contains(to))
                        .map(|to| format!("{} -> {}", mods[m].display(), mods[to].display()))
                        .collect::<Vec<_>>()
                })
                .collect();
            found.push(format!(
                "{krate}: a circle of {}:\n    {}",
                files.join(", "),
                links.join("\n    ")
            ));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// The checker itself finds a circle, and does not see one where there is none.
#[test]
fn the_circle_check_sees_a_circle_and_only_a_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("screens")).unwrap();
    std::fs::write(
        src.join("main.rs"),
        "mod a;\nmod b;\nmod screens;\nuse a::Thing;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a.rs"),
        "use crate::{b::Other, screens};\npub struct Thing;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "// crate::main is only a comment\npub struct Other;\n#[cfg(test)]\nmod tests {\n    use crate::a::Thing;\n}\n",
    )
    .unwrap();
    std::fs::write(src.join("screens/mod.rs"), "mod pools;\n").unwrap();
    std::fs::write(
        src.join("screens/pools.rs"),
        "use super::super::b::Other;\n",
    )
    .unwrap();
    let (_, edges) = dependencies(src);
    let key = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(edges[&key(&[])].contains(&key(&["a"])), "{edges:?}");
    assert!(edges[&key(&["a"])].contains(&key(&["b"])), "{edges:?}");
    assert!(
        edges[&key(&["a"])].contains(&key(&["screens"])),
        "{edges:?}"
    );
    assert!(
        edges[&key(&["screens", "pools"])].contains(&key(&["b"])),
        "{edges:?}"
    );
    assert!(circles(&edges).is_empty(), "{edges:?}");
    // b reaching back into a closes a circle.
    std::fs::write(src.join("b.rs"), "pub struct Other(crate::a::Thing);\n").unwrap();
    let (_, edges) = dependencies(src);
    let found = circles(&edges);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].len(), 2);
}

/// `rust-version` says the lowest toolchain that builds the workspace: no dependency
/// needs a newer one, and it is not lower than one of them needs. (Clippy's
/// `incompatible_msrv` lint, on in `make lint`, holds our own code to it.)
#[test]
fn the_declared_rust_version_is_the_lowest_the_dependencies_allow() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        // Only what builds for the appliance's target: other platforms' dependencies
        // (Android's, Windows') are never downloaded on a fresh machine, and --offline
        // would fail on them.
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = |v: &serde_json::Value| -> Option<Vec<u32>> {
        let mut parts: Vec<u32> = v.as_str()?.split('.').map(|p| p.parse().unwrap()).collect();
        parts.resize(3, 0);
        Some(parts)
    };
    let ours: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let mut declared = BTreeSet::new();
    let mut needed = (vec![0, 0, 0], String::new());
    for p in meta["packages"].as_array().unwrap() {
        let Some(v) = version(&p["rust_version"]) else {
            continue;
        };
        if ours.contains(p["id"].as_str().unwrap()) {
            declared.insert(v);
        } else if v > needed.0 {
            needed = (v, format!("{} {}", p["name"], p["version"]));
        }
    }
    assert_eq!(
        declared.len(),
        1,
        "every crate inherits the workspace's rust-version: {declared:?}"
    );
    let declared = declared.into_iter().next().unwrap();
    assert_eq!(
        declared, needed.0,
        "Cargo.toml's rust-version must be what the most demanding dependency ({}) needs",
        needed.1
    );
}
