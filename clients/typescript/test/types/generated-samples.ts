// Generated from ws-bridge/src/codec by `MENO_WRITE_TS=1 cargo test -p meno-bridge --lib codec::typescript`; do not edit.
// Each sample was made by the real codec; tsc checks it against its union.
import type { Seed000ClientEnvelope, Seed000ServerEnvelope } from '../../src/generated/seed000.js';
import type { NexusClientEnvelope, NexusServerEnvelope } from '../../src/generated/nexus.js';
import type { AssistantClientEnvelope, AssistantServerEnvelope } from '../../src/generated/assistant.js';

export const seed000ServerSamples = [
  {
    "data": {
      "content": "hello",
      "createdAt": "2026-11-18T11:06:40.123Z",
      "id": "0190f0a4-0000-7000-8000-000000000001",
      "kind": "text",
      "messageId": "m-1",
      "meta": {
        "tags": [
          "a"
        ]
      },
      "participantId": "ann",
      "participantName": "Ann",
      "role": "teacher",
      "seq": 7,
      "sessionId": "s1"
    },
    "seq": 7,
    "type": "chat.message"
  },
  {
    "data": {
      "messages": [
        {
          "content": "hello",
          "createdAt": "2026-11-18T11:06:40.123Z",
          "id": "0190f0a4-0000-7000-8000-000000000001",
          "kind": "text",
          "messageId": "m-1",
          "meta": {
            "tags": [
              "a"
            ]
          },
          "participantId": "ann",
          "participantName": "Ann",
          "role": "teacher",
          "seq": 7,
          "sessionId": "s1"
        }
      ],
      "sessionId": "s1"
    },
    "seq": 9,
    "type": "chat.sync"
  },
  {
    "data": {
      "participants": [
        {
          "color": "#ff0000",
          "extra": {
            "hand": true
          },
          "isSpeaking": false,
          "isTyping": true,
          "lastSeen": "2026-11-18T11:06:40.123Z",
          "name": "Ann",
          "participantId": "ann",
          "role": "teacher",
          "status": "online"
        }
      ],
      "sessionId": "s1"
    },
    "seq": 9,
    "type": "presence.snapshot"
  },
  {
    "data": {
      "color": "#ff0000",
      "extra": {
        "hand": true
      },
      "isSpeaking": false,
      "isTyping": true,
      "lastSeen": "2026-11-18T11:06:40.123Z",
      "name": "Ann",
      "participantId": "ann",
      "role": "teacher",
      "sessionId": "s1",
      "status": "online"
    },
    "seq": 9,
    "type": "presence.event"
  },
  {
    "data": {
      "epoch": 2,
      "expiresAt": "2026-11-18T11:07:10.000Z",
      "issuedAt": "2026-11-18T11:06:40.000Z",
      "leaseId": "l-1",
      "leaseTo": "ann",
      "sessionId": "s1",
      "stepIndex": 3
    },
    "seq": 9,
    "type": "control.lease.state"
  },
  {
    "data": {
      "epoch": 2,
      "expiresAt": null,
      "issuedAt": null,
      "leaseId": null,
      "leaseTo": null,
      "sessionId": "s1",
      "stepIndex": 3
    },
    "type": "control.lease.state"
  },
  {
    "data": {
      "serverTime": "2026-11-18T11:06:40.123Z"
    },
    "type": "system.pong"
  },
  {
    "data": {
      "expiresAt": "2026-11-18T11:21:40.000Z"
    },
    "type": "system.auth.refreshed"
  },
  {
    "data": {
      "action": "chat.send",
      "code": "RateLimited",
      "message": "slow down",
      "retryAfterMs": 1500,
      "retryable": true
    },
    "type": "error"
  },
  {
    "data": {
      "code": "RateLimited",
      "message": "slow down",
      "retryable": true
    },
    "type": "error"
  },
  {
    "data": {
      "content": "Hi",
      "isComplete": true,
      "messageId": "r-1"
    },
    "type": "chat_response"
  },
  {
    "data": {
      "isTyping": true
    },
    "type": "typing_indicator"
  },
  {
    "data": {
      "code": "Unavailable",
      "message": "the backend went away",
      "retryAfterMs": 1000,
      "retryable": true
    },
    "type": "error"
  },
  {
    "data": {
      "level": "info",
      "message": "maintenance at noon"
    },
    "type": "system"
  }
] satisfies Seed000ServerEnvelope[];

