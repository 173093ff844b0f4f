/**
 * Transport security against real servers: a private Postgres with ssl=on that refuses plain
 * connections and a private redis-server with a TLS port only, both presenting a certificate for
 * `localhost` signed by a CA made for the test. The services verify the chain against the CA file
 * and the host name (127.0.0.1 is not in the certificate), fail with a wrong CA, and the built
 * migrator, api and worker run real traffic over TLS to both. Run `npm run build` first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { createPgPool } from '../../services/core/db/postgres';
import { PostgresUrlError } from '../../services/core/db/postgres-connection';
import { createRedis, redisEndpoint, type RedisEndpoint } from '../../services/core/db/redis';
import { configWith } from '../../services/core/config/config';
import { RedisQueue } from '../../services/core/queue/redis-queue';
import { migrate } from '../../services/migrator/migrate';
import { AUTH_ENV, AUTH_HEADER } from '../support/auth';
import { freePort, killAllChildren, spawnService } from '../support/processes';
import { silentLog, waitFor } from '../support/stack';
import { makeCertificates, startTlsPostgres, startTlsRedis, type Certificates, type Server } from '../support/tls-servers';

let dir: string;
let certs: Certificates;
let pg: Server;
let redis: Server;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'ts-tls-'));
  certs = makeCertificates(dir);
  [pg, redis] = await Promise.all([startTlsPostgres(certs), startTlsRedis(certs)]);
}, 120_000);

afterAll(async () => {
  await killAllChildren();
  await Promise.all([pg?.stop(), redis?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const pgUrl = (host: string, params: string, db = 'postgres') => `postgres://postgres@${host}:${pg.port}/${db}?${params}`;

/** Connects with the services' pool and answers whether the session is encrypted, or throws. */
async function pgSessionUsesTls(url: string): Promise<boolean> {
  const pool = createPgPool(url, 1, 'tls-test', silentLog);
  try {
    const { rows } = await pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return rows[0]!.ssl;
  } finally {
    await pool.end();
  }
}

