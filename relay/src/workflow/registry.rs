//! Interned subscriptions: clients whose subscriptions are equal (however written)
//! share one [`Group`], so each delta is projected and serialized once per distinct
//! subscription, never once per client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use clonewire_core::Subscription;

/// A distinct subscription's number, unique for the relay's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(u64);

/// One distinct subscription.
#[derive(Debug)]
pub struct Group {
    /// Unique for the relay's lifetime.
    pub id: GroupId,
    /// The normalized text (the interning key).
    pub key: String,
    /// The parsed subscription.
    pub sub: Subscription,
}

/// The live groups by normalized text.
#[derive(Default)]
pub struct Registry {
    groups: Mutex<HashMap<String, Weak<Group>>>,
    next_id: AtomicU64,
}

impl Registry {
    /// The group for `sub`: the existing one if any client holds it, else a new one.
    pub fn intern(&self, sub: Subscription) -> Arc<Group> {
        let key = sub.key();
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(group) = groups.get(&key).and_then(Weak::upgrade) {
            return group;
        }
        // Forget groups nobody holds any more, so the map stays as small as the live set.
        groups.retain(|_, g| g.strong_count() > 0);
        let group = Arc::new(Group {
            id: GroupId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            key: key.clone(),
            sub,
        });
        groups.insert(key, Arc::downgrade(&group));
        group
    }

    /// How many distinct subscriptions are held now.
    pub fn live(&self) -> usize {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups.values().filter(|g| g.strong_count() > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clonewire_core::SubscriptionLimits;

    fn sub(text: &str) -> Subscription {
        Subscription::parse(text, &SubscriptionLimits::default()).unwrap()
    }

    #[test]
    fn equal_subscriptions_share_a_group_until_released() {
        let registry = Registry::default();
        let a = registry.intern(sub("{ workflows { edges workflow } }"));
        let b = registry.intern(sub("subscription { workflows { workflow edges } }"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = registry.intern(sub("{ workflows { edges } }"));
        assert_ne!(a.id, c.id);
        assert_eq!(registry.live(), 2);
        drop((a, b));
        assert_eq!(registry.live(), 1);
    }
}
