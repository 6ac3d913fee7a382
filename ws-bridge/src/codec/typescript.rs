//! TypeScript declarations of every envelope of every dialect, for
//! `clients/typescript/src/generated/` (issue 19).
//!
//! The `data` of seed 000's and NexusChat's server envelopes are the
//! encoders' own structs (`derive(ts_rs::TS)` under `cfg(test)`); the
//! shapes the codecs read or build without a struct are declared in
//! [`wire`]. This module adds the envelopes around them (which `data`
//! goes with which `type`/`event`, from the codecs' name constants) and
//! [`samples`] of each, made by the real encoders and decoders, which
//! `tsc` checks against the declarations.
//!
//! The test `generated_typescript_is_current` fails when the checked-in
//! files differ from what this module renders; `MENO_WRITE_TS=1` rewrites
//! them:
//!
//! ```text
//! MENO_WRITE_TS=1 cargo test -p meno-bridge --lib codec::typescript
//! ```
//!
//! Test-only: nothing here is built into the bridge.

use std::path::PathBuf;

use meno_common::error::ErrorCode;
use serde_json::Value;
use ts_rs::Config;

use super::nexus::{client_event, server_event, MessageType, SdpType};
use super::seed000::{action, envelope_type};
use super::{assistant, nexus, seed000};

mod samples;
mod wire;

const HEADER: &str =
    "// Generated from ws-bridge/src/codec by `MENO_WRITE_TS=1 cargo test -p meno-bridge \
--lib codec::typescript`; do not edit.\n";

/// Whether an envelope carries `seq`.
#[derive(Debug, Clone, Copy)]
enum Seq {
    Always,
    Maybe,
    Never,
}

/// One envelope: its tag, the TypeScript type of its body (`None`: it has
/// none), whether the body may be left out, and its `seq`.
#[derive(Debug, Clone, Copy)]
struct Envelope {
    tag: &'static str,
    body: Option<&'static str>,
    body_optional: bool,
    seq: Seq,
}

const fn with(tag: &'static str, body: &'static str) -> Envelope {
    Envelope {
        tag,
        body: Some(body),
        body_optional: false,
        seq: Seq::Never,
    }
}

impl Envelope {
    const fn seq(self, seq: Seq) -> Self {
        Self { seq, ..self }
    }

    const fn body_optional(self) -> Self {
        Self {
            body_optional: true,
            ..self
        }
    }
}

/// The tag and body field names of a dialect's envelopes, and what else
/// each carries.
#[derive(Debug)]
struct Shape {
    tag_field: &'static str,
    body_field: &'static str,
    extra: &'static str,
}

const SEED000: Shape = Shape {
    tag_field: "type",
    body_field: "data",
    extra: "",
};
const SEED000_CLIENT: Shape = Shape {
    tag_field: "action",
    body_field: "payload",
    extra: "",
};
const NEXUS: Shape = Shape {
    tag_field: "event",
    body_field: "data",
    extra: " traceId: string;",
};
const NEXUS_CLIENT: Shape = Shape {
    tag_field: "event",
    body_field: "data",
    extra: " traceId?: string;",
};

/// Seed 001's messages as `{type, data}`.
const DIRECT: [Envelope; 3] = [
    with("chat_response", "DirectChatResponse"),
    with("typing_indicator", "DirectTypingIndicator"),
    with("system", "DirectSystem"),
];

fn seed000_server() -> Vec<Envelope> {
    let mut all = vec![
        with(envelope_type::CHAT_MESSAGE, "Seed000ChatMessage").seq(Seq::Maybe),
        with(envelope_type::CHAT_SYNC, "Seed000ChatSync").seq(Seq::Always),
        with(envelope_type::PRESENCE_SNAPSHOT, "Seed000PresenceSnapshot").seq(Seq::Always),
        with(envelope_type::PRESENCE_EVENT, "Seed000Presence").seq(Seq::Maybe),
        with(envelope_type::LEASE_STATE, "Seed000LeaseState").seq(Seq::Maybe),
        with(envelope_type::PONG, "Seed000Pong"),
        with(envelope_type::AUTH_REFRESHED, "Seed000AuthRefreshed"),
        with(envelope_type::ERROR, "Seed000Error | DirectError"),
    ];
    all.extend(DIRECT);
    all
}

