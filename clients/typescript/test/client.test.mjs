// Unit tests of MenoClient's rules (node's test runner), over a scripted
// socket and a manual clock: reconnect by close code, jittered backoff,
// lastSeq resume, the offline chat queue, heartbeat and pong watchdog.
// The real-socket, real-bridge test is tests/browser/client-resume.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MenoClient, backoffDelay, closeDecision } from '../dist/index.js';

class ManualClock {
  constructor() { this.time = 0; this.timers = []; this.nextId = 1; this.randomValue = 0.5; }
  now() { return this.time; }
  random() { return this.randomValue; }
  setTimeout(fn, ms) { const id = this.nextId++; this.timers.push({ id, at: this.time + ms, fn, ms }); return id; }
  clearTimeout(id) { this.timers = this.timers.filter((t) => t.id !== id); }
  /** Runs every timer due within `ms`, in time order. */
  advance(ms) {
    const end = this.time + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.time = next.at;
      next.fn();
    }
    this.time = end;
  }
  pendingDelays() { return this.timers.map((t) => t.at - this.time); }
}

/** A socket the test opens, feeds and closes; records what the client sent. */
function scriptedSockets() {
  const sockets = [];
  class ScriptedSocket {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; sockets.push(this); }
    send(text) { assert.equal(this.readyState, 1, 'sent on a socket that is not open'); this.sent.push(JSON.parse(text)); }
    close(code, reason) { this.readyState = 3; this.closedWith = { code, reason }; }
    open() { this.readyState = 1; this.onopen?.({}); }
    receive(envelope) { this.onmessage?.({ data: JSON.stringify(envelope) }); }
    drop(code, reason = '') { this.readyState = 3; this.onclose?.({ code, reason }); }
  }
  return { sockets, ScriptedSocket };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function setup(options = {}) {
  const clock = new ManualClock();
  const { sockets, ScriptedSocket } = scriptedSockets();
  let ids = 0;
  const client = new MenoClient({
    url: 'ws://bridge.test/ws', sessionId: 's1', participantId: 'p1', name: 'Pat', role: 'student',
    WebSocket: ScriptedSocket, clock, diagnoseRefusals: false, pingMs: 0, heartbeatMs: 0,
    newId: () => 'm-' + ++ids, ...options,
  });
  const states = [];
  client.on('state', (change) => states.push(change));
  return { client, clock, sockets, states };
}

const chatMessage = (seq, messageId, id = 'srv-' + messageId) => ({
  type: 'chat.message', seq,
  data: { sessionId: 's1', messageId, participantId: 'p1', participantName: 'Pat', role: 'student', content: 'x', createdAt: '2026-01-01T00:00:00.000Z', id, kind: 'text', seq },
});
const chatSends = (socket) => socket.sent.filter((e) => e.action === 'chat.send').map((e) => e.payload.messageId);

test('backoff grows exponentially, is capped, and is jittered into half to whole', () => {
  assert.equal(backoffDelay(0, () => 0, { initialMs: 500 }), 250);
  assert.equal(backoffDelay(0, () => 1, { initialMs: 500 }), 500);
  assert.equal(backoffDelay(3, () => 1, { initialMs: 500 }), 4000);
  assert.equal(backoffDelay(20, () => 1, { initialMs: 500, maxMs: 15000 }), 15000);
  assert.equal(backoffDelay(20, () => 0, { initialMs: 500, maxMs: 15000 }), 7500);
  for (const r of [0.1, 0.3, 0.7, 0.9]) {
    const delay = backoffDelay(2, () => r);
    assert.ok(delay >= 1000 && delay <= 2000, `attempt 2 waits 1-2 s, got ${delay}`);
  }
});

test('close codes: 1001 at once, 4001 token, 4008/4029 push back, breaks back off, the rest stop', () => {
  assert.equal(closeDecision(1001), 'now');
  assert.equal(closeDecision(4001), 'token');
  assert.equal(closeDecision(4008), 'pushback');
  assert.equal(closeDecision(4029), 'pushback');
  for (const code of [1006, 1011, 1012, 1013]) assert.equal(closeDecision(code), 'backoff', String(code));
  for (const code of [1000, 1002, 1008, 1009, 4400]) assert.equal(closeDecision(code), 'stop', String(code));
});

