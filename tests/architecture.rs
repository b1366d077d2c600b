//! The shape of the code, checked: source files stay small, functions on the request path
//! stay short, and `server/` has no import circle (a handler never calls another handler;
//! leaf modules never import the dispatcher). A failure names the file and what to split.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines a source file may have (generated tables excepted: none today).
const MAX_FILE_LINES: usize = 700;
/// Lines a function on the request path may have.
const MAX_FUNCTION_LINES: usize = 100;
/// Layers a request passes through: socket → decode → handler → shard → partition → log.
const REQUEST_PATH_DIRS: &[&str] = &[
    "server",
    "protocol",
    "shard",
    "partition",
    "storage",
    "group",
];

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn no_source_file_is_over_the_line_limit() {
    let mut files = Vec::new();
    rust_files(&source_root(), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let over: Vec<String> = files
        .iter()
        .map(|f| (f, read(f).lines().count()))
        .filter(|(_, n)| *n > MAX_FILE_LINES)
        .map(|(f, n)| format!("{} has {n} lines", f.display()))
        .collect();
    assert!(
        over.is_empty(),
        "split along a real seam:\n{}",
        over.join("\n")
    );
}

/// (name, first line, length) of each function outside `#[cfg(test)]` code, found by its
/// rustfmt layout: a `fn` line and the closing brace at the same indentation.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        let signature = trimmed
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ")
            .trim_start_matches("const ")
            .trim_start_matches("async ");
        if !signature.starts_with("fn ") {
            continue;
        }
        let indent = &line[..line.len() - trimmed.len()];
        let close = format!("{indent}}}");
        let Some(end) = lines[i..].iter().position(|l| *l == close) else {
            continue;
        };
        let name = signature[3..]
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or("")
            .to_string();
        found.push((name, i + 1, end + 1));
    }
    found
}

#[test]
fn functions_on_the_request_path_are_short() {
    let mut long = Vec::new();
    let mut seen = 0;
    for dir in REQUEST_PATH_DIRS {
        let mut files = Vec::new();
        rust_files(&source_root().join(dir), &mut files);
        for file in files
            .iter()
            .filter(|f| !f.components().any(|c| c.as_os_str() == "tests"))
        {
            for (name, line, length) in functions(&read(file)) {
                seen += 1;
                if length > MAX_FUNCTION_LINES {
                    long.push(format!(
                        "{}:{line} fn {name} has {length} lines",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        seen > 300,
        "found only {seen} functions: is the layout check still right?"
    );
    assert!(
        long.is_empty(),
        "break into named steps:\n{}",
        long.join("\n")
    );
}

/// The top-level module of `server/` a path inside it belongs to.
fn server_module(server: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(server).unwrap_or(file);
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string());
    first
        .unwrap_or_default()
        .trim_end_matches(".rs")
        .to_string()
}

/// Modules of `server/` this file names (`crate::server::x`, or `super::x` at top level).
fn server_imports(text: &str, top_level: bool, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (prefix, applies) in [("crate::server::", true), ("super::", top_level)] {
        if !applies {
            continue;
        }
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                out.insert(name);
            }
        }
    }
    out
}

fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut visited = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if visited.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn server_modules_import_without_a_circle() {
    let server = source_root().join("server");
    let mut files = Vec::new();
    rust_files(&server, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| server_module(&server, f))
        .filter(|m| m != "mod")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = server_module(&server, file);
        if module == "mod" {
            continue;
        }
        let top_level = file.parent() == Some(server.as_path());
        let imports = server_imports(&read(file), top_level, &modules);
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(imports.into_iter().filter(|m| *m != module));
    }
    assert!(
        graph.len() > 10,
        "found only {} server modules",
        graph.len()
    );
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!("import circle in server/: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn handlers_never_call_each_other() {
    let handlers = source_root().join("server").join("handlers");
    let mut files = Vec::new();
    rust_files(&handlers, &mut files);
    let names: BTreeSet<String> = files.iter().map(|f| server_module(&handlers, f)).collect();
    let mut calls = Vec::new();
    for file in &files {
        let own = server_module(&handlers, file);
        let text = read(file);
        for name in names.iter().filter(|n| **n != own && n.as_str() != "mod") {
            if text.contains(&format!("handlers::{name}"))
                || text.contains(&format!("super::{name}::"))
            {
                calls.push(format!("{} uses handler {name}", file.display()));
            }
        }
    }
    assert!(
        calls.is_empty(),
        "move the shared piece to server/views.rs or its own module:\n{}",
        calls.join("\n")
    );
}

/// Layers below the handlers never reach back up: the partition layer and the log know
/// nothing of requests or shards, and only the partition layer (and the shard, which opens a
/// log and wraps it) names the log's type.
#[test]
fn lower_layers_never_import_the_layers_above() {
    let mut refs = Vec::new();
    for (dir, above) in [
        ("partition", &["crate::server", "crate::shard"][..]),
        (
            "storage",
            &["crate::server", "crate::shard", "crate::partition"][..],
        ),
        (
            "security",
            &["crate::server", "crate::shard", "crate::partition"][..],
        ),
    ] {
        let mut files = Vec::new();
        rust_files(&source_root().join(dir), &mut files);
        assert!(!files.is_empty(), "no files in src/{dir}");
        for file in &files {
            let text = read(file);
            for layer in above.iter().filter(|l| text.contains(*l)) {
                refs.push(format!("{} uses {layer}", file.display()));
            }
        }
    }
    assert!(
        refs.is_empty(),
        "a lower layer reaches up:\n{}",
        refs.join("\n")
    );
}

#[test]
fn handlers_reach_the_log_only_through_the_partition() {
    let mut files = Vec::new();
    rust_files(&source_root().join("server"), &mut files);
    let direct: Vec<String> = files
        .iter()
        .filter(|f| read(f).contains("PartitionLog"))
        .map(|f| format!("{} names PartitionLog", f.display()))
        .collect();
    assert!(
        direct.is_empty(),
        "go through partition::Partition:\n{}",
        direct.join("\n")
    );
}
