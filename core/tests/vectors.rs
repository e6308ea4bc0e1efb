//! The hash test vectors of docs/protocol.md, Hash › Test vectors. The same file runs natively
//! (`cargo test`) and on wasm32 (`wasm-bindgen-test-runner`), so the browser and
//! the relay are shown to hash alike.

use clonewire_core::hash::{leaf_bytes, leaf_hash};
use clonewire_core::{Hash, Topic};
use serde_json::{json, Value};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Leaf bytes, then leaf hash.
const VECTORS: [(&str, &str); 7] = [
    (
        r#"["taskProxies","1/foo","status","running"]"#,
        "744f482e6da63ce9",
    ),
    (r#"["workflow","name","demo"]"#, "13e83014ca4ce3ad"),
    (r#"["taskProxies","1/foo","flowNums",[1,2]]"#, "7d43cd39d72797bd"),
    (r#"["workflow","progress",1.5]"#, "8ecffc0c5858efad"),
    (r#"["workflow","count",100]"#, "44e735ca776b141f"),
    (r#"["workflow","big",1e+21]"#, "1e3bff465a4eccce"),
    (r#"["workflow","ok",true]"#, "dab6187a9031fe2d"),
];

#[test]
fn leaf_vectors_give_the_published_bytes_and_hashes() {
    for (bytes, want) in VECTORS {
        let Ok(Value::Array(mut parts)) = serde_json::from_str::<Value>(bytes) else {
            panic!("vector {bytes} is not a JSON array")
        };
        let value = parts.pop().expect("a vector has a value");
        let path: Vec<String> = parts
            .iter()
            .map(|p| p.as_str().expect("keys are strings").to_owned())
            .collect();
        assert_eq!(String::from_utf8_lossy(&leaf_bytes(&path, &value)), bytes);
        assert_eq!(Hash(leaf_hash(&path, &value)).to_string(), want, "{bytes}");
    }
}

#[test]
fn example_topic_hash_matches() {
    let topic = Topic::from_value(
        "taskProxies",
        &json!({"1/foo": {"status": "running", "name": "foo"}, "1/bar": {"status": "waiting"}}),
    )
    .expect("an object");
    assert_eq!(topic.hash().to_string(), "0149f998f8252d36");
    assert_eq!(topic.recompute_hash(), topic.hash());
}
