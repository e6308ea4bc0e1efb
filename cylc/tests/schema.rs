//! `proto/data_messages.proto` declares exactly what cylc-flow 8.5.4's compiled
//! descriptor declares: the same messages, and in each the same fields with the
//! same numbers, types, labels and presence. (Our layout and comments may differ.)

mod common;

use std::collections::BTreeMap;

use protox::prost::Message;
use protox::prost_reflect::prost_types::{DescriptorProto, FileDescriptorProto};

/// Every field of every message (nested ones under `Outer.Inner`), as text that
/// holds what the wire and a merge depend on.
fn fields(file: &FileDescriptorProto) -> BTreeMap<String, String> {
    fn walk(prefix: &str, message: &DescriptorProto, out: &mut BTreeMap<String, String>) {
        let name = format!("{prefix}{}", message.name());
        let map_entry = message.options.as_ref().is_some_and(|o| o.map_entry());
        out.insert(name.clone(), format!("message map_entry={map_entry}"));
        for field in &message.field {
            out.insert(
                format!("{name}.{}", field.name()),
                format!(
                    "#{} {:?} {:?} {} proto3_optional={}",
                    field.number(),
                    field.r#type(),
                    field.label(),
                    field.type_name().trim_start_matches('.'),
                    field.proto3_optional()
                ),
            );
        }
        for nested in &message.nested_type {
            walk(&format!("{name}."), nested, out);
        }
    }
    let mut out = BTreeMap::new();
    for message in &file.message_type {
        walk("", message, &mut out);
    }
    out
}

#[test]
fn our_proto_declares_cylcs_descriptor_exactly() {
    let cylc = FileDescriptorProto::decode(common::fixture("cylc-8.5.4-data_messages.desc").as_slice())
        .expect("cylc's descriptor decodes");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let ours = protox::compile(["data_messages.proto"], [root]).expect("our .proto compiles");
    let ours = ours
        .file
        .iter()
        .find(|f| f.name() == "data_messages.proto")
        .expect("our file");
    assert_eq!(ours.syntax(), cylc.syntax());
    assert_eq!(ours.package(), cylc.package());
    let (ours, cylc) = (fields(ours), fields(&cylc));
    assert!(cylc.len() > 200, "cylc's descriptor has {} fields", cylc.len());
    for (name, theirs) in &cylc {
        assert_eq!(ours.get(name), Some(theirs), "{name}");
    }
    for name in ours.keys() {
        assert!(cylc.contains_key(name), "{name} is not in cylc's schema");
    }
}
