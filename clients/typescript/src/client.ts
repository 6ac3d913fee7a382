// MenoClient: the seed-000 WebSocket protocol for browsers and tablets.
//
// This file must import nothing at run time (only types): the bridge serves
// its compiled form as /meno-client.js, and the package has no dependencies.

import type { Seed000ClientEnvelope, Seed000Role, Seed000ServerEnvelope } from './generated/seed000.js';

/** Every `type` a seed-000 socket receives. */
export type ServerType = Seed000ServerEnvelope['type'];
/** The envelope of one server `type`. */
export type EnvelopeOf<T extends ServerType> = Extract<Seed000ServerEnvelope, { type: T }>;
/** The `data` of one server `type`. */
export type DataOf<T extends ServerType> = EnvelopeOf<T>['data'];
/** Every `action` a client may send. */
export type Action = Seed000ClientEnvelope['action'];
/** The `payload` of one action. */
export type PayloadOf<A extends Action> = NonNullable<Extract<Seed000ClientEnvelope, { action: A }>['payload']>;
/** `send`'s payload argument: optional exactly where the protocol lets it be left out. */
export type PayloadArgs<A extends Action> =
  undefined extends Extract<Seed000ClientEnvelope, { action: A }>['payload']
    ? [payload?: PayloadOf<A>]
    : [payload: PayloadOf<A>];

/** The connection's state. */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A change of state, with why. */
export interface StateChange {
  state: ConnectionState;
  /** The close code that caused it, when a socket closed. */
  code?: number;
  reason?: string;
  /** The wait before the next attempt (`reconnecting`). */
  delayMs?: number;
  /** Consecutive failed attempts so far. */
  attempt?: number;
  /** The bridge refused the connect (HTTP 400/404): retrying will not help. */
  refused?: boolean;
}

/** A `chat.send` the server refused for good (its `error` was not retryable). */
export interface ChatFailure {
  payload: PayloadOf<'chat.send'>;
  error: DataOf<'error'>;
}

/** Events of the client itself, beside the server's envelope types. */
export interface ClientEvents {
  state: StateChange;
  /** Round trip of a `system.ping`, in ms. */
  latency: number;
  /** Every envelope as received, before the per-type handlers. */
  frame: Seed000ServerEnvelope;
  /** A `chat.send` waits for the connection; `pending` is the queue's length. */
  queued: { messageId: string; pending: number };
  chatFailed: ChatFailure;
}

/** What `on` accepts: a server `type` or one of the client's own events. */
export type EventName = ServerType | keyof ClientEvents;
/** The handler of one event. */
export type Handler<K extends EventName> = K extends ServerType
  ? (data: DataOf<K>, envelope: EnvelopeOf<K>) => void
  : K extends keyof ClientEvents
    ? (value: ClientEvents[K]) => void
    : never;

