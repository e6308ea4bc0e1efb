//! Whether the relay can be built with its page: the decision `build.rs` makes, kept
//! apart so the relay's unit tests check it (`http.rs` includes this file in tests).
//!
//! With the `page` feature (on by default) the relay serves the page built into
//! `dist/site/` by `npm run build`. A release build (what `cargo install` makes)
//! embeds those files, so a missing page is a build error that says what to run. A
//! debug build reads them from `dist/site/` when they are asked for (rust-embed's
//! debug mode), so it builds without them, warns, and serves the page once it is
//! built: `cargo clippy`, `cargo test` and editors work on a fresh clone.

/// The files of `dist/site/` (paths relative to it, `/`-separated) without which the
/// page cannot work: what a build checks for.
pub fn missing_parts<'a>(files: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let (mut index, mut app, mut module, mut wasm) = (false, false, false, false);
    for file in files {
        match file {
            "index.html" => index = true,
            "app.js" => app = true,
            _ => {}
        }
        if let Some(name) = file.strip_prefix("pkg/") {
            module |= hashed(name, "index", "js");
            wasm |= hashed(name, "clonewire_wasm_bg", "wasm");
        }
    }
    [
        (index, "index.html"),
        (app, "app.js"),
        (module, "pkg/index.<hash>.js"),
        (wasm, "pkg/clonewire_wasm_bg.<hash>.wasm"),
    ]
    .into_iter()
    .filter(|(present, _)| !present)
    .map(|(_, name)| name)
    .collect()
}

/// `STEM.<16 hex digits>.EXT`, as the build names the module's files.
fn hashed(name: &str, stem: &str, ext: &str) -> bool {
    name.strip_prefix(stem)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(ext))
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What the build does about the page.
#[derive(Debug, PartialEq, Eq)]
pub enum PageBuild {
    /// The page is built: embed it (release) or read it at run time (debug).
    Serve,
    /// Built without the `page` feature: the relay has no page and says so.
    Without,
    /// A debug build before the page is built: build, with this warning.
    Warn(String),
    /// A release build without the page: fail with this message.
    Refuse(String),
}

/// The decision: `feature` is the `page` feature, `embeds` whether this build embeds
/// the files (release) rather than reading them at run time (debug), `missing` what
/// [`missing_parts`] found missing.
pub fn decide(feature: bool, embeds: bool, missing: &[&str]) -> PageBuild {
    if !feature {
        return PageBuild::Without;
    }
    if missing.is_empty() {
        return PageBuild::Serve;
    }
    let missing = missing.join(", ");
    if !embeds {
        return PageBuild::Warn(format!(
            "the page is not built (dist/site/ lacks {missing}): until `npm ci && npm run build` \
             is run at the repository's root, this debug relay answers `/` with how to build it"
        ));
    }
    PageBuild::Refuse(format!(
        "clonewire-relay embeds its web page from dist/site/, which is not built \
         (missing: {missing}).\n\
         \n\
         Build the page first, at the repository's root (needs Node.js 20 or later and \
         the Rust wasm32 target: `rustup target add wasm32-unknown-unknown`):\n\
         \n    npm ci && npm run build\n\n\
         then build the relay again (`scripts/run.sh` does both). Or build the relay \
         without its page (it serves /ws, /healthz, /metrics and any folder given with \
         --www) by adding `--no-default-features`, e.g.\n\
         \n    cargo install --path relay --no-default-features\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILT: [&str; 6] = [
        "index.html",
        "index.html.br",
        "app.js",
        "style.css",
        "pkg/index.9364ed5df32f03cc.js",
        "pkg/clonewire_wasm_bg.24a9c3d5065d6bd5.wasm",
    ];

    #[test]
    fn a_built_site_lacks_nothing_and_a_partial_one_names_what_it_lacks() {
        assert_eq!(missing_parts(BUILT), Vec::<&str>::new());
        assert_eq!(
            missing_parts([]),
            [
                "index.html",
                "app.js",
                "pkg/index.<hash>.js",
                "pkg/clonewire_wasm_bg.<hash>.wasm"
            ]
        );
        // The npm module's plain names are not the page's hashed ones.
        assert_eq!(
            missing_parts([
                "index.html",
                "app.js",
                "pkg/index.js",
                "pkg/clonewire_wasm_bg.wasm"
            ]),
            ["pkg/index.<hash>.js", "pkg/clonewire_wasm_bg.<hash>.wasm"]
        );
        assert_eq!(
            missing_parts(["index.html", "app.js", "pkg/index.9364ed5df32f03cc.js"]),
            ["pkg/clonewire_wasm_bg.<hash>.wasm"]
        );
    }

    #[test]
    fn a_release_build_without_the_page_is_refused_with_what_to_run() {
        let PageBuild::Refuse(message) = decide(true, true, &["index.html"]) else {
            panic!("a release build without the page must fail");
        };
        assert!(message.contains("missing: index.html"), "{message}");
        assert!(message.contains("npm ci && npm run build"), "{message}");
        assert!(message.contains("--no-default-features"), "{message}");
    }

    #[test]
    fn debug_builds_warn_and_the_feature_off_needs_no_page() {
        assert!(
            matches!(decide(true, false, &["index.html"]), PageBuild::Warn(m) if m.contains("npm run build"))
        );
        assert_eq!(decide(true, true, &[]), PageBuild::Serve);
        assert_eq!(decide(true, false, &[]), PageBuild::Serve);
        assert_eq!(decide(false, true, &["index.html"]), PageBuild::Without);
        assert_eq!(decide(false, false, &[]), PageBuild::Without);
    }
}
