/**
 * Fault tests need Postgres and Redis they may stop and restart, so they get a private pair of
 * their own (profile `fault`, beside the shared `test` pair other files use), plus helpers to run
 * the api and workers as real processes against them.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { migrate } from '../../services/migrator/migrate';
import { parseEnvFile } from './global-setup';
import { ChildHandle, freePort, spawnService } from './processes';
import { AUTH_ENV } from './auth';

const ROOT = path.resolve(__dirname, '../..');
const PROFILE = 'fault';

function services(cmd: 'start' | 'stop' | 'stop-postgres' | 'stop-redis'): void {
  execFileSync('bash', [path.join(ROOT, 'scripts/local-services.sh'), cmd, PROFILE], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
}

export class FaultServices {
  adminUrl = '';
  redisAddr = '';

  redisEnv(): Record<string, string> {
    return { REDIS_ADDR: this.redisAddr };
  }

  start(): void {
    services('start');
    const env = parseEnvFile(readFileSync(path.join(ROOT, '.data', PROFILE, 'env'), 'utf8'));
    this.adminUrl = env.PG_ADMIN_URL!;
    this.redisAddr = env.REDIS_ADDR!;
  }

  stopPostgres(): void {
    services('stop-postgres');
  }

  stopRedis(): void {
    services('stop-redis');
  }

  /** Brings back whichever of the two is down, on the same ports. */
  restart(): void {
    this.start();
  }

  stopAll(): void {
    services('stop');
  }

  /** A new, migrated database on the fault Postgres. */
  async createDatabase(): Promise<string> {
    const name = `ts_fault_${randomBytes(4).toString('hex')}`;
    const admin = new Client({ connectionString: this.adminUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE "${name}"`);
    } finally {
      await admin.end();
    }
    const url = new URL(this.adminUrl);
    url.pathname = `/${name}`;
    await migrate({ databaseUrl: url.toString() });
    return url.toString();
  }
}

/** An api and workers sharing one database and key prefix, restartable like Deployment pods. */
export class ServiceSet {
  api: ChildHandle | null = null;
  readonly workers: ChildHandle[] = [];
  apiPort = 0;

  constructor(readonly env: Record<string, string>) {}

  async startApi(): Promise<void> {
    this.apiPort ||= await freePort();
    this.api = await spawnService('dist/services/api/main.js', { ...this.env, ...AUTH_ENV, API_ADDR: `127.0.0.1:${this.apiPort}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` });
  }

  async startWorker(extra: Record<string, string> = {}): Promise<ChildHandle> {
    const w = await spawnService('dist/services/worker/main.js', { ...this.env, METRICS_ADDR: `127.0.0.1:${await freePort()}`, ...extra });
    this.workers.push(w);
    return w;
  }

  async stopAll(): Promise<void> {
    await Promise.all([this.api, ...this.workers].filter((c): c is ChildHandle => c !== null).map((c) => c.stop('SIGTERM', 15000)));
  }
}
