//! Settings whose blank value means "absent": read as `None`, so no reader compares with "".

use serde::{Deserialize, Deserializer};

/// A string setting that is blank (an empty `HBI__...` variable, `key = ""` in a file) is
/// absent: code reads `Option`, never compares with "".
pub fn blank_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .map(T::from))
}
