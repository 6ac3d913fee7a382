//! The connect query: `parse_connect_query` and `parse_connect_fields` on any
//! query string.
//!
//! Besides "never panics", checks that the two agree, that whatever is
//! accepted meets the documented rules (id charset and length, trimmed name
//! without control characters), that refusals are one short line, and that an
//! accepted query, written back with form encoding, parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meno_bridge::connect::{
    parse_connect_fields, parse_connect_query, ConnectError, ConnectFields, MAX_ID_CHARS,
    MAX_NAME_CHARS,
};
use meno_proto::{ClientKind, Role};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let query = parse_connect_query(Some(&text));
    let fields = parse_connect_fields(Some(&text));
    // With a leading `?` or without, the same.
    if !text.starts_with('?') {
        assert_eq!(fields, parse_connect_fields(Some(&format!("?{text}"))));
    }

    match (&query, &fields) {
        (Ok(params), Ok(fields)) => {
            assert_eq!(params.session_id, fields.session_id);
            assert_eq!(Some(&params.participant_id), fields.participant_id.as_ref());
            assert_eq!(Some(&params.name), fields.name.as_ref());
            assert_eq!(Some(params.role), fields.role);
            assert_eq!(params.client, fields.client);
            assert_eq!(params.last_seq, fields.last_seq);
        }
        (Err(query_error), Err(fields_error)) => {
            assert_eq!(query_error, fields_error);
            check_refusal(query_error);
        }
        (Err(query_error), Ok(fields)) => {
            // Only the identity fields the token may supply can be missing.
            assert!(
                matches!(
                    query_error,
                    ConnectError::Missing {
                        field: "participantId" | "name" | "role"
                    }
                ),
                "{query_error:?} for {fields:?}"
            );
        }
        (Ok(params), Err(error)) => panic!("query accepted as {params:?}, fields refused: {error}"),
    }

    if let Ok(fields) = &fields {
        check_fields(fields);
        let again = parse_connect_fields(Some(&to_query(fields)));
        assert_eq!(
            again.as_ref(),
            Ok(fields),
            "written back as {}",
            to_query(fields)
        );
    }
});

fn check_refusal(error: &ConnectError) {
    let reason = error.to_string();
    assert!(
        !reason.contains('\n') && !reason.contains('\r'),
        "{reason:?}"
    );
    assert!(reason.len() <= 512, "reason too long: {}", reason.len());
}

fn check_id(id: &str) {
    assert!(!id.is_empty());
    assert!(id.chars().count() <= MAX_ID_CHARS);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')));
}

fn check_fields(fields: &ConnectFields) {
    check_id(&fields.session_id);
    if let Some(participant_id) = &fields.participant_id {
        check_id(participant_id);
    }
    if let Some(name) = &fields.name {
        assert_eq!(name, name.trim());
        assert!(!name.is_empty());
        assert!(name.chars().count() <= MAX_NAME_CHARS);
        assert!(!name.chars().any(char::is_control));
    }
    assert!(matches!(
        fields.role,
        None | Some(Role::Student | Role::Teacher | Role::Observer)
    ));
    assert!(matches!(
        fields.client,
        ClientKind::Web | ClientKind::Tablet | ClientKind::Native
    ));
}

fn to_query(fields: &ConnectFields) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("sessionId", &fields.session_id);
    if let Some(participant_id) = &fields.participant_id {
        query.append_pair("participantId", participant_id);
    }
    if let Some(name) = &fields.name {
        query.append_pair("name", name);
    }
    if let Some(role) = fields.role {
        let role = match role {
            Role::Student => "student",
            Role::Teacher => "teacher",
            _ => "observer",
        };
        query.append_pair("role", role);
    }
    let client = match fields.client {
        ClientKind::Web => "web",
        ClientKind::Tablet => "tablet",
        _ => "native",
    };
    query.append_pair("client", client);
    if let Some(last_seq) = fields.last_seq {
        query.append_pair("lastSeq", &last_seq.to_string());
    }
    if let Some(token) = &fields.token {
        query.append_pair("token", token);
    }
    query.finish()
}
