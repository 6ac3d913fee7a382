// Generated from ws-bridge/src/codec by `MENO_WRITE_TS=1 cargo test -p meno-bridge --lib codec::typescript`; do not edit.
import type { DirectChatResponse, DirectError, DirectSystem, DirectTypingIndicator, ErrorCode } from './common.js';

/** A participant's role as seed 000 shows it. */
export type Seed000Role = "student" | "teacher" | "observer";

/** A participant's status as seed 000 shows it. */
export type Seed000PresenceStatus = "online" | "typing" | "speaking" | "muted" | "reconnecting" | "offline";

/** The statuses a client may set (it goes offline by disconnecting). */
export type Seed000SettableStatus = "online" | "typing" | "speaking" | "muted" | "reconnecting";

export type Seed000ChatMessage = { sessionId: string, messageId: string, participantId: string, participantName: string, role: Seed000Role, content: string, createdAt: string, meta?: Record<string, unknown>, id: string, kind: string, seq: number, };
export type Seed000ChatSync = { sessionId: string, messages: Array<Seed000ChatMessage>, };
export type Seed000Presence = { sessionId?: string, participantId: string, name: string, role: Seed000Role, status: Seed000PresenceStatus, isTyping: boolean, isSpeaking: boolean, color?: string, lastSeen: string, extra?: Record<string, unknown>, };
export type Seed000PresenceSnapshot = { sessionId: string, participants: Array<Seed000Presence>, };
export type Seed000LeaseState = { sessionId: string, leaseId: string | null, leaseTo: string | null, stepIndex: number, issuedAt: string | null, expiresAt: string | null, epoch: number, };
export type Seed000Pong = { serverTime: string, };
export type Seed000AuthRefreshed = { expiresAt: string, };
export type Seed000Error = { code: ErrorCode, message: string, action?: string, retryable: boolean, retryAfterMs?: number, };

export type Seed000ChatSend = { 
/**
 * The client's idempotency key: the same id twice is one message.
 */
messageId: string, content: string, 
/**
 * ISO-8601, UTC with milliseconds: `2026-11-23T06:51:42.123Z`.
 */
createdAt?: string, meta?: Record<string, unknown>, };
export type Seed000PresenceUpdate = { status?: Seed000SettableStatus, isTyping?: boolean, isSpeaking?: boolean, lastSeen?: string, extra?: Record<string, unknown>, };
export type Seed000PresenceHeartbeat = { lastSeen?: string, };
export type Seed000LeaseSet = { leaseId?: string, 
/**
 * Zero or more.
 */
stepIndex: number, 
/**
 * Positive; the core applies its default and cap.
 */
leaseDurationMs?: number, };
export type Seed000LeaseRelease = { leaseId?: string, };
export type Seed000AuthRefresh = { token: string, };

/** Every envelope a seed-000 socket receives. */
export type Seed000ServerEnvelope =
  | { type: "chat.message"; seq?: number; data: Seed000ChatMessage; }
  | { type: "chat.sync"; seq: number; data: Seed000ChatSync; }
  | { type: "presence.snapshot"; seq: number; data: Seed000PresenceSnapshot; }
  | { type: "presence.event"; seq?: number; data: Seed000Presence; }
  | { type: "control.lease.state"; seq?: number; data: Seed000LeaseState; }
  | { type: "system.pong"; data: Seed000Pong; }
  | { type: "system.auth.refreshed"; data: Seed000AuthRefreshed; }
  | { type: "error"; data: Seed000Error | DirectError; }
  | { type: "chat_response"; data: DirectChatResponse; }
  | { type: "typing_indicator"; data: DirectTypingIndicator; }
  | { type: "system"; data: DirectSystem; };

/** Every envelope a seed-000 client may send. */
export type Seed000ClientEnvelope =
  | { action: "chat.send"; payload: Seed000ChatSend; }
  | { action: "presence.update"; payload: Seed000PresenceUpdate; }
  | { action: "presence.heartbeat"; payload?: Seed000PresenceHeartbeat; }
  | { action: "control.lease.set"; payload: Seed000LeaseSet; }
  | { action: "control.lease.release"; payload?: Seed000LeaseRelease; }
  | { action: "system.ping"; payload?: Record<string, never>; }
  | { action: "system.auth.refresh"; payload: Seed000AuthRefresh; };