describe('Postgres', () => {
  it('verify-full with the CA bundle connects over TLS', async () => {
    expect(await pgSessionUsesTls(pgUrl('localhost', `sslmode=verify-full&sslrootcert=${certs.caFile}`))).toBe(true);
    // `require` is verified the same way, host name included.
    expect(await pgSessionUsesTls(pgUrl('localhost', `sslmode=require&sslrootcert=${certs.caFile}`))).toBe(true);
  });

  it('fails with a CA that did not sign the server certificate, or without one', async () => {
    await expect(pgSessionUsesTls(pgUrl('localhost', `sslmode=verify-full&sslrootcert=${certs.otherCaFile}`))).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    // Node's own CAs do not include the test CA.
    await expect(pgSessionUsesTls(pgUrl('localhost', 'sslmode=verify-full'))).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it('checks the host name: 127.0.0.1 is not in the certificate, so only verify-ca accepts it', async () => {
    await expect(pgSessionUsesTls(pgUrl('127.0.0.1', `sslmode=verify-full&sslrootcert=${certs.caFile}`))).rejects.toThrow(/altnames|does not match/i);
    await expect(pgSessionUsesTls(pgUrl('127.0.0.1', `sslmode=require&sslrootcert=${certs.caFile}`))).rejects.toThrow(/altnames|does not match/i);
    expect(await pgSessionUsesTls(pgUrl('127.0.0.1', `sslmode=verify-ca&sslrootcert=${certs.caFile}`))).toBe(true);
    await expect(pgSessionUsesTls(pgUrl('127.0.0.1', `sslmode=verify-ca&sslrootcert=${certs.otherCaFile}`))).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it('modes that may skip TLS or verification are refused before connecting; this server refuses plain connections', async () => {
    for (const mode of ['prefer', 'allow', 'no-verify']) {
      expect(() => createPgPool(pgUrl('localhost', `sslmode=${mode}`), 1, 'tls-test')).toThrow(PostgresUrlError);
    }
    await expect(pgSessionUsesTls(pgUrl('localhost', 'sslmode=disable'))).rejects.toThrow(/no encryption|pg_hba/);
  });

  it('the migrator and pg.Client users go through the same rules', async () => {
    // The test's own set-up connection: encrypted (the server takes nothing else), not verified.
    const admin = new Client({ connectionString: `postgres://postgres@127.0.0.1:${pg.port}/postgres`, ssl: { rejectUnauthorized: false } });
    await admin.connect();
    await admin.query('CREATE DATABASE app');
    await admin.end();
    await expect(migrate({ databaseUrl: pgUrl('localhost', `sslmode=verify-full&sslrootcert=${certs.otherCaFile}`, 'app') })).rejects.toThrow(/certificate|self[- ]signed/i);
    const result = await migrate({ databaseUrl: pgUrl('localhost', `sslmode=verify-full&sslrootcert=${certs.caFile}`, 'app') });
    expect(result.version).toBeGreaterThanOrEqual(6);
  });
});

describe('Redis', () => {
  const endpoint = (host: string, caFile: string): RedisEndpoint =>
    redisEndpoint(configWith({ REDIS_ADDR: `${host}:${redis.port}`, REDIS_TLS: 'true', REDIS_TLS_CA_FILE: caFile }));

  /** PING through a connection made like the services', or the error that stopped it. */
  async function ping(e: RedisEndpoint): Promise<string> {
    const conn = createRedis({ ...e, name: 'tls-test', offlineQueue: true });
    try {
      // The offline queue holds the PING while the handshake fails; the first error is the answer.
      return await new Promise<string>((resolve, reject) => {
        conn.once('error', reject);
        conn.ping().then(resolve, reject);
      });
    } finally {
      conn.disconnect();
    }
  }

  it('REDIS_TLS=true with the CA file connects and runs the queue', async () => {
    const e = endpoint('localhost', certs.caFile);
    expect(await ping(e)).toBe('PONG');
    const conn = createRedis({ ...e, name: 'tls-queue', offlineQueue: true });
    const queue = new RedisQueue(conn, { prefix: 'tls', strategy: 'weighted', weights: { critical: 8, high: 4, default: 2, low: 1 } });
    try {
      const id = '00000000-0000-7000-8000-0000000000aa';
      expect(await queue.enqueue([{ id, tenant: 'default', type: 'noop', priority: 'high', payload: {}, maxAttempts: 1, createdAtMs: Date.now(), attempts: 0 }])).toEqual([true]);
      const [lease] = await queue.lease({ owner: 'tls-test', max: 1, visibilityMs: 10_000 });
      expect(lease?.message.id).toBe(id);
    } finally {
      await queue.close();
    }
  });

  it('fails with another CA, by address (not in the certificate), and without TLS', async () => {
    await expect(ping(endpoint('localhost', certs.otherCaFile))).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    await expect(ping(endpoint('127.0.0.1', certs.caFile))).rejects.toThrow(/altnames|does not match/i);
    const plain = createRedis({ addr: `localhost:${redis.port}`, name: 'tls-plain', offlineQueue: false });
    plain.on('error', () => undefined);
    try {
      await expect(Promise.race([plain.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error('no answer')), 3000))])).rejects.toThrow();
    } finally {
      plain.disconnect();
    }
  });

  it('a CA file without REDIS_TLS=true is a configuration error', () => {
    expect(() => configWith({ REDIS_TLS_CA_FILE: certs.caFile })).toThrow(/REDIS_TLS_CA_FILE=.*needs REDIS_TLS=true/);
  });
});

describe('the built services over TLS to both stores', () => {
  it('migrator, api and worker run a task; /readyz sees both stores', async () => {
    const admin = new Client({ connectionString: `postgres://postgres@127.0.0.1:${pg.port}/postgres`, ssl: { rejectUnauthorized: false } });
    await admin.connect();
    await admin.query('CREATE DATABASE services');
    await admin.end();
    const env = {
      POSTGRES_URL: pgUrl('localhost', `sslmode=verify-full&sslrootcert=${certs.caFile}`, 'services'),
      REDIS_ADDR: `localhost:${redis.port}`,
      REDIS_TLS: 'true',
      REDIS_TLS_CA_FILE: certs.caFile,
      REDIS_KEY_PREFIX: 'tlsservices',
      LOG_LEVEL: 'info',
    };
    const migrator = await spawnService('dist/services/migrator/main.js', env, { readyLine: /migrations applied|schema up to date/ });
    expect((await migrator.exited).code).toBe(0);
    const port = await freePort();
    await spawnService('dist/services/api/main.js', { ...env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${port}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` });
    await spawnService('dist/services/worker/main.js', { ...env, METRICS_ADDR: `127.0.0.1:${await freePort()}` });

    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect({ status: ready.status, body: await ready.json() }).toMatchObject({ status: 200, body: { checks: { postgres: 'ok', redis: 'ok' } } });
    const res = await fetch(`http://127.0.0.1:${port}/tasks`, { method: 'POST', headers: { 'content-type': 'application/json', ...AUTH_HEADER }, body: JSON.stringify({ type: 'noop' }) });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    await waitFor(async () => {
      const r = await fetch(`http://127.0.0.1:${port}/tasks/${id}`, { headers: AUTH_HEADER });
      return ((await r.json()) as { status: string }).status === 'succeeded';
    }, 20_000, 'the task to succeed over TLS');
  });
});
