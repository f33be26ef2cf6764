//! The layout holds: no module imports a module that imports it back (file by file, and
//! between the top-level modules and folders), and the core crate stays free of the dataflow,
//! I/O and command-line crates, directly or through its dependencies (read from
//! `Cargo.lock`).
//!
//! `cargo test --test layout -- --nocapture` prints the module graph it checked, one
//! `from -> to` line per import between files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The crates of the workspace: (name used in paths, source folder, root files).
const CRATES: &[(&str, &str, &[&str])] = &[
    ("banditflow", "src", &["lib.rs"]),
    ("banditflow-bin", "src", &["main.rs"]),
    ("banditflow_core", "crates/banditflow-core/src", &["lib.rs"]),
    ("banditflow_client", "crates/banditflow-client/src", &["lib.rs"]),
];

/// Crates the core must not depend on, directly or not.
const NOT_IN_CORE: &[&str] = &["timely", "differential-dataflow", "rdkafka", "rdkafka-sys", "redis", "clap", "tokio", "prometheus", "tiny_http"];
/// What the serving client may not depend on at all (tokio and prometheus it uses; its Kafka
/// and Redis clients are optional features, checked apart).
const NOT_IN_CLIENT: &[&str] = &["timely", "differential-dataflow", "clap", "tiny_http"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A module: its crate and its path below the crate root (empty for the root).
type Module = (String, Vec<String>);

fn show(m: &Module) -> String {
    if m.1.is_empty() {
        m.0.clone()
    } else {
        format!("{}::{}", m.0, m.1.join("::"))
    }
}

/// Every source file of a crate, by module path. The binary's modules are those under
/// `cli/` (and `main.rs`); the library's are the rest.
fn modules(krate: &str, dir: &str, roots: &[&str]) -> BTreeMap<Vec<String>, PathBuf> {
    let base = repo().join(dir);
    let mut found = BTreeMap::new();
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&base).expect("below base");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let file = parts.pop().expect("file name");
            let is_root = parts.is_empty() && roots.contains(&file.as_str());
            if parts.is_empty() && (file == "lib.rs" || file == "main.rs") && !is_root {
                continue;
            }
            let in_bin = parts.first().is_some_and(|p| p == "cli") || (parts.is_empty() && file == "main.rs");
            if (krate == "banditflow-bin") != in_bin && krate.starts_with("banditflow") && dir == "src" {
                continue;
            }
            if !is_root && file != "mod.rs" {
                parts.push(file.trim_end_matches(".rs").to_owned());
            }
            found.insert(parts, path);
        }
    }
    found
}

/// Code without comments, string contents, and the test module at the end of a file.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests").or_else(|| text.find("#[cfg(test)]\npub(crate) mod tests")) {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::new();
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or_default();
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The paths named in `use` statements (expanded: `a::{b, c::d}` gives `a::b`, `a::c::d`)
/// and inline `crate::…` / `banditflow_core::…` paths.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        expand(&rest[..end].split_whitespace().collect::<String>(), &mut Vec::new(), &mut paths);
    }
    for prefix in ["crate::", "super::", "banditflow_core::", "banditflow::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(prefix) {
            let start = at + i;
            at = start + prefix.len();
            if code[..start].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let tail: String = code[start..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            paths.push(tail.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect());
        }
    }
    paths
}

fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    let tree = tree.trim_start_matches("pub(crate)").trim_start_matches("pub(super)").trim_start_matches("pub");
    match tree.find('{') {
        None => {
            let mut path = prefix.clone();
            path.extend(tree.split(" as ").next().unwrap_or_default().split("::").filter(|s| !s.is_empty()).map(str::to_owned));
            out.push(path);
        }
        Some(open) => {
            let head: Vec<String> = tree[..open].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut part = String::new();
            let mut parts = Vec::new();
            for c in inner.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(std::mem::take(&mut part));
                        continue;
                    }
                    _ => {}
                }
                part.push(c);
            }
            parts.push(part);
            let len = prefix.len();
            prefix.extend(head);
            for p in parts.iter().filter(|p| !p.is_empty() && p.as_str() != "self") {
                expand(p, prefix, out);
            }
            if parts.iter().any(|p| p == "self") {
                out.push(prefix.clone());
            }
            prefix.truncate(len);
        }
    }
}

