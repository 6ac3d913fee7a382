// Generated from ws-bridge/src/codec by `MENO_WRITE_TS=1 cargo test -p meno-bridge --lib codec::typescript`; do not edit.
import type { DirectChatResponse, DirectError, DirectSystem, DirectTypingIndicator, ErrorCode } from './common.js';

/** A NexusChat message's `type`. */
export type NexusMessageType = "TEXT" | "IMAGE" | "VIDEO" | "AUDIO" | "FILE";

/** A WebRTC session description's `type`. */
export type NexusSdpType = "offer" | "answer" | "rollback";

export type NexusMessage = { id: string, roomId: string, senderId: string, type: NexusMessageType, contentText: string | null, contentMeta: Record<string, unknown> | null, createdAt: string, };
export type NexusHistoryRow = { editedAt: null, id: string, roomId: string, senderId: string, type: NexusMessageType, contentText: string | null, contentMeta: Record<string, unknown> | null, createdAt: string, };
export type NexusReadRow = { userId: string, messageId: string, readAt: string, };
export type NexusTyping = { roomId: string, userId: string, isTyping: boolean, };
export type NexusMember = { userId: string, userName: string, status: "online" | "offline", };
export type NexusRead = { roomId: string, userId: string, messageId: string, readAt: string, };
export type NexusRoomJoined = { roomId: string, members: Array<NexusMember>, lastMessages: Array<NexusMessage>, };
export type NexusRoomLeft = { roomId: string, };
export type NexusError = { code: ErrorCode, message: string, retryable: boolean, retryAfterMs?: number, event?: string, };
export type NexusSignalSdp = { senderId: string, targetId: string, type: NexusSdpType, sdp: string, };
export type NexusSignalIce = { senderId: string, targetId: string, candidate: string, sdpMid?: string, sdpMLineIndex: number, };
export type NexusCallEnd = { senderId: string, };
export type NexusCallRejected = { callerId: string, targetId: string, status: "busy", reason: string, };

/** The body of `GET /api/rooms/{roomId}/messages`, newest first. */
export type NexusHistoryPage = Array<NexusHistoryRow>;

/** The body of `GET /api/rooms/{roomId}/reads`. */
export type NexusReadsPage = Array<NexusReadRow>;

export type NexusSendMsg = { roomId: string, type: NexusMessageType, 
/**
 * Required for TEXT; a caption otherwise.
 */
contentText?: string, 
/**
 * Required for media, with an http(s) `url`.
 */
contentMeta?: Record<string, unknown>, clientRef?: string, };
export type NexusTypingRequest = { roomId: string, isTyping: boolean, };
export type NexusAck = { messageId: string, };
export type NexusRoomRequest = { roomId: string, };
export type NexusSignalSdpRequest = { targetId: string, type: NexusSdpType, sdp: string, };
export type NexusSignalIceRequest = { targetId: string, candidate: string, sdpMid?: string, 
/**
 * 0..=65535.
 */
sdpMLineIndex: number, };
export type NexusCallEndRequest = { targetId: string, };

/** Every envelope a NexusChat socket receives. */
export type NexusServerEnvelope =
  | { event: "NEW_MESSAGE"; traceId: string; data: NexusMessage; }
  | { event: "TYPING"; traceId: string; data: NexusTyping; }
  | { event: "PRESENCE"; traceId: string; data: NexusMember; }
  | { event: "READ"; traceId: string; data: NexusRead; }
  | { event: "ROOM_JOINED"; traceId: string; data: NexusRoomJoined; }
  | { event: "ROOM_LEFT"; traceId: string; data: NexusRoomLeft; }
  | { event: "SIGNAL_SDP"; traceId: string; data: NexusSignalSdp; }
  | { event: "SIGNAL_ICE"; traceId: string; data: NexusSignalIce; }
  | { event: "CALL_REJECTED"; traceId: string; data: NexusCallRejected; }
  | { event: "CALL_END"; traceId: string; data: NexusCallEnd; }
  | { event: "ERROR"; traceId: string; data: NexusError | DirectError; }
  | { event: "CHAT_RESPONSE"; traceId: string; data: DirectChatResponse; }
  | { event: "TYPING_INDICATOR"; traceId: string; data: DirectTypingIndicator; }
  | { event: "SYSTEM"; traceId: string; data: DirectSystem; };

/** Every envelope a NexusChat client may send. */
export type NexusClientEnvelope =
  | { event: "SEND_MSG"; traceId?: string; data: NexusSendMsg; }
  | { event: "TYPING"; traceId?: string; data: NexusTypingRequest; }
  | { event: "ACK"; traceId?: string; data: NexusAck; }
  | { event: "JOIN_ROOM"; traceId?: string; data: NexusRoomRequest; }
  | { event: "LEAVE_ROOM"; traceId?: string; data: NexusRoomRequest; }
  | { event: "SIGNAL_SDP"; traceId?: string; data: NexusSignalSdpRequest; }
  | { event: "SIGNAL_ICE"; traceId?: string; data: NexusSignalIceRequest; }
  | { event: "CALL_END"; traceId?: string; data: NexusCallEndRequest; };
