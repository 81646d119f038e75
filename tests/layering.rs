//! Imports follow the pipeline: every `crate::…` (or, in the binary, `orctool::…`) path of
//! every file under `src/` names a module that comes earlier in [`ORDER`] than the file's own
//! module, or a leaf; and the module graph has no cycle.
//!
//! A module missing from the tree is skipped; a module the order does not know fails the
//! test (place it in [`ORDER`] first).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The pipeline, earliest first; modules on one line may not import each other.
const ORDER: &[&[&str]] = &[
    &["report"],
    &["elf"],
    &["decode", "patch"],
    &["cfg"],
    &["cfi"],
    &["alt"],
    &["actions"],
    &["orc"],
    &["write", "verify"],
    &["check"],
    &["cli"],
    &["main", "bin"],
];

/// Usable from anywhere: they import only other leaves.
const LEAVES: &[&str] = &[
    "ids", "error", "offsets", "options", "edits", "testing", "alloc",
];

/// Submodules that are leaves although their module is not: pure pieces that import only
/// leaves, so that the stage before their module may call them.
/// (`alt::merge`: the seed's rule, called by the walk in `cfi`.)
const LEAF_SUBMODULES: &[&str] = &["alt::merge"];

/// Root re-exports of the library (`crate::Error`) and the module that owns them.
const ROOT_ITEMS: &[(&str, &str)] = &[("Error", "error"), ("Result", "error")];

/// Edges against the order that another change removes; each with its reason.
const PENDING: &[(&str, &str)] = &[];

/// The node of a file: its top-level module, or a leaf submodule.
fn node_of_file(rel: &str) -> Option<String> {
    let rel = rel.strip_suffix(".rs")?;
    if rel == "lib" {
        return None; // it declares the modules
    }
    let parts: Vec<&str> = rel.split('/').collect();
    let mut path = parts.join("::");
    if let Some(p) = path.strip_suffix("::mod") {
        path = p.to_owned();
    }
    for leaf in LEAF_SUBMODULES {
        if path == *leaf || path.starts_with(&format!("{leaf}::")) {
            return Some((*leaf).to_owned());
        }
    }
    Some(parts[0].to_owned())
}

/// The node a path (after `crate::`) names.
fn node_of_path(segments: &[&str]) -> Option<String> {
    let joined = segments.join("::");
    for leaf in LEAF_SUBMODULES {
        if joined == *leaf || joined.starts_with(&format!("{leaf}::")) {
            return Some((*leaf).to_owned());
        }
    }
    let first = *segments.first()?;
    if let Some((_, m)) = ROOT_ITEMS.iter().find(|(item, _)| *item == first) {
        return Some((*m).to_owned());
    }
    Some(first.to_owned())
}

/// Where a node stands: `None` for a leaf.
fn rank(node: &str) -> Result<Option<usize>, String> {
    if LEAVES.contains(&node) || LEAF_SUBMODULES.contains(&node) {
        return Ok(None);
    }
    ORDER
        .iter()
        .position(|line| line.contains(&node))
        .map(Some)
        .ok_or_else(|| format!("module `{node}` is not in the layering order (tests/layering.rs)"))
}

fn strip_comment(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

fn ident_end(s: &str) -> usize {
    s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// The paths a file names after `crate::` (and `orctool::`), as segment lists; a group
/// `crate::{a::b, c}` gives each member.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .map(strip_comment)
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for prefix in ["crate::", "orctool::"] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
                continue; // `my_crate::`, `$crate::`, `a::crate::`
            }
            out.extend(path_tree(rest, Vec::new()));
        }
    }
    out
}

