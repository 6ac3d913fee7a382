//! Reading from a socket: what each frame a client sends asks of the socket.
//!
//! Rate limits come first (a token bucket per connection), then the
//! dialect's decode; repeated abuse of either closes the socket (4029,
//! 1008). A frame that breaks the WebSocket protocol itself closes it at
//! once (1002, 1007, as RFC 6455 §7.4.1 names them; 1009 for one too big).
//! Decisions only: nothing here writes, calls the core or waits, so every
//! rule is tested without a socket.

use std::time::Instant;

use meno_common::error::{CoreError, ErrorCode};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::close::{close_code, Closing};
use super::Ended;
use crate::codec::{ClientCommand, ErrorEnvelope, Limits};
use crate::dialect::{Dialect, Reply, Request};
use crate::limits::{LimitsConfig, TokenBucket};

/// What a received frame asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Inbound {
    /// Answer the sender at once (errors, pongs); empty: just flush, which
    /// sends tungstenite's reply to a ping.
    Answer(Vec<Message>),
    /// Run a command.
    Call(Request),
    /// Close the socket.
    Close(Closing),
    /// The client's stream failed on a frame it should not have sent: close
    /// the socket, on a stream opened anew (the failed one reads no more).
    Violated(Closing),
    /// The client closed: send tungstenite's reply and end.
    PeerClosed,
    /// The connection is gone.
    Broken,
}

/// One socket's read side: its dialect, its limits and its violation counts.
#[derive(Debug)]
pub(crate) struct Reader {
    dialect: &'static dyn Dialect,
    bucket: TokenBucket,
    rate_violations: u32,
    protocol_violations: u32,
}

impl Reader {
    pub(crate) fn new(dialect: &'static dyn Dialect, limits: &LimitsConfig) -> Self {
        Self {
            dialect,
            bucket: TokenBucket::new(limits.messages_per_second, limits.message_burst),
            rate_violations: 0,
            protocol_violations: 0,
        }
    }

    /// What `message` (as the stream yielded it) asks for.
    pub(crate) fn on_message(
        &mut self,
        message: Option<Result<Message, WsError>>,
        envelope_limits: &Limits,
        limits: &LimitsConfig,
    ) -> Inbound {
        match message {
            Some(Ok(Message::Text(text))) => self.on_text(&text, envelope_limits, limits),
            Some(Ok(Message::Binary(_))) => {
                let err = CoreError::invalid("binary frames are not supported; send JSON text");
                self.answer_error(&ErrorEnvelope::from_core(&err, None))
            }
            Some(Ok(Message::Close(_))) => Inbound::PeerClosed,
            // Pongs only prove liveness; a ping's reply goes out with the next flush.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                Inbound::Answer(Vec::new())
            }
            Some(Err(WsError::Capacity(err))) => Inbound::Violated(Closing::new(
                close_code::TOO_BIG,
                format!("message too big: {err}"),
            )),
            // Which frame it was (a text frame's payload or a Close's
            // reason), tungstenite does not say; the code is the same.
            Some(Err(WsError::Utf8(_))) => Inbound::Violated(Closing::new(
                close_code::INVALID_PAYLOAD,
                "invalid UTF-8 in a text frame or a close reason",
            )),
            Some(Err(WsError::Protocol(violation))) if is_client_violation(&violation) => {
                Inbound::Violated(Closing::new(
                    close_code::PROTOCOL_ERROR,
                    format!("protocol error: {violation}"),
                ))
            }
            Some(Err(_)) | None => Inbound::Broken,
        }
    }

    fn on_text(&mut self, text: &str, envelope_limits: &Limits, limits: &LimitsConfig) -> Inbound {
        if let Err(wait) = self.bucket.try_take(Instant::now()) {
            self.rate_violations += 1;
            if self.rate_violations > limits.max_rate_violations {
                return Inbound::Close(Closing::new(
                    close_code::RATE_LIMITED,
                    "rate limit exceeded repeatedly",
                ));
            }
            let mut err = CoreError::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} messages per second (burst {}); slow down",
                    limits.messages_per_second, limits.message_burst
                ),
            );
            err.retry_after = Some(wait);
            return self.answer_error(&ErrorEnvelope::from_core(&err, None));
        }
        self.rate_violations = 0;
        match self.dialect.decode(text, envelope_limits) {
            Ok(request) => {
                self.protocol_violations = 0;
                match request.command {
                    // Answered here, without a call: a pong measures the
                    // bridge, not the core.
                    ClientCommand::Ping => {
                        let pong = Reply::Pong {
                            server_time_ms: crate::now_ms(),
                        };
                        let frame = self.dialect.encode_reply("", &request.tag, &pong);
                        Inbound::Answer(vec![Message::Text(frame)])
                    }
                    _ => Inbound::Call(request),
                }
            }
            Err(err) => {
                self.protocol_violations += 1;
                if self.protocol_violations > limits.max_protocol_violations {
                    return Inbound::Close(Closing::new(
                        close_code::POLICY,
                        "too many invalid messages",
                    ));
                }
                self.answer_error_traced(&err.error, err.trace_id.as_deref())
            }
        }
    }

    fn answer_error(&self, error: &ErrorEnvelope) -> Inbound {
        self.answer_error_traced(error, None)
    }

    fn answer_error_traced(&self, error: &ErrorEnvelope, trace_id: Option<&str>) -> Inbound {
        Inbound::Answer(vec![super::error_message(self.dialect, error, trace_id)])
    }
}