export const seed000ClientSamples = [
  {
    "action": "chat.send",
    "payload": {
      "content": "hello",
      "createdAt": "2026-11-23T06:51:42.123Z",
      "messageId": "m-1",
      "meta": {
        "tags": [
          "a"
        ]
      }
    }
  },
  {
    "action": "presence.update",
    "payload": {
      "extra": {
        "hand": true
      },
      "isSpeaking": false,
      "isTyping": true,
      "lastSeen": "2026-11-23T06:51:42.123Z",
      "status": "typing"
    }
  },
  {
    "action": "presence.heartbeat",
    "payload": {}
  },
  {
    "action": "control.lease.set",
    "payload": {
      "leaseDurationMs": 30000,
      "leaseId": "l-1",
      "stepIndex": 3
    }
  },
  {
    "action": "control.lease.release",
    "payload": {
      "leaseId": "l-1"
    }
  },
  {
    "action": "system.ping"
  },
  {
    "action": "system.auth.refresh",
    "payload": {
      "token": "eyJ.x.y"
    }
  }
] satisfies Seed000ClientEnvelope[];

export const nexusServerSamples = [
  {
    "data": {
      "contentMeta": {
        "tags": [
          "a"
        ]
      },
      "contentText": "hello",
      "createdAt": "2026-11-18T11:06:40.123Z",
      "id": "0190f0a4-0000-7000-8000-000000000001",
      "roomId": "r1",
      "senderId": "ann",
      "type": "TEXT"
    },
    "event": "NEW_MESSAGE",
    "traceId": "t-1"
  },
  {
    "data": {
      "contentMeta": {
        "tags": [
          "a"
        ]
      },
      "contentText": null,
      "createdAt": "2026-11-18T11:06:40.123Z",
      "id": "0190f0a4-0000-7000-8000-000000000001",
      "roomId": "r1",
      "senderId": "ann",
      "type": "IMAGE"
    },
    "event": "NEW_MESSAGE",
    "traceId": "t-1"
  },
  {
    "data": {
      "isTyping": true,
      "roomId": "r1",
      "userId": "ann"
    },
    "event": "TYPING",
    "traceId": "t-1"
  },
  {
    "data": {
      "status": "online",
      "userId": "ann",
      "userName": "Ann"
    },
    "event": "PRESENCE",
    "traceId": "t-1"
  },
  {
    "data": {
      "messageId": "0190f0a4-0000-7000-8000-000000000001",
      "readAt": "2026-11-18T11:06:40.500Z",
      "roomId": "r1",
      "userId": "bob"
    },
    "event": "READ",
    "traceId": "t-1"
  },
  {
    "data": {
      "lastMessages": [
        {
          "contentMeta": {
            "tags": [
              "a"
            ]
          },
          "contentText": "hello",
          "createdAt": "2026-11-18T11:06:40.123Z",
          "id": "0190f0a4-0000-7000-8000-000000000001",
          "roomId": "r1",
          "senderId": "ann",
          "type": "TEXT"
        }
      ],
      "members": [
        {
          "status": "online",
          "userId": "ann",
          "userName": "Ann"
        }
      ],
      "roomId": "r1"
    },
    "event": "ROOM_JOINED",
    "traceId": "t-1"
  },
  {
    "data": {
      "roomId": "r1"
    },
    "event": "ROOM_LEFT",
    "traceId": "t-1"
  },
  {
    "data": {
      "code": "RateLimited",
      "event": "SEND_MSG",
      "message": "slow down",
      "retryAfterMs": 1500,
      "retryable": true
    },
    "event": "ERROR",
    "traceId": "t-1"
  },
  {
    "data": {
      "sdp": "v=0",
      "senderId": "ann",
      "targetId": "bob",
      "type": "offer"
    },
    "event": "SIGNAL_SDP",
    "traceId": "t-1"
  },
  {
    "data": {
      "candidate": "candidate:1",
      "sdpMLineIndex": 0,
      "sdpMid": "0",
      "senderId": "ann",
      "targetId": "bob"
    },
    "event": "SIGNAL_ICE",
    "traceId": "t-1"
  },
  {
    "data": {
      "senderId": "ann"
    },
    "event": "CALL_END",
    "traceId": "t-1"
  },
  {
    "data": {
      "callerId": "ann",
      "reason": "in another call",
      "status": "busy",
      "targetId": "bob"
    },
    "event": "CALL_REJECTED",
    "traceId": "t-1"
  },
  {
    "data": {
      "content": "Hi",
      "isComplete": true,
      "messageId": "r-1"
    },
    "event": "CHAT_RESPONSE",
    "traceId": "t-1"
  },
  {
    "data": {
      "isTyping": true
    },
    "event": "TYPING_INDICATOR",
    "traceId": "t-1"
  },
  {
    "data": {
      "code": "Unavailable",
      "message": "the backend went away",
      "retryAfterMs": 1000,
      "retryable": true
    },
    "event": "ERROR",
    "traceId": "t-1"
  },
  {
    "data": {
      "level": "info",
      "message": "maintenance at noon"
    },
    "event": "SYSTEM",
    "traceId": "t-1"
  }
] satisfies NexusServerEnvelope[];