/// The paths of a `use` tree starting at `s` (after `crate::`).
fn path_tree(s: &str, prefix: Vec<String>) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        let mut depth = 0;
        let mut start = 0;
        let mut out = Vec::new();
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.extend(path_tree(&inner[start..i], prefix.clone()));
                    return out;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(path_tree(&inner[start..i], prefix.clone()));
                    start = i + 1;
                }
                _ => {}
            }
        }
        return out;
    }
    let end = ident_end(s);
    if end == 0 {
        return if prefix.is_empty() {
            Vec::new()
        } else {
            vec![prefix]
        };
    }
    let mut path = prefix;
    path.push(s[..end].to_owned());
    match s[end..].strip_prefix("::") {
        Some(more) => path_tree(more, path),
        None => vec![path],
    }
}

/// The edges of a source tree, from its files' (relative path, text).
fn edges(files: &[(String, String)]) -> BTreeMap<(String, String), String> {
    let mut edges = BTreeMap::new();
    for (rel, text) in files {
        let Some(from) = node_of_file(rel) else {
            continue;
        };
        for path in crate_paths(text) {
            let segs: Vec<&str> = path.iter().map(String::as_str).collect();
            if matches!(segs.first(), Some(&"self" | &"super")) {
                continue;
            }
            let Some(to) = node_of_path(&segs) else {
                continue;
            };
            if to != from {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| format!("{rel}: crate::{}", path.join("::")));
            }
        }
    }
    edges
}

/// Every import against the order, and every cycle.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let edges = edges(files);
    let mut bad = Vec::new();
    for ((from, to), example) in &edges {
        if PENDING.contains(&(from.as_str(), to.as_str())) {
            continue;
        }
        let (rf, rt) = match (rank(from), rank(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                bad.push(e);
                continue;
            }
        };
        let ok = match (rf, rt) {
            (_, None) => rf.is_some() || LEAVES.contains(&to.as_str()),
            (None, Some(_)) => false,
            (Some(a), Some(b)) => b < a,
        };
        if !ok {
            bad.push(format!(
                "`{from}` imports `{to}` against the pipeline ({example})"
            ));
        }
    }
    // cycles (possible among leaves)
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        if !PENDING.contains(&(from.as_str(), to.as_str())) {
            graph.entry(from).or_default().insert(to);
        }
    }
    let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1 on the stack, 2 done
    fn visit<'g>(
        n: &'g str,
        graph: &BTreeMap<&'g str, BTreeSet<&'g str>>,
        state: &mut BTreeMap<&'g str, u8>,
        stack: &mut Vec<&'g str>,
        bad: &mut Vec<String>,
    ) {
        match state.get(n) {
            Some(2) => return,
            Some(1) => {
                let from = stack.iter().position(|&s| s == n).unwrap_or(0);
                bad.push(format!(
                    "import cycle: {} -> {n}",
                    stack[from..].join(" -> ")
                ));
                return;
            }
            _ => {}
        }
        state.insert(n, 1);
        stack.push(n);
        for &m in graph.get(n).into_iter().flatten() {
            visit(m, graph, state, stack, bad);
        }
        stack.pop();
        state.insert(n, 2);
    }
    let nodes: Vec<&str> = graph.keys().copied().collect();
    for n in nodes {
        visit(n, &graph, &mut state, &mut Vec::new(), &mut bad);
    }
    bad
}

fn read_tree(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src/")
        .map(|e| e.expect("read src/").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_tree(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(root).expect("under src/");
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((
                rel,
                std::fs::read_to_string(&p).expect("read a source file"),
            ));
        }
    }
}

#[test]
fn imports_follow_the_pipeline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&root, &root, &mut files);
    assert!(files.len() > 20, "found the sources");
    let e = edges(&files);
    assert!(
        e.contains_key(&("cfi".into(), "cfg".into())),
        "the scan sees the walk's imports: {e:?}"
    );
    let bad = violations(&files);
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

/// The files that may say `unsafe`: the input's memory map and the allocator that maps
/// large blocks in huge pages (the project's rule: no `unsafe` outside a memory map).
const UNSAFE_ALLOWED: &[&str] = &["elf/input.rs", "alloc.rs"];

