//! The seed-000 connect query: `?sessionId&participantId&name&role&client[&lastSeq]`.
//!
//! This module owns validating that query into [`ConnectParams`], so a bad
//! connect is refused with a one-line reason (HTTP 400) before the upgrade.
//! It must never decide identity from anything but these fields: in
//! particular `tenant` is not read here, since a client must not pick its own
//! tenant; it comes from authentication. Unknown parameters (cache busters,
//! tokens meant for other layers) are ignored.

use std::borrow::Cow;

use meno_proto::{ClientKind, Role};

pub mod assistant;
pub mod nexus;

/// Longest `sessionId` / `participantId`, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest display name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 80;
/// How much of a bad value is echoed back in the reason.
const ECHO_CHARS: usize = 32;

/// A validated connect request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectParams {
    /// The session to join: 1..=128 of `[A-Za-z0-9._:@-]`.
    pub session_id: String,
    /// The participant's stable id: 1..=128 of `[A-Za-z0-9._:@-]`.
    pub participant_id: String,
    /// Display name, trimmed, 1..=80 characters, no control characters.
    pub name: String,
    /// Student, teacher or observer.
    pub role: Role,
    /// Web, tablet or native.
    pub client: ClientKind,
    /// Resume after this seq, when the client has seen events before.
    pub last_seq: Option<u64>,
}

/// Why a connect query was refused; `Display` is the one-line reason sent in
/// the 400 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// A required field is absent.
    #[error("missing {field}")]
    Missing {
        /// The field's query name.
        field: &'static str,
    },
    /// A field was given more than once, so which one counts is ambiguous.
    #[error("duplicate {field}: give it once")]
    Duplicate {
        /// The field's query name.
        field: &'static str,
    },
    /// A required field is present but empty (or only whitespace, for `name`).
    #[error("empty {field}")]
    Empty {
        /// The field's query name.
        field: &'static str,
    },
    /// A field is longer than allowed.
    #[error("{field} too long: {actual} characters, at most {max}")]
    TooLong {
        /// The field's query name.
        field: &'static str,
        /// Its length in characters.
        actual: usize,
        /// The limit.
        max: usize,
    },
    /// An id has a character outside `[A-Za-z0-9._:@-]`.
    #[error("invalid {field}: only letters A-Z and a-z, digits and . _ : @ - are allowed")]
    InvalidIdChars {
        /// The field's query name.
        field: &'static str,
    },
    /// The name breaks the display-name rule (control or bidirectional
    /// characters, nothing visible).
    #[error("invalid name: it {0}")]
    InvalidName(meno_common::text::TextError),
    /// `role` is not one of the three.
    #[error("invalid role {value:?}: expected student, teacher or observer")]
    InvalidRole {
        /// The role as sent, cut short.
        value: String,
    },
    /// `client` is not one of the three.
    #[error("invalid client {value:?}: expected web, tablet or native")]
    InvalidClient {
        /// The client kind as sent, cut short.
        value: String,
    },
    /// More rooms named at connect than a socket may be in.
    #[error("too many roomId: {actual}, at most {max} per connection")]
    TooManyRooms {
        /// How many were named.
        actual: usize,
        /// The limit.
        max: usize,
    },
    /// `lastSeq` is not a non-negative integer.
    #[error("invalid lastSeq {value:?}: expected a non-negative integer")]
    InvalidLastSeq {
        /// The value as sent, cut short.
        value: String,
    },
}

/// Parses and validates the query string of a connect request (`None` or
/// `Some("")` when the URL has none; a leading `?` is accepted).
///
/// An empty `lastSeq=` counts as absent, since clients often build the URL
/// with the parameter and no value before their first event.
pub fn parse_connect_query(query: Option<&str>) -> Result<ConnectParams, ConnectError> {
    let fields = parse_connect_fields(query)?;
    Ok(ConnectParams {
        session_id: fields.session_id,
        participant_id: fields.participant_id.ok_or(ConnectError::Missing {
            field: "participantId",
        })?,
        name: fields.name.ok_or(ConnectError::Missing { field: "name" })?,
        role: fields.role.ok_or(ConnectError::Missing { field: "role" })?,
        client: fields.client,
        last_seq: fields.last_seq,
    })
}