/** The part of the WebSocket API the client uses (the browser's, or a test's). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** Timers and randomness, replaceable in tests. */
export interface Clock {
  now(): number;
  random(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** How long to wait before reconnecting. */
export interface BackoffOptions {
  /** The first wait (before jitter). Default 500 ms. */
  initialMs?: number;
  /** The longest wait. Default 15 s. */
  maxMs?: number;
  /** The shortest wait after 4008 or 4029 (the bridge asked us to slow down). Default 5 s. */
  pushbackMs?: number;
}

export interface MenoClientOptions {
  /** The bridge's WebSocket URL without a query: `wss://rt.example.com/ws`. */
  url: string;
  sessionId: string;
  /** With auth off, the query is the identity: participantId, name and role are required. */
  participantId?: string;
  name?: string;
  role?: Seed000Role;
  client?: 'web' | 'tablet' | 'native';
  /** An access token (auth on), or a function asked for one before every connect. */
  token?: string | (() => string | Promise<string>);
  /**
   * Called when the bridge closes with 4001 (the token expired): resolve to a new
   * token and the client reconnects with it at once; reject (or leave this out) and
   * the client stays closed.
   */
  onTokenExpired?: () => Promise<string>;
  /** `presence.heartbeat` period while open. Default 20 s; 0 disables it. */
  heartbeatMs?: number;
  /** `system.ping` period while open. Default 15 s; 0 disables it. */
  pingMs?: number;
  /** A ping unanswered this long means the connection is dead: close and reconnect. Default 10 s. */
  pongTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** The most `chat.send`s kept while offline; older ones are dropped first. Default 500. */
  maxQueued?: number;
  /** Ask the bridge over HTTP why a handshake failed (a 400 carries its reason). Default true. */
  diagnoseRefusals?: boolean;
  /** A WebSocket constructor; default: the global one. */
  WebSocket?: new (url: string) => SocketLike;
  clock?: Clock;
  /** Makes `messageId`s; default: a time-ordered random id. */
  newId?: () => string;
}

/** Close codes, and what the client does after each. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4001,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
  /** Ours: the client closed a connection whose pings went unanswered. */
  DEAD: 4000,
} as const;

/** What to do after a close: reconnect at once, back off, ask for a token, or stop. */
export type CloseDecision = 'now' | 'backoff' | 'pushback' | 'token' | 'stop';

/** The reconnect rule for a close code (the README's table). */
export function closeDecision(code: number): CloseDecision {
  switch (code) {
    case CloseCode.GOING_AWAY:
      // The bridge drains: another one (behind the same address) takes us at once.
      return 'now';
    case CloseCode.UNAUTHORIZED:
      return 'token';
    case CloseCode.SLOW_CONSUMER:
    case CloseCode.RATE_LIMITED:
      return 'pushback';
    case CloseCode.NO_STATUS:
    case CloseCode.ABNORMAL:
    case CloseCode.INTERNAL:
    case CloseCode.RESTART:
    case CloseCode.TRY_AGAIN_LATER:
    case CloseCode.DEAD:
      return 'backoff';
    default:
      // 1000, and what retrying cannot fix: 1002, 1007, 1008, 1009, other 4xxx.
      return 'stop';
  }
}

/**
 * The wait before attempt `attempt` (0 = the first retry): exponential from
 * `initialMs`, capped at `maxMs`, then jittered into [half, whole] so that
 * clients cut off together do not come back together.
 */
export function backoffDelay(attempt: number, random: () => number, options: BackoffOptions = {}): number {
  const initialMs = options.initialMs ?? 500;
  const maxMs = options.maxMs ?? 15_000;
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling * (0.5 + random() / 2));
}

/** A messageId of [A-Za-z0-9-]: time first, so ids sort by creation. */
export function newMessageId(random: () => number = Math.random): string {
  let tail = '';
  for (let i = 0; i < 12; i += 1) tail += Math.floor(random() * 36).toString(36);
  return 'm-' + Date.now().toString(36) + '-' + tail;
}

const OPEN = 1;
const SEEN_IDS_KEPT = 4096;

interface Pending {
  payload: PayloadOf<'chat.send'>;
  /** Sent on the current socket and not yet seen back. */
  inFlight: boolean;
}

