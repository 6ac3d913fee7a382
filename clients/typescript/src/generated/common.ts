// Generated from ws-bridge/src/codec by `MENO_WRITE_TS=1 cargo test -p meno-bridge --lib codec::typescript`; do not edit.

/** Every `code` of an `error` the bridge makes; `retryable` says whether to try again. */
export type ErrorCode = "InvalidArgument" | "NotFound" | "PermissionDenied" | "Conflict" | "RateLimited" | "Unavailable" | "Internal";

export type DirectChatResponse = { messageId: string, content: string, 
/**
 * The last chunk of this `messageId`.
 */
isComplete: boolean, };
export type DirectTypingIndicator = { isTyping: boolean, };
export type DirectError = { code: string, message: string, retryable: boolean, retryAfterMs?: number, };
export type DirectSystem = { message: string, 
/**
 * `info` when the backend gave none.
 */
level: string, };
