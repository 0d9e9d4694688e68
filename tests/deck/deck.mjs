// Drives the command deck of a running `autolake serve` in Debian's
// headless Chromium, as each of the demo's users, and saves a screenshot of
// every view. Run by engine/tests/cli/deck.rs, which sets:
//   DECK_URL          http://127.0.0.1:PORT
//   DECK_USERS        {"admin": "…", "demo_engineer": "…", …} (passwords)
//   DECK_SCREENSHOTS  the folder for the screenshots
// Prints one line `DECK OK {…}` when every check holds; any failed check
// throws, which exits non-zero with the reason.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = process.env.DECK_URL;
const users = JSON.parse(process.env.DECK_USERS);
const shots = process.env.DECK_SCREENSHOTS;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const outside = [];   // requests for anything but the deck
const pageErrors = [];
const facts = {};

async function context(options) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  // What the Content-Security-Policy refuses is a fault of the page.
  await ctx.addInitScript(() => document.addEventListener('securitypolicyviolation',
    (e) => console.error('CSP refused ' + e.violatedDirective + ' ' + e.blockedURI)));
  ctx.on('request', (r) => { if (!r.url().startsWith(base + '/') && !r.url().startsWith('data:')) outside.push(r.url()); });
  return ctx;
}
async function open(ctx) {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 4[0-9][0-9]/.test(m.text())) pageErrors.push(m.text()); });
  await page.goto(base + '/');
  return page;
}
async function signIn(page, user, password) {
  await page.getByLabel('User', { exact: true }).fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}
async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}
async function navNames(page) {
  return page.locator('#nav-list a').allInnerTexts();
}
// What each view shows once its data is in.
const READY = {
  overview: '.cards .card',
  tables: '#tables tbody tr, .empty',
  sources: '#sources tbody tr, .empty',
  jobs: '#jobs tbody tr, .empty',
  models: '#models tbody tr, .empty',
  drift: 'figure.card svg, .empty',
  devices: '#devices tbody tr',
  lineage: 'svg.graph, .empty',
  audit: '#audit tbody tr, .empty',
  console: 'textarea#sql',
};
const TITLE = {
  overview: 'Overview', tables: 'Tables', sources: 'Sources', jobs: 'Jobs', models: 'Models',
  drift: 'Drift', devices: 'Devices', lineage: 'Lineage', audit: 'Audit', console: 'SQL console',
};
async function visit(page, view, user) {
  await page.goto(base + '/#/' + view);
  await page.locator('main h1', { hasText: TITLE[view] }).waitFor();
  await page.locator(READY[view]).first().waitFor({ timeout: 15000 });
  if (user) await shot(page, `${user}-${view}`);
}
async function api(page, method, path, headers, body) {
  return page.evaluate(async ([method, path, headers, body]) => {
    const r = await fetch('/api/v1/' + path, { method, headers, body });
    return { status: r.status, body: await r.json().catch(() => null), retry: r.headers.get('retry-after') };
  }, [method, path, headers || {}, body === undefined ? undefined : JSON.stringify(body)]);
}
async function csrf(page) {
  return (await api(page, 'GET', 'session')).body.csrf;
}
async function statusSays(page, text) {
  await page.locator('#status', { hasText: text }).waitFor({ timeout: 15000 });
}

// ---- signing in ----------------------------------------------------------
{
  const ctx = await context();
  const page = await open(ctx);
  await page.locator('#signin-form').waitFor();
  await shot(page, 'signin');
  // The keyboard starts in the user field; Tab moves on to the password.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'signin-user');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'signin-password');
  await signIn(page, 'demo_engineer', 'not-the-password');
  await page.locator('#signin-error', { hasText: 'invalid user name or password' }).waitFor();
  await shot(page, 'signin-failed');
  // Guessing one account: five failures, then a wait.
  const statuses = [];
  let retry = null;
  for (let i = 0; i < 6; i++) {
    const r = await api(page, 'POST', 'session', { 'content-type': 'application/json' }, { user: 'mallory', password: 'guess' + i });
    statuses.push(r.status); retry = r.retry;
  }
  assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
  assert.ok(Number(retry) > 0, 'Retry-After on 429');
  // Sign-in takes JSON only (a cross-site form cannot post it).
  const form = await api(page, 'POST', 'session', { 'content-type': 'application/x-www-form-urlencoded' }, undefined);
  assert.equal(form.status, 415);
  // Nothing without a session.
  assert.equal((await api(page, 'GET', 'overview')).status, 401);
  await ctx.close();
}

