//! NexusChat's REST reads on the bridge: `GET /api/rooms/{roomId}/messages`
//! (`page` and `size`, or `before=<messageId>` and `size`),
//! `GET /api/rooms/{roomId}/reads` and `GET /api/config/webrtc` (the ICE
//! servers, with TURN credentials minted per request: [`crate::ice`]).
//!
//! Identity as for the WebSocket: in jwt mode a bearer token
//! (`Authorization: Bearer <token>`, or `?token=`) gives the tenant and the
//! rooms it grants; with auth off the query's `tenant` (default tenant) and,
//! when given, `userId` are checked by the id rule and nothing more. A room
//! the tenant never had, another tenant's included, is 404; a room of the
//! tenant the token does not grant is 403. Errors are JSON
//! `{code, message}` with the status of [`ErrorCode::http_status`]. This
//! module only reads; it never changes a session.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use meno_common::error::{CoreError, ErrorCode};
use meno_common::key::DEFAULT_TENANT;
use meno_proto::{ChatHistoryRequest, GetReadsRequest, SessionRef};

use crate::auth::Identity;
use crate::codec::nexus;
use crate::connect::{id, ConnectError};
use crate::socket::SocketContext;

/// Messages per page when `size` is not given (the seed's default).
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest `size`.
pub const MAX_PAGE_SIZE: u32 = 200;
/// The deepest `page * size` served by offset; deeper history is read with
/// `before=<messageId>`, which costs no scan.
pub const MAX_OFFSET: u32 = 10_000;

type HttpResponse = Response<Full<Bytes>>;

/// Whether `path` is one of these endpoints.
pub fn is_rest_path(path: &str) -> bool {
    path.starts_with("/api/")
}

/// Answers one REST request.
pub async fn handle(
    context: &SocketContext,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> HttpResponse {
    match serve(context, path, query, headers).await {
        Ok(body) => json(StatusCode::OK, body),
        Err(err) => error(&err),
    }
}

/// What the path names.
enum Endpoint {
    Messages,
    Reads,
}

/// `GET /api/config/webrtc`: the ICE servers, with TURN credentials minted
/// for the caller.
async fn webrtc_config(
    context: &SocketContext,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<String, RestError> {
    let params = Params::parse(query)?;
    let (_, identity) = identify(context, &params, headers).await?;
    let user_id = identity
        .map(|identity| identity.participant_id)
        .or(params.user_id)
        .unwrap_or_else(|| String::from("anonymous"));
    let now_s = crate::now_ms().div_euclid(1000);
    Ok(context.config.ice.response(&user_id, now_s).to_string())
}

async fn serve(
    context: &SocketContext,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<String, RestError> {
    if path == "/api/config/webrtc" {
        return webrtc_config(context, query, headers).await;
    }
    let (room, endpoint) = route(path)?;
    let params = Params::parse(query)?;
    let tenant = authorize(context, &room, &params, headers).await?;
    let key = meno_common::key::SessionKey::new(tenant.clone(), room.clone());
    let session = Some(SessionRef {
        tenant,
        session_id: room.clone(),
    });
    let core = &context.core;
    match endpoint {
        Endpoint::Messages => {
            let size = params.size.unwrap_or(DEFAULT_PAGE_SIZE);
            if size == 0 || size > MAX_PAGE_SIZE {
                return Err(RestError::bad(format!(
                    "size must be 1 to {MAX_PAGE_SIZE}, got {size}"
                )));
            }
            let page = params.page.unwrap_or(0);
            let offset = page
                .checked_mul(size)
                .filter(|offset| *offset <= MAX_OFFSET)
                .ok_or_else(|| {
                    RestError::bad(format!(
                        "page * size must be at most {MAX_OFFSET}; read deeper history with before=<messageId>"
                    ))
                })?;
            let request = core.session_request(
                &key,
                ChatHistoryRequest {
                    session,
                    before_seq: None,
                    limit: size,
                    before_message_id: params.before.clone(),
                    offset,
                    must_exist: true,
                },
            );
            let page = core
                .chat
                .clone()
                .history(request)
                .await
                .map_err(|status| RestError::Core(CoreError::from_status(&status)))?
                .into_inner();
            Ok(nexus::encode_history_page(&room, &page.messages))
        }
        Endpoint::Reads => {
            let request = core.session_request(
                &key,
                GetReadsRequest {
                    session,
                    must_exist: true,
                },
            );
            let reads = core
                .reads
                .clone()
                .get_reads(request)
                .await
                .map_err(|status| RestError::Core(CoreError::from_status(&status)))?
                .into_inner();
            Ok(nexus::encode_reads(&reads.reads))
        }
    }
}

/// `/api/rooms/{roomId}/messages` or `/api/rooms/{roomId}/reads`.
fn route(path: &str) -> Result<(String, Endpoint), RestError> {
    let not_found = || RestError::Core(CoreError::new(ErrorCode::NotFound, "no such endpoint"));
    let rest = path.strip_prefix("/api/rooms/").ok_or_else(not_found)?;
    let (room, endpoint) = rest.split_once('/').ok_or_else(not_found)?;
    let endpoint = match endpoint {
        "messages" => Endpoint::Messages,
        "reads" => Endpoint::Reads,
        _ => return Err(not_found()),
    };
    let room = id("roomId", Some(Cow::Borrowed(room))).map_err(RestError::Query)?;
    Ok((room, endpoint))
}

/// The query's parameters.
#[derive(Debug, Default)]
struct Params {
    page: Option<u32>,
    size: Option<u32>,
    before: Option<String>,
    tenant: Option<String>,
    user_id: Option<String>,
    token: Option<String>,
}

impl Params {
    fn parse(query: Option<&str>) -> Result<Self, RestError> {
        let mut params = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "page" => params.page = Some(number("page", &value)?),
                "size" => params.size = Some(number("size", &value)?),
                "before" => {
                    params.before = Some(id("before", Some(value)).map_err(RestError::Query)?)
                }
                "tenant" => {
                    params.tenant = Some(id("tenant", Some(value)).map_err(RestError::Query)?)
                }
                "userId" => {
                    params.user_id = Some(id("userId", Some(value)).map_err(RestError::Query)?)
                }
                "token" => params.token = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(params)
    }
}

fn number(field: &str, value: &str) -> Result<u32, RestError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            RestError::bad(format!(
                "{field} must be a non-negative integer, got {value:?}"
            ))
        })
}

