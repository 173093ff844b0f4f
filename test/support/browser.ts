/**
 * Headless Chromium (Debian's /usr/bin/chromium, installed by scripts/ensure-chromium.sh) driven by
 * playwright-core, which never downloads a browser. Every request that would leave 127.0.0.1 is
 * aborted and recorded, so a test can assert the page needs no other host; CSP reports printed on
 * the console are recorded too.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const REPO_ROOT = path.resolve(__dirname, '../..');
export const CHROMIUM = '/usr/bin/chromium';

// Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Requests to any host but 127.0.0.1 (aborted). */
  offHost: string[];
  /** Console messages about Content-Security-Policy violations, and page errors. */
  pageProblems: string[];
  close(): Promise<void>;
}

export async function launchBrowser(viewport = { width: 1280, height: 800 }): Promise<TestBrowser> {
  execFileSync('bash', [path.join(REPO_ROOT, 'scripts/ensure-chromium.sh')], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  const profile = mkdtempSync(path.join(os.tmpdir(), 'console-chromium-'));
  // A fresh, empty profile each time (playwright passes it as --user-data-dir).
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport, serviceWorkers: 'block' });
  const offHost: string[] = [];
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'data:' || u.hostname === '127.0.0.1') return route.continue();
    offHost.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageProblems: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) pageProblems.push(m.text());
  });
  page.on('pageerror', (err) => pageProblems.push(`pageerror: ${err.message}`));
  return {
    context,
    page,
    offHost,
    pageProblems,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's serious and critical violations on the page as it is now (injected from node_modules, not the network). */
export async function accessibilityViolations(page: Page): Promise<{ id: string; impact: string; targets: string[] }[]> {
  // evaluate runs through the DevTools protocol, which the page's CSP does not govern (a <script> tag would be refused).
  await page.evaluate(`${AXE};0`);
  // A string, not a function: the browser's globals are not in this (node) program's types.
  return page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
    r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.map((n) => n.target.join(' ')) })))`);
}