// ---- each role -------------------------------------------------------------
const EXPECTED = {
  admin: ['Overview', 'Tables', 'Sources', 'Jobs', 'Models', 'Drift', 'Devices', 'Lineage', 'Audit', 'SQL console'],
  demo_engineer: ['Overview', 'Tables', 'Sources', 'Jobs', 'Drift', 'Devices', 'Lineage', 'SQL console'],
  demo_scientist: ['Overview', 'Tables', 'Models', 'Drift', 'Devices', 'Lineage', 'SQL console'],
  demo_auditor: ['Overview', 'Tables', 'Sources', 'Jobs', 'Models', 'Drift', 'Devices', 'Lineage', 'Audit', 'SQL console'],
};
const VIEW_OF = Object.fromEntries(Object.entries(TITLE).map(([k, v]) => [v, k]));

for (const [user, nav] of Object.entries(EXPECTED)) {
  const ctx = await context();
  const page = await open(ctx);
  await signIn(page, user, users[user]);
  await page.locator('#nav-list a').first().waitFor();
  assert.deepEqual(await navNames(page), nav, `${user}'s views`);
  // The session cookie: HttpOnly, SameSite=Strict, expiring; out of reach of scripts.
  const cookie = (await ctx.cookies()).find((c) => c.name === 'autolake_session');
  assert.ok(cookie, 'a session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.ok(cookie.expires > Date.now() / 1000 + 60, 'the cookie expires like a token');
  assert.equal(await page.evaluate(() => document.cookie.includes('autolake_session')), false);
  for (const title of nav) await visit(page, VIEW_OF[title], user);

  // A request that changes something needs the CSRF token.
  const noToken = await api(page, 'POST', 'jobs/demo_price_drift/run', { 'content-type': 'application/json' });
  assert.equal(noToken.status, 403);
  assert.match(noToken.body.error.message, /CSRF/);
  const wrong = await api(page, 'POST', 'jobs/demo_price_drift/run', { 'x-csrf-token': 'f'.repeat(64) });
  assert.equal(wrong.status, 403);

  if (user === 'admin') {
    await visit(page, 'jobs');
    assert.ok(await page.getByRole('button', { name: 'Run job demo_score_incoming now' }).isVisible());
    await visit(page, 'models');
    await page.getByLabel('Stage of demo_large_orders version 1').selectOption('staging');
    await page.getByRole('button', { name: 'Set stage' }).first().click();
    await statusSays(page, "ALTER MODEL demo_large_orders SET STAGE 'staging' VERSION 1: done");
    await page.locator('#models tbody tr', { hasText: 'staging' }).first().waitFor();
    await shot(page, 'admin-models-staged');
    await visit(page, 'audit');
    await page.locator('.banner', { hasText: 'chain intact' }).waitFor();
    await page.getByLabel('Interface', { exact: true }).selectOption('web');
    await page.getByLabel('Kind', { exact: true }).fill('ALTER MODEL');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('#audit tbody tr', { hasText: "SET STAGE 'staging'" }).first().waitFor();
    await shot(page, 'admin-audit-filtered');
    await visit(page, 'lineage');
    for (const node of ['demo_files', 'demo.orders', 'demo_large_orders', 'demo_score_incoming', 'demo.order_scores']) {
      assert.ok(await page.locator('svg.graph g.node', { hasText: node }).count() > 0, `lineage shows ${node}`);
    }
    assert.ok(await page.locator('li', { hasText: 'model demo_large_orders → job demo_score_incoming' }).count() > 0);
    await page.locator('svg.graph g.node', { hasText: 'demo_large_orders' }).first().click();
    assert.ok(await page.locator('svg.graph path.edge.lit').count() > 0, 'a selected node lights its edges');
    await shot(page, 'admin-lineage-selected');
  }
  if (user === 'demo_engineer') {
    await visit(page, 'jobs');
    // Pause and resume from the page.
    await page.getByRole('button', { name: 'Pause job demo_price_drift' }).click();
    await statusSays(page, 'ALTER JOB demo_price_drift PAUSE: done');
    await page.getByRole('button', { name: 'Resume job demo_price_drift' }).click();
    await statusSays(page, 'ALTER JOB demo_price_drift RESUME: done');
    // Run now: the run lands in the job's runs.
    const before = (await api(page, 'GET', 'jobs/demo_price_drift/runs')).body.rows.length;
    await page.getByRole('button', { name: 'Run job demo_price_drift now' }).click();
    await statusSays(page, `RUN JOB demo_price_drift: succeeded (run ${before + 1})`);
    await page.locator('main h2', { hasText: 'Runs of demo_price_drift' }).waitFor();
    await page.locator('#runs tbody tr', { hasText: String(before + 1) }).first().waitFor();
    facts.engineer_run = before + 1;
    await shot(page, 'demo_engineer-job-run');
    // Time travel preview of a table's first version.
    await page.goto(base + '/#/tables/demo.orders');
    await page.locator('main h2', { hasText: 'demo.orders' }).waitFor();
    await page.getByLabel('Version', { exact: true }).selectOption('0');
    await page.getByRole('button', { name: 'Show rows' }).click();
    await page.locator('caption', { hasText: 'as of version 0' }).waitFor();
    await shot(page, 'demo_engineer-table-time-travel');
    // Signing out ends the session.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#signin-form').waitFor();
    assert.equal((await api(page, 'GET', 'overview')).status, 401);
  }
  if (user === 'demo_scientist') {
    await visit(page, 'models');
    assert.equal(await page.getByRole('button', { name: 'Set stage' }).count(), 0, 'no stage change offered');
    // The server refuses what the page does not offer, and audits it.
    const token = await csrf(page);
    const refused = await api(page, 'POST', 'jobs/demo_score_incoming/run', { 'x-csrf-token': token });
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /permission denied/);
    const stage = await api(page, 'POST', 'models/demo_large_orders/stage', { 'x-csrf-token': token, 'content-type': 'application/json' }, { version: 1, stage: 'production' });
    assert.equal(stage.status, 403);
    // A name that is not an identifier never reaches a statement.
    const hostile = await api(page, 'POST', "jobs/x%3B%20DROP%20TABLE%20demo.orders/run", { 'x-csrf-token': token });
    assert.equal(hostile.status, 400);
    // The console: row policies hold, errors point at their place.
    await visit(page, 'console');
    await page.getByLabel(/SQL statements/).fill('SELECT count(*) AS customers FROM demo.customers');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.locator('#result tbody td', { hasText: '12' }).waitFor();
    await shot(page, 'demo_scientist-console-result');
    await page.getByLabel(/SQL statements/).fill('SELECT 1;\nSELEC region FROM demo.customers');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.locator('[role=alert]', { hasText: 'line 2, column 1' }).waitFor();
    await page.locator('.caret', { hasText: '^ line 2, column 1' }).waitFor();
    await shot(page, 'demo_scientist-console-error');
    await page.getByLabel(/SQL statements/).fill('SELECT region, count(*) AS n FROM demo.customers GROUP BY region');
    await page.getByRole('button', { name: 'EXPLAIN ANALYZE' }).click();
    await page.locator('#result', { hasText: 'output_rows' }).waitFor();
    await shot(page, 'demo_scientist-console-explain');
    // Masked names in a table preview.
    await page.goto(base + '/#/tables/demo.customers');
    await page.getByRole('button', { name: 'Show rows' }).click();
    await page.locator('table[id^="preview-"] tbody tr').first().waitFor();
    const names = await page.locator('table[id^="preview-"] tbody tr td:nth-child(2)').allInnerTexts();
    assert.ok(names.length > 0 && names.every((n) => n.endsWith('***')), `masked names: ${names}`);
  }
  if (user === 'demo_auditor') {
    await visit(page, 'tables');
    assert.ok(await page.locator('#tables tbody tr', { hasText: 'audit_log' }).count() > 0, 'system tables listed');
    assert.equal(await page.locator('#tables tbody tr', { hasText: 'demo' }).count(), 0, 'no lake tables');
    await visit(page, 'jobs');
    assert.equal(await page.getByRole('button', { name: /Run job/ }).count(), 0, 'no actions for an auditor');
    await visit(page, 'audit');
    await page.getByLabel('Outcome', { exact: true }).selectOption('denied');
    await page.getByRole('button', { name: 'Apply' }).click();
    // The filtered list replaces the whole one: denials only, the
    // scientist's refused delete among them.
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll('#audit tbody tr td:nth-child(9)')];
      return cells.length > 0 && cells.every((c) => c.innerText.trim() === 'denied');
    }, null, { timeout: 15000 });
    await page.locator('#audit tbody tr', { hasText: 'demo_scientist' }).first().waitFor();
    await shot(page, 'demo_auditor-audit-denied');
    await visit(page, 'console');
    await page.getByLabel(/SQL statements/).fill('DELETE FROM demo.orders');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.locator('[role=alert]', { hasText: 'permission denied' }).waitFor();
  }
  await ctx.close();
}

// ---- a phone-width screen in dark mode ------------------------------------
{
  const ctx = await context({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true });
  const page = await open(ctx);
  await signIn(page, 'admin', users.admin);
  await page.locator('#nav-list a').first().waitFor({ state: 'attached' });
  await visit(page, 'overview', 'narrow-dark');
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, 'rgb(15, 20, 25)', 'dark mode follows the system');
  assert.equal(await page.locator('#nav').isVisible(), false, 'the menu starts closed');
  await page.getByRole('button', { name: 'Show views' }).click();
  await page.locator('#nav').waitFor();
  await shot(page, 'narrow-dark-menu');
  // Nothing overflows the screen sideways but scrollable tables.
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(wide <= 390, `page width ${wide}`);
  await visit(page, 'jobs', 'narrow-dark');
  await visit(page, 'devices', 'narrow-dark');
  await ctx.close();
}

await browser.close();
assert.deepEqual(outside, [], 'no request leaves the deck');
assert.deepEqual(pageErrors, [], 'no script errors');
console.log('DECK OK ' + JSON.stringify(facts));
