//! The relay serves its page from `dist/site/` (made by `npm run build`), embedded in
//! release builds. This checks that the page is there before the relay is built with
//! it: a release build without it fails with what to run, a debug build warns (see
//! `page_build.rs`). Cargo rebuilds the relay when that folder changes.

use std::path::Path;

mod page_build;

use page_build::{decide, missing_parts, PageBuild};

fn main() {
    println!("cargo:rerun-if-changed=../dist/site");
    println!("cargo:rerun-if-changed=page_build.rs");
    let feature = std::env::var_os("CARGO_FEATURE_PAGE").is_some();
    // rust-embed reads the files at run time when debug assertions are on.
    let embeds = std::env::var_os("CARGO_CFG_DEBUG_ASSERTIONS").is_none();
    let mut files = Vec::new();
    list(Path::new("../dist/site"), "", &mut files);
    let missing = missing_parts(files.iter().map(String::as_str));
    match decide(feature, embeds, &missing) {
        PageBuild::Serve | PageBuild::Without => {}
        PageBuild::Warn(message) => println!("cargo:warning={message}"),
        PageBuild::Refuse(message) => {
            eprintln!("\nerror: {message}");
            std::process::exit(1);
        }
    }
}

/// The files under `dir`, as `/`-separated paths after `prefix`; none when it is missing.
fn list(dir: &Path, prefix: &str, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        if path.is_dir() {
            list(&path, &format!("{name}/"), files);
        } else {
            files.push(name);
        }
    }
}
