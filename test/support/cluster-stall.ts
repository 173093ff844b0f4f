/**
 * One master of the test profile's Redis Cluster stalled (CLIENT PAUSE), for the tests of passes
 * that must not wait on it: which master serves a slot, and a pause held while the pass runs.
 */
import Redis, { type Cluster } from 'ioredis';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf, partitionTags, slotOfTag } from '../../services/core/queue/partitions';
import { TEST_PARTITIONS } from './cluster-mode';
import { setTenant } from '../../services/core/tenancy/tenant-store';
import { createStack, type Stack } from './stack';

/** host:port of the master serving `tag`'s slot, as `client` reads the slot map. */
export async function masterOf(client: Redis | Cluster, tag: string): Promise<string> {
  const slots = await client.cluster('SLOTS');
  const [host, port] = slots.find(([from, to]) => slotOfTag(tag) >= from && slotOfTag(tag) <= to)![2]!;
  return `${host}:${port}`;
}

/** The hash tag a key starts with (`{…}`): what places it on a slot. */
export const tagOf = (key: string) => key.slice(0, key.indexOf('}') + 1);

/** A queue over `stack`'s partitions whose passes wait at most 300 ms for any one of them (passWaitMs). */
export function passWaitQueue(stack: Stack): PartitionedQueue {
  const { REDIS_KEY_PREFIX: prefix, QUEUE_WEIGHTS: weights } = stack.cfg;
  return new PartitionedQueue(stack.redis, { prefix, strategy: 'weighted', weights, partitions: TEST_PARTITIONS, passWaitMs: 300 });
}

/**
 * The master of each of the TEST_PARTITIONS partitions of `prefix` (by index), the control slot's,
 * and `other`: the first partition master that does not serve the control slot (the one to stall,
 * leaving locks and announcements alone).
 */
export async function partitionMasters(client: Redis | Cluster, prefix: string): Promise<{ control: string; masters: string[]; other: string }> {
  const control = await masterOf(client, `{${prefix}}`);
  const masters = await Promise.all(partitionTags(prefix, TEST_PARTITIONS).map((tag) => masterOf(client, tag)));
  return { control, masters, other: masters.find((m) => m !== control)! };
}

/** The first tenant `${stem}0`, `${stem}1`, … whose partition's master `wanted` accepts. */
export function tenantWhere(masters: string[], wanted: (master: string) => boolean, stem: string): string {
  for (let i = 0; ; i++) if (wanted(masters[partitionOf(`${stem}${i}`, TEST_PARTITIONS)]!)) return `${stem}${i}`;
}

/**
 * Pauses the master at `addr` (host:port) for `ms` (CLIENT PAUSE) until the returned function
 * unpauses it. WRITE pauses scripts too; ALL also pauses the UNPAUSE, so that stall lasts all `ms`.
 */
export async function pauseMaster(addr: string, ms = 60_000, mode: 'ALL' | 'WRITE' = 'WRITE'): Promise<() => Promise<void>> {
  const [host, port] = addr.split(':');
  const pauser = new Redis({ host, port: Number(port), lazyConnect: false, maxRetriesPerRequest: 1 });
  try {
    await (mode === 'ALL' ? pauser.client('PAUSE', ms, 'ALL') : pauser.client('PAUSE', ms, 'WRITE'));
  } catch (err) {
    pauser.disconnect();
    throw err;
  }
  return async () => {
    await pauser.client('UNPAUSE').catch(() => undefined);
    pauser.disconnect();
  };
}

/** Runs `during` while the master at `addr` is paused for `ms`, and unpauses it after. */
export async function whilePaused<T>(addr: string, ms: number, mode: 'ALL' | 'WRITE', during: () => Promise<T>): Promise<T> {
  const unpause = await pauseMaster(addr, ms, mode);
  try {
    return await during();
  } finally {
    await unpause();
  }
}

/** The master serving tenant `tenant`'s partition of `q`. */
export const masterOfTenant = (client: Cluster | Redis, q: PartitionedQueue, tenant: string): Promise<string> =>
  masterOf(client, tagOf(q.parts[partitionOf(tenant, q.parts.length)]!.keys.meta));

/** The first tenant `${prefix}-N` whose partition a master `wanted` accepts serves. */
export async function tenantOn(client: Cluster | Redis, q: PartitionedQueue, wanted: (master: string) => boolean, prefix = 'tenant'): Promise<string> {
  for (let i = 0; ; i++) {
    const t = `${prefix}-${i}`;
    if (wanted(await masterOfTenant(client, q, t))) return t;
  }
}

/** `p`'s outcome, or 'no answer' once `ms` pass (far past every bound the stall tests check). */
export function within<T>(p: Promise<T>, ms = 8000): Promise<T | 'no answer'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<'no answer'>((r) => (timer = setTimeout(() => r('no answer'), ms)))]).finally(() => clearTimeout(timer));
}

/** A stack for the file and the tenants of a master to stall: `stalled` on it, `healthy` on another. */
export interface StalledTenants {
  readonly stack: Stack;
  readonly queue: PartitionedQueue;
  /** A master that does not serve the control slot. */
  readonly stalledMaster: string;
  readonly stalled: string;
  readonly healthy: string;
}

/**
 * Made before the file's tests (and closed after): a stack with `overrides`, its queue (or the one
 * `queueOf` makes), and the two tenants, created in Postgres. Read its fields inside a test.
 */
export function stalledTenantsFixture(overrides: Parameters<typeof createStack>[0] = {}, queueOf?: (stack: Stack) => PartitionedQueue): StalledTenants {
  let made: StalledTenants | undefined;
  beforeAll(async () => {
    const stack = await createStack(overrides);
    const queue = queueOf ? queueOf(stack) : (stack.queue as PartitionedQueue);
    const control = await masterOf(stack.redis, `{${stack.cfg.REDIS_KEY_PREFIX}}`);
    const stalled = await tenantOn(stack.redis, queue, (m) => m !== control, 'stalled');
    const stalledMaster = await masterOfTenant(stack.redis, queue, stalled);
    const healthy = await tenantOn(stack.redis, queue, (m) => m !== stalledMaster, 'healthy');
    for (const t of [stalled, healthy]) await setTenant(stack.pool, t, {});
    made = { stack, queue, stalledMaster, stalled, healthy };
  }, 120_000);
  afterAll(async () => {
    await made?.stack.close();
  });
  const get = <K extends keyof StalledTenants>(k: K): StalledTenants[K] => {
    if (!made) throw new Error('stalledTenantsFixture: read it inside a test');
    return made[k];
  };
  return {
    get stack() { return get('stack'); },
    get queue() { return get('queue'); },
    get stalledMaster() { return get('stalledMaster'); },
    get stalled() { return get('stalled'); },
    get healthy() { return get('healthy'); },
  };
}
