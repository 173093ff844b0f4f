/** The contract between scripts/local-services.sh and the jest harness that reads its env file. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnvFile, REPO_ROOT } from '../support/global-setup';

const script = path.join(REPO_ROOT, 'scripts/local-services.sh');

it('parses plain and single-quoted values', () => {
  const env = parseEnvFile("# comment\nA=postgres://x@127.0.0.1:1/db?sslmode=disable\nB='/path with space/it'\\''s'\n\nnot a line\n");
  expect(env).toEqual({ A: 'postgres://x@127.0.0.1:1/db?sslmode=disable', B: "/path with space/it's" });
});

it('runs the test services privately, on loopback ports other than the system defaults', () => {
  const env = parseEnvFile(readFileSync(path.join(REPO_ROOT, '.data/test/env'), 'utf8'));
  for (const key of ['POSTGRES_URL', 'PG_ADMIN_URL', 'REDIS_ADDR', 'PG_PID', 'REDIS_PID', 'PG_PORT', 'REDIS_PORT', 'PG_DATA', 'PG_BIN']) {
    expect(env[key]).toBeTruthy();
  }
  expect(env.PG_PORT).not.toBe('5432');
  expect(env.REDIS_PORT).not.toBe('6379');
  expect(env.POSTGRES_URL).toBe(`postgres://app:app@127.0.0.1:${env.PG_PORT}/app?sslmode=disable`);
  expect(process.env.TEST_PG_ADMIN_URL).toBe(env.PG_ADMIN_URL);
  expect(process.env.TEST_REDIS_ADDR).toBe(`127.0.0.1:${env.REDIS_PORT}`);
  // `status` is what global-setup uses to tell "started" from "reused"; `env` keeps stdout clean.
  execFileSync('bash', [script, 'status', 'test'], { stdio: 'ignore' });
  expect(execFileSync('bash', [script, 'env', 'test'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).toBe(
    readFileSync(path.join(REPO_ROOT, '.data/test/env'), 'utf8'),
  );
});

it('rejects an unknown command or a profile name that could escape .data/', () => {
  const extra = [['start', 'test', 'x'], ['cluster-start', 'test', 'x'], ['cluster-failover', 'test'], ['cluster-failover', 'test', '1', 'kill', 'x'], ['cluster-status', '../x']];
  for (const args of [['restart', 'test'], ['start', '../x'], ['start'], ...extra]) {
    expect(() => execFileSync('bash', [script, ...args], { stdio: 'ignore' })).toThrow();
  }
});
