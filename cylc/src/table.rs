//! The elements of one keyed type, by id, with their checksum keys kept sorted.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::checksum::KeySet;
use crate::element::Element;
use crate::model::{element_value, relative_id};

/// One element type's store: Cylc's `data[key]` dictionary plus its checksum keys.
#[derive(Clone, Debug, Default)]
pub struct Table<T> {
    elements: HashMap<String, T>,
    keys: KeySet,
}

impl<T: Element> Table<T> {
    /// A table holding `elements` (a later one with the same id replaces an earlier).
    pub fn from_elements(elements: impl IntoIterator<Item = T>) -> Table<T> {
        let mut table = Table {
            elements: HashMap::new(),
            keys: KeySet::default(),
        };
        for element in elements {
            table.insert(element);
        }
        table
    }

    /// How many elements there are.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// An element by full id.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.elements.get(id)
    }

    /// Every element, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.elements.values()
    }

    /// Stores `element` under its id, returning the one it replaces.
    pub fn insert(&mut self, element: T) -> Option<T> {
        self.keys.insert(element.checksum_key());
        let old = self.elements.insert(element.id().to_owned(), element);
        if let Some(old) = &old {
            self.keys.remove(old.checksum_key());
        }
        old
    }

    /// Removes the element with `id`.
    pub fn remove(&mut self, id: &str) -> Option<T> {
        let old = self.elements.remove(id)?;
        self.keys.remove(old.checksum_key());
        Some(old)
    }

    /// Changes the element with `id` in place, keeping the checksum keys right.
    pub fn modify<R>(&mut self, id: &str, change: impl FnOnce(&mut T) -> R) -> Option<R> {
        let element = self.elements.get_mut(id)?;
        self.keys.remove(element.checksum_key());
        let result = change(element);
        self.keys.insert(element.checksum_key());
        Some(result)
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.elements.clear();
        self.keys.clear();
    }

    /// Cylc's checksum of this type.
    pub fn checksum(&self) -> u32 {
        self.keys.checksum()
    }

    /// The whole topic value, `{relative id: element}` (O(table): snapshots only).
    pub fn topic_value(&self) -> Value {
        let map: Map<String, Value> = self
            .elements
            .iter()
            .map(|(id, element)| (relative_id(id).to_owned(), element_value(element)))
            .collect();
        Value::Object(map)
    }
}

impl<T: PartialEq> PartialEq for Table<T> {
    /// Same elements by id (the keys follow from them).
    fn eq(&self, other: &Self) -> bool {
        self.elements == other.elements
    }
}
