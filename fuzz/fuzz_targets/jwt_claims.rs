//! The JWT claim mapping: `identity_from_claims` on arbitrary claims, claim
//! names and role maps (the signature is not what is fuzzed here; the claims
//! of a validly signed token are still chosen by whoever issued it).
//!
//! Besides "never panics", checks the identity against the claims: the
//! participant id is the subject claim and within bounds, the session scope is
//! `"*"` or exactly the listed ids, a string role maps through the role map or
//! its own name, a list picks the most capable role it names, and blank names
//! and tenants count as absent.
#![no_main]

use std::collections::HashMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use meno_bridge::auth::{
    identity_from_claims, parse_role_map, AuthError, ClaimNames, JwtConfig, KeySource, SessionScope,
};
use meno_proto::Role;
use serde_json::{Map, Value};

/// A JSON value; the derive bounds its depth by the input's length.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Text(String),
    /// A value a claim commonly holds, so the happy paths are reached.
    Known(u8),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

const KNOWN: &[&str] = &[
    "*", "student", "teacher", "observer", "teachers", "students", "s-1", "p_7", "",
];

impl Json {
    fn value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(flag) => Value::Bool(*flag),
            Self::Int(int) => Value::from(*int),
            Self::Unsigned(int) => Value::from(*int),
            Self::Float(float) => Value::from(*float),
            Self::Text(text) => Value::String(text.clone()),
            Self::Known(index) => Value::from(KNOWN[usize::from(*index) % KNOWN.len()]),
            Self::List(items) => items.iter().map(Self::value).collect(),
            Self::Object(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(key, value)| (key.clone(), value.value()))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Custom claim names (subject, sessions, role, name, tenant), or the defaults.
    names: Option<[String; 5]>,
    /// `value=role,...`; refused maps fall back to a fixed one.
    role_map: String,
    subject: Option<Json>,
    sessions: Option<Json>,
    role: Option<Json>,
    name: Option<Json>,
    tenant: Option<Json>,
    exp: Option<Json>,
    others: Vec<(String, Json)>,
}

fuzz_target!(|input: Input| {
    let claims_names = match &input.names {
        None => ClaimNames::default(),
        Some([subject, sessions, role, name, tenant]) => ClaimNames {
            subject: subject.clone(),
            sessions: sessions.clone(),
            role: role.clone(),
            name: name.clone(),
            tenant: tenant.clone(),
        },
    };
    let role_map = parse_role_map(&input.role_map).unwrap_or_else(|_| {
        HashMap::from([
            ("teachers".to_owned(), Role::Teacher),
            ("students".to_owned(), Role::Student),
            ("teacher".to_owned(), Role::Observer),
        ])
    });
    let config = JwtConfig {
        keys: KeySource::Hs256Secret(Vec::new()),
        issuer: None,
        audience: None,
        leeway: Duration::ZERO,
        claims: claims_names,
        role_map,
        jwks_refresh: Duration::from_secs(300),
    };

    let mut claims = Map::new();
    for (key, value) in &input.others {
        claims.insert(key.clone(), value.value());
    }
    // Later inserts win when two claim names coincide, as in a real token.
    let named = [
        (&config.claims.subject, &input.subject),
        (&config.claims.sessions, &input.sessions),
        (&config.claims.role, &input.role),
        (&config.claims.name, &input.name),
        (&config.claims.tenant, &input.tenant),
    ];
    for (name, value) in named {
        if let Some(value) = value {
            claims.insert(name.clone(), value.value());
        }
    }
    if let Some(exp) = &input.exp {
        claims.insert("exp".to_owned(), exp.value());
    }
    let claims = Value::Object(claims);

    match identity_from_claims(&config, &claims) {
        Ok(identity) => {
            let names = &config.claims;
            let subject = claims[&names.subject]
                .as_str()
                .expect("subject is a string");
            assert_eq!(identity.participant_id, subject);
            assert!(!subject.is_empty() && subject.len() <= 128);
            assert!(!subject.chars().any(char::is_control));

            match (&identity.sessions, &claims[&names.sessions]) {
                (SessionScope::Any, Value::String(star)) => assert_eq!(star, "*"),
                (SessionScope::Only(only), Value::String(one)) => {
                    assert_ne!(one, "*");
                    assert_eq!(only, &vec![one.clone()]);
                }
                (SessionScope::Only(only), Value::Array(list)) => {
                    let listed: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                    assert_eq!(listed.len(), list.len());
                    assert_eq!(only, &listed);
                }
                (scope, claim) => panic!("{scope:?} from {claim}"),
            }
            if let SessionScope::Only(only) = &identity.sessions {
                assert!(only.iter().all(|session| identity.sessions.allows(session)));
            }

            let map = |value: &str| {
                config.role_map.get(value).copied().or(match value {
                    "student" => Some(Role::Student),
                    "teacher" => Some(Role::Teacher),
                    "observer" => Some(Role::Observer),
                    _ => None,
                })
            };
            let rank = |role: Role| match role {
                Role::Teacher => 3,
                Role::Student => 2,
                _ => 1,
            };
            match claims.get(&names.role) {
                None => assert_eq!(identity.role, None),
                Some(Value::String(value)) => assert_eq!(identity.role, map(value)),
                Some(Value::Array(values)) => {
                    let best = values
                        .iter()
                        .filter_map(Value::as_str)
                        .filter_map(map)
                        .map(rank)
                        .max();
                    assert_eq!(identity.role.map(rank), best);
                    assert!(best.is_some());
                }
                Some(other) => panic!("role from {other}"),
            }

            if let Some(name) = &identity.name {
                assert!(!name.trim().is_empty());
                assert_eq!(Some(name.as_str()), claims[&names.name].as_str());
            }
            if let Some(tenant) = &identity.tenant {
                assert!(!tenant.is_empty());
                assert_eq!(Some(tenant.as_str()), claims[&names.tenant].as_str());
            }
            let exp = claims.get("exp").and_then(Value::as_i64);
            assert_eq!(
                identity.expires_at_ms,
                exp.map(|exp| exp.saturating_mul(1000))
            );
        }
        Err(AuthError::Claim { claim, reason }) => {
            assert!(!reason.is_empty());
            let names = &config.claims;
            assert!(
                [&names.subject, &names.sessions, &names.role].contains(&&claim),
                "refused on {claim:?}"
            );
        }
        Err(other) => panic!("claim mapping returned {other:?}"),
    }
});
