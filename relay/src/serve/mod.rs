//! Running the relay: the HTTP routes and page, metrics and the demo suites.

pub mod demo;
pub mod http;
pub mod metrics;
