/**
 * The web console in headless Chromium against the built api and worker processes: sign in (a
 * wrong key is refused), live counts, a dead task retried until it succeeds, a bulk redrive, a
 * running task cancelled, a workflow's graph, another tenant's task not found, no serious
 * accessibility violation on any page, and nothing fetched from any host but the API's.
 * One browser for the file; each page is also photographed at laptop and phone width for the README.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { createKey } from '../../services/core/tenancy/key-store';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { TEST_KEY } from '../support/auth';
import { accessibilityViolations, launchBrowser, TestBrowser } from '../support/browser';
import { startServiceProcesses, ServiceProcesses } from '../support/service-processes';
import { waitFor } from '../support/stack';

// Screenshots are always taken; UPDATE_DOCS=1 writes them over the README's (as the fault suite does docs/reliability.md).
const SCREENSHOTS = process.env.UPDATE_DOCS === '1' ? path.resolve(__dirname, '../../docs/screenshots') : mkdtempSync(path.join(os.tmpdir(), 'console-screenshots-'));
let svc: ServiceProcesses;
let b: TestBrowser;
let page: Page;
let key = '';
let otherKey = '';

beforeAll(async () => {
  [svc, b] = await Promise.all([startServiceProcesses({ label: 'console', env: { QUEUES_CACHE_MS: '200', LIST_SCAN_ROWS: '100' } }), launchBrowser()]);
  page = b.page;
  key = (await createKey(svc.pool, { tenant: 'ops', scopes: ['tasks:write', 'tasks:read'], expiresInMs: null })).key;
  otherKey = (await createKey(svc.pool, { tenant: 'elsewhere', scopes: ['tasks:write', 'tasks:read'], expiresInMs: null })).key;
  // Minutes only when Chromium has to be installed first (npm test installs it before jest).
}, 600_000);

afterAll(async () => {
  await b?.close();
  await svc?.stop();
  if (process.env.UPDATE_DOCS !== '1') rmSync(SCREENSHOTS, { recursive: true, force: true });
});

async function api<T = Record<string, unknown>>(method: string, p: string, body?: unknown, as = key): Promise<{ status: number; body: T }> {
  const res = await fetch(`${svc.url}${p}`, { method, headers: { authorization: `Bearer ${as}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}
const taskOf = async (id: string) => (await api<{ status: string; attempts: number; runs: { outcome: string }[] }>('GET', `/tasks/${id}`)).body;
const until = (id: string, status: string) => waitFor(async () => (await taskOf(id)).status === status, 20_000, `task ${id} to be ${status}`);

async function signIn(withKey: string): Promise<void> {
  await page.goto(`${svc.url}/ui/`);
  await page.getByLabel('API key').fill(withKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function go(hash: string): Promise<void> {
  // Strings, not functions: the browser's globals are not in this (node) program's types.
  await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
}

it('serves the console with a strict CSP, and refuses a wrong key', async () => {
  const res = await page.goto(`${svc.url}/ui`);
  // /ui redirects to /ui/ (relative, so an ingress prefix survives).
  expect(new URL(page.url()).pathname).toBe('/ui/');
  const headers = res!.headers();
  expect(headers['content-security-policy']).toContain("default-src 'none'");
  expect(headers['content-security-policy']).toContain("script-src 'self'");
  expect(headers['x-content-type-options']).toBe('nosniff');
  expect(headers['referrer-policy']).toBe('no-referrer');
  await signIn('tsk_not-a-real-key');
  await page.getByText('The API refused this key (401)').waitFor();
  expect(await page.evaluate('sessionStorage.length')).toBe(0);
});

it('signs in from the keyboard and shows live counts changing as tasks are posted', async () => {
  await page.goto(`${svc.url}/ui/`);
  // The key field has the focus; Enter submits.
  await page.keyboard.type(key);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  // The key is in sessionStorage only: never in the URL.
  expect(page.url()).not.toContain(key);
  expect(await page.evaluate('Object.values(sessionStorage)')).toContain(key);
  const cell = page.locator('[data-priority="low"][data-field="last_minute.enqueued"]');
  // Locators, not waitForFunction: that evaluates a string in the page, which the CSP forbids.
  await waitFor(async () => (await cell.textContent()) === '0', 10_000, 'the first counts');
  for (let i = 0; i < 3; i++) expect((await api('POST', '/tasks', { type: 'noop', priority: 'low' })).status).toBe(201);
  await waitFor(async () => Number(await cell.textContent()) >= 3, 10_000, 'the posted tasks to be counted');
  expect(Number(await cell.textContent())).toBe(3);
  await page.locator('#workers li', { hasText: 'slots' }).first().waitFor();
});

it('finds a dead task, retries it and sees it succeed', async () => {
  const { body: t } = await api<{ id: string }>('POST', '/tasks', { type: 'flaky', payload: { fail_attempts: 1 }, max_retries: 0 });
  await until(t.id, 'dead');
  await go('#/dead');
  await page.getByRole('link', { name: `Task ${t.id}` }).click();
  await page.getByRole('heading', { name: `Task ${t.id}` }).waitFor();
  await page.getByRole('button', { name: 'Retry' }).click();
  await page.locator('.status-line .badge', { hasText: 'succeeded' }).waitFor({ timeout: 15_000 });
  // The timeline shows both attempts: the planned failure, then the success.
  await page.locator('.timeline .run[data-outcome="succeeded"]').waitFor();
  expect(await page.locator('.timeline .run').evaluateAll((els) => els.map((e) => e.getAttribute('data-outcome')))).toEqual(['failed', 'succeeded']);
});

it('bulk-retries every dead task matching a filter, after a confirmation that says how many, in calls within the tenant\'s burst', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await api<{ id: string }>('POST', '/tasks', { type: 'always_fail', max_retries: 0 })).body.id);
  for (const id of ids) await until(id, 'dead');
  // A burst of 2: a retry is admitted like a submission, so the console sends calls no larger.
  await setTenant(svc.pool, 'ops', { rate_limit: 1000, burst: 2 });
  try {
    await new Promise((r) => setTimeout(r, 1500));
    await go('#/dead?type=always_fail');
    await page.getByRole('button', { name: 'Retry all matching' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Retry all 3 dead task(s) matching the filter?').waitFor();
    await dialog.getByRole('button', { name: 'Retry 3' }).click();
    await page.getByText('3 of 3 dead task(s) queued again.').waitFor();
  } finally {
    await setTenant(svc.pool, 'ops', { rate_limit: null, burst: null });
    await new Promise((r) => setTimeout(r, 1500));
  }
  // Each ran once more (and, being always_fail, died again).
  for (const id of ids) await waitFor(async () => (await taskOf(id)).attempts === 2 && (await taskOf(id)).status === 'dead', 15_000, `task ${id} to run again`);
});

it('retries the dead tasks selected on the page', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) ids.push((await api<{ id: string }>('POST', '/tasks', { type: 'flaky', priority: 'low', payload: { fail_attempts: 1 }, max_retries: 0 })).body.id);
  for (const id of ids) await until(id, 'dead');
  await go('#/dead?priority=low');
  await page.getByRole('checkbox', { name: `Select task ${ids[1]}` }).check();
  await page.getByRole('button', { name: 'Retry selected' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Retry 1' }).click();
  await page.getByText('1 task(s) queued again.').waitFor();
  // The list of dead tasks is read again: the one retried is no longer on it; the other still is.
  await waitFor(async () => (await page.getByRole('checkbox', { name: `Select task ${ids[1]}` }).count()) === 0, 5_000, 'the retried task to leave the list');
  expect(await page.getByRole('checkbox', { name: `Select task ${ids[0]}` }).count()).toBe(1);
  await until(ids[1]!, 'succeeded');
  expect((await taskOf(ids[0]!)).status).toBe('dead');
});

it('retries selected dead tasks under a rate limit by waiting as the 429 says, and says why one was refused', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push((await api<{ id: string }>('POST', '/tasks', { type: 'flaky', priority: 'critical', payload: { fail_attempts: 1 }, max_retries: 0 })).body.id);
  for (const id of ids) await until(id, 'dead');
  await go('#/dead?priority=critical');
  for (const id of ids) await page.getByRole('checkbox', { name: `Select task ${id}` }).check();
  // Retried behind the console's back: its retry there is refused (409), for a reason it names.
  expect((await api('POST', `/tasks/${ids[3]}/retry`)).status).toBe(200);
  // One retry a second: each after the first is refused (429, Retry-After: 1) until its turn.
  await setTenant(svc.pool, 'ops', { rate_limit: 1, burst: 1 });
  try {
    await new Promise((r) => setTimeout(r, 1500));
    await page.getByRole('button', { name: 'Retry selected' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Retry 4' }).click();
    await page.getByText(/^3 task\(s\) queued again, 1 refused: 409 Conflict[^:]*: task [0-9a-f-]{36} is (queued|running|succeeded)/).waitFor({ timeout: 15_000 });
  } finally {
    await setTenant(svc.pool, 'ops', { rate_limit: null, burst: null });
    await new Promise((r) => setTimeout(r, 1500));
  }
  for (const id of ids) await until(id, 'succeeded');
});

it('a bulk redrive stopped part way says how many tasks it had already changed', async () => {
  const since = new Date(Date.now() - 1000).toISOString();
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await api<{ id: string }>('POST', '/tasks', { type: 'always_fail', max_retries: 0 })).body.id);
  for (const id of ids) await until(id, 'dead');
  // A burst of 1: one task per call; the second of those calls fails (503) after the first changed one.
  await setTenant(svc.pool, 'ops', { rate_limit: 1000, burst: 1 });
  let sent = 0;
  const failSecond = (route: { request(): { postDataJSON(): { dry_run?: boolean; limit?: number } }; continue(): Promise<void>; fulfill(r: { status: number; contentType: string; body: string }): Promise<void> }) => {
    const body = route.request().postDataJSON();
    if (!body.dry_run && body.limit && ++sent === 2) {
      return route.fulfill({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'the API is restarting' }) });
    }
    return route.continue();
  };
  await page.route('**/tasks/retry*', failSecond);
  try {
    await new Promise((r) => setTimeout(r, 1500));
    await go(`#/dead?type=always_fail&created_after=${encodeURIComponent(since)}`);
    await page.getByRole('button', { name: 'Retry all matching' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Retry 3' }).click();
    await page.getByText('Stopped after 1 of 3 dead task(s) queued again: 503 Service Unavailable: the API is restarting').waitFor();
  } finally {
    await page.unroute('**/tasks/retry*', failSecond);
    await setTenant(svc.pool, 'ops', { rate_limit: null, burst: null });
    await new Promise((r) => setTimeout(r, 1500));
  }
  // And so it was: one of the three ran again.
  await waitFor(async () => (await Promise.all(ids.map(taskOf))).filter((t) => t.attempts === 2 && t.status === 'dead').length === 1, 15_000, 'one task to run again');
  expect((await Promise.all(ids.map(taskOf))).filter((t) => t.attempts === 1).length).toBe(2);
});