fn seed000_client() -> Vec<Envelope> {
    vec![
        with(action::CHAT_SEND, "Seed000ChatSend"),
        with(action::PRESENCE_UPDATE, "Seed000PresenceUpdate"),
        with(action::PRESENCE_HEARTBEAT, "Seed000PresenceHeartbeat").body_optional(),
        with(action::LEASE_SET, "Seed000LeaseSet"),
        with(action::LEASE_RELEASE, "Seed000LeaseRelease").body_optional(),
        with(action::PING, "Record<string, never>").body_optional(),
        with(action::AUTH_REFRESH, "Seed000AuthRefresh"),
    ]
}

fn nexus_server() -> Vec<Envelope> {
    let mut all = vec![
        with(server_event::NEW_MESSAGE, "NexusMessage"),
        with(server_event::TYPING, "NexusTyping"),
        with(server_event::PRESENCE, "NexusMember"),
        with(server_event::READ, "NexusRead"),
        with(server_event::ROOM_JOINED, "NexusRoomJoined"),
        with(server_event::ROOM_LEFT, "NexusRoomLeft"),
        with(server_event::SIGNAL_SDP, "NexusSignalSdp"),
        with(server_event::SIGNAL_ICE, "NexusSignalIce"),
        with(server_event::CALL_REJECTED, "NexusCallRejected"),
        with(server_event::CALL_END, "NexusCallEnd"),
        with(server_event::ERROR, "NexusError | DirectError"),
    ];
    all.extend(DIRECT.map(|direct| Envelope {
        tag: upper(direct.tag),
        ..direct
    }));
    all
}

/// NexusChat's upper-case names of seed 001's types (`direct::encode_nexus`).
fn upper(tag: &str) -> &'static str {
    match tag {
        "chat_response" => "CHAT_RESPONSE",
        "typing_indicator" => "TYPING_INDICATOR",
        _ => "SYSTEM",
    }
}

fn nexus_client() -> Vec<Envelope> {
    vec![
        with(client_event::SEND_MSG, "NexusSendMsg"),
        with(client_event::TYPING, "NexusTypingRequest"),
        with(client_event::ACK, "NexusAck"),
        with(client_event::JOIN_ROOM, "NexusRoomRequest"),
        with(client_event::LEAVE_ROOM, "NexusRoomRequest"),
        with(client_event::SIGNAL_SDP, "NexusSignalSdpRequest"),
        with(client_event::SIGNAL_ICE, "NexusSignalIceRequest"),
        with(client_event::CALL_END, "NexusCallEndRequest"),
    ]
}

fn assistant_server() -> Vec<Envelope> {
    let mut all = vec![
        Envelope {
            body: None,
            ..with("pong", "")
        },
        with("error", "AssistantError | DirectError"),
    ];
    all.extend(DIRECT);
    all
}

fn assistant_client() -> Vec<Envelope> {
    let mut all = vec![with("ping", "unknown").body_optional()];
    all.extend(
        assistant::TYPES
            .iter()
            .filter(|tag| **tag != "ping")
            .map(|tag| match *tag {
                "text_message" => with(tag, "AssistantTextMessage"),
                "voice_start" => with(tag, "AssistantVoiceStart"),
                "voice_data" => with(tag, "AssistantVoiceData"),
                _ => with(tag, "AssistantVoiceEnd"),
            }),
    );
    all
}

