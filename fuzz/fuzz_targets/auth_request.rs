//! The other auth inputs a client or an operator controls:
//! `token_from_request` (the `token` query parameter and the
//! `Sec-WebSocket-Protocol` header) and `parse_role_map` (configuration).
//!
//! The input is split at NUL bytes: query token, protocols header, role map;
//! an absent part is `None`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meno_bridge::auth::{parse_role_map, token_from_request, SUBPROTOCOL};
use meno_proto::Role;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let query_token = parts.next().filter(|part| !part.is_empty());
    let protocols = parts.next();
    let role_map = parts.next().unwrap_or_default();

    let (token, selected) = token_from_request(query_token, protocols);
    let offered: Vec<&str> = protocols
        .map(|header| header.split(',').map(str::trim).collect())
        .unwrap_or_default();
    // The query wins; otherwise the first `bearer.` entry.
    let expected_token = query_token.map(str::to_owned).or_else(|| {
        offered
            .iter()
            .find_map(|entry| entry.strip_prefix("bearer."))
            .map(str::to_owned)
    });
    assert_eq!(token, expected_token);
    // The answer is always one of the offered protocols, `meno.v1` first.
    if let Some(selected) = &selected {
        assert!(
            offered.contains(&selected.as_str()),
            "{selected:?} not offered"
        );
        assert!(selected == SUBPROTOCOL || selected.starts_with("bearer."));
        if offered.contains(&SUBPROTOCOL) {
            assert_eq!(selected, SUBPROTOCOL);
        }
    } else {
        assert!(!offered
            .iter()
            .any(|entry| *entry == SUBPROTOCOL || entry.starts_with("bearer.")));
    }

    if let Ok(map) = parse_role_map(role_map) {
        for (value, role) in &map {
            assert_eq!(value, value.trim());
            assert!(!value.contains(',') && !value.contains('='));
            assert!(matches!(
                role,
                Role::Student | Role::Teacher | Role::Observer
            ));
        }
        // Written back, the map parses to itself.
        let written: Vec<String> = map
            .iter()
            .map(|(value, role)| {
                let role = match role {
                    Role::Student => "student",
                    Role::Teacher => "teacher",
                    _ => "observer",
                };
                format!("{value}={role}")
            })
            .collect();
        assert_eq!(parse_role_map(&written.join(",")), Ok(map));
    }
});