const realClock: Clock = {
  now: () => Date.now(),
  random: () => Math.random(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * One seed-000 connection that stays connected: it reconnects by the close
 * code's rule, resumes with `lastSeq`, keeps `chat.send`s made while offline
 * and resends them (same messageId, so the server stores each once) until it
 * sees them back, and shows each message to handlers once.
 */
export class MenoClient {
  /** The highest `seq` seen; sent as `lastSeq` when reconnecting. */
  lastSeq = 0;
  /** Server clock minus local clock, from the last `system.pong`. */
  serverOffsetMs = 0;
  state: ConnectionState = 'idle';

  private readonly options: MenoClientOptions;
  private readonly clock: Clock;
  private readonly handlers = new Map<string, Array<(...args: unknown[]) => void>>();
  private socket: SocketLike | null = null;
  private attempt = 0;
  private stopped = true;
  private token: string | undefined;
  private retryTimer: unknown = null;
  private heartbeatTimer: unknown = null;
  private pingTimer: unknown = null;
  private pongTimer: unknown = null;
  private pings: number[] = [];
  private readonly pending = new Map<string, Pending>();
  private readonly seenIds = new Set<string>();

  constructor(options: MenoClientOptions) {
    this.options = options;
    this.clock = options.clock ?? realClock;
    if (typeof options.token === 'string') this.token = options.token;
  }

  /** Subscribes to a server `type` or a client event; returns the unsubscribe. */
  on<K extends EventName>(type: K, handler: Handler<K>): () => void {
    const list = this.handlers.get(type) ?? [];
    list.push(handler as (...args: unknown[]) => void);
    this.handlers.set(type, list);
    return () => {
      const at = list.indexOf(handler as (...args: unknown[]) => void);
      if (at >= 0) list.splice(at, 1);
    };
  }

  /** The connect URL, with `lastSeq` once something was seen. */
  url(base: string = this.options.url): string {
    const query = new URLSearchParams({ sessionId: this.options.sessionId });
    const { participantId, name, role, client } = this.options;
    if (participantId !== undefined) query.set('participantId', participantId);
    if (name !== undefined) query.set('name', name);
    if (role !== undefined) query.set('role', role);
    query.set('client', client ?? 'web');
    if (this.token !== undefined) query.set('token', this.token);
    if (this.lastSeq > 0) query.set('lastSeq', String(this.lastSeq));
    return base + '?' + query.toString();
  }

  get isOpen(): boolean {
    return this.socket !== null && this.socket.readyState === OPEN && this.state === 'open';
  }

  /** `chat.send`s not yet seen back from the server, oldest first. */
  get queued(): Array<PayloadOf<'chat.send'>> {
    return [...this.pending.values()].map((entry) => entry.payload);
  }

  /** Connects (again, after `close`), resuming from `lastSeq`. */
  connect(): void {
    this.stopped = false;
    this.clearRetry();
    void this.open();
  }

  /** Closes for good (1000): no reconnect. The offline queue is kept for the next `connect`. */
  close(reason = 'bye'): void {
    this.stopped = true;
    this.clearRetry();
    this.stopTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= OPEN) socket.close(CloseCode.NORMAL, reason);
    this.setState({ state: 'closed', code: CloseCode.NORMAL, reason });
  }

  /**
   * Sends one envelope; `false` when not connected. `chat.send` is never lost
   * to a closed socket: it goes through the offline queue (see `sendChat`).
   */
  send<A extends Action>(action: A, ...payload: PayloadArgs<A>): boolean {
    const [body] = payload;
    if (action === 'chat.send' && body !== undefined) {
      return this.enqueue(body as PayloadOf<'chat.send'>);
    }
    // The signature ties payload to action; the union cannot see that here.
    return this.write((body === undefined ? { action } : { action, payload: body }) as Seed000ClientEnvelope);
  }

  /**
   * Sends a chat message now, or as soon as connected; returns its messageId,
   * which stays the same on every resend (the server stores it once).
   */
  sendChat(content: string, extra: { meta?: Record<string, unknown>; messageId?: string } = {}): string {
    const messageId = extra.messageId ?? (this.options.newId ?? (() => newMessageId(() => this.clock.random())))();
    const payload: PayloadOf<'chat.send'> = { messageId, content };
    if (extra.meta) payload.meta = extra.meta;
    this.enqueue(payload);
    return messageId;
  }

  /** Renews the token in place (`system.auth.refresh`), before it expires. */
  refreshToken(token: string): boolean {
    this.token = token;
    return this.send('system.auth.refresh', { token });
  }

  /** Sends a `system.ping` and times its pong. */
  ping(): boolean {
    if (!this.write({ action: 'system.ping' })) return false;
    this.pings.push(this.clock.now());
    if (this.pings.length > 8) this.pings.shift();
    if (this.pongTimer === null) this.armPongTimeout();
    return true;
  }

  /** The server's clock, estimated from the last pong. */
  serverNow(): number {
    return this.clock.now() + this.serverOffsetMs;
  }

  private enqueue(payload: PayloadOf<'chat.send'>): boolean {
    const known = this.pending.get(payload.messageId);
    if (!known) {
      this.pending.set(payload.messageId, { payload, inFlight: false });
      const max = this.options.maxQueued ?? 500;
      while (this.pending.size > max) {
        const oldest = this.pending.keys().next().value;
        if (oldest === undefined) break;
        this.pending.delete(oldest);
      }
    }
    const entry = this.pending.get(payload.messageId);
    if (entry && this.write({ action: 'chat.send', payload: entry.payload })) {
      entry.inFlight = true;
      return true;
    }
    this.emit('queued', { messageId: payload.messageId, pending: this.pending.size });
    return false;
  }

  /** Resends every chat message not yet seen back, in order. */
  private flush(): void {
    for (const entry of this.pending.values()) {
      if (!this.write({ action: 'chat.send', payload: entry.payload })) return;
      entry.inFlight = true;
    }
  }

  private write(envelope: Seed000ClientEnvelope): boolean {
    if (!this.isOpen || !this.socket) return false;
    this.socket.send(JSON.stringify(envelope));
    return true;
  }

  private async open(): Promise<void> {
    const previous = this.socket;
    this.socket = null;
    if (previous && previous.readyState <= OPEN) previous.close(CloseCode.NORMAL, 'reconnecting');
    this.setState({ state: 'connecting', attempt: this.attempt });
    if (typeof this.options.token === 'function') {
      try {
        this.token = await this.options.token();
      } catch (err) {
        this.scheduleRetry(CloseCode.ABNORMAL, 'no token: ' + String(err), 'backoff');
        return;
      }
      if (this.stopped) return;
    }
    const Socket = this.options.WebSocket ?? (globalThis as { WebSocket?: new (url: string) => SocketLike }).WebSocket;
    if (!Socket) {
      this.setState({ state: 'closed', reason: 'no WebSocket in this environment: pass options.WebSocket' });
      return;
    }
    let socket: SocketLike;
    try {
      socket = new Socket(this.url());
    } catch (err) {
      this.setState({ state: 'closed', reason: String(err) });
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      opened = true;
      this.setState({ state: 'open' });
      this.startTimers();
      for (const entry of this.pending.values()) entry.inFlight = false;
      this.flush();
      this.ping();
    };
    socket.onmessage = (event) => {
      if (this.socket === socket && typeof event.data === 'string') this.receive(event.data);
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopTimers();
      void this.closed(event.code, event.reason, opened);
    };
  }

  private receive(text: string): void {
    let envelope: Seed000ServerEnvelope;
    try {
      envelope = JSON.parse(text) as Seed000ServerEnvelope;
    } catch {
      return;
    }
    if (!envelope || typeof envelope.type !== 'string') return;
    // A healthy frame: the next failure starts the backoff afresh.
    this.attempt = 0;
    if ('seq' in envelope && typeof envelope.seq === 'number' && Number.isSafeInteger(envelope.seq)) {
      // A snapshot restarts the count (the session may be new after a store reset).
      if (envelope.type === 'chat.sync') this.lastSeq = envelope.seq;
      else this.lastSeq = Math.max(this.lastSeq, envelope.seq);
    }
    switch (envelope.type) {
      case 'system.pong':
        this.pong(envelope.data.serverTime);
        break;
      case 'chat.message':
        this.pending.delete(envelope.data.messageId);
        if (!this.firstSight(envelope.data.id)) return;
        break;
      case 'chat.sync':
        for (const message of envelope.data.messages) {
          this.pending.delete(message.messageId);
          this.seenIds.add(message.id);
        }
        break;
      case 'error':
        if ('action' in envelope.data && envelope.data.action === 'chat.send') this.chatRefused(envelope.data);
        break;
      default:
        break;
    }
    this.emit('frame', envelope);
    this.emit(envelope.type, envelope.data, envelope);
  }

  /** Whether a message id is new to the handlers; remembers the last few thousand. */
  private firstSight(id: string): boolean {
    if (this.seenIds.has(id)) return false;
    this.seenIds.add(id);
    if (this.seenIds.size > SEEN_IDS_KEPT) {
      const oldest = this.seenIds.values().next().value;
      if (oldest !== undefined) this.seenIds.delete(oldest);
    }
    return true;
  }

  /**
   * A refused `chat.send`. Retryable: resend what is in flight after the hint
   * (a resend of a stored message is harmless). Not retryable: the error names
   * no messageId, so it is pinned on a message only when exactly one is in
   * flight; otherwise the messages stay queued for the next connection.
   */
  private chatRefused(error: DataOf<'error'>): void {
    if (error.retryable) {
      const wait = ('retryAfterMs' in error && error.retryAfterMs) || backoffDelay(0, () => this.clock.random(), this.options.backoff);
      this.clock.setTimeout(() => this.flush(), wait);
      return;
    }
    const inFlight = [...this.pending.entries()].filter(([, entry]) => entry.inFlight);
    const only = inFlight.length === 1 ? inFlight[0] : undefined;
    if (!only) return;
    this.pending.delete(only[0]);
    this.emit('chatFailed', { payload: only[1].payload, error });
  }

  private pong(serverTime: string): void {
    const sentAt = this.pings.shift();
    this.clearPongTimeout();
    if (this.pings.length > 0) this.armPongTimeout();
    if (sentAt === undefined) return;
    const now = this.clock.now();
    const serverMs = Date.parse(serverTime);
    if (!Number.isNaN(serverMs)) this.serverOffsetMs = serverMs - (sentAt + now) / 2;
    this.emit('latency', now - sentAt);
  }

  private async closed(code: number, reason: string, opened: boolean): Promise<void> {
    if (this.stopped) return;
    const decision = closeDecision(code);
    if (!opened && decision === 'backoff' && this.options.diagnoseRefusals !== false) {
      const refusal = await this.refusalReason();
      if (this.stopped) return;
      if (refusal) {
        this.setState({ state: 'closed', code, reason: refusal, refused: true });
        return;
      }
    }
    if (decision === 'token') {
      await this.renewToken(code, reason);
      return;
    }
    if (decision === 'stop') {
      this.stopped = true;
      this.setState({ state: 'closed', code, reason: reason || 'connection closed' });
      return;
    }
    this.scheduleRetry(code, reason, decision);
  }

  private async renewToken(code: number, reason: string): Promise<void> {
    const ask = this.options.onTokenExpired;
    if (!ask) {
      this.stopped = true;
      this.setState({ state: 'closed', code, reason: reason || 'token expired' });
      return;
    }
    try {
      this.token = await ask();
    } catch (err) {
      this.stopped = true;
      this.setState({ state: 'closed', code, reason: 'token expired and not renewed: ' + String(err) });
      return;
    }
    if (!this.stopped) this.scheduleRetry(code, reason, 'now');
  }

  private scheduleRetry(code: number, reason: string, decision: 'now' | 'backoff' | 'pushback'): void {
    const attempt = this.attempt;
    this.attempt += 1;
    let delayMs: number;
    if (decision === 'now' && attempt === 0) {
      delayMs = 0;
    } else {
      delayMs = backoffDelay(attempt, () => this.clock.random(), this.options.backoff);
      if (decision === 'pushback') delayMs = Math.max(delayMs, this.options.backoff?.pushbackMs ?? 5_000);
    }
    this.setState({ state: 'reconnecting', code, reason, delayMs, attempt: this.attempt });
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) void this.open();
    }, delayMs);
  }

  /** Why the bridge refused the handshake (its HTTP 400 reason, or a 404), or null. */
  private async refusalReason(): Promise<string | null> {
    if (typeof fetch !== 'function') return null;
    const httpUrl = this.url(this.options.url.replace(/^ws/, 'http'));
    try {
      const response = await fetch(httpUrl, { cache: 'no-store' });
      if (response.status === 404) return 'no WebSocket endpoint at ' + new URL(httpUrl).pathname + ' (HTTP 404)';
      if (response.status !== 400) return null;
      const text = (await response.text()).trim();
      // Valid fields, but plain HTTP is no handshake: the failure was transient.
      if (text.startsWith('not a WebSocket handshake')) return null;
      return text || 'refused (HTTP 400)';
    } catch {
      return null;
    }
  }

  private startTimers(): void {
    this.stopTimers();
    this.pings = [];
    const heartbeatMs = this.options.heartbeatMs ?? 20_000;
    const pingMs = this.options.pingMs ?? 15_000;
    if (heartbeatMs > 0) this.every(heartbeatMs, 'heartbeatTimer', () => this.send('presence.heartbeat', {}));
    if (pingMs > 0) this.every(pingMs, 'pingTimer', () => this.ping());
  }

  /** A repeating timer built on `setTimeout`, so that a test clock drives it too. */
  private every(ms: number, slot: 'heartbeatTimer' | 'pingTimer', fn: () => void): void {
    const tick = () => {
      this[slot] = this.clock.setTimeout(tick, ms);
      fn();
    };
    this[slot] = this.clock.setTimeout(tick, ms);
  }

  private armPongTimeout(): void {
    const socket = this.socket;
    this.pongTimer = this.clock.setTimeout(() => {
      this.pongTimer = null;
      // No pong: the path is dead even if the socket has not noticed.
      if (socket && this.socket === socket) {
        this.socket = null;
        this.stopTimers();
        socket.close(CloseCode.DEAD, 'no pong');
        void this.closed(CloseCode.DEAD, 'no pong', true);
      }
    }, this.options.pongTimeoutMs ?? 10_000);
  }

  private clearPongTimeout(): void {
    if (this.pongTimer !== null) this.clock.clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  private stopTimers(): void {
    for (const slot of ['heartbeatTimer', 'pingTimer'] as const) {
      if (this[slot] !== null) this.clock.clearTimeout(this[slot]);
      this[slot] = null;
    }
    this.clearPongTimeout();
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private setState(change: StateChange): void {
    this.state = change.state;
    this.emit('state', change);
  }

  private emit(type: string, ...args: unknown[]): void {
    for (const handler of [...(this.handlers.get(type) ?? [])]) {
      try {
        handler(...args);
      } catch (err) {
        console.error('meno-client: handler for', type, 'failed', err);
      }
    }
  }
}
