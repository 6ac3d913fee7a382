// The demo page (ws-bridge/src/demo.html, served by meno-bridge at "/") driven
// in real headless Chromium: a teacher and a student, each in their own
// browser context, join one session through the page's join form, then chat,
// type, take/move/release the lease, and leave.
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

async function openPage(name, role) {
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
  await byTestId(page, 'join-session').fill(SESSION_ID);
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
