//! Keys of the fjall store: each string part length-prefixed (u32, big
//! endian), so a session's rows share one byte prefix that no other
//! session's rows start with, and seqs big-endian, so they sort numerically.

use crate::store::StoreError;

/// A key built part by part.
#[derive(Debug, Default, Clone)]
pub(super) struct Key(Vec<u8>);

impl Key {
    /// The key of `parts`, each string length-prefixed.
    pub(super) fn of(parts: &[&str]) -> Result<Self, StoreError> {
        let mut key = Key(Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum()));
        for part in parts {
            key = key.text(part)?;
        }
        Ok(key)
    }

    /// Appends a string part.
    pub(super) fn text(mut self, part: &str) -> Result<Self, StoreError> {
        let len = u32::try_from(part.len()).map_err(|_| {
            StoreError::Backend(format!("key part of {} bytes is too long", part.len()))
        })?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(part.as_bytes());
        Ok(self)
    }

    /// Appends a seq.
    pub(super) fn seq(mut self, seq: u64) -> Self {
        self.0.extend_from_slice(&seq.to_be_bytes());
        self
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The seq at the end of a chat key; `None` if the key is too short.
pub(super) fn trailing_seq(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The string part that ends a key whose prefix is `prefix`: the last part
/// of a `(.., id)` key listed by prefix.
pub(super) fn trailing_text<'k>(key: &'k [u8], prefix: &[u8]) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?;
    let (len, text) = rest.split_at_checked(4)?;
    let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    if text.len() != len {
        return None;
    }
    std::str::from_utf8(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_prefix_is_not_the_prefix_of_another_session() {
        let short = Key::of(&["t", "s"]).unwrap();
        let longer = Key::of(&["t", "s1"]).unwrap().seq(1);
        assert!(!longer.as_bytes().starts_with(short.as_bytes()));
        let own = Key::of(&["t", "s"]).unwrap().seq(1);
        assert!(own.as_bytes().starts_with(short.as_bytes()));
    }

    #[test]
    fn seqs_sort_numerically_and_read_back() {
        let low = Key::of(&["t", "s"]).unwrap().seq(9);
        let high = Key::of(&["t", "s"]).unwrap().seq(256);
        assert!(low.as_bytes() < high.as_bytes());
        assert_eq!(trailing_seq(high.as_bytes()), Some(256));
        assert_eq!(trailing_seq(&[1, 2]), None);
    }

    #[test]
    fn the_trailing_id_reads_back() {
        let prefix = Key::of(&["t", "s"]).unwrap();
        let key = prefix.clone().text("user-1").unwrap();
        assert_eq!(
            trailing_text(key.as_bytes(), prefix.as_bytes()),
            Some("user-1")
        );
        assert_eq!(trailing_text(prefix.as_bytes(), prefix.as_bytes()), None);
    }
}