/// The tenant the request reads in, once its identity allows `room`.
async fn authorize(
    context: &SocketContext,
    room: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Result<String, RestError> {
    let (tenant, identity) = identify(context, params, headers).await?;
    if let Some(identity) = identity {
        if !identity.sessions.allows(room) {
            return Err(RestError::Core(CoreError::new(
                ErrorCode::PermissionDenied,
                format!("the token does not grant room {room}"),
            )));
        }
    }
    Ok(tenant)
}

/// Who asks: the token's identity and tenant in jwt mode (401 without a
/// valid one), the query's tenant with auth off.
async fn identify(
    context: &SocketContext,
    params: &Params,
    headers: &HeaderMap,
) -> Result<(String, Option<Identity>), RestError> {
    let Some(auth) = context.config.auth.as_ref() else {
        let tenant = params
            .tenant
            .clone()
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
        return Ok((tenant, None));
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim);
    let token = bearer.or(params.token.as_deref()).ok_or_else(|| {
        RestError::Unauthorized("missing token: send Authorization: Bearer <token>".into())
    })?;
    let identity = auth
        .verify(token)
        .await
        .map_err(|err| RestError::Unauthorized(err.to_string()))?;
    let tenant = identity
        .tenant
        .clone()
        .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
    if params.tenant.as_ref().is_some_and(|asked| *asked != tenant) {
        return Err(RestError::Unauthorized(
            "tenant contradicts the token's tenant".into(),
        ));
    }
    Ok((tenant, Some(identity)))
}

/// Why a REST request was refused.
#[derive(Debug, thiserror::Error)]
enum RestError {
    #[error("{0}")]
    Query(ConnectError),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{}", .0.message)]
    Core(CoreError),
}

impl RestError {
    fn bad(message: String) -> Self {
        Self::Core(CoreError::new(ErrorCode::InvalidArgument, message))
    }
}

fn error(err: &RestError) -> HttpResponse {
    let (status, code, message) = match err {
        RestError::Query(err) => (StatusCode::BAD_REQUEST, "InvalidArgument", err.to_string()),
        RestError::Unauthorized(reason) => {
            (StatusCode::UNAUTHORIZED, "Unauthenticated", reason.clone())
        }
        RestError::Core(err) => (
            StatusCode::from_u16(err.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            err.code.as_str(),
            match err.code {
                ErrorCode::Internal => String::from("internal error"),
                _ => err.message.clone(),
            },
        ),
    };
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    json(status, body)
}

fn json(status: StatusCode, body: String) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_two_endpoints_and_checks_the_room_id() {
        assert!(matches!(
            route("/api/rooms/r-1/messages"),
            Ok((room, Endpoint::Messages)) if room == "r-1"
        ));
        assert!(matches!(
            route("/api/rooms/r-1/reads"),
            Ok((_, Endpoint::Reads))
        ));
        assert!(matches!(
            route("/api/rooms/r-1/other"),
            Err(RestError::Core(_))
        ));
        assert!(matches!(
            route("/api/rooms/a%20b/reads"),
            Err(RestError::Query(_))
        ));
    }

    #[test]
    fn page_and_size_are_plain_integers() {
        let params = Params::parse(Some("page=2&size=20&before=m1")).unwrap();
        assert_eq!((params.page, params.size), (Some(2), Some(20)));
        assert_eq!(params.before.as_deref(), Some("m1"));
        assert!(Params::parse(Some("page=-1")).is_err());
        assert!(Params::parse(Some("size=%2B5")).is_err());
    }
}
