//! Subscription text: parsing never panics, and whatever parses prints to normalized
//! text that parses back to the same subscription; merging is idempotent and the
//! merge of two prints and parses back too.
#![no_main]

use clonewire_core::{SubscriptionLimits, Subscription};
use libfuzzer_sys::fuzz_target;

/// A subscription that parsed once must parse again from its own text, even when
/// normalizing made it longer than the original limits allow.
fn roomy() -> SubscriptionLimits {
    SubscriptionLimits {
        max_query_bytes: usize::MAX,
        max_depth: 64,
        max_fields: usize::MAX,
        max_ids: usize::MAX,
    }
}

fn reparse(sub: &Subscription, what: &str) {
    for pretty in [false, true] {
        let text = sub.print(pretty);
        let again = Subscription::parse(&text, &roomy())
            .unwrap_or_else(|e| panic!("{what}: printed text does not parse: {e}: {text}"));
        assert_eq!(
            &again, sub,
            "{what}: print/parse changes the subscription: {text}"
        );
        assert_eq!(again.print(pretty), text, "{what}: printing is not stable");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two queries in one input, split at the first NUL, to exercise merge.
    let (first, second) = text
        .split_once('\0')
        .unwrap_or((text, "{ workflows { workflow } }"));
    let limits = SubscriptionLimits::default();
    let Ok(a) = Subscription::parse(first, &limits) else {
        return;
    };
    reparse(&a, "parsed");
    assert_eq!(a.merge(&a), a, "merge is idempotent");
    assert_eq!(
        a.merge(&Subscription::empty()),
        a,
        "the empty subscription is neutral"
    );
    if let Ok(b) = Subscription::parse(second, &limits) {
        let ab = a.merge(&b);
        assert_eq!(ab, b.merge(&a), "merge is commutative");
        assert_eq!(ab.merge(&a), ab, "a merge already holds its parts");
        reparse(&ab, "merged");
    }
});