/// The module file a path leads to, as seen from `from`: the longest prefix that is a module.
fn resolve(from: &Module, path: &[String], all: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    let (krate, mut segments): (String, Vec<String>) = match path.first().map(String::as_str) {
        Some("crate") => (from.0.clone(), path[1..].to_vec()),
        Some("super") => {
            // `super` of `a/mod.rs` and of `a.rs` alike is the module above `a`.
            let mut base = from.1.clone();
            base.pop();
            let mut rest = &path[1..];
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            (from.0.clone(), base)
        }
        Some("banditflow_core") => ("banditflow_core".to_owned(), path[1..].to_vec()),
        Some("banditflow") if from.0 == "banditflow-bin" => ("banditflow".to_owned(), path[1..].to_vec()),
        Some("self") => (from.0.clone(), from.1.iter().chain(&path[1..]).cloned().collect()),
        // `use child::item` names a module declared in this file; anything else is a crate.
        Some(first) if all.contains_key(&(from.0.clone(), from.1.iter().cloned().chain([first.to_owned()]).collect())) => {
            (from.0.clone(), from.1.iter().chain(path).cloned().collect())
        }
        _ => return None,
    };
    // The binary's `crate::` is its own; `cli` lives there.
    let krate = if krate == "banditflow-bin" && segments.first().is_some_and(|s| s != "cli") { "banditflow".to_owned() } else { krate };
    loop {
        let candidate = (krate.clone(), segments.clone());
        if all.contains_key(&candidate) {
            return Some(candidate);
        }
        segments.pop()?;
    }
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let mut all: BTreeMap<Module, PathBuf> = BTreeMap::new();
    for (krate, dir, roots) in CRATES {
        for (path, file) in modules(krate, dir, roots) {
            all.insert(((*krate).to_owned(), path), file);
        }
    }
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &all {
        let text = std::fs::read_to_string(file).expect("source");
        let targets = edges.entry(module.clone()).or_default();
        for path in paths_in(&code_of(&text)) {
            if let Some(to) = resolve(module, &path, &all) {
                if &to != module {
                    targets.insert(to);
                }
            }
        }
    }
    edges
}