it('a confirmation left open when the page changes goes with its page, and changes nothing', async () => {
  const { body: t } = await api<{ id: string }>('POST', '/tasks', { type: 'always_fail', priority: 'high', max_retries: 0 });
  await until(t.id, 'dead');
  await go('#/dead?priority=high');
  await page.getByRole('button', { name: 'Retry all matching' }).click();
  await page.getByRole('dialog').getByText(/Retry all \d+ dead task\(s\) matching the filter\?/).waitFor();
  // Back, or a link typed: the page the dialog belongs to is gone.
  await go('#/overview');
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  expect(await page.getByRole('dialog').count()).toBe(0);
  await page.waitForTimeout(500);
  expect((await taskOf(t.id)).attempts).toBe(1);
});

it('cancels every unfinished task matching a filter, after a confirmation that says how many', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await api<{ id: string }>('POST', '/tasks', { type: 'later.report', delay_ms: 3_600_000 })).body.id);
  await go('#/tasks?type=later.report');
  await page.getByRole('link', { name: `Task ${ids[0]}` }).waitFor();
  await page.getByRole('button', { name: 'Cancel all matching' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText('Cancel all 3 unfinished task(s) matching the filter?').waitFor();
  await dialog.getByRole('button', { name: 'Cancel 3' }).click();
  await page.getByText('3 of 3 task(s) cancelled.').waitFor();
  for (const id of ids) expect((await taskOf(id)).status).toBe('cancelled');
  // The list beside the message is read again: it shows them cancelled, not as they were.
  for (const id of ids) await page.getByRole('row').filter({ hasText: id }).locator('.badge', { hasText: 'cancelled' }).waitFor({ timeout: 5_000 });
});