/// The connect query when a token may supply identity (JWT mode): the
/// identity fields are optional, and checked against the token's claims by
/// the caller; `token` is the access token when given in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFields {
    /// The session to join.
    pub session_id: String,
    /// The participant id, when given.
    pub participant_id: Option<String>,
    /// The display name, when given.
    pub name: Option<String>,
    /// The role, when given.
    pub role: Option<Role>,
    /// Web, tablet or native.
    pub client: ClientKind,
    /// Resume after this seq.
    pub last_seq: Option<u64>,
    /// The access token (`token` parameter), when given.
    pub token: Option<String>,
}

/// Validates every field present; only `sessionId` and `client` are required.
pub fn parse_connect_fields(query: Option<&str>) -> Result<ConnectFields, ConnectError> {
    let query = query.unwrap_or_default();
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut raw = RawQuery::default();
    let mut token = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (field, slot) = match key.as_ref() {
            "sessionId" => ("sessionId", &mut raw.session_id),
            "participantId" => ("participantId", &mut raw.participant_id),
            "name" => ("name", &mut raw.name),
            "role" => ("role", &mut raw.role),
            "client" => ("client", &mut raw.client),
            "lastSeq" => ("lastSeq", &mut raw.last_seq),
            "token" => ("token", &mut token),
            _ => continue,
        };
        if slot.is_some() {
            return Err(ConnectError::Duplicate { field });
        }
        *slot = Some(value);
    }
    let session_id = id("sessionId", raw.session_id)?;
    let participant_id = raw
        .participant_id
        .map(|value| id("participantId", Some(value)))
        .transpose()?;
    let name = raw.name.map(|value| name(Some(value))).transpose()?;
    let role = raw
        .role
        .map(|value| required("role", Some(value)).and_then(role))
        .transpose()?;
    Ok(ConnectFields {
        session_id,
        participant_id,
        name,
        role,
        client: client(required("client", raw.client)?)?,
        last_seq: last_seq(raw.last_seq)?,
        token: token.map(Cow::into_owned),
    })
}

/// The query's fields as given, before validation.
#[derive(Default)]
struct RawQuery<'q> {
    session_id: Option<Cow<'q, str>>,
    participant_id: Option<Cow<'q, str>>,
    name: Option<Cow<'q, str>>,
    role: Option<Cow<'q, str>>,
    client: Option<Cow<'q, str>>,
    last_seq: Option<Cow<'q, str>>,
}

pub(crate) fn required<'q>(
    field: &'static str,
    value: Option<Cow<'q, str>>,
) -> Result<Cow<'q, str>, ConnectError> {
    match value {
        None => Err(ConnectError::Missing { field }),
        Some(value) if value.is_empty() => Err(ConnectError::Empty { field }),
        Some(value) => Ok(value),
    }
}

pub(crate) fn id(field: &'static str, value: Option<Cow<'_, str>>) -> Result<String, ConnectError> {
    let value = required(field, value)?;
    let chars = value.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(ConnectError::TooLong {
            field,
            actual: chars,
            max: MAX_ID_CHARS,
        });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-');
    if !value.chars().all(allowed) {
        return Err(ConnectError::InvalidIdChars { field });
    }
    Ok(value.into_owned())
}

fn name(value: Option<Cow<'_, str>>) -> Result<String, ConnectError> {
    display_name("name", value)
}

/// A display name under `field`: trimmed, 1..=80 characters, the name rule.
pub(crate) fn display_name(
    field: &'static str,
    value: Option<Cow<'_, str>>,
) -> Result<String, ConnectError> {
    let value = required(field, value)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ConnectError::Empty { field });
    }
    let chars = trimmed.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(ConnectError::TooLong {
            field,
            actual: chars,
            max: MAX_NAME_CHARS,
        });
    }
    let name = meno_common::text::display_name(trimmed).map_err(ConnectError::InvalidName)?;
    Ok(name.to_owned())
}

fn role(value: Cow<'_, str>) -> Result<Role, ConnectError> {
    match value.as_ref() {
        "student" => Ok(Role::Student),
        "teacher" => Ok(Role::Teacher),
        "observer" => Ok(Role::Observer),
        other => Err(ConnectError::InvalidRole { value: clip(other) }),
    }
}

