// Examples that must compile, and (each under @ts-expect-error, which fails
// the build when its line compiles) examples that must not. Checked with
// `tsc -p test/types/tsconfig.json`.
import { MenoClient } from '../../src/index.js';
import type {
  NexusClientEnvelope,
  NexusServerEnvelope,
  Seed000ClientEnvelope,
  Seed000ServerEnvelope,
  AssistantClientEnvelope,
} from '../../src/index.js';

const client = new MenoClient({ url: 'ws://localhost:8080/ws', sessionId: 's1', participantId: 'p1', name: 'Pat', role: 'student' });

// --- send: each action takes its own payload ---------------------------------
client.send('chat.send', { messageId: 'm-1', content: 'hi' });
client.send('presence.update', { isTyping: true, status: 'typing' });
client.send('control.lease.set', { stepIndex: 2, leaseDurationMs: 30_000 });
client.send('presence.heartbeat');
client.send('control.lease.release');
client.send('system.ping');
client.send('system.auth.refresh', { token: 'eyJ...' });
const messageId: string = client.sendChat('hello', { meta: { tags: ['a'] } });
void messageId;

// @ts-expect-error an unknown action
client.send('chat.delete', { messageId: 'm-1' });
// @ts-expect-error chat.send needs its payload
client.send('chat.send');
// @ts-expect-error chat.send needs a messageId
client.send('chat.send', { content: 'hi' });
// @ts-expect-error content is a string
client.send('chat.send', { messageId: 'm-1', content: 42 });
// @ts-expect-error clients cannot set themselves offline
client.send('presence.update', { status: 'offline' });
// @ts-expect-error stepIndex is required
client.send('control.lease.set', { leaseId: 'l-1' });
// @ts-expect-error a payload field of another action
client.send('presence.heartbeat', { stepIndex: 1 });
// @ts-expect-error role is one of student, teacher, observer
new MenoClient({ url: 'ws://x/ws', sessionId: 's1', role: 'admin' });

// --- handlers: each type gets its own data ------------------------------------
client.on('chat.message', (data, envelope) => {
  const text: string = data.content;
  const seq: number = data.seq;
  const envelopeSeq: number | undefined = envelope.seq;
  void text; void seq; void envelopeSeq;
  // @ts-expect-error chat.message data has no participants
  void data.participants;
});
client.on('chat.sync', (data, envelope) => {
  const first: string | undefined = data.messages[0]?.messageId;
  const seq: number = envelope.seq;
  void first; void seq;
});
client.on('presence.snapshot', (data) => {
  for (const participant of data.participants) {
    const status: 'online' | 'typing' | 'speaking' | 'muted' | 'reconnecting' | 'offline' = participant.status;
    void status;
  }
});
client.on('control.lease.state', (data) => {
  const holder: string | null = data.leaseTo;
  void holder;
  // @ts-expect-error leaseTo may be null
  const sure: string = data.leaseTo;
  void sure;
});
client.on('error', (data) => {
  const retry: boolean = data.retryable;
  void retry;
});
client.on('chat_response', (data) => {
  const done: boolean = data.isComplete;
  void done;
});
client.on('state', (change) => {
  const state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' = change.state;
  void state;
});
client.on('latency', (ms) => {
  const n: number = ms;
  void n;
});
// @ts-expect-error no such server type or client event
client.on('chat.deleted', () => {});
// @ts-expect-error chat.message data is not a lease
client.on('chat.message', (data: { leaseId: string }) => void data);

// --- the envelope unions of every dialect -----------------------------------
const sent: Seed000ClientEnvelope = { action: 'system.ping' };
// @ts-expect-error chat.send's payload is required
const unsent: Seed000ClientEnvelope = { action: 'chat.send' };
const nexusSend: NexusClientEnvelope = { event: 'SEND_MSG', data: { roomId: 'r1', type: 'TEXT', contentText: 'hi' } };
// @ts-expect-error NexusChat types are upper case
const nexusBad: NexusClientEnvelope = { event: 'SEND_MSG', data: { roomId: 'r1', type: 'text' } };
const assistantVoice: AssistantClientEnvelope = { type: 'voice_data', data: { audioData: 'AAEC', sessionId: 'v-1' } };
void sent; void unsent; void nexusSend; void nexusBad; void assistantVoice;

function roomOf(envelope: NexusServerEnvelope): string | null {
  switch (envelope.event) {
    case 'NEW_MESSAGE':
    case 'TYPING':
    case 'ROOM_LEFT':
      return envelope.data.roomId;
    default:
      return null;
  }
}
function seqOf(envelope: Seed000ServerEnvelope): number | undefined {
  // @ts-expect-error not every envelope has a seq (system.pong has none)
  const always: number = envelope.seq;
  void always;
  return 'seq' in envelope ? envelope.seq : undefined;
}
void roomOf; void seqOf;
