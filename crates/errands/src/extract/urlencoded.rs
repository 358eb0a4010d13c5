//! Deserializing `application/x-www-form-urlencoded` data with located errors.

use serde::de::DeserializeOwned;

use crate::errors::{Error, ValidationError, violation_at};

pub(super) fn parse<T: DeserializeOwned>(input: &[u8], root: &'static str) -> Result<T, Error> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(input));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let violation = violation_at(root, e.path(), &e.inner().to_string());
        Error::rejection(ValidationError::from(violation))
    })
}
