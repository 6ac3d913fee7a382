//! The NexusChat connect query: `?userId&userName[&tenant][&roomId...][&token]`.
//!
//! Like seed 000's query it is validated whole before the upgrade (HTTP 400
//! with a one-line reason). With auth off it is the identity; with auth on
//! the token's claims are, and the query may repeat them but not contradict
//! them (the dialect checks that). `roomId` may be repeated; a room named
//! twice is joined once. Unknown parameters are ignored.

use std::borrow::Cow;

use super::{display_name, id, ConnectError};

/// How many rooms one NexusChat socket may be in at once.
pub const MAX_ROOMS_PER_SOCKET: usize = 64;

/// A NexusChat connect query that parsed; every identity field is optional
/// here, and required by the dialect when auth is off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NexusConnect {
    /// `userId`.
    pub user_id: Option<String>,
    /// `userName`, trimmed.
    pub user_name: Option<String>,
    /// `tenant`.
    pub tenant: Option<String>,
    /// Every `roomId`, in the order given, each once.
    pub rooms: Vec<String>,
    /// `token`.
    pub token: Option<String>,
}

/// Validates every field present.
pub fn parse_nexus_connect(query: Option<&str>) -> Result<NexusConnect, ConnectError> {
    let query = query.unwrap_or_default();
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut user_id: Option<Cow<'_, str>> = None;
    let mut user_name: Option<Cow<'_, str>> = None;
    let mut tenant: Option<Cow<'_, str>> = None;
    let mut token: Option<Cow<'_, str>> = None;
    let mut rooms: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (field, slot) = match key.as_ref() {
            "roomId" => {
                let room = id("roomId", Some(value))?;
                if !rooms.contains(&room) {
                    rooms.push(room);
                }
                if rooms.len() > MAX_ROOMS_PER_SOCKET {
                    return Err(ConnectError::TooManyRooms {
                        actual: rooms.len(),
                        max: MAX_ROOMS_PER_SOCKET,
                    });
                }
                continue;
            }
            "userId" => ("userId", &mut user_id),
            "userName" => ("userName", &mut user_name),
            "tenant" => ("tenant", &mut tenant),
            "token" => ("token", &mut token),
            _ => continue,
        };
        if slot.is_some() {
            return Err(ConnectError::Duplicate { field });
        }
        *slot = Some(value);
    }
    Ok(NexusConnect {
        user_id: user_id.map(|value| id("userId", Some(value))).transpose()?,
        user_name: user_name
            .map(|value| display_name("userName", Some(value)))
            .transpose()?,
        tenant: tenant.map(|value| id("tenant", Some(value))).transpose()?,
        rooms,
        token: token.map(Cow::into_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_identity_and_every_room_once() {
        let parsed = parse_nexus_connect(Some(
            "userId=u1&userName=%20Ada%20&tenant=acme&roomId=r1&roomId=r2&roomId=r1&x=1",
        ))
        .unwrap();
        assert_eq!(parsed.user_id.as_deref(), Some("u1"));
        assert_eq!(parsed.user_name.as_deref(), Some("Ada"));
        assert_eq!(parsed.tenant.as_deref(), Some("acme"));
        assert_eq!(parsed.rooms, ["r1", "r2"]);
    }

    #[test]
    fn refuses_bad_ids_duplicates_and_too_many_rooms() {
        let reason = |query: &str| parse_nexus_connect(Some(query)).unwrap_err().to_string();
        assert_eq!(
            reason("userId=a&userId=b"),
            "duplicate userId: give it once"
        );
        assert!(reason("userId=a%20b").starts_with("invalid userId"));
        assert!(reason("roomId=").starts_with("empty roomId"));
        assert_eq!(reason("userName=%20"), "empty userName");
        let many: Vec<String> = (0..=MAX_ROOMS_PER_SOCKET)
            .map(|room| format!("roomId=r{room}"))
            .collect();
        assert!(reason(&many.join("&")).starts_with("too many roomId"));
    }
}
