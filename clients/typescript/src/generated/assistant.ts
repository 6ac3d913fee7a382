// Generated from ws-bridge/src/codec by `MENO_WRITE_TS=1 cargo test -p meno-bridge --lib codec::typescript`; do not edit.
import type { DirectChatResponse, DirectError, DirectSystem, DirectTypingIndicator, ErrorCode } from './common.js';

export type AssistantTextMessage = { content: string, sessionId?: string, };
export type AssistantVoiceStart = { audioFormat: string, sessionId: string, };
export type AssistantVoiceData = { audioData: string, sessionId: string, };
export type AssistantVoiceEnd = { sessionId: string, };
export type AssistantError = { code: ErrorCode, message: string, retryable: boolean, retryAfterMs?: number, 
/**
 * The refused message type, when it was a known one.
 */
type?: string, };

/** Every envelope an assistant-dialect socket receives. */
export type AssistantServerEnvelope =
  | { type: "pong"; }
  | { type: "error"; data: AssistantError | DirectError; }
  | { type: "chat_response"; data: DirectChatResponse; }
  | { type: "typing_indicator"; data: DirectTypingIndicator; }
  | { type: "system"; data: DirectSystem; };

/** Every envelope an assistant-dialect client may send. */
export type AssistantClientEnvelope =
  | { type: "ping"; data?: unknown; }
  | { type: "voice_start"; data: AssistantVoiceStart; }
  | { type: "voice_data"; data: AssistantVoiceData; }
  | { type: "voice_end"; data: AssistantVoiceEnd; }
  | { type: "text_message"; data: AssistantTextMessage; };