export const nexusClientSamples = [
  {
    "data": {
      "clientRef": "c-1",
      "contentText": "hello",
      "roomId": "r1",
      "type": "TEXT"
    },
    "event": "SEND_MSG",
    "traceId": "t-1"
  },
  {
    "data": {
      "contentMeta": {
        "url": "https://example.com/a.png"
      },
      "roomId": "r1",
      "type": "IMAGE"
    },
    "event": "SEND_MSG",
    "traceId": "t-1"
  },
  {
    "data": {
      "isTyping": true,
      "roomId": "r1"
    },
    "event": "TYPING",
    "traceId": "t-1"
  },
  {
    "data": {
      "messageId": "0190f0a4"
    },
    "event": "ACK",
    "traceId": "t-1"
  },
  {
    "data": {
      "roomId": "r1"
    },
    "event": "JOIN_ROOM",
    "traceId": "t-1"
  },
  {
    "data": {
      "roomId": "r1"
    },
    "event": "LEAVE_ROOM",
    "traceId": "t-1"
  },
  {
    "data": {
      "sdp": "v=0",
      "targetId": "bob",
      "type": "offer"
    },
    "event": "SIGNAL_SDP",
    "traceId": "t-1"
  },
  {
    "data": {
      "candidate": "candidate:1",
      "sdpMLineIndex": 0,
      "sdpMid": "0",
      "targetId": "bob"
    },
    "event": "SIGNAL_ICE",
    "traceId": "t-1"
  },
  {
    "data": {
      "targetId": "bob"
    },
    "event": "CALL_END",
    "traceId": "t-1"
  }
] satisfies NexusClientEnvelope[];

export const assistantServerSamples = [
  {
    "type": "pong"
  },
  {
    "data": {
      "code": "RateLimited",
      "message": "slow down",
      "retryAfterMs": 1500,
      "retryable": true,
      "type": "voice_data"
    },
    "type": "error"
  },
  {
    "data": {
      "content": "Hi",
      "isComplete": true,
      "messageId": "r-1"
    },
    "type": "chat_response"
  },
  {
    "data": {
      "isTyping": true
    },
    "type": "typing_indicator"
  },
  {
    "data": {
      "code": "Unavailable",
      "message": "the backend went away",
      "retryAfterMs": 1000,
      "retryable": true
    },
    "type": "error"
  },
  {
    "data": {
      "level": "info",
      "message": "maintenance at noon"
    },
    "type": "system"
  }
] satisfies AssistantServerEnvelope[];

export const assistantClientSamples = [
  {
    "type": "ping"
  },
  {
    "data": {
      "content": "hello",
      "sessionId": "chat-1"
    },
    "type": "text_message"
  },
  {
    "data": {
      "audioFormat": "pcm16",
      "sessionId": "v-1"
    },
    "type": "voice_start"
  },
  {
    "data": {
      "audioData": "AAEC",
      "sessionId": "v-1"
    },
    "type": "voice_data"
  },
  {
    "data": {
      "sessionId": "v-1"
    },
    "type": "voice_end"
  }
] satisfies AssistantClientEnvelope[];
