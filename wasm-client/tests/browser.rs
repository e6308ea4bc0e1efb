//! The wasm binding under wasm-bindgen-test in headless Chromium: run with
//! `npm run test:wasm:chromium` (chromedriver, args from `webdriver.json`).

#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "web/cases.rs"]
mod cases;
