/**
 * A Redis of one test file's own, for tests that stall it (CLIENT PAUSE): the shared test Redis,
 * paused, would stall every test the other jest worker runs meanwhile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { freePort } from './processes';

/**
 * Runs `define` (which registers the file's fixtures and hooks) with a private Redis started
 * before them and stopped, by its pid, after them: TEST_REDIS_ADDR names it meanwhile, so the
 * stacks they make use it.
 */
export function withPrivateRedis<T>(define: () => T): T {
  let server: ChildProcess | undefined;
  let dir = '';
  beforeAll(async () => {
    const port = await freePort();
    dir = mkdtempSync(path.join(os.tmpdir(), 'ts-private-redis-'));
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    try {
      for (const deadline = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 50))) {
        if (server.exitCode !== null) throw new Error(`redis-server exited (${server.exitCode}) on port ${port}`);
        if ((await probe.ping().catch(() => null)) === 'PONG') break;
        if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within 10 s`);
      }
    } finally {
      probe.disconnect();
    }
    process.env.TEST_REDIS_ADDR = `127.0.0.1:${port}`;
  });
  const defined = define();
  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGKILL');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return defined;
}
