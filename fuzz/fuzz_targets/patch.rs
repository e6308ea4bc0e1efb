//! Merge-patch apply: any JSON patch (or sequence of patches) either is refused or
//! applies; it never panics, and the incrementally maintained topic hash always
//! equals the hash recomputed from every leaf.
#![no_main]

use clonewire_core::Topic;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // An array of patches is applied in turn; anything else is one patch.
    let patches = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    let mut topic = Topic::new("taskProxies");
    for patch in &patches {
        let before = topic.hash();
        match topic.apply(patch) {
            Ok(changes) => {
                if changes.is_empty() {
                    assert_eq!(topic.hash(), before, "no change, no new hash");
                }
            }
            Err(_) => assert_eq!(topic.hash(), before, "a refused patch changes nothing"),
        }
        assert_eq!(
            topic.hash(),
            topic.recompute_hash(),
            "incremental hash drifted after {patch}"
        );
        // The value round-trips to a topic with the same leaves.
        let copy = Topic::from_value("taskProxies", &topic.to_value()).expect("own value re-reads");
        assert_eq!(copy.hash(), topic.hash(), "to_value/from_value changes the hash");
    }
});
