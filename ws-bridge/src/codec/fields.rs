//! Taking a JSON object apart field by field, for every dialect's decoder:
//! each accessor removes its field (values move out without copies), treats
//! `null` as absent, and refuses with the dialect's own error naming the
//! action or event and the field. A dialect adds its own accessors with an
//! `impl Fields<ItsError>` beside its decoder.

use std::marker::PhantomData;

use meno_common::text::TextError;
use serde_json::{Map, Value};

use super::seed000::{compact_json_len, json_type};
use super::{Limits, ProtocolError};

/// The refusals every field reader can make, in a dialect's error type.
/// `name` is the action or event the object belongs to.
pub(super) trait FieldError: Sized {
    fn missing(name: &'static str, field: &'static str) -> Self;
    fn wrong_type(
        name: &'static str,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    ) -> Self;
    fn empty(name: &'static str, field: &'static str) -> Self;
    fn too_long(
        name: &'static str,
        field: &'static str,
        actual: usize,
        limit: usize,
        unit: &'static str,
    ) -> Self;
    fn invalid_text(name: &'static str, field: &'static str, why: TextError) -> Self;
}

/// An object being taken apart.
pub(super) struct Fields<E> {
    /// The action or event, named in every refusal.
    pub(super) name: &'static str,
    map: Map<String, Value>,
    error: PhantomData<fn() -> E>,
}

impl<E: FieldError> Fields<E> {
    pub(super) fn new(name: &'static str, map: Map<String, Value>) -> Self {
        Self {
            name,
            map,
            error: PhantomData,
        }
    }

    pub(super) fn take(&mut self, field: &'static str) -> Option<Value> {
        self.map.remove(field).filter(|value| !value.is_null())
    }

    pub(super) fn string(&mut self, field: &'static str) -> Result<Option<String>, E> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(field, "a string", &other)),
        }
    }

    pub(super) fn required_string(&mut self, field: &'static str) -> Result<String, E> {
        self.string(field)?
            .ok_or_else(|| E::missing(self.name, field))
    }

    pub(super) fn boolean(&mut self, field: &'static str) -> Result<Option<bool>, E> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(flag)),
            Some(other) => Err(self.wrong_type(field, "a boolean", &other)),
        }
    }

    /// An object of at most `max_meta_bytes` in compact JSON.
    pub(super) fn object(
        &mut self,
        field: &'static str,
        limits: &Limits,
    ) -> Result<Option<Map<String, Value>>, E> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Object(object)) => {
                let size = compact_json_len(&object);
                if size > limits.max_meta_bytes {
                    return Err(self.too_long(field, size, limits.max_meta_bytes, "bytes"));
                }
                Ok(Some(object))
            }
            Some(other) => Err(self.wrong_type(field, "an object", &other)),
        }
    }

    /// The id rule ([`meno_common::text::check_id_chars`]) and
    /// `max_id_len`, in characters.
    pub(super) fn check_id(&self, field: &'static str, id: &str, limits: &Limits) -> Result<(), E> {
        if id.is_empty() {
            return Err(E::empty(self.name, field));
        }
        let chars = id.chars().count();
        if chars > limits.max_id_len {
            return Err(self.too_long(field, chars, limits.max_id_len, "characters"));
        }
        meno_common::text::check_id_chars(id).map_err(|why| E::invalid_text(self.name, field, why))
    }

    pub(super) fn wrong_type(
        &self,
        field: &'static str,
        expected: &'static str,
        found: &Value,
    ) -> E {
        E::wrong_type(self.name, field, expected, json_type(found))
    }

    pub(super) fn too_long(
        &self,
        field: &'static str,
        actual: usize,
        limit: usize,
        unit: &'static str,
    ) -> E {
        E::too_long(self.name, field, actual, limit, unit)
    }
}

impl FieldError for ProtocolError {
    fn missing(action: &'static str, field: &'static str) -> Self {
        Self::MissingField { action, field }
    }

    fn wrong_type(
        action: &'static str,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    ) -> Self {
        Self::WrongType {
            action,
            field,
            expected,
            found,
        }
    }

    fn empty(action: &'static str, field: &'static str) -> Self {
        Self::Empty { action, field }
    }

    fn too_long(
        action: &'static str,
        field: &'static str,
        actual: usize,
        limit: usize,
        unit: &'static str,
    ) -> Self {
        Self::TooLong {
            action,
            field,
            actual,
            limit,
            unit,
        }
    }

    fn invalid_text(action: &'static str, field: &'static str, why: TextError) -> Self {
        Self::InvalidText { action, field, why }
    }
}
