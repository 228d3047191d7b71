//! The layers of src/, checked: the module graph (which file names which
//! module, through `crate::` and `super::` paths) has no cycle, and no
//! arrow points up the layers (binding → maintenance → engine → watchdog →
//! backend, store → the base). CI runs it with every `cargo test`.
//!
//! Test modules (`#[cfg(test)] mod tests`, `src/**/tests.rs`) are left out:
//! a test may reach anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module as a path of names below the crate root (`["engine", "ctx"]`).
type Module = Vec<String>;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every module file of the library, by module path.
fn modules() -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    stack.push(p);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src()).unwrap();
            let mut names: Module = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if names.last().is_some_and(|n| n == "tests") {
                continue;
            }
            if names.last().is_some_and(|n| n == "mod" || n == "lib") {
                names.pop();
            }
            out.insert(names, p);
        }
    }
    out
}

/// The code of a file without its test module and its comments (a doc
/// comment may name any module).
fn code(path: &Path) -> String {
    code_of(&std::fs::read_to_string(path).unwrap())
}

fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(path: &str) -> Vec<String> {
    let Some(open) = path.find('{') else {
        return vec![path.to_string()];
    };
    let prefix = &path[..open];
    let inner = &path[open + 1..path.rfind('}').unwrap_or(path.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            let p = if p == "self" { "" } else { p };
            expand(&format!("{prefix}{p}"))
        })
        .collect()
}

/// The paths a file names: every `use` (braces expanded) and every
/// `crate::…` or `super::…` path in the code.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let flat = code.replace('\n', " ");
    let mut rest = flat.as_str();
    while let Some(i) = rest.find("use ") {
        let tail = &rest[i + 4..];
        let Some(end) = tail.find(';') else { break };
        let stmt = tail[..end].split_whitespace().collect::<String>();
        if stmt.starts_with("crate::") || stmt.starts_with("super::") {
            out.extend(expand(&stmt));
        }
        rest = &tail[end..];
    }
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = flat[from..].find(start) {
            let at = from + i;
            let before = flat[..at].chars().last();
            let word: String = flat[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
                out.push(word.trim_end_matches(':').to_string());
            }
            from = at + start.len();
        }
    }
    out
}

/// The module file a path lands in: the longest known prefix.
fn target(path: &str, from: &Module, known: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let mut names: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Module = Vec::new();
    match names.first().copied() {
        Some("crate") => {
            names.remove(0);
        }
        Some("super") => {
            base = from.clone();
            while names.first() == Some(&"super") {
                names.remove(0);
                base.pop();
            }
        }
        _ => return None,
    }
    let full: Module = base
        .into_iter()
        .chain(names.iter().map(|s| s.to_string()))
        .collect();
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| known.contains_key(m))
}

/// The layer of a module: higher layers may name lower ones, never the
/// other way round.
fn layer(m: &Module) -> (u8, &'static str) {
    match m.first().map(String::as_str) {
        Some("binding") => (6, "binding"),
        Some("maintenance") => (5, "maintenance"),
        Some("engine") => (4, "engine"),
        // The guard of attached runs: the engine announces runs to it; it
        // removes them through the backend.
        Some("watchdog") => (3, "watchdog"),
        Some("backend") => (2, "backend"),
        Some("store") => (2, "store"),
        Some(_) => (1, "base"),
        None => (7, "crate root"),
    }
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules();
    let mut g = BTreeMap::new();
    for (m, file) in &known {
        let is_mod = file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let deps: BTreeSet<Module> = paths(&code(file))
            .iter()
            .filter_map(|p| target(p, m, &known))
            .filter(|t| t != m && !t.is_empty())
            // A folder's mod.rs names its children to declare them; a child
            // naming its own folder's mod.rs is an ordinary arrow.
            .filter(|t| !(is_mod && t.starts_with(m)))
            .collect();
        g.insert(m.clone(), deps);
    }
    g
}

fn show(m: &Module) -> String {
    m.join("::")
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit(
        m: &Module,
        g: &BTreeMap<Module, BTreeSet<Module>>,
        colour: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(m.clone(), 1);
        stack.push(m.clone());
        for d in g.get(m).into_iter().flatten() {
            match colour.get(d).copied().unwrap_or(0) {
                0 => visit(d, g, colour, stack, cycles),
                1 => {
                    let at = stack.iter().position(|x| x == d).unwrap();
                    let mut c: Vec<String> = stack[at..].iter().map(show).collect();
                    c.push(show(d));
                    cycles.push(c.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(m.clone(), 2);
    }
    let mut colour = BTreeMap::new();
    let mut cycles = Vec::new();
    for m in g.keys() {
        if colour.get(m).copied().unwrap_or(0) == 0 {
            visit(m, &g, &mut colour, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_arrow_points_up_the_layers() {
    let mut up = Vec::new();
    for (m, deps) in graph() {
        for d in deps {
            let (from, fname) = layer(&m);
            let (to, tname) = layer(&d);
            // Siblings of one layer stay apart: the backend and the store
            // know nothing of each other.
            let sideways = from == to && fname != tname;
            if to > from || sideways {
                up.push(format!("{} ({fname}) -> {} ({tname})", show(&m), show(&d)));
            }
        }
    }
    assert!(up.is_empty(), "arrows up the layers:\n{}", up.join("\n"));
}

#[test]
fn the_checker_sees_what_it_should() {
    // Its own parsing, on known shapes.
    assert_eq!(
        expand("crate::backend::docker::{container, seed::{a, b}, self}"),
        vec![
            "crate::backend::docker::container",
            "crate::backend::docker::seed::a",
            "crate::backend::docker::seed::b",
            "crate::backend::docker::",
        ]
    );
    let g = graph();
    let driver = vec!["engine".to_string(), "driver".to_string()];
    let deps = &g[&driver];
    assert!(deps.contains(&vec!["engine".to_string(), "ctx".to_string()]));
    assert!(deps.contains(&vec!["engine".to_string(), "lifecycle".to_string()]));
    assert!(deps.contains(&vec!["backend".to_string()]));
    // The lifecycle decides without I/O: no backend client, no tokio I/O.
    let lifecycle = std::fs::read_to_string(src().join("engine/lifecycle.rs")).unwrap();
    for banned in [
        "bollard",
        "tokio",
        "backend::docker",
        "store::",
        "std::fs",
        "std::io",
    ] {
        assert!(
            !code_of(&lifecycle).contains(banned),
            "lifecycle.rs names {banned}"
        );
    }
    assert!(
        g.len() > 20,
        "modules found: {:?}",
        g.keys().map(show).collect::<Vec<_>>()
    );
}