test('a broken connection reconnects after the jittered backoff, resuming from the last seq seen', async () => {
  const { client, clock, sockets, states } = setup();
  client.connect();
  await flush();
  assert.doesNotMatch(sockets[0].url, /lastSeq/, 'the first connect has no lastSeq');
  sockets[0].open();
  sockets[0].receive({ type: 'chat.sync', seq: 4, data: { sessionId: 's1', messages: [] } });
  sockets[0].receive(chatMessage(5, 'a'));
  sockets[0].receive({ type: 'system.pong', data: { serverTime: '2026-01-01T00:00:00.000Z' } });
  sockets[0].drop(1006);
  await flush();
  const reconnecting = states.at(-1);
  assert.equal(reconnecting.state, 'reconnecting');
  assert.equal(reconnecting.delayMs, 375, 'attempt 0 with random 0.5: 500 * 0.75');
  clock.advance(374);
  assert.equal(sockets.length, 1, 'no reconnect before the delay');
  clock.advance(1);
  await flush();
  assert.equal(sockets.length, 2);
  assert.match(sockets[1].url, /[?&]lastSeq=5(&|$)/);
  assert.match(sockets[1].url, /sessionId=s1/);
});

test('repeated failures back off further; a frame received resets the count', async () => {
  const { client, clock, sockets, states } = setup();
  client.connect();
  await flush();
  for (let i = 0; i < 3; i += 1) {
    sockets.at(-1).drop(1006);
    await flush();
    clock.advance(states.at(-1).delayMs);
    await flush();
  }
  assert.deepEqual(states.filter((s) => s.state === 'reconnecting').map((s) => s.delayMs), [375, 750, 1500]);
  sockets.at(-1).open();
  sockets.at(-1).receive({ type: 'system.pong', data: { serverTime: '2026-01-01T00:00:00.000Z' } });
  sockets.at(-1).drop(1006);
  await flush();
  assert.equal(states.at(-1).delayMs, 375);
});

test('1001 (the bridge drains) reconnects at once', async () => {
  const { client, clock, sockets, states } = setup();
  client.connect();
  await flush();
  sockets[0].open();
  sockets[0].drop(1001, 'draining');
  await flush();
  assert.equal(states.at(-1).delayMs, 0);
  clock.advance(0);
  await flush();
  assert.equal(sockets.length, 2);
});

test('4029 and 4008 wait at least the push-back time', async () => {
  for (const code of [4029, 4008]) {
    const { client, clock, sockets, states } = setup({ backoff: { pushbackMs: 5000 } });
    client.connect();
    await flush();
    sockets[0].open();
    sockets[0].drop(code);
    await flush();
    assert.equal(states.at(-1).delayMs, 5000, String(code));
    clock.advance(4999);
    assert.equal(sockets.length, 1);
    clock.advance(1);
    await flush();
    assert.equal(sockets.length, 2);
  }
});

test('4001 asks the app for a new token and reconnects with it; without one the client stays closed', async () => {
  let asked = 0;
  const renewing = setup({ token: 'old', participantId: undefined, name: undefined, role: undefined,
    onTokenExpired: async () => { asked += 1; return 'new'; } });
  renewing.client.connect();
  await flush();
  assert.match(renewing.sockets[0].url, /token=old/);
  renewing.sockets[0].open();
  renewing.sockets[0].drop(4001, 'token expired');
  await flush();
  assert.equal(asked, 1);
  renewing.clock.advance(0);
  await flush();
  assert.equal(renewing.sockets.length, 2);
  assert.match(renewing.sockets[1].url, /token=new/);

  const stuck = setup({ token: 'old' });
  stuck.client.connect();
  await flush();
  stuck.sockets[0].open();
  stuck.sockets[0].drop(4001, 'token expired');
  await flush();
  stuck.clock.advance(60_000);
  assert.equal(stuck.sockets.length, 1);
  assert.equal(stuck.client.state, 'closed');
});

test('a close that retrying cannot fix (1008) stops', async () => {
  const { client, clock, sockets } = setup();
  client.connect();
  await flush();
  sockets[0].open();
  sockets[0].drop(1008, 'join refused');
  await flush();
  clock.advance(60_000);
  assert.equal(sockets.length, 1);
  assert.equal(client.state, 'closed');
});

