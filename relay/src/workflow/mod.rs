//! The workflow side: following workflows and keeping what their clients need.

pub mod discovery;
pub mod history;
pub mod link;
pub mod registry;
pub mod threads;
pub mod upper_list;
pub mod upstream;
pub mod views;
pub mod wake;