it('cancels a running task', async () => {
  const { body: t } = await api<{ id: string }>('POST', '/tasks', { type: 'sleeper', payload: { sleep_ms: 60_000 } });
  await until(t.id, 'running');
  await go(`#/tasks/${t.id}`);
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('.status-line .badge', { hasText: 'cancelled' }).waitFor({ timeout: 10_000 });
  expect((await taskOf(t.id)).runs.map((r) => r.outcome)).toEqual(['cancelled']);
});

it("says when a task's page cannot refresh, instead of showing the last answer as current", async () => {
  const { body: t } = await api<{ id: string }>('POST', '/tasks', { type: 'sleeper', payload: { sleep_ms: 60_000 } });
  await until(t.id, 'running');
  await go(`#/tasks/${t.id}`);
  await page.locator('.status-line .badge', { hasText: 'running' }).waitFor();
  const down = (route: { fulfill(r: { status: number; contentType: string; body: string }): Promise<void> }) =>
    route.fulfill({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'the API is restarting' }) });
  await page.route(`**/tasks/${t.id}`, down);
  try {
    await page.getByText(/^Could not refresh: 503 Service Unavailable: the API is restarting/).waitFor({ timeout: 5_000 });
  } finally {
    await page.unroute(`**/tasks/${t.id}`, down);
  }
  // Once the API answers again, the warning goes.
  await waitFor(async () => (await page.getByText(/^Could not refresh/).count()) === 0, 5_000, 'the warning to go');
  expect((await api('POST', `/tasks/${t.id}/cancel`)).status).toBe(202);
});

