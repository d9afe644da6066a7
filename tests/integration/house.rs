//! The shape of `src/` (DESIGN.md §1): no import circle between its files, and the job queue
//! knows no capability. Read from the source text: every `crate::…`, `super::…` and
//! `self::…` path outside comments and test modules is an arrow from its file to the file
//! that defines the module it names. A folder's front door (`mod.rs`, `lib.rs`) may name what
//! it holds, so its arrows into its own folder do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/web/refunds/ask.rs` → ["web", "refunds", "ask"].
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod") | Some("lib") | Some("main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file that counts: comments and `#[cfg(test)]` modules left out.
fn code(text: &str) -> String {
    let cut = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path the code names, made absolute from the file's own module.
fn named_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &code[i..];
        let start = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|p| boundary && rest.starts_with(p));
        let Some(prefix) = start else {
            i += 1;
            continue;
        };
        // The path: identifiers joined by `::`, up to the first `{`, space or other mark.
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let segments: Vec<&str> = rest[..end].split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Vec<String> = match prefix {
            "crate::" => Vec::new(),
            // `super` is the module above this file's own (for a front door, above its folder).
            "super::" => module[..module.len().saturating_sub(1)].to_vec(),
            _ => module.to_vec(),
        };
        let mut segs = segments.into_iter().skip(1).peekable();
        // `super::super::…`
        while segs.peek() == Some(&"super") {
            segs.next();
            base.pop();
        }
        base.extend(segs.map(str::to_string));
        out.push(base);
        i += end.max(1);
    }
    out
}

struct House {
    /// Module path → file.
    files: BTreeMap<Vec<String>, PathBuf>,
    arrows: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

fn read_house() -> House {
    let mut all = Vec::new();
    rust_files(&src(), &mut all);
    let files: BTreeMap<Vec<String>, PathBuf> = all
        .iter()
        .filter(|f| !f.ends_with("main.rs") || f.parent() != Some(src().as_path()))
        .map(|f| (module_of(f), f.clone()))
        .collect();
    let mut arrows: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let front_door = file.ends_with("mod.rs") || file.ends_with("lib.rs");
        for path in named_paths(module, &code(&text)) {
            // The longest prefix of the path that is a file's module.
            let Some(target) = (1..=path.len()).rev().find_map(|n| files.get(&path[..n])) else {
                continue;
            };
            if target == file {
                continue;
            }
            if front_door && target.starts_with(file.parent().expect("folder")) {
                continue;
            }
            arrows
                .entry(file.clone())
                .or_default()
                .insert(target.clone());
        }
    }
    House { files, arrows }
}

/// A circle through the arrows, if there is one (depth-first search).
fn find_circle(house: &House) -> Option<Vec<PathBuf>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        at: &PathBuf,
        house: &House,
        marks: &mut BTreeMap<PathBuf, Mark>,
        stack: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        marks.insert(at.clone(), Mark::Open);
        stack.push(at.clone());
        for next in house.arrows.get(at).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let from = stack.iter().position(|f| f == next).unwrap_or(0);
                    let mut circle = stack[from..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, house, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(at.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for file in house.files.values() {
        if marks.get(file).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(file, house, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn shown(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.strip_prefix(src()).unwrap_or(f).display().to_string())
        .collect::<Vec<_>>()
        .join(" → ")
}

#[test]
fn no_import_circle_between_the_files_of_src() {
    let house = read_house();
    assert!(
        house.arrows.values().map(BTreeSet::len).sum::<usize>() > 300,
        "the reader found too few arrows to be reading the imports"
    );
    if let Some(circle) = find_circle(&house) {
        panic!("an import circle in src/: {}", shown(&circle));
    }
}

#[test]
fn the_job_queue_and_the_scheduler_know_no_capability() {
    let house = read_house();
    let capabilities = [
        "journeys",
        "refunds",
        "exports",
        "identity",
        "services",
        "integrations",
        "mail",
        "audit_view",
        "dashboard",
        "search",
        "web",
    ];
    for runner in ["jobs.rs", "schedule.rs"] {
        let file = src().join(runner);
        for target in house.arrows.get(&file).into_iter().flatten() {
            let rel = target.strip_prefix(src()).unwrap_or(target);
            let first = rel
                .iter()
                .next()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .unwrap_or_default();
            assert!(
                !capabilities.contains(&first.as_str()),
                "{runner} imports {}",
                rel.display()
            );
        }
    }
}

/// Whether `code` names `word` as a whole identifier.
fn names(code: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(word).any(|(i, _)| {
        !code[..i].chars().next_back().is_some_and(ident)
            && !code[i + word.len()..].chars().next().is_some_and(ident)
    })
}

#[test]
fn only_the_composition_root_the_web_and_the_commands_name_the_application_state() {
    // Capabilities take a `Context` or plain values (DESIGN.md §1); the whole `AppState` is
    // for lib.rs (which builds it), the web, and the commands (cli/, bench/) that open it.
    let mut all = Vec::new();
    rust_files(&src(), &mut all);
    let allowed = |rel: &Path| {
        ["lib.rs", "main.rs", "bench.rs"]
            .iter()
            .any(|f| rel == Path::new(f))
            || ["web", "cli", "bench"].iter().any(|d| rel.starts_with(d))
    };
    let mut seen_in_lib = false;
    let mut naming = Vec::new();
    for file in &all {
        let rel = file.strip_prefix(src()).expect("under src");
        let text = code(&std::fs::read_to_string(file).expect("read"));
        if !names(&text, "AppState") {
            continue;
        }
        if rel == Path::new("lib.rs") {
            seen_in_lib = true;
        }
        if !allowed(rel) {
            naming.push(rel.display().to_string());
        }
    }
    assert!(
        seen_in_lib,
        "the reader did not find AppState where it is defined"
    );
    assert!(
        naming.is_empty(),
        "these files name AppState; a capability takes a Context or plain values: {}",
        naming.join(", ")
    );
    assert!(names("fn f(s: &AppState)", "AppState"));
    assert!(!names("struct AppStateful;", "AppState"));
}

#[test]
fn the_reader_sees_a_circle_when_there_is_one() {
    // The checker itself: two files naming each other are a circle; a front door naming
    // its own folder is not.
    let a = vec!["a".to_string()];
    let paths = named_paths(&a, "use crate::b::Thing;\nfn f() { super::c::g() }");
    assert_eq!(paths, vec![vec!["b", "Thing"], vec!["c", "g"]]);
    let nested = vec!["web".to_string(), "refunds".to_string(), "ask".to_string()];
    let paths = named_paths(
        &nested,
        "use super::shared::*; use super::super::format::x;",
    );
    assert_eq!(
        paths,
        vec![vec!["web", "refunds", "shared"], vec!["web", "format", "x"]]
    );
    let mut house = House {
        files: BTreeMap::new(),
        arrows: BTreeMap::new(),
    };
    let (x, y) = (PathBuf::from("x.rs"), PathBuf::from("y.rs"));
    house.files.insert(vec!["x".into()], x.clone());
    house.files.insert(vec!["y".into()], y.clone());
    house.arrows.entry(x.clone()).or_default().insert(y.clone());
    assert!(find_circle(&house).is_none());
    house.arrows.entry(y.clone()).or_default().insert(x.clone());
    assert!(find_circle(&house).is_some());
}
