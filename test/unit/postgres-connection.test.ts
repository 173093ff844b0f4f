/**
 * How POSTGRES_URL's TLS parameters become node-postgres options (postgres-connection.ts), without
 * a server: test/integration/tls.test.ts connects for real.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { postgresConnection, postgresTls, PostgresUrlError } from '../../services/core/db/postgres-connection';

let dir: string;
let ca: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pg-conn-'));
  ca = path.join(dir, 'ca.crt');
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = 'postgres://app:s3cret@db.example.internal:5432/tasks';

test('no sslmode, or disable: no TLS, and the URL goes through without TLS parameters', () => {
  expect(postgresConnection(base)).toEqual({ connectionString: base, ssl: false });
  expect(postgresConnection(`${base}?sslmode=disable&application_name=x`)).toEqual({ connectionString: `${base}?application_name=x`, ssl: false });
});

test('verify-full and require: the CA file read, host name checked (Node default), parameters removed', () => {
  for (const mode of ['verify-full', 'require']) {
    const c = postgresConnection(`${base}?sslmode=${mode}&sslrootcert=${ca}&connect_timeout=5`);
    expect(c.connectionString).toBe(`${base}?connect_timeout=5`);
    expect(c.ssl).toEqual({ ca: expect.stringContaining('BEGIN CERTIFICATE'), rejectUnauthorized: true });
  }
  expect(postgresTls(`${base}?sslmode=verify-full&sslrootcert=system`)).toEqual({ mode: 'verify-full', caFile: undefined });
});

test('verify-ca: chain only, and only with a CA of its own', () => {
  const c = postgresConnection(`${base}?sslmode=verify-ca&sslrootcert=${ca}`);
  expect(c.ssl).toMatchObject({ rejectUnauthorized: true, checkServerIdentity: expect.any(Function) });
  expect(() => postgresTls(`${base}?sslmode=verify-ca`)).toThrow(/verify-ca needs sslrootcert/);
  expect(() => postgresTls(`${base}?sslmode=verify-ca&sslrootcert=system`)).toThrow(/verify-ca needs sslrootcert/);
});

test.each([
  ['sslmode=prefer', /may connect without TLS/],
  ['sslmode=allow', /may connect without TLS/],
  ['sslmode=no-verify', /may connect without TLS/],
  ['sslmode=bogus', /unknown sslmode/],
  ['sslmode=disable&sslrootcert=/x', /sslmode=disable/],
  ['sslmode=verify-full&sslcert=/c&sslkey=/k', /client certificates/],
  ['ssl=true', /not supported/],
  ['sslmode=require&uselibpqcompat=true', /not supported/],
])('%s is refused, naming the problem and never the password', (query, message) => {
  let err: unknown;
  try {
    postgresTls(`${base}?${query}`);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PostgresUrlError);
  expect((err as Error).message).toMatch(message);
  expect((err as Error).message).not.toContain('s3cret');
});

test('a string that is not a URL is refused without echoing it', () => {
  expect(() => postgresTls('host=db password=s3cret')).toThrow(PostgresUrlError);
  expect(() => postgresTls('host=db password=s3cret')).not.toThrow(/s3cret/);
});