it("keeps a task page as the operator left it between refreshes: an opened Stack stays open", async () => {
  // Retrying for a minute after its first failure (a real Error, with a stack): the page refreshes all that time.
  const { body: t } = await api<{ id: string }>('POST', '/tasks', { type: 'flaky', payload: { fail_attempts: 'not a number' }, max_retries: 1, retry: { backoff: 'fixed', base_ms: 60_000, jitter: 'none' } });
  await until(t.id, 'retrying');
  await go(`#/tasks/${t.id}`);
  await page.locator('.status-line .badge', { hasText: 'retrying' }).waitFor();
  await page.locator('.timeline details summary').first().click();
  expect(await page.locator('.timeline details[open]').count()).toBe(1);
  // Two refreshes later.
  await page.waitForTimeout(4_500);
  expect(await page.locator('.timeline details[open]').count()).toBe(1);
  expect((await api('POST', `/tasks/${t.id}/cancel`)).status).toBe(200);
});

it('draws a workflow graph whose nodes open their steps', async () => {
  const { body } = await api<{ workflow: { id: string }; steps: { key: string; task_id: string }[] }>('POST', '/workflows', {
    name: 'console-diamond',
    tasks: [
      { key: 'extract', type: 'noop' },
      { key: 'clean', type: 'noop', depends_on: ['extract'] },
      { key: 'stats', type: 'noop', depends_on: ['extract'] },
      { key: 'load', type: 'noop', depends_on: ['clean', 'stats'] },
    ],
  });
  await go(`#/workflows/${body.workflow.id}`);
  await page.locator('svg.dag a.node[data-step="load"]', { hasText: 'succeeded' }).waitFor({ timeout: 15_000 });
  expect(await page.locator('svg.dag a.node').count()).toBe(4);
  expect(await page.locator('svg.dag path.edge').count()).toBe(4);
  // Layers by longest path: extract left of clean and stats, which are left of load.
  const x = async (k: string) => Number(await page.locator(`a.node[data-step="${k}"] rect`).getAttribute('x'));
  expect(await x('extract')).toBeLessThan(await x('clean'));
  expect(await x('clean')).toBe(await x('stats'));
  expect(await x('stats')).toBeLessThan(await x('load'));
  expect(await page.getByRole('link', { name: 'stats succeeded' }).count()).toBe(1);
  await page.locator(`a.node[data-step="stats"]`).click();
  const stats = body.steps.find((s) => s.key === 'stats')!;
  await page.getByRole('heading', { name: `Task ${stats.task_id}` }).waitFor();
});