fn client(value: Cow<'_, str>) -> Result<ClientKind, ConnectError> {
    match value.as_ref() {
        "web" => Ok(ClientKind::Web),
        "tablet" => Ok(ClientKind::Tablet),
        "native" => Ok(ClientKind::Native),
        other => Err(ConnectError::InvalidClient { value: clip(other) }),
    }
}

fn last_seq(value: Option<Cow<'_, str>>) -> Result<Option<u64>, ConnectError> {
    match value {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        // `u64::from_str` accepts a leading `+`; a seq is plain digits.
        Some(value) if value.bytes().all(|b| b.is_ascii_digit()) => value
            .parse()
            .map(Some)
            .map_err(|_| ConnectError::InvalidLastSeq {
                value: clip(&value),
            }),
        Some(value) => Err(ConnectError::InvalidLastSeq {
            value: clip(&value),
        }),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(ECHO_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "sessionId=lesson-42&participantId=p_7&name=Ada%20Lovelace&role=student&client=web";

    fn reason(query: &str) -> String {
        match parse_connect_query(Some(query)) {
            Ok(params) => panic!("{query:?} was accepted as {params:?}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn accepts_the_seed_fields() {
        let params = parse_connect_query(Some(GOOD)).expect("valid");
        assert_eq!(
            params,
            ConnectParams {
                session_id: "lesson-42".into(),
                participant_id: "p_7".into(),
                name: "Ada Lovelace".into(),
                role: Role::Student,
                client: ClientKind::Web,
                last_seq: None,
            }
        );
    }

    #[test]
    fn accepts_every_role_and_client_and_a_last_seq() {
        for (text, expected) in [
            ("student", Role::Student),
            ("teacher", Role::Teacher),
            ("observer", Role::Observer),
        ] {
            let query = GOOD.replace("role=student", &format!("role={text}"));
            assert_eq!(
                parse_connect_query(Some(&query)).map(|p| p.role),
                Ok(expected)
            );
        }
        for (text, expected) in [
            ("web", ClientKind::Web),
            ("tablet", ClientKind::Tablet),
            ("native", ClientKind::Native),
        ] {
            let query = GOOD.replace("client=web", &format!("client={text}"));
            assert_eq!(
                parse_connect_query(Some(&query)).map(|p| p.client),
                Ok(expected)
            );
        }
        let query = format!("{GOOD}&lastSeq=18446744073709551615");
        assert_eq!(
            parse_connect_query(Some(&query)).map(|p| p.last_seq),
            Ok(Some(u64::MAX))
        );
    }

    #[test]
    fn decodes_percent_and_plus_and_trims_the_name() {
        let query = "?sessionId=org%3Aroom%401&participantId=u.1&name=++Zo%C3%AB+%F0%9F%8E%93+&role=teacher&client=tablet";
        let params = parse_connect_query(Some(query)).expect("valid");
        assert_eq!(params.session_id, "org:room@1");
        assert_eq!(params.name, "Zoë 🎓");
    }

    #[test]
    fn ignores_unknown_parameters_and_tenant() {
        let query = format!("{GOOD}&tenant=evil&token=abc&_=123");
        assert!(parse_connect_query(Some(&query)).is_ok());
    }

    #[test]
    fn empty_last_seq_is_absent() {
        let query = format!("{GOOD}&lastSeq=");
        assert_eq!(
            parse_connect_query(Some(&query)).map(|p| p.last_seq),
            Ok(None)
        );
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            parse_connect_query(None).map_err(|e| e.to_string()),
            Err("missing sessionId".into())
        );
        assert_eq!(reason(""), "missing sessionId");
        for field in ["sessionId", "participantId", "name", "role", "client"] {
            let query: Vec<&str> = GOOD
                .split('&')
                .filter(|pair| !pair.starts_with(&format!("{field}=")))
                .collect();
            assert_eq!(reason(&query.join("&")), format!("missing {field}"));
        }
    }

    #[test]
    fn empty_fields_are_named() {
        assert_eq!(reason(&GOOD.replace("lesson-42", "")), "empty sessionId");
        assert_eq!(reason(&GOOD.replace("p_7", "")), "empty participantId");
        assert_eq!(
            reason(&GOOD.replace("Ada%20Lovelace", "%20%20")),
            "empty name"
        );
        assert_eq!(reason(&GOOD.replace("student", "")), "empty role");
    }

    #[test]
    fn duplicates_are_refused() {
        assert_eq!(
            reason(&format!("{GOOD}&role=teacher")),
            "duplicate role: give it once"
        );
        assert_eq!(
            reason(&format!("{GOOD}&lastSeq=1&lastSeq=2")),
            "duplicate lastSeq: give it once"
        );
    }

    #[test]
    fn bad_role_and_client() {
        assert_eq!(
            reason(&GOOD.replace("role=student", "role=admin")),
            r#"invalid role "admin": expected student, teacher or observer"#
        );
        assert_eq!(
            reason(&GOOD.replace("role=student", "role=Student")),
            r#"invalid role "Student": expected student, teacher or observer"#
        );
        assert_eq!(
            reason(&GOOD.replace("client=web", "client=backend")),
            r#"invalid client "backend": expected web, tablet or native"#
        );
    }

    #[test]
    fn bad_ids() {
        assert_eq!(
            reason(&GOOD.replace("lesson-42", "lesson%2042")),
            "invalid sessionId: only letters A-Z and a-z, digits and . _ : @ - are allowed"
        );
        assert_eq!(
            reason(&GOOD.replace("p_7", "p%2F7")),
            "invalid participantId: only letters A-Z and a-z, digits and . _ : @ - are allowed"
        );
        assert_eq!(
            reason(&GOOD.replace("p_7", "%C3%A9")),
            "invalid participantId: only letters A-Z and a-z, digits and . _ : @ - are allowed"
        );
        let long = "a".repeat(MAX_ID_CHARS + 1);
        assert_eq!(
            reason(&GOOD.replace("lesson-42", &long)),
            "sessionId too long: 129 characters, at most 128"
        );
        let longest = "a".repeat(MAX_ID_CHARS);
        assert!(parse_connect_query(Some(&GOOD.replace("lesson-42", &longest))).is_ok());
    }

    #[test]
    fn bad_names() {
        assert_eq!(
            reason(&GOOD.replace("Ada%20Lovelace", "Ada%0ALovelace")),
            "invalid name: it contains control characters"
        );
        assert_eq!(
            reason(&GOOD.replace("Ada%20Lovelace", "Ada%1B%5B31m")),
            "invalid name: it contains control characters"
        );
        assert_eq!(
            reason(&GOOD.replace("Ada%20Lovelace", "%E2%80%8B%E2%80%8C")),
            "invalid name: it has no visible characters"
        );
        assert_eq!(
            reason(&GOOD.replace("Ada%20Lovelace", "Ada%E2%80%AE")),
            "invalid name: it contains bidirectional control characters"
        );
        let long = "é".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            reason(&GOOD.replace("Ada%20Lovelace", &long)),
            "name too long: 81 characters, at most 80"
        );
        let longest = format!("  {}  ", "é".repeat(MAX_NAME_CHARS));
        assert!(parse_connect_query(Some(&GOOD.replace("Ada%20Lovelace", &longest))).is_ok());
    }

    #[test]
    fn bad_last_seq() {
        for bad in ["-1", "%2B5", "abc", "1.5", "18446744073709551616"] {
            let query = format!("{GOOD}&lastSeq={bad}");
            assert!(
                reason(&query).starts_with("invalid lastSeq "),
                "{bad}: {}",
                reason(&query)
            );
        }
        assert_eq!(
            reason(&format!("{GOOD}&lastSeq=abc")),
            r#"invalid lastSeq "abc": expected a non-negative integer"#
        );
    }

    #[test]
    fn echoed_values_are_short_and_on_one_line() {
        let query = GOOD.replace("role=student", &format!("role=a%0Ab{}", "x".repeat(500)));
        let reason = reason(&query);
        assert!(!reason.contains('\n'));
        assert!(reason.len() < 120, "{reason}");
    }
}