/// The files of `files` whose code (comments aside) says `unsafe`.
fn unsafe_files(files: &[(String, String)]) -> Vec<&str> {
    files
        .iter()
        .filter(|(_, text)| {
            text.lines().any(|l| {
                let code = strip_comment(l);
                code.match_indices("unsafe").any(|(i, _)| {
                    let before = code[..i].chars().next_back();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"')
                        && ident_end(&code[i..]) == "unsafe".len()
                })
            })
        })
        .map(|(rel, _)| rel.as_str())
        .collect()
}

#[test]
fn unsafe_only_where_memory_is_mapped() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    read_tree(&root, &root, &mut files);
    let found = unsafe_files(&files);
    assert!(
        found.contains(&"elf/input.rs"),
        "the scan sees the memory map: {found:?}"
    );
    let bad: Vec<_> = found
        .iter()
        .filter(|f| !UNSAFE_ALLOWED.contains(f))
        .collect();
    assert!(bad.is_empty(), "`unsafe` outside a memory map: {bad:?}");
    // (and the scan tells code from comments and longer words)
    let t = [
        file("a.rs", "// unsafe here\nfn f() {}\n"),
        file("b.rs", "fn not_unsafe_at_all() {}\n"),
        file("c.rs", "let m = unsafe { map() };\n"),
    ];
    assert_eq!(unsafe_files(&t), ["c.rs"]);
}

fn file(rel: &str, text: &str) -> (String, String) {
    (rel.to_owned(), text.to_owned())
}

#[test]
fn an_import_against_the_order_fails() {
    let files = [
        file("cfg/mod.rs", "use crate::decode::Insn;\n"),
        file(
            "decode/x86.rs",
            "use crate::cfi::state::{CFI_SP, CFI_BP};\n",
        ),
    ];
    let bad = violations(&files);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("`decode` imports `cfi`"), "{bad:?}");
}

#[test]
fn grouped_imports_and_root_items_are_seen() {
    let files = [file(
        "report.rs",
        "use crate::{ids::SymId, cfg::{symbols::NO_SYM, Program}};\nfn f() -> crate::Result<()> { Ok(()) }\n",
    )];
    let e = edges(&files);
    assert!(e.contains_key(&("report".into(), "cfg".into())));
    assert!(e.contains_key(&("report".into(), "ids".into())));
    assert!(e.contains_key(&("report".into(), "error".into())));
    assert_eq!(violations(&files).len(), 1);
}

#[test]
fn leaves_and_leaf_submodules() {
    // the walk may call the merge rule; the rule may not reach back
    let ok = [
        file(
            "cfi/walk/path.rs",
            "use crate::alt::merge::{self, Merge};\n",
        ),
        file("alt/merge.rs", "use crate::ids::StateId;\n"),
    ];
    assert!(violations(&ok).is_empty(), "{:?}", violations(&ok));
    let bad = [file(
        "alt/merge.rs",
        "use crate::cfi::intern::StateTable;\n",
    )];
    assert_eq!(violations(&bad).len(), 1);
    let bad = [file("ids.rs", "use crate::elf::Object;\n")];
    assert_eq!(violations(&bad).len(), 1);
}

#[test]
fn cycles_among_leaves_fail_and_unknown_modules_fail() {
    let files = [
        file("ids.rs", "use crate::error::Error;\n"),
        file("error.rs", "use crate::ids::SecId;\n"),
    ];
    let bad = violations(&files);
    assert!(bad.iter().any(|b| b.contains("cycle")), "{bad:?}");
    let files = [file("shiny/mod.rs", "use crate::elf::Object;\n")];
    let bad = violations(&files);
    assert!(bad[0].contains("not in the layering order"), "{bad:?}");
}

#[test]
fn comments_and_other_crates_are_not_imports() {
    let files = [file(
        "decode/mod.rs",
        "// see crate::cfi::walk\n/// [`crate::check`]\nuse my_crate::cfi;\nlet x = $crate::cfi::y;\n",
    )];
    assert!(edges(&files).is_empty(), "{:?}", edges(&files));
}
