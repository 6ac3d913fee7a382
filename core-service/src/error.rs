//! The error vocabulary ([`meno_common::error`]), and how store failures
//! enter it.

pub use meno_common::error::*;

use crate::store::StoreError;

impl From<StoreError> for CoreError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) | StoreError::Deposed(_) => {
                Self::unavailable(err.to_string())
            }
            StoreError::Conflict(_) => Self::conflict(err.to_string()),
            StoreError::Corrupt(_) | StoreError::Backend(_) => Self::internal(err.to_string()),
        }
    }
}
