// The demo page (ws-bridge/src/demo.html, served by meno-bridge at "/") driven
// in real headless Chromium: a teacher and a student, each in their own
// browser context, join one session through the page's join form, then chat,
// type, take/move/release the lease, and leave. Then the page's two dialects
// side by side: a seed-000 page and a NexusChat page (?dialect=nexus) in one
// room chat both ways, type, read and leave.
//
// Run: ./run.sh (installs playwright-core, checks for Chromium, runs this).
// Or:  node --test demo.test.mjs
//
// Environment:
//   MENO_BRIDGE_BIN   the bridge binary (default: $CARGO_TARGET_DIR/debug/meno-bridge
//                     when CARGO_TARGET_DIR is set, else ../../target/debug/meno-bridge
//                     relative to this file)
//   CHROMIUM          the Chromium binary (default /usr/bin/chromium; Debian: apt-get
//                     install -y chromium)
//   MENO_DEMO_HTML    development aid: serve this file at "/" instead of the page
//                     compiled into the binary, so an edited page can be tried
//                     without rebuilding. Unset, the test first checks that the
//                     binary serves the same page as ws-bridge/src/demo.html.
//
// The test starts its own bridge (monolithic, embedded store in a temporary
// directory, free loopback port), waits for /readyz, and stops it at the end.
// All waits are condition polls (locator.waitFor / page.waitForFunction) with
// timeouts, never fixed sleeps.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const BRIDGE_BIN = process.env.MENO_BRIDGE_BIN
  || (process.env.CARGO_TARGET_DIR
    ? resolve(REPO, process.env.CARGO_TARGET_DIR, 'debug', 'meno-bridge')
    : resolve(REPO, 'target', 'debug', 'meno-bridge'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DEMO_SOURCE = resolve(REPO, 'ws-bridge', 'src', 'demo.html');
const DEMO_OVERRIDE = process.env.MENO_DEMO_HTML ? resolve(process.env.MENO_DEMO_HTML) : null;

// Generous for a loaded 2-core machine; each wait ends as soon as its condition holds.
const WAIT_MS = 15_000;
const SESSION_ID = 'browser-' + Date.now().toString(36);
// The grace period a participant shows "reconnecting" after an abnormal close.
// Short here, so that "closed page shows offline" holds within WAIT_MS whether
// Chromium manages to send the page's close frame on the way out or not.
const RECONNECT_GRACE = '2s';

let bridge;        // { process, baseUrl, dataDir, logs }
let browser;
let teacher;       // { context, page, pid, errors }
let student;

// ---------------------------------------------------------------------------
// The bridge process
// ---------------------------------------------------------------------------

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function startBridge() {
  assert.ok(existsSync(BRIDGE_BIN),
    `bridge binary not found at ${BRIDGE_BIN}: build it (cargo build --bin meno-bridge) or set MENO_BRIDGE_BIN`);
  const dataDir = await mkdtemp(join(tmpdir(), 'meno-browser-'));
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const logs = [];
  const child = spawn(BRIDGE_BIN, [
    '--listen', `127.0.0.1:${port}`,
    '--data-dir', dataDir,
    '--reconnect-grace', RECONNECT_GRACE,
    '--drain-timeout', '3s',
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  const keep = (chunk) => { logs.push(chunk.toString()); if (logs.length > 400) logs.shift(); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      throw new Error(`meno-bridge exited early (${JSON.stringify(exited)}):\n${logs.join('')}`);
    }
    try {
      const response = await fetch(`${baseUrl}/readyz`);
      if (response.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`meno-bridge not ready within 30 s:\n${logs.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 100));   // poll interval, not a wait for an outcome
  }
  return { process: child, baseUrl, dataDir, logs, exited: () => exited };
}

async function stopBridge() {
  if (!bridge) return;
  const child = bridge.process;
  if (!bridge.exited()) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 8_000);
    await gone;
    clearTimeout(timer);
  }
  await rm(bridge.dataDir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

async function openPage(name, role, session = SESSION_ID) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  if (DEMO_OVERRIDE) {
    const html = await readFile(DEMO_OVERRIDE, 'utf8');
    await page.route((url) => url.pathname === '/', (route) =>
      route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }));
  }
  await page.goto(`${bridge.baseUrl}/`);
  await byTestId(page, 'join-session').fill(session);
  await byTestId(page, 'join-name').fill(name);
  await byTestId(page, 'join-role').selectOption(role);
  const pid = (await byTestId(page, 'join-participant-id').textContent()).trim();
  assert.match(pid, /^[A-Za-z0-9._:@-]{1,128}$/, 'the page generates a valid participant id');
  await byTestId(page, 'join-submit').click();
  await page.locator('[data-testid="conn"][data-state="open"]').waitFor();
  await byTestId(page, 'app').waitFor({ state: 'visible' });
  return { context, page, pid, name, role, errors };
}

/** The roster entry for `who` as `viewer` sees it, optionally with a status. */
function rosterItem(viewer, who, status) {
  const statusSel = status ? `[data-status="${status}"]` : '';
  return viewer.page.locator(`[data-testid="roster-item"][data-participant-id="${who.pid}"]${statusSel}`);
}

/** The lease panel showing `holder` (null: nobody) at `step`. */
function leasePanel(viewer, holder, step) {
  return viewer.page.locator(
    `[data-testid="lease-panel"][data-holder="${holder ? holder.pid : ''}"][data-step="${step}"]`);
}

// ---------------------------------------------------------------------------
// Setup and teardown
// ---------------------------------------------------------------------------

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM`);
  bridge = await startBridge();
  if (!DEMO_OVERRIDE) {
    const served = await (await fetch(`${bridge.baseUrl}/`)).text();
    const source = readFileSync(DEMO_SOURCE, 'utf8');
    assert.ok(served === source,
      `${BRIDGE_BIN} serves a different demo page than ${DEMO_SOURCE}: rebuild it ` +
      '(cargo build --bin meno-bridge), or set MENO_DEMO_HTML to try the file without rebuilding');
  }
  const args = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  // A page fulfilled by page.route has no server address, so Chromium's Local
  // Network Access checks treat it as public and block its WebSocket to
  // 127.0.0.1 (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS). Only the
  // development override needs this; the real page is served from loopback.
  if (DEMO_OVERRIDE) args.push('--disable-features=LocalNetworkAccessChecks');
  browser = await chromium.launch({ executablePath: CHROMIUM, args });
  teacher = await openPage('Ann Teacher', 'teacher');
  student = await openPage('Bob Student', 'student');
});

after(async () => {
  try {
    if (browser) await browser.close();
  } finally {
    await stopBridge();
  }
});

// ---------------------------------------------------------------------------
// Tests (run in order, sharing the two pages)
// ---------------------------------------------------------------------------

test('both participants show online in both rosters', async () => {
  for (const viewer of [teacher, student]) {
    for (const who of [teacher, student]) {
      const item = rosterItem(viewer, who, 'online');
      await item.waitFor();
      await item.locator('[data-testid="roster-name"]', { hasText: who.name }).waitFor();
      await item.locator('[data-testid="roster-role"]', { hasText: who.role }).waitFor();
    }
    await byTestId(viewer.page, 'roster-count').filter({ hasText: '2 online' }).waitFor();
  }
});

test('a message typed in one page appears in the other', async () => {
  const text = 'Hello from the teacher <b>not bold</b> & co';
  await byTestId(teacher.page, 'chat-input').fill(text);
  await byTestId(teacher.page, 'chat-send').click();

  const received = student.page.locator(`[data-testid="chat-message"][data-participant-id="${teacher.pid}"]`)
    .filter({ has: student.page.locator('[data-testid="msg-content"]', { hasText: text }) });
  await received.waitFor();
  assert.equal(await received.locator('[data-testid="msg-sender"]').textContent(), teacher.name);
  assert.equal(await received.locator('[data-testid="msg-role"]').textContent(), 'teacher');
  assert.match(await received.locator('[data-testid="msg-time"]').textContent(), /\d/);
  // Shown as text, not parsed as markup.
  assert.equal(await received.locator('[data-testid="msg-content"] b').count(), 0);

  // The sender sees it once (the server's broadcast), and the input is cleared.
  await teacher.page.locator('[data-testid="msg-content"]', { hasText: text }).waitFor();
  assert.equal(await teacher.page.locator('[data-testid="msg-content"]', { hasText: text }).count(), 1);
  assert.equal(await byTestId(teacher.page, 'chat-input').inputValue(), '');

  // And the other way round.
  await byTestId(student.page, 'chat-input').fill('Hi Ann');
  await byTestId(student.page, 'chat-input').press('Enter');
  await teacher.page.locator(`[data-testid="chat-message"][data-participant-id="${student.pid}"]`,
    { hasText: 'Hi Ann' }).waitFor();
});

test("the student's typing shows in the teacher's roster, and stops after send", async () => {
  await byTestId(student.page, 'chat-input').pressSequentially('still typ');
  await rosterItem(teacher, student, 'typing').waitFor();
  await byTestId(teacher.page, 'typing-indicator').filter({ hasText: `${student.name} is typing` }).waitFor();

  await byTestId(student.page, 'chat-input').press('Enter');
  await rosterItem(teacher, student, 'online').waitFor();
  await teacher.page.waitForFunction(
    () => document.querySelector('[data-testid="typing-indicator"]').textContent === '');
});

test('taking, moving and releasing the lease shows in both pages', async () => {
  // Nobody holds it at first.
  for (const viewer of [teacher, student]) {
    await byTestId(viewer.page, 'lease-holder').filter({ hasText: 'Nobody has control' }).waitFor();
  }

  await byTestId(teacher.page, 'lease-take').click();
  for (const viewer of [teacher, student]) await leasePanel(viewer, teacher, 0).waitFor();
  await byTestId(student.page, 'lease-holder').filter({ hasText: `${teacher.name} (teacher) has control` }).waitFor();
  await byTestId(teacher.page, 'lease-holder').filter({ hasText: 'You have control' }).waitFor();
  await byTestId(student.page, 'lease-expiry').filter({ hasText: /expires in \d+ s/ }).waitFor();

  // Moving the step updates both pages.
  await byTestId(teacher.page, 'lease-next').click();
  for (const viewer of [teacher, student]) await leasePanel(viewer, teacher, 1).waitFor();
  await byTestId(teacher.page, 'lease-next').click();
  for (const viewer of [teacher, student]) await leasePanel(viewer, teacher, 2).waitFor();
  await byTestId(student.page, 'lease-step').filter({ hasText: /^2$/ }).waitFor();
  await byTestId(teacher.page, 'lease-prev').click();
  for (const viewer of [teacher, student]) await leasePanel(viewer, teacher, 1).waitFor();
  // The student cannot move a step they do not hold.
  assert.equal(await byTestId(student.page, 'lease-next').isDisabled(), true);

  // Releasing clears the holder (the step stays where it was).
  await byTestId(teacher.page, 'lease-release').click();
  for (const viewer of [teacher, student]) {
    await leasePanel(viewer, null, 1).waitFor();
    await byTestId(viewer.page, 'lease-holder').filter({ hasText: 'Nobody has control' }).waitFor();
  }
});

test('a student taking the lease the teacher holds sees an error toast', async () => {
  await byTestId(teacher.page, 'lease-take').click();
  for (const viewer of [teacher, student]) await leasePanel(viewer, teacher, 1).waitFor();

  await byTestId(student.page, 'lease-take').click();
  const toast = student.page.locator('[data-testid="toast"][data-action="control.lease.set"]');
  await toast.waitFor();
  // The core refuses a student while a live lease is someone else's (DESIGN §4: Conflict).
  assert.match(await toast.getAttribute('data-code'), /^(Conflict|PermissionDenied)$/);
  assert.ok((await toast.textContent()).length > 0);
  // Only the sender sees the error; the lease is unchanged everywhere.
  assert.equal(await teacher.page.locator('[data-testid="toast"]').count(), 0);
  for (const viewer of [teacher, student]) await leasePanel(viewer, teacher, 1).waitFor();
});

test('closing a page shows its participant offline in the other', async () => {
  await rosterItem(teacher, student, 'online').waitFor();
  await student.page.close();
  await rosterItem(teacher, student, 'offline').waitFor();
  await byTestId(teacher.page, 'roster-count').filter({ hasText: '1 online' }).waitFor();
  // The teacher still holds the lease and is still connected.
  await leasePanel(teacher, teacher, 1).waitFor();
  await teacher.page.locator('[data-testid="conn"][data-state="open"]').waitFor();
});

test('no page errors were logged', () => {
  assert.deepEqual([...teacher.errors, ...student.errors], []);
});

// ---------------------------------------------------------------------------
// The two dialects side by side (DESIGN §10, issue 14): a seed-000 page in
// session ROOM_ID and a NexusChat page (/?dialect=nexus) in room ROOM_ID.
// Fresh pages in their own room, so nothing above leaks in.
// ---------------------------------------------------------------------------

const ROOM_ID = SESSION_ID + '-rooms';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let seedUser;      // a seed-000 page, as openPage returns it
let nexusUser;     // a NexusChat page, as openNexusPage returns it, plus its frames
let lateUser;      // a NexusChat page that joins after the chat
let toNexus;       // the text sent from the seed-000 page
let toSeed;        // the text sent from the NexusChat page

/**
 * Opens `/?dialect=nexus` in a new context and joins `room` as `name` through
 * the join form. Every WebSocket frame the page sends or receives is kept,
 * parsed, in `sent` / `received`.
 */
async function openNexusPage(name, room) {
  const context = await browser.newContext({ viewport: { width: 1024, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const who = { context, page, name, errors: [], sent: [], received: [], sockets: [] };
  page.on('pageerror', (err) => who.errors.push(String(err)));
  page.on('console', (msg) => { if (msg.type() === 'error') who.errors.push(msg.text()); });
  page.on('websocket', (ws) => {
    who.sockets.push(ws);
    const parse = (frame) => { try { return JSON.parse(frame.payload); } catch { return { unparsed: String(frame.payload) }; } };
    ws.on('framesent', (frame) => who.sent.push(parse(frame)));
    ws.on('framereceived', (frame) => who.received.push(parse(frame)));
  });
  if (DEMO_OVERRIDE) {
    const html = await readFile(DEMO_OVERRIDE, 'utf8');
    await page.route((url) => url.pathname === '/', (route) =>
      route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }));
  }
  await page.goto(`${bridge.baseUrl}/?dialect=nexus`);
  assert.equal(await byTestId(page, 'join-dialect').inputValue(), 'nexus', '?dialect=nexus preselects NexusChat');
  assert.equal(await byTestId(page, 'join-role').isVisible(), false, 'NexusChat has no roles');
  await byTestId(page, 'join-session').fill(room);
  await byTestId(page, 'join-name').fill(name);
  who.pid = (await byTestId(page, 'join-participant-id').textContent()).trim();
  await byTestId(page, 'join-submit').click();
  await page.locator('[data-testid="conn"][data-state="open"]').waitFor();
  await byTestId(page, 'nx-app').waitFor({ state: 'visible' });
  if (!who.sockets.length) await page.waitForEvent('websocket');
  return who;
}

/** The first frame `who` sent (`direction` 'sent') or received ('received') that satisfies `predicate`, waiting for it if need be. */
async function frame(who, direction, predicate) {
  const found = who[direction].find(predicate);
  if (found) return found;
  // Registered in the same tick as the search above, so no frame slips between.
  const next = await who.sockets.at(-1).waitForEvent(direction === 'sent' ? 'framesent' : 'framereceived', {
    predicate: (f) => { try { return predicate(JSON.parse(f.payload)); } catch { return false; } },
    timeout: WAIT_MS,
  });
  return JSON.parse(next.payload);
}
const sentFrame = (who, predicate) => frame(who, 'sent', predicate);
const receivedFrame = (who, predicate) => frame(who, 'received', predicate);

/** The member entry for `userId` in a NexusChat page, optionally with a status. */
function nexusMember(viewer, userId, status) {
  const statusSel = status ? `[data-status="${status}"]` : '';
  return viewer.page.locator(`[data-testid="nx-member"][data-user-id="${userId}"]${statusSel}`);
}

/** A NexusChat page's message from `senderId` whose text is exactly `text`. */
function nexusMessage(viewer, senderId, text) {
  return viewer.page.locator(`[data-testid="nx-message"][data-sender-id="${senderId}"]`)
    .filter({ has: viewer.page.locator('[data-testid="nx-msg-content"]', { hasText: text }) });
}

test('dialects: a seed-000 page and a ?dialect=nexus page join one room, each in its own view', async () => {
  seedUser = await openPage('Cy Seed', 'student', ROOM_ID);
  nexusUser = await openNexusPage('Dee Nexus', ROOM_ID);
  assert.notEqual(nexusUser.pid, seedUser.pid);

  // The NexusChat page connected to /ws/nexus with its identity and room.
  assert.equal(nexusUser.sockets.length, 1);
  const url = new URL(nexusUser.sockets[0].url());
  assert.equal(url.pathname, '/ws/nexus');
  assert.equal(url.searchParams.get('userId'), nexusUser.pid);
  assert.equal(url.searchParams.get('userName'), 'Dee Nexus');
  assert.deepEqual(url.searchParams.getAll('roomId'), [ROOM_ID]);

  // Each page shows its own view only.
  assert.equal(await byTestId(nexusUser.page, 'app').isVisible(), false);
  assert.equal(await byTestId(seedUser.page, 'nx-app').isVisible(), false);
  await byTestId(nexusUser.page, 'dialect-tag').filter({ hasText: 'NexusChat' }).waitFor();
  await byTestId(seedUser.page, 'dialect-tag').filter({ hasText: 'seed 000' }).waitFor();
  // The header links to the same room in the other dialect.
  const other = new URL(await byTestId(seedUser.page, 'open-other').getAttribute('href'), bridge.baseUrl);
  assert.equal(other.searchParams.get('dialect'), 'nexus');
  assert.equal(other.searchParams.get('session'), ROOM_ID);

  // The server's ROOM_JOINED arrived, and the page rendered it (an empty room so far).
  const joined = await receivedFrame(nexusUser, (f) => f.event === 'ROOM_JOINED');
  assert.equal(joined.data.roomId, ROOM_ID);
  await byTestId(nexusUser.page, 'nx-chat-empty').waitFor();
});

test('dialects: each page shows the other user online', async () => {
  await nexusMember(nexusUser, seedUser.pid, 'online')
    .filter({ has: nexusUser.page.locator('[data-testid="nx-member-name"]', { hasText: 'Cy Seed' }) }).waitFor();
  await nexusMember(nexusUser, nexusUser.pid, 'online').waitFor();
  await rosterItem(seedUser, nexusUser, 'online')
    .filter({ has: seedUser.page.locator('[data-testid="roster-name"]', { hasText: 'Dee Nexus' }) }).waitFor();
});

test('dialects: a message from the seed-000 page reaches the NexusChat page, and one back', async () => {
  // seed 000 → NexusChat: chat.send {content} shows as NEW_MESSAGE {contentText}.
  toNexus = 'Seed to Nexus <i>not italic</i> ' + Date.now().toString(36);
  await byTestId(seedUser.page, 'chat-input').fill(toNexus);
  await byTestId(seedUser.page, 'chat-send').click();
  const got = nexusMessage(nexusUser, seedUser.pid, toNexus);
  await got.waitFor();
  assert.equal(await got.locator('[data-testid="nx-msg-content"]').textContent(), toNexus);
  assert.equal(await got.locator('[data-testid="nx-msg-content"] i').count(), 0, 'shown as text');
  assert.equal(await got.getAttribute('data-type'), 'TEXT');
  assert.equal(await got.locator('[data-testid="nx-msg-sender"]').textContent(), 'Cy Seed');
  assert.match(await got.getAttribute('data-message-id'), /\S/);

  // NexusChat → seed 000: SEND_MSG {contentText} shows as chat.message {content}.
  toSeed = 'Nexus to Seed & back ' + Date.now().toString(36);
  await byTestId(nexusUser.page, 'nx-input').fill(toSeed);
  await byTestId(nexusUser.page, 'nx-send').click();
  const back = seedUser.page.locator(`[data-testid="chat-message"][data-participant-id="${nexusUser.pid}"]`)
    .filter({ has: seedUser.page.locator('[data-testid="msg-content"]', { hasText: toSeed }) });
  await back.waitFor();
  assert.equal(await back.locator('[data-testid="msg-content"]').textContent(), toSeed);
  assert.equal(await back.locator('[data-testid="msg-sender"]').textContent(), 'Dee Nexus');

  // The NexusChat sender sees its message once (the server's NEW_MESSAGE), and the input is cleared.
  await nexusMessage(nexusUser, nexusUser.pid, toSeed).waitFor();
  assert.equal(await nexusMessage(nexusUser, nexusUser.pid, toSeed).count(), 1);
  assert.equal(await byTestId(nexusUser.page, 'nx-input').inputValue(), '');

  // On the wire: one SEND_MSG in the seed's envelope, with a fresh UUID traceId and clientRef.
  const sends = nexusUser.sent.filter((f) => f.event === 'SEND_MSG');
  assert.equal(sends.length, 1);
  const [send] = sends;
  assert.deepEqual(Object.keys(send).sort(), ['data', 'event', 'traceId']);
  assert.match(send.traceId, UUID_RE);
  assert.deepEqual({ ...send.data, clientRef: undefined },
    { roomId: ROOM_ID, type: 'TEXT', contentText: toSeed, clientRef: undefined });
  assert.match(send.data.clientRef, UUID_RE);
  const echoed = await receivedFrame(nexusUser, (f) => f.event === 'NEW_MESSAGE' && f.data.contentText === toSeed);
  assert.equal(echoed.traceId, send.traceId, 'the NEW_MESSAGE carries the SEND_MSG traceId');
});

test('dialects: the NexusChat page ACKs the message it was shown and shows the READ', async () => {
  const shown = nexusMessage(nexusUser, seedUser.pid, toNexus);
  const messageId = await shown.getAttribute('data-message-id');
  const ack = await sentFrame(nexusUser, (f) => f.event === 'ACK' && f.data && f.data.messageId === messageId);
  assert.match(ack.traceId, UUID_RE);
  // Its own message is never ACKed.
  const ownId = await nexusMessage(nexusUser, nexusUser.pid, toSeed).getAttribute('data-message-id');
  assert.equal(nexusUser.sent.filter((f) => f.event === 'ACK' && f.data.messageId === ownId).length, 0);
  // READ {roomId, userId, messageId, readAt} comes back to the room and marks the message.
  await nexusUser.page.locator(
    `[data-testid="nx-message"][data-message-id="${messageId}"][data-read-by~="${nexusUser.pid}"]`).waitFor();
});

test('dialects: typing shows across dialects, both ways', async () => {
  await byTestId(nexusUser.page, 'nx-input').pressSequentially('typing in Nexus');
  await sentFrame(nexusUser, (f) => f.event === 'TYPING' && f.data.roomId === ROOM_ID && f.data.isTyping === true);
  await rosterItem(seedUser, nexusUser, 'typing').waitFor();
  await byTestId(seedUser.page, 'typing-indicator').filter({ hasText: 'Dee Nexus is typing' }).waitFor();
  await byTestId(nexusUser.page, 'nx-input').fill('');
  await byTestId(nexusUser.page, 'nx-input').dispatchEvent('input');
  await rosterItem(seedUser, nexusUser, 'online').waitFor();

  await byTestId(seedUser.page, 'chat-input').pressSequentially('typing in seed');
  await nexusMember(nexusUser, seedUser.pid, 'typing').waitFor();
  await byTestId(nexusUser.page, 'nx-typing-indicator').filter({ hasText: 'Cy Seed is typing' }).waitFor();
  await byTestId(seedUser.page, 'chat-input').fill('');
  await byTestId(seedUser.page, 'chat-input').dispatchEvent('input');
  await nexusMember(nexusUser, seedUser.pid, 'online').waitFor();
  await nexusUser.page.waitForFunction(
    () => document.querySelector('[data-testid="nx-typing-indicator"]').textContent === '');
});

test('dialects: a media message shows as a link; a refused one as an ERROR toast', async () => {
  await byTestId(nexusUser.page, 'nx-type').selectOption('IMAGE');
  await byTestId(nexusUser.page, 'nx-url').fill('https://example.com/cat.png');
  await byTestId(nexusUser.page, 'nx-input').fill('a cat');
  await byTestId(nexusUser.page, 'nx-send').click();
  const image = nexusUser.page.locator(`[data-testid="nx-message"][data-type="IMAGE"][data-sender-id="${nexusUser.pid}"]`);
  await image.waitFor();
  assert.equal(await image.locator('[data-testid="nx-msg-link"]').getAttribute('href'), 'https://example.com/cat.png');
  assert.equal(await image.locator('[data-testid="nx-msg-content"]').textContent(), 'a cat');
  // The seed-000 page gets it as a chat.message with its caption.
  await seedUser.page.locator(`[data-testid="chat-message"][data-participant-id="${nexusUser.pid}"]`,
    { hasText: 'a cat' }).waitFor();

  // Not http(s): the server refuses it with ERROR {code, message, retryable, event} to the sender.
  await byTestId(nexusUser.page, 'nx-url').fill('ftp://example.com/cat.png');
  await byTestId(nexusUser.page, 'nx-send').click();
  const toast = nexusUser.page.locator('[data-testid="toast"][data-action="SEND_MSG"]');
  await toast.waitFor();
  assert.match(await toast.getAttribute('data-code'), /\S/);
  assert.equal(await toast.getAttribute('data-retryable'), 'false');
  const error = await receivedFrame(nexusUser, (f) => f.event === 'ERROR');
  assert.equal(error.data.event, 'SEND_MSG');
  assert.ok((await toast.textContent()).includes(error.data.message));
  assert.equal(await nexusUser.page.locator('[data-testid="nx-message"][data-type="IMAGE"]').count(), 1);
  assert.equal(await seedUser.page.locator('[data-testid="toast"]').count(), 0);
  // The socket stays usable.
  await nexusUser.page.locator('[data-testid="conn"][data-state="open"]').waitFor();
  await byTestId(nexusUser.page, 'nx-type').selectOption('TEXT');
});

test('dialects: a NexusChat page joining later shows the history oldest first', async () => {
  lateUser = await openNexusPage('Eve Later', ROOM_ID);
  const joined = await receivedFrame(lateUser, (f) => f.event === 'ROOM_JOINED');
  const wire = joined.data.lastMessages.map((m) => m.contentText);
  // On the wire newest first ...
  assert.deepEqual(wire.filter((text) => text === toNexus || text === toSeed), [toSeed, toNexus]);
  // ... on the page oldest at the top.
  await nexusMessage(lateUser, seedUser.pid, toNexus).waitFor();
  const shown = await lateUser.page.locator('[data-testid="nx-msg-content"]').allTextContents();
  assert.deepEqual(shown.filter((text) => text === toNexus || text === toSeed), [toNexus, toSeed]);
  assert.equal(await lateUser.page.locator('[data-testid="nx-msg-sender"]').first().textContent(), 'Cy Seed');
  // The member list came with ROOM_JOINED.
  await nexusMember(lateUser, seedUser.pid, 'online').waitFor();
  await nexusMember(lateUser, nexusUser.pid, 'online').waitFor();
  // Every event the pages sent carried its own traceId.
  const traceIds = [...nexusUser.sent, ...lateUser.sent].map((f) => f.traceId);
  assert.ok(traceIds.length > 0 && traceIds.every((id) => UUID_RE.test(id)));
  assert.equal(new Set(traceIds).size, traceIds.length);
});

test('dialects: closing each page shows its user offline in the other dialect', async () => {
  await nexusUser.page.close();
  await rosterItem(seedUser, nexusUser, 'offline').waitFor();
  await nexusMember(lateUser, nexusUser.pid, 'offline').waitFor();
  await seedUser.page.close();
  await nexusMember(lateUser, seedUser.pid, 'offline').waitFor();
});

test('dialects: no page errors were logged', () => {
  assert.deepEqual([seedUser, nexusUser, lateUser].flatMap((who) => (who ? who.errors : [])), []);
});
