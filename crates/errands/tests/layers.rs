//! The crate's layering (docs/ARCHITECTURE.md, "Layers"): a module uses only the modules on
//! the lines above its own. This test reads the list from that page and every `crate::`
//! path from the code, so the page and the code cannot drift apart.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Module → layer (line number in the list, lowest first).
fn layers() -> BTreeMap<String, usize> {
    let page = fs::read_to_string(root().join("../../docs/ARCHITECTURE.md")).unwrap();
    let start = page
        .find("<!-- layers: lowest first -->")
        .expect("the layer list");
    let end = page
        .find("<!-- /layers -->")
        .expect("the end of the layer list");
    let block = &page[start..end];
    let mut layers = BTreeMap::new();
    let lines = block
        .lines()
        .filter(|l| !l.starts_with("<!--") && !l.starts_with("```"));
    for (layer, line) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        for module in line.split_whitespace() {
            assert!(
                layers.insert(module.to_owned(), layer).is_none(),
                "{module} listed twice"
            );
        }
    }
    layers
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names through `crate::`.
fn used_modules(line: &str) -> Vec<&str> {
    line.match_indices("crate::")
        .map(|(at, _)| {
            let rest = &line[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn lower_layers_never_use_higher_ones() {
    let layers = layers();
    let src = root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs");
        if module == "lib" || module == "docs" {
            continue;
        }
        let Some(&own) = layers.get(module) else {
            violations.push(format!("{module} is not in the layer list"));
            continue;
        };
        seen.insert(module.to_owned(), ());
        let text = fs::read_to_string(file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with("#[doc") {
                continue;
            }
            for used in used_modules(code) {
                if used == module {
                    continue;
                }
                match layers.get(used) {
                    Some(&layer) if layer < own => {}
                    Some(_) => violations.push(format!(
                        "{}:{}: {module} uses {used}, which is not below it",
                        relative.display(),
                        number + 1
                    )),
                    None => violations.push(format!(
                        "{}:{}: {module} uses crate::{used}, which is not a listed module",
                        relative.display(),
                        number + 1
                    )),
                }
            }
        }
    }
    for module in layers.keys() {
        if !seen.contains_key(module) {
            violations.push(format!("{module} is listed but has no source"));
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_check_sees_a_use_of_a_higher_layer() {
    assert_eq!(used_modules("use crate::runtime::Runtime;"), ["runtime"]);
    assert_eq!(
        used_modules("let x = crate::chain::walk(e).chain(crate::task::X);"),
        ["chain", "task"]
    );
}
