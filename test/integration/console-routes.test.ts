/**
 * How the API serves the web console: the files under UI_BASE_PATH only (a deep path behind an
 * ingress too), with a strict CSP and no-sniff/no-referrer headers, revalidated by ETag; the page
 * finds the API relative to itself; other methods are 405, unknown files 404 (problem+json);
 * nothing is served when the console is off, and the rest of the API is unchanged.
 * Needs `npm run build` (dist/console), like the e2e tests.
 */
import { createApp } from '../../services/api/app';
import { CONSOLE_CSP } from '../../services/api/console/console-routes';
import { RunningServer, startServer } from '../../services/api/server';
import { apiMetrics, createRegistry } from '../../services/core/observability/metrics';
import { createStack, silentLog, Stack } from '../support/stack';

let stack: Stack;
const servers: RunningServer[] = [];

async function api(console?: { basePath: string }): Promise<string> {
  const app = createApp({ pool: stack.pool, queue: stack.queue, log: silentLog, metrics: apiMetrics(createRegistry('api')), maxBodyBytes: 1 << 20, defaultMaxRetries: 5, idempotencyTtlMs: 60_000, console });
  const server = await startServer(app, '127.0.0.1:0');
  servers.push(server);
  return `http://127.0.0.1:${server.address.port}`;
}

beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  for (const s of servers) await s.stop();
  await stack.close();
});

it('serves the page and its files under /ui with a strict CSP, and a relative redirect from /ui', async () => {
  const url = await api({ basePath: '/ui' });
  const redirect = await fetch(`${url}/ui`, { redirect: 'manual' });
  expect({ status: redirect.status, location: redirect.headers.get('location') }).toEqual({ status: 308, location: 'ui/' });
  const page = await fetch(`${url}/ui/`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
  expect(page.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
  expect(page.headers.get('x-content-type-options')).toBe('nosniff');
  expect(page.headers.get('referrer-policy')).toBe('no-referrer');
  const html = await page.text();
  // The API is one level up from /ui/; no inline script or style in the page.
  expect(html).toContain('<meta name="api-base" content="../">');
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/);
  expect(html).not.toMatch(/style=/);
  const js = await fetch(`${url}/ui/main.js`);
  expect({ status: js.status, type: js.headers.get('content-type'), csp: js.headers.get('content-security-policy') }).toEqual({ status: 200, type: 'text/javascript; charset=utf-8', csp: CONSOLE_CSP });
  const etag = js.headers.get('etag')!;
  expect((await fetch(`${url}/ui/main.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
  expect((await fetch(`${url}/ui/pages/tasks.js`)).status).toBe(200);
  expect((await fetch(`${url}/ui/style.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
});

it('answers 404 for unknown or private files and 405 for other methods, as problem+json', async () => {
  const url = await api({ basePath: '/ui' });
  for (const p of ['/ui/nope.js', '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/main.js.map', '/uifoo']) {
    const res = await fetch(`${url}${p}`);
    expect({ p, status: res.status, type: res.headers.get('content-type') }).toEqual({ p, status: 404, type: 'application/problem+json; charset=utf-8' });
  }
  const post = await fetch(`${url}/ui/`, { method: 'POST' });
  expect({ status: post.status, allow: post.headers.get('allow') }).toEqual({ status: 405, allow: 'GET, HEAD' });
});

it('serves under a deeper UI_BASE_PATH, with the API found two levels up; nothing at all when off', async () => {
  const deep = await api({ basePath: '/ops/console' });
  expect((await fetch(`${deep}/ui/`)).status).toBe(404);
  const html = await (await fetch(`${deep}/ops/console/`)).text();
  expect(html).toContain('<meta name="api-base" content="../../">');
  // The page differs by where it is served (its api-base), so its ETag does too: a browser holding
  // the /ui page must not be told 304 for the same URL once UI_BASE_PATH (and the page) changed.
  const ui = await api({ basePath: '/ui' });
  const [deepPage, uiPage] = await Promise.all([fetch(`${deep}/ops/console/`), fetch(`${ui}/ui/`)]);
  expect(deepPage.headers.get('etag')).not.toBe(uiPage.headers.get('etag'));
  expect((await fetch(`${deep}/ops/console/`, { headers: { 'if-none-match': uiPage.headers.get('etag')! } })).status).toBe(200);
  const off = await api(undefined);
  expect((await fetch(`${off}/ui/`)).status).toBe(404);
  // The API itself is unchanged.
  expect((await fetch(`${off}/healthz`)).status).toBe(200);
});