it('shows a schedule\'s next ticks, pauses, resumes and triggers it', async () => {
  expect((await api('POST', '/schedules', { name: 'nightly-report', cron: '30 2 * * *', timezone: 'Europe/Berlin', task: { type: 'noop' } })).status).toBe(201);
  await go('#/schedules');
  await page.getByRole('link', { name: 'nightly-report' }).click();
  await page.getByRole('heading', { name: 'Schedule nightly-report' }).waitFor();
  // Five next ticks, each at 02:30 Berlin time.
  await page.getByRole('region', { name: 'Next fire times' }).locator('tbody tr').nth(4).waitFor();
  expect(await page.getByRole('region', { name: 'Next fire times' }).locator('tbody tr').count()).toBe(5);
  expect(await page.getByRole('region', { name: 'Next fire times' }).locator('tbody tr').first().textContent()).toMatch(/T02:30:00\+0[12]:00/);
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.locator('.status-line .badge', { hasText: 'paused' }).waitFor();
  expect((await api<{ paused: boolean }>('GET', '/schedules/nightly-report')).body.paused).toBe(true);
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.locator('.status-line .badge', { hasText: 'active' }).waitFor();
  await page.getByRole('button', { name: 'Trigger now' }).click();
  await page.getByText(/Triggered: task [0-9a-f-]{36} created/).waitFor();
  await page.getByRole('region', { name: 'Latest tasks of this schedule' }).getByText('triggered').waitFor();
});

it("says when a schedule's page cannot show what Pause did, instead of still showing it active", async () => {
  await go('#/schedules/nightly-report');
  await page.locator('.status-line .badge', { hasText: 'active' }).waitFor();
  const down = (route: { request(): { method(): string }; fallback(): Promise<void>; fulfill(r: { status: number; contentType: string; body: string }): Promise<void> }) =>
    route.request().method() === 'GET'
      ? route.fulfill({ status: 503, contentType: 'application/problem+json', body: JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'the API is restarting' }) })
      : route.fallback();
  await page.route('**/schedules/nightly-report?**', down);
  try {
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByText(/^Could not refresh: 503 Service Unavailable: the API is restarting/).waitFor({ timeout: 5_000 });
  } finally {
    await page.unroute('**/schedules/nightly-report?**', down);
  }
  expect((await api<{ paused: boolean }>('GET', '/schedules/nightly-report')).body.paused).toBe(true);
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.locator('.status-line .badge', { hasText: 'paused' }).waitFor();
  expect(await page.getByText(/^Could not refresh/).count()).toBe(0);
  await page.getByRole('button', { name: 'Resume' }).click();
  await page.locator('.status-line .badge', { hasText: 'active' }).waitFor();
});

it('a double click on an action sends it once: one task per Trigger now, no 409 after a Retry', async () => {
  const triggered = async () => (await api<{ tasks: unknown[] }>('GET', '/tasks?schedule=nightly-report&limit=100')).body.tasks.length;
  const before = await triggered();
  await go('#/schedules/nightly-report');
  await page.getByRole('button', { name: 'Trigger now' }).dblclick();
  await page.getByText(/Triggered: task [0-9a-f-]{36} created/).waitFor();
  await page.waitForTimeout(1000);
  expect(await triggered()).toBe(before + 1);

  const { body: t } = await api<{ id: string }>('POST', '/tasks', { type: 'flaky', payload: { fail_attempts: 1 }, max_retries: 0 });
  await until(t.id, 'dead');
  await go(`#/tasks/${t.id}`);
  await page.locator('.status-line .badge', { hasText: 'dead' }).waitFor();
  await page.getByRole('button', { name: 'Retry' }).dblclick();
  await until(t.id, 'succeeded');
  await page.waitForTimeout(1000);
  expect(await page.locator('.notice').first().textContent()).toBe('Queued again.');
});

