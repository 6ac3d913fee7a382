//! Whatever a client sends, `decode` returns: truncations and mutations of
//! valid envelopes, random token soup, and inputs built to exhaust recursion.
//! Every refusal must still make a valid `error` envelope.

use meno_common::error::ErrorCode;
use serde_json::Value;

use super::{decode, encode_error};
use crate::codec::ErrorEnvelope;

const VALID: &[&str] = &[
    r#"{"action":"chat.send","payload":{"messageId":"m-1","content":"Hé \"quoted\" \\ 🎓","createdAt":"2026-11-23T06:51:42.123Z","meta":{"a":[1,2.5,{"b":null}]}}}"#,
    r##"{"action":"presence.update","payload":{"status":"typing","isTyping":true,"isSpeaking":false,"lastSeen":"2026-11-23T06:51:42Z","extra":{"color":"#fff"}}}"##,
    r#"{"action":"presence.heartbeat","payload":{"lastSeen":"2026-11-23T07:51:42.5+01:00"}}"#,
    r#"{"action":"control.lease.set","payload":{"leaseId":"l-1","stepIndex":3,"leaseDurationMs":60000}}"#,
    r#"{"action":"control.lease.release","payload":{"leaseId":"l-1"}}"#,
    r#"{"action":"system.ping","payload":{}}"#,
];

/// Decodes `text`, and when refused, checks the refusal makes a valid envelope.
fn decode_survives(text: &str) {
    if let Err(error) = decode(text) {
        assert_eq!(error.code(), ErrorCode::InvalidArgument);
        let encoded = encode_error(&ErrorEnvelope::from_protocol(&error));
        assert!(serde_json::from_str::<Value>(&encoded).is_ok(), "{encoded}");
    }
}

#[test]
fn valid_samples_decode() {
    for text in VALID {
        assert!(decode(text).is_ok(), "{text}");
    }
}

#[test]
fn never_panics_on_truncations() {
    for text in VALID {
        for (cut, _) in text.char_indices() {
            decode_survives(&text[..cut]);
            decode_survives(&text[cut..]);
        }
    }
}

#[test]
fn never_panics_on_mutations() {
    let replacements = [
        "",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        ":",
        ",",
        "0",
        "-",
        "1e999",
        ".",
        "null",
        "true",
        "é",
        "\u{0}",
        "\\u",
        "\\ud800",
        "[[[[[[[[[[[[[[[[[[",
        "9999999999999999999999",
    ];
    for text in VALID {
        for (at, ch) in text.char_indices() {
            let (head, tail) = (&text[..at], &text[at + ch.len_utf8()..]);
            for replacement in replacements {
                decode_survives(&format!("{head}{replacement}{tail}"));
            }
            decode_survives(&format!("{head}{ch}{ch}{tail}"));
        }
    }
}

#[test]
fn never_panics_on_random_token_soup() {
    let tokens = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"action\"",
        "\"payload\"",
        "\"chat.send\"",
        "\"system.ping\"",
        "\"control.lease.set\"",
        "\"stepIndex\"",
        "\"messageId\"",
        "\"content\"",
        "\"meta\"",
        "\"createdAt\"",
        "\"2026-11-23T06:51:42Z\"",
        "null",
        "true",
        "-1",
        "0",
        "1.5",
        "1e400",
        "\"\\u0000\"",
        " ",
        "\"",
    ];
    // xorshift64: deterministic, so a failure reproduces.
    let mut state: u64 = 0x9d9a_d23a_3ca9_a0b2;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = usize::try_from(next() % 40).unwrap_or(0);
        let text: String = (0..len)
            .map(|_| tokens[usize::try_from(next() % tokens.len() as u64).unwrap_or(0)])
            .collect();
        decode_survives(&text);
    }
}

#[test]
fn never_panics_on_deep_or_huge_input() {
    decode_survives(&"[".repeat(200_000));
    decode_survives(&r#"{"a":"#.repeat(50_000));
    decode_survives(&format!(r#"{{"action":"{}"}}"#, "\\\"".repeat(30_000)));
    decode_survives(&"9".repeat(70_000));
}
