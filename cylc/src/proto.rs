//! Cylc's protobuf messages, generated from `proto/data_messages.proto` (cylc-flow
//! 8.5.4's schema) by prost at build time.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/_.rs"));