it('a link whose path is not valid percent-encoding shows an error instead of leaving the page before it up', async () => {
  await go('#/schedules');
  await page.getByRole('heading', { name: 'Schedules' }).waitFor();
  await go('#/tasks/%E0%A4%A');
  await page.getByRole('heading', { name: 'Something went wrong' }).waitFor({ timeout: 5_000 });
  expect(await page.getByRole('heading', { name: 'Schedules' }).count()).toBe(0);
});

it("does not show another tenant's task", async () => {
  const { body: t } = await api<{ id: string }>('POST', '/tasks', { type: 'noop' }, otherKey);
  await go(`#/tasks/${t.id}`);
  await page.getByText(`No task ${t.id} (404)`).waitFor();
});

it('has no serious accessibility violation on any page, at laptop and phone width (screenshots for the README)', async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const { body: dead } = await api<{ tasks: { id: string }[] }>('GET', '/tasks?status=dead&limit=1');
  const { body: wfs } = await api<{ workflows: { id: string }[] }>('GET', '/workflows?limit=1');
  const pages: [string, string][] = [
    ['overview', '#/overview'],
    ['tasks', '#/tasks'],
    ['task', `#/tasks/${dead.tasks[0]!.id}`],
    ['dead-letters', '#/dead'],
    ['workflow', `#/workflows/${wfs.workflows[0]!.id}`],
    ['schedules', '#/schedules'],
    ['schedule', '#/schedules/nightly-report'],
  ];
  for (const [width, height, label] of [[1280, 800, 'laptop'], [390, 844, 'phone']] as const) {
    await page.setViewportSize({ width, height });
    for (const [name, hash] of pages) {
      await go(hash);
      await page.locator('#page-title').waitFor();
      await page.waitForLoadState('networkidle');
      if (name === 'overview' && label === 'laptop') {
        // Some work in flight, and a few samples of it, so the page is checked (and pictured) with live
        // counts and sparklines; the README's picture waits for more samples.
        for (const [priority, n] of [['high', 6], ['default', 12], ['low', 3]] as const) {
          await api('POST', '/tasks/batch', { tasks: Array.from({ length: n }, () => ({ type: 'sleeper', priority, payload: { sleep_ms: 3000 } })) });
        }
        await page.waitForTimeout(process.env.UPDATE_DOCS === '1' ? 5000 : 1500);
      }
      expect({ page: name, width, violations: await accessibilityViolations(page) }).toEqual({ page: name, width, violations: [] });
      await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${label}.png`) });
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}, 120_000);

it('lets an admin key see tenants with their usage, create a key (shown once) and revoke it; other keys see no Admin page', async () => {
  expect(await page.getByRole('link', { name: 'Admin' }).count()).toBe(0);
  await page.getByRole('button', { name: 'Sign out' }).click();
  expect(await page.evaluate('sessionStorage.length')).toBe(0);
  await page.getByLabel('API key').fill(TEST_KEY);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('link', { name: 'Admin' }).click();
  const tenants = page.getByRole('region', { name: 'Tenants' });
  await tenants.getByRole('row').filter({ hasText: 'elsewhere' }).waitFor();
  await tenants.getByRole('row').filter({ hasText: 'ops' }).first().waitFor();
  const form = page.getByRole('form', { name: 'Create a key' });
  await form.getByLabel('Tenant').fill('console-made');
  await form.getByLabel('Description').fill('made in the console');
  await page.getByRole('button', { name: 'Create key' }).click();
  const text = (await page.locator('#new-key-text').textContent())!;
  expect(text).toMatch(/^tsk_[0-9a-f]{16}_/);
  expect((await api('GET', '/queues', undefined, text)).status).toBe(200);
  const id = text.slice(4, 20);
  await page.getByRole('button', { name: `Revoke key ${id}` }).click();
  await page.getByText(`Key ${id} revoked`).waitFor();
  // Refused within AUTH_CACHE_MS (the API trusted the key it had just checked for that long).
  await waitFor(async () => (await api('GET', '/queues', undefined, text)).status === 401, 5_000, 'the revoked key to be refused');
  expect({ violations: await accessibilityViolations(page) }).toEqual({ violations: [] });
  for (const [width, height, label] of [[1280, 800, 'laptop'], [390, 844, 'phone']] as const) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: path.join(SCREENSHOTS, `admin-${label}.png`) });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
});

it('a double click on Create key makes one key, not a second one whose text is never shown', async () => {
  // Signed in with the admin key (the test above).
  await go('#/admin');
  const form = page.getByRole('form', { name: 'Create a key' });
  await form.getByLabel('Tenant').fill('double-click');
  await page.getByRole('button', { name: 'Create key' }).dblclick();
  await page.locator('#new-key-text').waitFor();
  await page.waitForTimeout(1000);
  const { body } = await api<{ keys: { tenant: string }[] }>('GET', '/admin/keys', undefined, TEST_KEY);
  expect(body.keys.filter((k) => k.tenant === 'double-click')).toHaveLength(1);
});

it('a page left before its data arrived does not draw over the page that followed it', async () => {
  // Signed in with the admin key (the test above). The schedules' list answers 1.5 s late.
  const late = (route: { continue(): Promise<void> }) => new Promise<void>((r) => setTimeout(r, 1500)).then(() => route.continue());
  await page.route('**/schedules?**', late);
  try {
    await go('#/schedules');
    await page.getByText('Loading…').waitFor();
    await go('#/admin');
    const tenants = page.getByRole('region', { name: 'Tenants' });
    await tenants.getByRole('row').filter({ hasText: 'elsewhere' }).waitFor();
    // The schedules' answer arrives, and the Admin page stays.
    await page.waitForResponse('**/schedules?**');
    await page.waitForTimeout(200);
    expect(await page.getByRole('heading', { name: 'Admin' }).count()).toBe(1);
    expect(await page.getByRole('heading', { name: 'Schedules' }).count()).toBe(0);
    expect(await tenants.getByRole('row').filter({ hasText: 'elsewhere' }).count()).toBe(1);
  } finally {
    await page.unroute('**/schedules?**', late);
  }
});

it('a page of dead letters that read its whole stretch without a match says the next page carries on, not that none matches', async () => {
  // A tenant of its own: one dead always_fail task, then 100 newer dead flaky ones, one page's
  // whole read (LIST_SCAN_ROWS=100 here).
  const stretchKey = (await createKey(svc.pool, { tenant: 'stretch', scopes: ['tasks:write', 'tasks:read'], expiresInMs: null })).key;
  const { body: old } = await api<{ id: string }>('POST', '/tasks', { type: 'always_fail', max_retries: 0 }, stretchKey);
  await waitFor(async () => (await api<{ status: string }>('GET', `/tasks/${old.id}`, undefined, stretchKey)).body.status === 'dead', 15_000, 'the old task to die');
  expect((await api('POST', '/tasks/batch', { tasks: Array.from({ length: 100 }, () => ({ type: 'flaky', payload: { fail_attempts: 1 }, max_retries: 0 })) }, stretchKey)).status).toBe(200);
  await waitFor(async () => (await api<{ tasks: unknown[] }>('GET', '/tasks?status=dead&type=flaky&limit=100', undefined, stretchKey)).body.tasks.length === 100, 30_000, 'the flaky tasks to die');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await signIn(stretchKey);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await go('#/dead?type=always_fail');
  await page.getByText('No dead task in this stretch; the next page carries on the search.').waitFor();
  expect(await page.getByText('No dead task matches.').count()).toBe(0);
  await page.getByRole('link', { name: 'Next page' }).click();
  await page.getByRole('link', { name: `Task ${old.id}` }).waitFor();
});

it('fetched nothing from any other host, broke no CSP rule, and logged no key', () => {
  expect(b.offHost).toEqual([]);
  expect(b.pageProblems).toEqual([]);
  expect(svc.api.output()).not.toContain(key);
  expect(svc.api.output()).not.toContain(otherKey);
  expect(svc.api.output()).not.toContain(TEST_KEY);
});
