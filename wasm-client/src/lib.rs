//! The clonewire browser client. The protocol logic is plain Rust, testable natively;
//! only `binding` (built for wasm32 only) knows about wasm and the browser.
//!
//! - [`store`]: the one store of (workflow, topic) copies (core's, as the browser
//!   makes them), checking `prev` and the projection hash on every message;
//! - [`views`]: views' queries, their merge, and which view a changed leaf concerns;
//! - [`session`]: the driver of core's client link (`clonewire_core::client`), which
//!   does the connection's lifecycle, decoding, resync, resume and the frames to send;
//!   the session adds views, workflows, page events and counters;
//! - [`backoff`]: jittered exponential reconnect delays (core's);
//! - [`events`]: status, workflow and error events for the page;
//! - [`inspect`]: the report behind `client.inspect()`.

pub use clonewire_core::client::backoff;
pub mod effects;
pub mod events;
pub mod inspect;
pub mod session;
pub mod store;
pub mod views;

#[cfg(target_arch = "wasm32")]
pub mod binding;

pub use session::{Change, Effects, Notification, Session};

/// The browser build's allocator (the client makes many small, short-lived allocations).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
