/**
 * `workflows submit` reads a file or stdin that may never end (/dev/zero, a FIFO or a pipe fed
 * without end): the read stops past the largest body any API accepts, with one line and exit 2,
 * instead of filling the heap. Runs the built bin, whose stdin is the process's.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const MAIN = path.resolve(__dirname, '../../dist/services/cli/main.js');
const BOUND = 64 * 1048576;
/** What the test feeds at most: past it, the CLI never stopped reading. */
const FEED_MAX = BOUND + 96 * 1048576;

/** Runs the bin on `argv` while `feed` writes zeros without end into `sink` (its stdin or a FIFO). */
async function endless(argv: string[], fifo?: string): Promise<{ code: number | null; stderr: string; fed: number }> {
  const child = spawn(process.execPath, [MAIN, ...argv], { env: { PATH: process.env.PATH }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  const sink: NodeJS.WritableStream & { destroy(): void } = fifo ? createWriteStream(fifo) : child.stdin;
  if (fifo) child.stdin.end();
  sink.on('error', () => undefined);
  const zeros = Buffer.alloc(1 << 20);
  let fed = 0;
  let exited = false;
  const done = new Promise<number | null>((resolve) => child.on('exit', (code) => ((exited = true), resolve(code))));
  while (!exited && fed < FEED_MAX) {
    fed += zeros.length;
    if (!sink.write(zeros)) await Promise.race([new Promise<void>((r) => sink.once('drain', () => r())), done]);
  }
  if (!exited) child.kill('SIGKILL');
  sink.destroy();
  return { code: await done, stderr, fed };
}

it('stdin without end: refused past the bound, exit 2', async () => {
  const r = await endless(['workflows', 'submit', '-']);
  expect(r.fed).toBeLessThan(FEED_MAX);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`task-scheduler: stdin is larger than ${BOUND} bytes, more than any API accepts (usage: task-scheduler help)\n`);
}, 60_000);

it('a FIFO without end: refused past the bound, exit 2', async () => {
  const fifo = path.join(mkdtempSync(path.join(tmpdir(), 'cli-fifo-')), 'wf');
  execFileSync('mkfifo', [fifo]);
  const r = await endless(['workflows', 'submit', fifo], fifo);
  expect(r.fed).toBeLessThan(FEED_MAX);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`task-scheduler: ${fifo} is larger than ${BOUND} bytes, more than any API accepts (usage: task-scheduler help)\n`);
}, 60_000);