fn render_union(name: &str, doc: &str, shape: &Shape, envelopes: &[Envelope]) -> String {
    let mut out = format!("/** {doc} */\nexport type {name} =\n");
    for envelope in envelopes {
        let seq = match envelope.seq {
            Seq::Always => " seq: number;",
            Seq::Maybe => " seq?: number;",
            Seq::Never => "",
        };
        let body = match envelope.body {
            None => String::new(),
            Some(body) => format!(
                " {}{}: {body};",
                shape.body_field,
                if envelope.body_optional { "?" } else { "" }
            ),
        };
        out.push_str(&format!(
            "  | {{ {}: {:?};{}{seq}{body} }}\n",
            shape.tag_field, envelope.tag, shape.extra
        ));
    }
    out.pop();
    out.push_str(";\n");
    out
}

fn literal_union(name: &str, doc: &str, values: &[&str]) -> String {
    let values: Vec<String> = values.iter().map(|value| format!("{value:?}")).collect();
    format!(
        "/** {doc} */\nexport type {name} = {};\n",
        values.join(" | ")
    )
}

fn declarations(decls: Vec<String>) -> String {
    decls
        .into_iter()
        .map(|decl| format!("export {decl}\n"))
        .collect()
}

fn error_codes() -> Vec<&'static str> {
    ErrorCode::ALL.map(ErrorCode::as_str).to_vec()
}

/// Every generated file, by its path under `clients/typescript/`.
fn render() -> Vec<(&'static str, String)> {
    let cfg = Config::new().with_large_int("number");
    let common = format!(
        "{HEADER}\n{}\n{}",
        literal_union(
            "ErrorCode",
            "Every `code` of an `error` the bridge makes; `retryable` says whether to try again.",
            &error_codes(),
        ),
        declarations(wire::direct_declarations(&cfg)),
    );
    let seed000 = format!(
        "{HEADER}import type {{ DirectChatResponse, DirectError, DirectSystem, DirectTypingIndicator, ErrorCode }} from './common.js';\n\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        literal_union("Seed000Role", "A participant's role as seed 000 shows it.", &["student", "teacher", "observer"]),
        literal_union(
            "Seed000PresenceStatus",
            "A participant's status as seed 000 shows it.",
            &["online", "typing", "speaking", "muted", "reconnecting", "offline"],
        ),
        literal_union(
            "Seed000SettableStatus",
            "The statuses a client may set (it goes offline by disconnecting).",
            &["online", "typing", "speaking", "muted", "reconnecting"],
        ),
        declarations(seed000::typescript_declarations(&cfg)),
        declarations(wire::seed000_declarations(&cfg)),
        render_union("Seed000ServerEnvelope", "Every envelope a seed-000 socket receives.", &SEED000, &seed000_server()),
        render_union("Seed000ClientEnvelope", "Every envelope a seed-000 client may send.", &SEED000_CLIENT, &seed000_client()),
    );
    let message_types: Vec<&str> = MessageType::ALL
        .iter()
        .map(|kind| kind.wire_name())
        .collect();
    let sdp_types: Vec<&str> = [SdpType::Offer, SdpType::Answer, SdpType::Rollback]
        .iter()
        .map(|kind| kind.wire_name())
        .collect();
    let nexus = format!(
        "{HEADER}import type {{ DirectChatResponse, DirectError, DirectSystem, DirectTypingIndicator, ErrorCode }} from './common.js';\n\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        literal_union("NexusMessageType", "A NexusChat message's `type`.", &message_types),
        literal_union("NexusSdpType", "A WebRTC session description's `type`.", &sdp_types),
        declarations(nexus::typescript_declarations(&cfg)),
        "/** The body of `GET /api/rooms/{roomId}/messages`, newest first. */\nexport type NexusHistoryPage = Array<NexusHistoryRow>;\n\n/** The body of `GET /api/rooms/{roomId}/reads`. */\nexport type NexusReadsPage = Array<NexusReadRow>;\n",
        declarations(wire::nexus_declarations(&cfg)),
        render_union("NexusServerEnvelope", "Every envelope a NexusChat socket receives.", &NEXUS, &nexus_server()),
        render_union("NexusClientEnvelope", "Every envelope a NexusChat client may send.", &NEXUS_CLIENT, &nexus_client()),
    );
    let assistant = format!(
        "{HEADER}import type {{ DirectChatResponse, DirectError, DirectSystem, DirectTypingIndicator, ErrorCode }} from './common.js';\n\n{}\n{}\n{}",
        declarations(wire::assistant_declarations(&cfg)),
        render_union("AssistantServerEnvelope", "Every envelope an assistant-dialect socket receives.", &SEED000, &assistant_server()),
        render_union("AssistantClientEnvelope", "Every envelope an assistant-dialect client may send.", &SEED000, &assistant_client()),
    );
    vec![
        ("src/generated/common.ts", common),
        ("src/generated/seed000.ts", seed000),
        ("src/generated/nexus.ts", nexus),
        ("src/generated/assistant.ts", assistant),
        ("test/types/generated-samples.ts", render_samples()),
    ]
}

