//! Single fields of a message's serde form, without serializing the rest.
//!
//! An update names the fields it touches: a protobuf merge changes only the fields
//! the update sets, and Cylc clears only fields the update sets. So the patch for an
//! updated element needs the serde form of those fields of the merged element, not
//! of the whole element. [`field_names`] lists the fields a message sets (those its
//! serde form writes) and [`field_values`] serializes chosen fields only.

use serde::ser::{Error as _, Impossible, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The fields `message`'s serde form writes (for a prost message: those it sets),
/// in declaration order. Empty for anything that is not a struct.
pub fn field_names<T: Serialize>(message: &T) -> Vec<&'static str> {
    match message.serialize(Picker { wanted: None }) {
        Ok(fields) => fields.into_iter().map(|(name, _)| name).collect(),
        Err(_) => Vec::new(),
    }
}

/// The serde form of the fields of `message` named in `wanted` that it writes, in
/// declaration order. Empty for anything that is not a struct.
pub fn field_values<T: Serialize>(message: &T, wanted: &[&'static str]) -> Vec<(&'static str, Value)> {
    message
        .serialize(Picker { wanted: Some(wanted) })
        .unwrap_or_default()
}

/// A serializer that accepts structs only and keeps the fields asked for (with
/// their values) or every field's name (with `Value::Null`).
struct Picker<'w> {
    wanted: Option<&'w [&'static str]>,
}

/// The fields kept so far.
struct Picking<'w> {
    wanted: Option<&'w [&'static str]>,
    fields: Vec<(&'static str, Value)>,
}

impl SerializeStruct for Picking<'_> {
    type Ok = Vec<(&'static str, Value)>;
    type Error = serde_json::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        match self.wanted {
            None => self.fields.push((key, Value::Null)),
            Some(wanted) if wanted.contains(&key) => {
                self.fields
                    .push((key, value.serialize(serde_json::value::Serializer)?));
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        Ok(self.fields)
    }
}

/// Refuses what is not a struct.
fn not_a_struct<T>() -> Result<T, serde_json::Error> {
    Err(serde_json::Error::custom("only a struct's fields can be picked"))
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            not_a_struct()
        })*
    };
}

type Refused = Impossible<Vec<(&'static str, Value)>, serde_json::Error>;

impl<'w> Serializer for Picker<'w> {
    type Ok = Vec<(&'static str, Value)>;
    type Error = serde_json::Error;
    type SerializeSeq = Refused;
    type SerializeTuple = Refused;
    type SerializeTupleStruct = Refused;
    type SerializeTupleVariant = Refused;
    type SerializeMap = Refused;
    type SerializeStruct = Picking<'w>;
    type SerializeStructVariant = Refused;

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Self::Ok, Self::Error> {
        not_a_struct()
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        not_a_struct()
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        not_a_struct()
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        not_a_struct()
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
        not_a_struct()
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        not_a_struct()
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        not_a_struct()
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        not_a_struct()
    }

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self::SerializeStruct, Self::Error> {
        let capacity = self.wanted.map_or(len, |w| w.len().min(len));
        Ok(Picking {
            wanted: self.wanted,
            fields: Vec::with_capacity(capacity),
        })
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        not_a_struct()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{PbOutput, PbTaskProxy};
    use serde_json::json;

    #[test]
    fn names_are_the_fields_set_and_values_the_ones_asked_for() {
        let proxy = PbTaskProxy {
            id: Some("~u/w//1/a".into()),
            state: Some("running".into()),
            outputs: [(
                "x".to_owned(),
                PbOutput {
                    satisfied: Some(true),
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        assert_eq!(field_names(&proxy), ["id", "state", "outputs"]);
        let values = field_values(&proxy, &["outputs", "state", "isHeld"]);
        assert_eq!(
            values,
            [
                ("state", json!("running")),
                ("outputs", json!({"x": {"satisfied": true}}))
            ]
        );
        // The picked fields are exactly those of the whole serde form.
        let whole = serde_json::to_value(&proxy).unwrap();
        for (name, value) in field_values(&proxy, &field_names(&proxy)) {
            assert_eq!(whole[name], value);
        }
        assert!(field_names(&5).is_empty());
    }
}
