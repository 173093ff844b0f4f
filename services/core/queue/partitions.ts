/**
 * How the queue's keyspace is split over a Redis Cluster (docs/redis-cluster.md): REDIS_PARTITIONS
 * partitions, each one hash tag (so every script still touches one slot), a tenant and all its
 * tasks in one partition, and a control slot for what is about workers rather than tasks.
 */
import calculateSlot from 'cluster-key-slot';
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';

const SLOTS = 16384;

/**
 * The hash tag of each partition. One partition is today's single tag `{prefix}`. With n > 1,
 * partition k is `{prefix:k<k>.<salt>}`, the salt the smallest that puts the tag's slot in the
 * middle half of the k-th of n equal slot ranges: a cluster whose slots are split evenly over m
 * masters (n a multiple of m) then holds n/m partitions on each master, where plain `{prefix:k<k>}`
 * tags put 3 partitions on 3 masters only 2 times in 9.
 */
export function partitionTags(prefix: string, n: number): string[] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`partitions must be a positive integer, not ${n}`);
  if (n === 1) return [`{${prefix}}`];
  const tags: string[] = [];
  for (let k = 0; k < n; k++) {
    const from = (k * SLOTS) / n;
    const width = SLOTS / n;
    for (let salt = 0; ; salt++) {
      const slot = calculateSlot(`${prefix}:k${k}.${salt}`);
      if (slot >= from + width / 4 && slot < from + (3 * width) / 4) {
        tags.push(`{${prefix}:k${k}.${salt}}`);
        break;
      }
    }
  }
  return tags;
}

/** The partition of a tenant: FNV-1a (32 bit) of its UTF-8 name, mod n. Every process computes the same. */
export function partitionOf(tenant: string, n: number): number {
  if (n === 1) return 0;
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(tenant, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % n;
}

/** The Redis Cluster slot of a hash tag (for benchmarks and tests that check the spread). */
export function slotOfTag(tag: string): number {
  return calculateSlot(tag);
}

/**
 * Records the namespace's partition count in the control slot (`{prefix}:layout`) if none is, and
 * returns the one recorded (null when Redis would not say: away, or refusing writes and the key
 * not there yet). Key names depend on it, so a process with another count must not run: it would
 * lease from and index into keys no one else reads (docs/redis-cluster.md §3.7).
 */
async function claimLayout(redis: Redis | Cluster, prefix: string, partitions: number): Promise<number | null> {
  const key = `{${prefix}}:layout`;
  // A Redis refusing writes (a read-only replica, out of memory) may still show the recorded count.
  await redis.set(key, String(partitions), 'NX').catch(() => undefined);
  const recorded = await redis.get(key).catch(() => null);
  return recorded === null ? null : Number(recorded);
}

/**
 * Refuses (throws) when the recorded layout differs from the setting; resolves to false when it
 * could not be read (the caller carries on: an API accepts into Postgres while Redis is away).
 */
export async function assertLayout(redis: Redis | Cluster, prefix: string, partitions: number): Promise<boolean> {
  const pending = await pendingRepartition(redis, prefix);
  if (pending) throw new Error(pendingMessage(prefix, pending));
  const recorded = await claimLayout(redis, prefix, partitions);
  if (recorded === null) return false;
  if (recorded !== partitions) throw new Error(mismatchMessage(prefix, partitions, recorded));
  return true;
}

/**
 * What stops a running process from using the queue now (a repartition begun, or another layout
 * recorded since it started), else null; null too when Redis would not say. For readiness: an api
 * left running through a repartition is taken out of rotation rather than indexing into old keys.
 */
export async function layoutProblem(redis: Redis | Cluster, prefix: string, partitions: number): Promise<string | null> {
  const pending = await pendingRepartition(redis, prefix);
  if (pending) return pendingMessage(prefix, pending);
  const recorded = await redis.get(`{${prefix}}:layout`).catch(() => null);
  return recorded !== null && Number(recorded) !== partitions ? mismatchMessage(prefix, partitions, Number(recorded)) : null;
}

// A repartition that stopped midway is finished by running it again, which resumes from the old
// layout's keys as it left them: a process running meanwhile (with either count) would change
// them under it, and the rerun would skip or copy again what moved (tasks run twice).
async function pendingRepartition(redis: Redis | Cluster, prefix: string): Promise<{ from: string; to: string | null } | null> {
  const pending = await redis.hmget(`{${prefix}}:repartition`, 'from', 'to').catch(() => null);
  const [from, to] = pending ?? [];
  return typeof from === 'string' ? { from, to: to ?? null } : null;
}

function pendingMessage(prefix: string, p: { from: string; to: string | null }): string {
  return (
    `the queue in Redis (prefix ${prefix}) is being repartitioned from ${p.from} to ${p.to} partition(s), and that run has not finished: ` +
    `run "task-scheduler repartition --to ${p.to}" again to finish it, then start every api and worker with REDIS_PARTITIONS=${p.to} (docs/redis-cluster.md §3.7)`
  );
}

function mismatchMessage(prefix: string, partitions: number, recorded: number): string {
  return (
    `REDIS_PARTITIONS=${partitions}, but the queue in Redis (prefix ${prefix}) is laid out in ${recorded} partition(s): ` +
    `run every api and worker with REDIS_PARTITIONS=${recorded}, or stop them all and run "task-scheduler repartition --to ${partitions}" (docs/redis-cluster.md §3.7)`
  );
}
