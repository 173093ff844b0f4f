/**
 * The CLI's one-line failures carry text it did not write: a proxy's page, a file's name, a
 * snippet of a file that is not JSON. Control characters in it are shown escaped (as in the
 * tables), never drawn on the operator's terminal.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCliCaptured } from '../support/cli-run';

// OSC retitles the window, CSI clears the screen, \r rewrites the line, U+009B is an 8-bit CSI, U+202E reverses what follows.
const HOSTILE = '\x1b]0;owned\x07\x1b[2J\rall good\u009b31m \u202Edesrever';
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/;

const cli = (env: NodeJS.ProcessEnv, ...argv: string[]) => runCliCaptured(argv, env);

function expectEscaped(err: string): void {
  expect(err).toMatch(/^task-scheduler: .*\n$/);
  expect(err.slice(0, -1)).not.toMatch(RAW);
  expect(err).toContain('\\u001b]0;owned\\u0007\\u001b[2J');
  expect(err).toContain('all good\\u009b31m \\u202edesrever');
}

it("a proxy's page that is not JSON", async () => {
  const proxy = http.createServer((_req, res) => {
    res.writeHead(418, { 'content-type': 'text/html' });
    res.end(`<h1>${HOSTILE}</h1>`);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const r = await cli({ TASK_SCHEDULER_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` }, 'queues');
    expect(r.code).toBe(1);
    expectEscaped(r.err);
  } finally {
    await new Promise((r) => proxy.close(r));
  }
});

it("a file's name", async () => {
  const r = await cli({}, 'workflows', 'submit', path.join(tmpdir(), `missing-${HOSTILE}.json`));
  expect(r.code).toBe(2);
  expectEscaped(r.err);
});

it('a snippet of a file that is not JSON', async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'cli-err-')), 'wf.json');
  writeFileSync(file, `x${HOSTILE}`);
  const r = await cli({}, 'workflows', 'submit', file);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/is not JSON/);
  expect(r.err.slice(0, -1)).not.toMatch(RAW);
});
