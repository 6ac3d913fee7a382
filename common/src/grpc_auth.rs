//! Bearer-token authentication of gRPC calls: the check on the core's side
//! and the header on the callers' side (bridges, backends).
//!
//! Health and reflection stay open (probes and tooling); every
//! `meno.realtime.v1` service requires the token when one is configured.

use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

/// The core's check: a request must carry `authorization: Bearer <token>`.
#[derive(Clone, Default)]
pub struct RequireBearer {
    expected: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for RequireBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireBearer")
            .field("enabled", &self.expected.is_some())
            .finish()
    }
}

impl RequireBearer {
    /// Requires `token`; `None` lets every call through (loopback development).
    pub fn new(token: Option<String>) -> Self {
        Self {
            expected: token.map(|token| Arc::from(format!("Bearer {token}").into_bytes())),
        }
    }
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

impl tonic::service::Interceptor for RequireBearer {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        match request.metadata().get("authorization") {
            Some(given) if constant_time_eq(given.as_bytes(), expected) => Ok(request),
            Some(_) => Err(Status::unauthenticated("invalid bearer token")),
            None => Err(Status::unauthenticated(
                "missing bearer token: send authorization: Bearer <token>",
            )),
        }
    }
}

/// The caller's side: adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Default)]
pub struct BearerToken {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("set", &self.header.is_some())
            .finish()
    }
}

/// A token that cannot be sent as a header.
#[derive(Debug, thiserror::Error)]
#[error("the gRPC token must be printable ASCII")]
pub struct InvalidToken;

impl BearerToken {
    /// Sends `token` with every call; `None` sends nothing.
    pub fn new(token: Option<&str>) -> Result<Self, InvalidToken> {
        let header = token
            .map(|token| format!("Bearer {token}").parse().map_err(|_| InvalidToken))
            .transpose()?;
        Ok(Self { header })
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// Reads a token file: its content, trimmed; an empty file is an error.
pub fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    let token = std::fs::read_to_string(path)
        .map_err(|err| format!("{}: {err}", path.display()))?
        .trim()
        .to_owned();
    if token.len() < 16 {
        return Err(format!(
            "{}: the token must be at least 16 characters",
            path.display()
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn the_check_wants_exactly_the_token() {
        let mut check = RequireBearer::new(Some("sixteen-chars-ok".into()));
        assert_eq!(
            check.call(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert("authorization", "Bearer nope".parse().unwrap());
        assert!(check.call(wrong).is_err());
        let mut sender = BearerToken::new(Some("sixteen-chars-ok")).unwrap();
        let right = sender.call(Request::new(())).unwrap();
        assert!(check.call(right).is_ok());
        assert!(RequireBearer::new(None).call(Request::new(())).is_ok());
    }
}