test('chat sent while offline is queued, then sent in order once connected', async () => {
  const { client, sockets } = setup();
  const queued = [];
  client.on('queued', (q) => queued.push(q.messageId));
  const first = client.sendChat('one');
  const second = client.sendChat('two');
  assert.deepEqual(queued, [first, second]);
  client.connect();
  await flush();
  sockets[0].open();
  assert.deepEqual(chatSends(sockets[0]), [first, second]);
});

test('a message not seen back is resent with the same messageId after a reconnect; one seen back is not', async () => {
  const { client, clock, sockets, states } = setup();
  client.connect();
  await flush();
  sockets[0].open();
  const echoed = client.sendChat('echoed');
  const lost = client.sendChat('lost in the break');
  sockets[0].receive(chatMessage(1, echoed));
  sockets[0].drop(1006);
  await flush();
  clock.advance(states.at(-1).delayMs);
  await flush();
  sockets[1].open();
  assert.deepEqual(chatSends(sockets[1]), [lost]);
  assert.deepEqual(client.queued.map((p) => p.messageId), [lost]);
  sockets[1].receive(chatMessage(2, lost));
  assert.deepEqual(client.queued, []);
});

test('handlers see each message once, however often it arrives', async () => {
  const { client, sockets } = setup();
  const seen = [];
  client.on('chat.message', (data) => seen.push(data.id));
  client.connect();
  await flush();
  sockets[0].open();
  sockets[0].receive(chatMessage(1, 'a'));
  sockets[0].receive(chatMessage(1, 'a'));   // a duplicate answer after a resend
  sockets[0].receive(chatMessage(2, 'b'));
  assert.deepEqual(seen, ['srv-a', 'srv-b']);
});

test('a refused chat.send that cannot succeed is reported and leaves the queue', async () => {
  const { client, sockets } = setup();
  const failed = [];
  client.on('chatFailed', (f) => failed.push(f.payload.messageId));
  client.connect();
  await flush();
  sockets[0].open();
  const id = client.sendChat('x'.repeat(10));
  sockets[0].receive({ type: 'error', data: { code: 'InvalidArgument', message: 'too long', action: 'chat.send', retryable: false } });
  assert.deepEqual(failed, [id]);
  assert.deepEqual(client.queued, []);
});

test('a rate-limited chat.send is resent after the hint', async () => {
  const { client, clock, sockets } = setup();
  client.connect();
  await flush();
  sockets[0].open();
  const id = client.sendChat('hi');
  sockets[0].receive({ type: 'error', data: { code: 'RateLimited', message: 'slow down', action: 'chat.send', retryable: true, retryAfterMs: 800 } });
  clock.advance(799);
  assert.deepEqual(chatSends(sockets[0]), [id]);
  clock.advance(1);
  assert.deepEqual(chatSends(sockets[0]), [id, id]);
});

test('heartbeats go out while open, and a ping without a pong reconnects', async () => {
  const { client, clock, sockets, states } = setup({ heartbeatMs: 20_000, pingMs: 15_000, pongTimeoutMs: 10_000 });
  const latencies = [];
  client.on('latency', (ms) => latencies.push(ms));
  client.connect();
  await flush();
  sockets[0].open();
  assert.deepEqual(sockets[0].sent.map((e) => e.action), ['system.ping'], 'a ping on open');
  clock.advance(40);
  sockets[0].receive({ type: 'system.pong', data: { serverTime: '2026-01-01T00:00:00.000Z' } });
  assert.deepEqual(latencies, [40]);
  clock.advance(20_000);
  const actions = sockets[0].sent.map((e) => e.action);
  assert.ok(actions.includes('presence.heartbeat'), `heartbeat after 20 s: ${actions}`);
  // The ping at 15 s was never answered: by 25 s the client gives the socket up.
  clock.advance(5_000);
  await flush();
  assert.equal(sockets[0].closedWith?.code, 4000);
  assert.equal(states.at(-1).state, 'reconnecting');
});

test('close() stops for good and keeps the queue for the next connect', async () => {
  const { client, clock, sockets } = setup();
  client.connect();
  await flush();
  sockets[0].open();
  client.close('left');
  assert.equal(sockets[0].closedWith.code, 1000);
  const id = client.sendChat('later');
  clock.advance(60_000);
  assert.equal(sockets.length, 1);
  client.connect();
  await flush();
  sockets[1].open();
  assert.deepEqual(chatSends(sockets[1]), [id]);
});
