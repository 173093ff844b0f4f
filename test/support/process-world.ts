/**
 * The built api and worker processes (test/support/service-processes.ts) with a key for a tenant
 * and one for another, and a `call` that sends JSON with a key to one of the APIs. Retries wait
 * 10–20 ms, so a test's failures settle quickly.
 */
import { createKey } from '../../services/core/tenancy/key-store';
// Every answer is checked against the OpenAPI document (the contract test).
import { fetch } from './contract';
import { ServiceProcesses, startServiceProcesses } from './service-processes';

export interface ProcessWorld extends ServiceProcesses {
  /** Keys of the world's tenant and of `elsewhere`, both with tasks:write and tasks:read. */
  key: string;
  otherKey: string;
  call(method: string, path: string, body?: unknown, as?: string, api?: number): Promise<{ status: number; body: Record<string, unknown> }>;
}

export async function startProcessWorld(opts: { label: string; tenant: string; apis: number; workers: number; workerPool: number }): Promise<ProcessWorld> {
  const p = await startServiceProcesses({
    label: opts.label,
    apis: opts.apis,
    workers: opts.workers,
    env: { RETRY_BASE_MS: '10', RETRY_MAX_MS: '20', RETRY_JITTER_MS: '5', RETRY_SCAN_INTERVAL_MS: '20' },
    workerEnv: { WORKER_POOL: String(opts.workerPool) },
  });
  const keyOf = async (tenant: string) => (await createKey(p.pool, { tenant, scopes: ['tasks:write', 'tasks:read'], expiresInMs: null })).key;
  const key = await keyOf(opts.tenant);
  const otherKey = await keyOf('elsewhere');
  return {
    ...p,
    key,
    otherKey,
    async call(method, path, body, as = key, api = 0) {
      const res = await fetch(`${p.apis[api]!.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${as}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
  };
}

/**
 * A suite's world: started before its tests and stopped after them (jest hooks). The fields are
 * read through it once beforeAll has run.
 */
export function processWorldForSuite(opts: Parameters<typeof startProcessWorld>[0]): Pick<ProcessWorld, 'pool' | 'key' | 'otherKey' | 'call'> {
  let world: ProcessWorld | undefined;
  beforeAll(async () => {
    world = await startProcessWorld(opts);
  }, 60_000);
  afterAll(() => world?.stop());
  const started = () => {
    if (!world) throw new Error('the process world is used before beforeAll started it');
    return world;
  };
  return {
    get pool() {
      return started().pool;
    },
    get key() {
      return started().key;
    },
    get otherKey() {
      return started().otherKey;
    },
    call: (...args) => started().call(...args),
  };
}
