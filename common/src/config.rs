//! The error every binary's settings validation returns.

/// A flag or variable with a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {reason}")]
pub struct ConfigError {
    /// The flag at fault.
    pub setting: &'static str,
    /// Why.
    pub reason: String,
}