/// Whether `error` is a frame the client sent against RFC 6455, rather than
/// the connection ending (a reset without a Close is a broken connection:
/// its participant gets the reconnect grace).
fn is_client_violation(error: &ProtocolError) -> bool {
    matches!(
        error,
        ProtocolError::NonZeroReservedBits
            | ProtocolError::UnmaskedFrameFromClient
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::ControlFrameTooBig
            | ProtocolError::UnknownControlFrameType(_)
            | ProtocolError::UnknownDataFrameType(_)
            | ProtocolError::UnexpectedContinueFrame
            | ProtocolError::ExpectedFragment(_)
            | ProtocolError::InvalidOpcode(_)
            | ProtocolError::InvalidCloseSequence
    )
}

impl Inbound {
    /// How the socket ends when this is the last thing it read. A violation
    /// is the client's doing, not a broken connection: it leaves at once.
    pub(crate) fn ended(&self) -> Option<Ended> {
        match self {
            Self::Close(_) | Self::Violated(_) | Self::PeerClosed => Some(Ended::Closed),
            Self::Broken => Some(Ended::Abnormal),
            Self::Answer(_) | Self::Call(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use super::*;
    use crate::dialect::seed000::Seed000;

    fn text(json: &str) -> Option<Result<Message, WsError>> {
        Some(Ok(Message::Text(Utf8Bytes::from(json.to_owned()))))
    }

    fn code_of(inbound: &Inbound) -> String {
        let Inbound::Answer(frames) = inbound else {
            panic!("not an answer: {inbound:?}");
        };
        let json: serde_json::Value = serde_json::from_str(frames[0].to_text().unwrap()).unwrap();
        json["data"]["code"].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_burst_past_the_bucket_is_refused_then_closed_with_4029() {
        let limits = LimitsConfig {
            messages_per_second: 0.001,
            message_burst: 3,
            max_rate_violations: 2,
            ..LimitsConfig::default()
        };
        let mut reader = Reader::new(&Seed000, &limits);
        let ping = r#"{"action":"system.ping"}"#;
        let answers: Vec<Inbound> = (0..6)
            .map(|_| reader.on_message(text(ping), &Limits::default(), &limits))
            .collect();
        for pong in &answers[..3] {
            assert!(
                matches!(pong, Inbound::Answer(frames) if frames[0].to_text().unwrap().contains("system.pong"))
            );
        }
        assert_eq!(code_of(&answers[3]), "RateLimited");
        assert_eq!(code_of(&answers[4]), "RateLimited");
        assert_eq!(
            answers[5],
            Inbound::Close(Closing::new(
                close_code::RATE_LIMITED,
                "rate limit exceeded repeatedly"
            ))
        );
    }

    #[test]
    fn invalid_envelopes_are_answered_then_closed_with_1008_and_a_good_one_resets_the_count() {
        let limits = LimitsConfig {
            max_protocol_violations: 1,
            ..LimitsConfig::default()
        };
        let mut reader = Reader::new(&Seed000, &limits);
        let bad = reader.on_message(text("{nope"), &Limits::default(), &limits);
        assert_eq!(code_of(&bad), "InvalidArgument");
        let good = reader.on_message(
            text(r#"{"action":"presence.heartbeat"}"#),
            &Limits::default(),
            &limits,
        );
        assert!(matches!(good, Inbound::Call(_)));
        reader.on_message(text("[]"), &Limits::default(), &limits);
        let closed = reader.on_message(text("[]"), &Limits::default(), &limits);
        assert_eq!(closed.ended(), Some(Ended::Closed));
        assert!(matches!(
            closed,
            Inbound::Close(Closing {
                code: close_code::POLICY,
                ..
            })
        ));
    }

    #[test]
    fn protocol_violations_close_with_1002_or_1007_as_deliberate_closes() {
        let limits = LimitsConfig::default();
        let mut reader = Reader::new(&Seed000, &limits);
        let mut on_error = |err: WsError| {
            let inbound = reader.on_message(Some(Err(err)), &Limits::default(), &limits);
            let ended = inbound.ended();
            match inbound {
                Inbound::Violated(closing) => (closing.code, ended),
                other => panic!("not a violation: {other:?}"),
            }
        };
        let expected = Some(Ended::Closed);
        assert_eq!(
            on_error(WsError::Utf8("invalid utf-8".into())),
            (close_code::INVALID_PAYLOAD, expected)
        );
        for violation in [
            ProtocolError::NonZeroReservedBits,
            ProtocolError::UnmaskedFrameFromClient,
            ProtocolError::InvalidOpcode(3),
        ] {
            assert_eq!(
                on_error(WsError::Protocol(violation)),
                (close_code::PROTOCOL_ERROR, expected)
            );
        }
    }

    #[test]
    fn a_reset_without_a_close_is_a_broken_connection_not_a_violation() {
        let limits = LimitsConfig::default();
        let mut reader = Reader::new(&Seed000, &limits);
        let reset = reader.on_message(
            Some(Err(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake,
            ))),
            &Limits::default(),
            &limits,
        );
        assert_eq!(reset, Inbound::Broken);
        assert_eq!(reset.ended(), Some(Ended::Abnormal));
    }

    #[test]
    fn binary_frames_get_an_error_and_a_broken_stream_ends_abnormally() {
        let limits = LimitsConfig::default();
        let mut reader = Reader::new(&Seed000, &limits);
        let binary = reader.on_message(
            Some(Ok(Message::Binary(vec![1, 2].into()))),
            &Limits::default(),
            &limits,
        );
        assert_eq!(code_of(&binary), "InvalidArgument");
        let gone = reader.on_message(None, &Limits::default(), &limits);
        assert_eq!(gone.ended(), Some(Ended::Abnormal));
    }
}
