//! The wasm binding under wasm-bindgen-test in Node (the default runner).

#![cfg(target_arch = "wasm32")]

#[path = "web/cases.rs"]
mod cases;
