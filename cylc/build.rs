//! Compiles `proto/data_messages.proto` (Cylc's data-store schema) with protox, a
//! pure-Rust protobuf compiler, and generates prost types with serde derives for the
//! JSON mapping (see `src/model.rs`).

use prost_build::Config;
use protox::prost_reflect::prost_types::field_descriptor_proto::Label;

/// Repeated fields left out of the element's serde form: lists of ids that grow with
/// the workflow. `src/model.rs` maps them itself (keyed objects or nothing).
const SKIPPED: &[&str] = &[
    // The workflow's lists of every element: the topics are those lists.
    "PbWorkflow.tasks",
    "PbWorkflow.families",
    "PbWorkflow.task_proxies",
    "PbWorkflow.family_proxies",
    "PbWorkflow.jobs",
    "PbEdges.edges",
    // Grow with cycles or the graph: keyed objects in the model.
    "PbTask.proxies",
    "PbFamily.proxies",
    "PbFamily.child_tasks",
    "PbFamily.child_families",
    "PbFamilyProxy.child_tasks",
    "PbFamilyProxy.child_families",
    "PbTaskProxy.jobs",
    "PbTaskProxy.edges",
];

fn main() {
    let proto = "proto/data_messages.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = match protox::compile([proto], ["proto"]) {
        Ok(fds) => fds,
        Err(err) => panic!("{proto} does not compile: {err:?}"),
    };
    let mut config = Config::new();
    config.type_attribute(".", "#[derive(serde::Serialize)]");
    config.type_attribute(".", "#[serde(rename_all = \"camelCase\")]");
    for file in &fds.file {
        for message in &file.message_type {
            if message.options.as_ref().is_some_and(|o| o.map_entry()) {
                continue;
            }
            let name = message.name();
            for field in &message.field {
                let path = format!("{name}.{}", field.name());
                let is_map = field.label() == Label::Repeated
                    && message.nested_type.iter().any(|n| {
                        n.options.as_ref().is_some_and(|o| o.map_entry())
                            && field.type_name().ends_with(&format!(".{}", n.name()))
                    });
                let attribute = if SKIPPED.contains(&path.as_str()) {
                    "#[serde(skip)]"
                } else if is_map {
                    "#[serde(skip_serializing_if = \"::std::collections::HashMap::is_empty\")]"
                } else if field.label() == Label::Repeated {
                    "#[serde(skip_serializing_if = \"::std::vec::Vec::is_empty\")]"
                } else {
                    "#[serde(skip_serializing_if = \"::std::option::Option::is_none\")]"
                };
                config.field_attribute(format!(".{path}"), attribute);
            }
        }
    }
    if let Err(err) = config.compile_fds(fds) {
        panic!("generating Rust for {proto} failed: {err}");
    }
}
