/**
 * Redis must not evict the queue's keys. With `maxmemory` set and an `allkeys-*` policy, Redis
 * drops keys of its choosing once memory runs out — a ready list, the message hash, the
 * processing set — and the tasks they held stop without an error anywhere. The reconciler
 * re-queues a task Redis forgot entirely, but not one whose message survived while its ready-list
 * entry was evicted. `noeviction` makes writes fail instead (the API answers 503 and keeps the task
 * in Postgres, workers back off), and `volatile-*` policies only evict keys with a TTL (the queue's
 * data has none): both are safe. The check is advisory (BullMQ warns likewise): managed Redis
 * services often forbid CONFIG, so an unreadable policy is reported as `unknown`, not an error.
 */
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import type { Logger } from '../observability/logger';

export const UNKNOWN_POLICY = 'unknown';

/**
 * Connections whose ACL user may not run CONFIG GET. The least-privilege ACL (redis-acl.ts) leaves
 * it out on purpose (CONFIG GET also reads `requirepass` and `masterauth`), and every refusal is
 * an entry in Redis's ACL LOG, where operators look for intruders: ask once, not every scrape.
 */
const denied = new WeakSet<Redis | Cluster>();

/** Redis's `maxmemory-policy`, or `unknown` when it cannot be read (CONFIG renamed or not permitted, Redis away). */
/** On a cluster, one node answers: they are expected to share one configuration. */
export async function readEvictionPolicy(redis: Redis | Cluster): Promise<string> {
  if (denied.has(redis)) return UNKNOWN_POLICY;
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    return reply[1] ?? UNKNOWN_POLICY;
  } catch (err) {
    if (/^NOPERM/.test((err as Error).message)) denied.add(redis);
    return UNKNOWN_POLICY;
  }
}

/** True for the policies that may evict keys without a TTL: every key that holds tasks. */
export function evictsQueueData(policy: string): boolean {
  return policy.startsWith('allkeys-');
}

/** Logs an error when Redis may evict queue data (once, at start-up; the API's metrics and an alert cover later changes). */
export async function warnIfEvicting(redis: Redis | Cluster, log: Logger): Promise<string> {
  const policy = await readEvictionPolicy(redis);
  if (evictsQueueData(policy)) {
    log.error({ maxmemoryPolicy: policy }, `Redis maxmemory-policy is ${policy}: under memory pressure it may evict queued tasks; set it to noeviction`);
  } else if (policy === UNKNOWN_POLICY) {
    log.info('could not read Redis maxmemory-policy (CONFIG not permitted?); make sure it is noeviction');
  }
  return policy;
}
