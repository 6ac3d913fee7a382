//! The rules for text and numbers clients supply, one place for every edge
//! and the core: ids, display names, and integers that clients must read back.
//!
//! - **Ids** (`messageId`, `leaseId`, seed 004's `clientRef`, ...): no
//!   control characters and no bidirectional controls; length limits are the
//!   caller's (bytes in the core, characters at the edge).
//! - **Display names**: trimmed; refused when they hold control characters
//!   or bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
//!   U+061C: they reorder the text around them), or when nothing visible is
//!   left (only spaces, zero-width or other invisible characters). Zero-width
//!   joiners inside a visible name stay: emoji sequences and some scripts
//!   need them.
//! - **Integers** a client reads back (a lease's `stepIndex`) are at most
//!   [`MAX_SAFE_INTEGER`], the largest a JavaScript number holds exactly.

/// 2^53 − 1: the largest integer every JSON client can represent exactly.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Why a client-supplied text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Control characters (U+0000–U+001F, U+007F–U+009F).
    #[error("contains control characters")]
    ControlChars,
    /// Characters that reorder the text around them.
    #[error("contains bidirectional control characters")]
    BidiControls,
    /// Nothing a reader would see.
    #[error("has no visible characters")]
    Invisible,
}

/// Characters that change the direction of the text around them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Characters that render as nothing (or as blank space) in most fonts.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || is_bidi_control(c)
        || matches!(
            c,
            '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}'
                | '\u{180E}'
                | '\u{034F}'
                | '\u{00AD}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
                | '\u{2800}'
        )
}

/// The id rule: no control characters, no bidirectional controls.
pub fn check_id_chars(id: &str) -> Result<(), TextError> {
    if id.chars().any(char::is_control) {
        return Err(TextError::ControlChars);
    }
    if id.chars().any(is_bidi_control) {
        return Err(TextError::BidiControls);
    }
    Ok(())
}

/// The display-name rule: the trimmed name, or why it is refused. Length
/// limits are the caller's (they differ by edge).
pub fn display_name(name: &str) -> Result<&str, TextError> {
    let trimmed = name.trim();
    check_id_chars(trimmed)?;
    if trimmed.chars().all(is_invisible) {
        return Err(TextError::Invisible);
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_control_and_bidi_characters() {
        assert_eq!(check_id_chars("msg-1"), Ok(()));
        assert_eq!(check_id_chars("a\nb"), Err(TextError::ControlChars));
        assert_eq!(check_id_chars("\u{0}"), Err(TextError::ControlChars));
        assert_eq!(check_id_chars("ab\u{202E}c"), Err(TextError::BidiControls));
    }

    #[test]
    fn names_need_something_visible_and_no_reordering() {
        assert_eq!(display_name("  Ann  "), Ok("Ann"));
        assert_eq!(
            display_name("\u{200B}\u{200D} \u{FEFF}"),
            Err(TextError::Invisible)
        );
        assert_eq!(display_name("\u{3164}"), Err(TextError::Invisible));
        assert_eq!(
            display_name("Ann\u{202E}gnp.exe"),
            Err(TextError::BidiControls)
        );
        assert_eq!(display_name("A\tB"), Err(TextError::ControlChars));
        // A zero-width joiner inside an emoji sequence is part of the name.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(display_name(family), Ok(family));
    }

    #[test]
    fn the_safe_integer_is_two_to_the_53_minus_one() {
        assert_eq!(MAX_SAFE_INTEGER, 9_007_199_254_740_991);
    }
}