/// The cycles of a graph: each strongly connected component with more than one node.
fn cycles<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    let nodes: Vec<N> = edges.keys().cloned().chain(edges.values().flatten().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    let reach = |start: &N| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(n) = stack.pop() {
            for m in edges.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    stack.push(m.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<N, BTreeSet<N>> = nodes.iter().map(|n| (n.clone(), reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for n in &nodes {
        if done.contains(n) {
            continue;
        }
        let component: Vec<N> = nodes.iter().filter(|m| *m == n || (reachable[n].contains(*m) && reachable[*m].contains(n))).cloned().collect();
        done.extend(component.iter().cloned());
        if component.len() > 1 {
            found.push(component);
        }
    }
    found
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let edges = graph();
    for (from, tos) in &edges {
        for to in tos {
            println!("{} -> {}", show(from), show(to));
        }
    }
    assert!(edges.len() > 30, "too few modules found: {:?}", edges.keys().collect::<Vec<_>>());
    assert!(edges.values().map(BTreeSet::len).sum::<usize>() > 40, "too few imports found");
    let file_cycles: Vec<Vec<String>> = cycles(&edges).iter().map(|c| c.iter().map(show).collect()).collect();
    assert!(file_cycles.is_empty(), "modules that import each other: {file_cycles:?}");
}

#[test]
fn no_top_level_module_or_folder_imports_one_that_imports_it_back() {
    // `kafka::source -> publisher` and `publisher -> kafka::sink` would be such a pair.
    let top = |m: &Module| (m.0.clone(), m.1.first().cloned().unwrap_or_default());
    let mut edges: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    for (from, tos) in graph() {
        for to in tos {
            let (f, t) = (top(&from), top(&to));
            // A crate root only declares and re-exports its modules.
            if f != t && !f.1.is_empty() && !t.1.is_empty() {
                edges.entry(f).or_default().insert(t);
            }
        }
    }
    assert!(cycles(&edges).is_empty(), "top-level modules that import each other: {:?}", cycles(&edges));
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let m = |s: &str| ("c".to_owned(), vec![s.to_owned()]);
    let mut edges = BTreeMap::new();
    edges.insert(m("a"), BTreeSet::from([m("b")]));
    edges.insert(m("b"), BTreeSet::from([m("c")]));
    assert!(cycles(&edges).is_empty());
    edges.insert(m("c"), BTreeSet::from([m("a")]));
    assert_eq!(cycles(&edges), vec![vec![m("a"), m("b"), m("c")]]);
    let mut found = Vec::new();
    expand("crate::{a::{b, c as d}, e}", &mut Vec::new(), &mut found);
    assert_eq!(found, vec![vec!["crate", "a", "b"], vec!["crate", "a", "c"], vec!["crate", "e"]]);
}

/// The packages `name` depends on, directly or not, as `Cargo.lock` records them.
fn locked_dependencies(name: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock");
    let lock: toml::Table = toml::from_str(&text).expect("Cargo.lock is TOML");
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in lock["package"].as_array().expect("packages") {
        let pname = package["name"].as_str().expect("name").to_owned();
        let list = package.get("dependencies").and_then(|d| d.as_array()).cloned().unwrap_or_default();
        // An entry is "name" or "name version" when several versions are locked.
        let names = list.iter().filter_map(|d| d.as_str()).map(|d| d.split(' ').next().unwrap_or(d).to_owned());
        deps.entry(pname).or_default().extend(names);
    }
    let mut seen = BTreeSet::new();
    let mut stack = vec![name.to_owned()];
    while let Some(p) = stack.pop() {
        for d in deps.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn core_depends_on_no_dataflow_io_or_cli_crate() {
    let core = locked_dependencies("banditflow-core");
    assert!(core.contains("serde") && core.contains("statrs"), "read the lock file wrongly: {core:?}");
    let bad: Vec<&&str> = NOT_IN_CORE.iter().filter(|c| core.contains(**c)).collect();
    assert!(bad.is_empty(), "banditflow-core depends on {bad:?}");
    // The client: no dataflow, no CLI; its Kafka and Redis clients only behind features.
    let client = locked_dependencies("banditflow-client");
    assert!(client.contains("banditflow-core"));
    let bad: Vec<&&str> = NOT_IN_CLIENT.iter().filter(|c| client.contains(**c)).collect();
    assert!(bad.is_empty(), "banditflow-client depends on {bad:?}");
    let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(repo().join("crates/banditflow-client/Cargo.toml")).expect("client manifest")).expect("TOML");
    for io in ["rdkafka", "redis"] {
        let optional = manifest["dependencies"].get(io).and_then(|d| d.get("optional")).and_then(toml::Value::as_bool);
        assert_eq!(optional, Some(true), "banditflow-client's {io} must be behind a feature");
    }
    // The root package does use them: the check reads the lock file rightly.
    assert!(locked_dependencies("banditflow").contains("rdkafka-sys"));
}

#[test]
fn the_graph_sees_the_imports_it_should() {
    let edges = graph();
    let m = |k: &str, p: &str| (k.to_owned(), p.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>());
    let has = |from: Module, to: Module| edges.get(&from).is_some_and(|t| t.contains(&to));
    assert!(has(m("banditflow", "kafka::source"), m("banditflow", "kafka::control")), "super:: import");
    assert!(has(m("banditflow", "dataflow::attribute"), m("banditflow_core", "attribution")), "cross-crate import");
    assert!(has(m("banditflow-bin", "cli::replay"), m("banditflow", "replay")), "binary to library");
    assert!(has(m("banditflow", "dataflow"), m("banditflow", "dataflow::weigh")), "re-export");
}

/// The rows of the README's layout table: (paths named in the first column, the whole row).
fn layout_rows() -> Vec<(Vec<String>, String)> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme.split("## Layout").nth(1).expect("a Layout section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut core = String::new();
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split(" | ").next().unwrap_or_default();
        let paths: Vec<String> = first
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|p| match p.strip_prefix("…/") {
                Some(rest) => format!("{core}{rest}"),
                None => p.to_owned(),
            })
            .collect();
        if let Some(crate_dir) = paths.iter().find(|p| p.starts_with("crates/") && p.ends_with('/')) {
            core = crate_dir.clone();
        }
        rows.push((paths, line.to_owned()));
    }
    rows
}

#[test]
fn readme_layout_table_matches_the_tree() {
    let rows = layout_rows();
    assert!(rows.len() > 15, "layout table not found");
    for (paths, row) in &rows {
        for path in paths {
            assert!(repo().join(path).exists(), "README's layout names `{path}`, which does not exist (row: {row})");
        }
    }
    // Every source file is named: by its path, or by its file name in its folder's row.
    for (krate, dir, roots) in CRATES {
        for file in modules(krate, dir, roots).values() {
            let rel = file.strip_prefix(repo()).expect("in repo").to_string_lossy().into_owned();
            let name = file.file_name().expect("name").to_string_lossy().into_owned();
            if name == "lib.rs" || (name == "mod.rs" && !rel.starts_with("src/dataflow/")) {
                continue;
            }
            let folder = format!("{}/", rel.rsplit_once('/').map_or("", |(d, _)| d));
            let named = rows.iter().any(|(paths, row)| {
                paths.contains(&rel) || (paths.contains(&folder) && row.contains(&format!("`{name}`")))
            });
            assert!(named, "README's layout table does not name {rel}");
        }
    }
}