fn render_samples() -> String {
    let sets = [
        ("seed000", "Seed000", samples::seed000()),
        ("nexus", "Nexus", samples::nexus()),
        ("assistant", "Assistant", samples::assistant()),
    ];
    let mut out = format!(
        "{HEADER}// Each sample was made by the real codec; tsc checks it against its union.\n"
    );
    for (module, prefix, _) in &sets {
        out.push_str(&format!(
            "import type {{ {prefix}ClientEnvelope, {prefix}ServerEnvelope }} from '../../src/generated/{module}.js';\n"
        ));
    }
    for (module, prefix, set) in &sets {
        for (side, samples) in [("Server", &set.server), ("Client", &set.client)] {
            let json = serde_json::to_string_pretty(samples).expect("samples are JSON");
            out.push_str(&format!(
                "\nexport const {module}{side}Samples = {json} satisfies {prefix}{side}Envelope[];\n"
            ));
        }
    }
    out
}

fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript")
}

/// The tags a set of samples covers, in order, without repeats.
fn tags(samples: &[Value], field: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for sample in samples {
        let tag = sample[field].as_str().expect("every sample is tagged");
        if !seen.iter().any(|known| known == tag) {
            seen.push(tag.to_owned());
        }
    }
    seen
}

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags
}

fn catalogue_tags(envelopes: &[Envelope]) -> Vec<String> {
    sorted(
        envelopes
            .iter()
            .map(|envelope| envelope.tag.to_owned())
            .collect(),
    )
}

#[test]
fn every_envelope_has_a_sample_and_every_sample_an_envelope() {
    let seed000 = samples::seed000();
    assert_eq!(
        sorted(tags(&seed000.server, "type")),
        catalogue_tags(&seed000_server())
    );
    assert_eq!(
        sorted(tags(&seed000.client, "action")),
        catalogue_tags(&seed000_client())
    );
    let nexus = samples::nexus();
    assert_eq!(
        sorted(tags(&nexus.server, "event")),
        catalogue_tags(&nexus_server())
    );
    assert_eq!(
        sorted(tags(&nexus.client, "event")),
        catalogue_tags(&nexus_client())
    );
    let assistant = samples::assistant();
    assert_eq!(
        sorted(tags(&assistant.server, "type")),
        catalogue_tags(&assistant_server())
    );
    assert_eq!(
        sorted(tags(&assistant.client, "type")),
        catalogue_tags(&assistant_client())
    );
}

#[test]
fn generated_typescript_is_current() {
    let write = std::env::var_os("MENO_WRITE_TS").is_some_and(|value| value == "1");
    let mut stale = Vec::new();
    for (path, text) in render() {
        let path = client_dir().join(path);
        if write {
            std::fs::create_dir_all(path.parent().expect("a file has a folder")).expect("mkdir");
            std::fs::write(&path, &text).expect("write generated TypeScript");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "generated TypeScript is stale: {stale:?}; regenerate with \
         MENO_WRITE_TS=1 cargo test -p meno-bridge --lib codec::typescript"
    );
}
