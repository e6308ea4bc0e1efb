//! The relay embeds its page from `dist/site/` (made by `npm run build`). Cargo
//! rebuilds the relay when that folder changes, and says so when it is missing: such
//! a relay answers `/` with how to build the page instead of serving one.

use std::path::Path;

fn main() {
    let site = Path::new("../dist/site");
    println!("cargo:rerun-if-changed=../dist/site");
    if !site.join("index.html").exists() {
        println!(
            "cargo:warning=the page is not built (no dist/site/index.html): this relay will \
             serve no page; run `npm ci && npm run build`, then build the relay again"
        );
    }
}
