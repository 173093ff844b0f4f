/**
 * Every Redis key the queue uses, built in one place. All keys of a partition share its hash tag
 * (`{prefix}` when there is one partition; see partitions.ts) so the partition lives in one Cluster
 * slot and every script may touch all of its keys; scripts
 * receive every key they touch in KEYS, except the per-tenant ready lists: there is one per
 * priority and tenant, so scripts build their names from `tenantQueuePrefix` (passed in KEYS; it
 * carries the tag, so the lists share the slot). See docs/fair-dispatch.md.
 */
import { PRIORITIES, Priority } from '../tasks/priority';

export interface QueueKeys {
  /** Ready lists are `${tenantQueuePrefix}<priority>:<tenant>`, FIFO (RPUSH to enqueue, LPOP to lease). */
  tenantQueuePrefix: string;
  /** Per priority, tenants with ready work scored by their pass (stride scheduling). */
  rings: string[];
  /** Per priority, tenants with ready work held back at their running cap, scored by their pass. */
  parked: string[];
  /**
   * Per priority, tenants that left its ring (their list emptied) scored by the pass they left
   * with, until the ring's lowest pass reaches it: one joining again starts there (includes/tenants.lua).
   */
  leftPasses: string[];
  /** Tenants parked in any priority. */
  parkedTenants: string;
  /** tenant → leases held (attempts running), kept with `processing` by every script. */
  running: string;
  /** Tenants that may have a ready list (the sweep cannot list keys). */
  tenants: string;
  /** tenant → "weight:maxRunning" (-1: the default), synced from Postgres by the workers. */
  tenantDispatch: string;
  /** Due-time ordered ids waiting for a retry, per priority. */
  retries: string[];
  /** Dead-lettered ids per priority, oldest first. */
  deadLetters: string[];
  /** id → deadline (ms, Redis clock) of every leased task. */
  processing: string;
  /** id → immutable message JSON (type, payload, created_at ms). */
  messages: string;
  /** id → "priorityIndex:maxAttempts:tenant". */
  meta: string;
  /** id → attempts started so far. */
  attempts: string;
  /** id → token of the current lease. */
  tokens: string;
  /** id → ms (Redis clock) when the task last became ready to run; for per-attempt wait. */
  readyAt: string;
  /** priority → current weight of the smooth weighted round-robin. */
  wrr: string;
  /** workerId → ms (Redis clock) until which the worker counts as alive. */
  workers: string;
  /**
   * The doorbell: a list holding at most one ring, pushed when tasks become ready; idle workers
   * wait on it with BLPOP, so each ring wakes exactly one of them (see lua/includes/doorbell.lua).
   */
  doorbell: string;
  /**
   * Where lease.lua rings or clears the doorbell: the doorbell itself in a single partition; in one
   * of several, a same-slot placeholder (the partitioned queue rings the real one after the round).
   */
  leaseDoorbell: string;
  /** Tasks an operator cancelled: id → ms (Redis clock) of the cancel (lua/includes/tombstones.lua). */
  tombstones: string;
  /** workerId → its task slots (WORKER_POOL), beside `workers`. */
  workerSlots: string;
  /**
   * Per 10-second bucket `${ratesPrefix}<bucket>`: "tenant|priorityIndex|kind" → count
   * (lua/includes/rates.lua). Carries the hash tag, so the buckets share the slot.
   */
  ratesPrefix: string;
  /**
   * `${leaseCallPrefix}<token base>`: a lease call's time and ids, until its caller has the answer
   * (lua/lease.lua: the call made again answers with the same leases). Carries the hash tag.
   */
  leaseCallPrefix: string;
  /** Pub/Sub channel on which workers hear that a task they run was cancelled (its id). */
  cancelChannel: string;
  /** Announces a delayed task due sooner than any its due-time set held (the due time, ms): retry pumps wake for it. */
  dueChannel: string;
  /** The delayed-task loader's mark: due times up to it are loaded into this keyspace (ms). */
  delayedMark: string;
  /** A sweep repair's ids its pages found held, one set per repair (dropped at its end; see lua/sweep-held.lua). */
  sweepHeld(pass: string): string;
  /** Leader locks of single-copy services (the reconciler). */
  lock(name: string): string;
  /** The ready list of one tenant at one priority (for tests and operators). */
  tenantQueue(priority: Priority, tenant: string): string;
  /**
   * The block of KEYS every script touching tenant state takes, in this order (see
   * lua/includes/tenants.lua).
   */
  tenantBlock: string[];
}

/**
 * The keys of a queue whose partition has hash tag `tag` (default `{prefix}`: the single partition,
 * today's names). A partition of several cannot reach the control slot `{prefix}` from its scripts:
 * its `doorbell` is a same-slot list the adapter reads a ring from and passes on (redis-queue.ts),
 * its `workers` / `workerSlots` are never written (announcements go to the control slot), and its
 * locks and cancel channel are the control slot's.
 */
export function queueKeys(prefix: string, tag = `{${prefix}}`): QueueKeys {
  const control = `{${prefix}}`;
  const partitioned = tag !== control;
  const tenantQueuePrefix = `${tag}:q:`;
  const rings = PRIORITIES.map((p) => `${tag}:ring:${p}`);
  const parked = PRIORITIES.map((p) => `${tag}:parked:${p}`);
  const leftPasses = PRIORITIES.map((p) => `${tag}:left:${p}`);
  const parkedTenants = `${tag}:parked`;
  const running = `${tag}:running`;
  const tenants = `${tag}:tenants`;
  return {
    tenantQueuePrefix,
    rings,
    parked,
    leftPasses,
    parkedTenants,
    running,
    tenants,
    tenantDispatch: `${tag}:tenant:dispatch`,
    retries: PRIORITIES.map((p) => `${tag}:retry:${p}`),
    deadLetters: PRIORITIES.map((p) => `${tag}:dlq:${p}`),
    processing: `${tag}:processing`,
    messages: `${tag}:msg`,
    meta: `${tag}:meta`,
    attempts: `${tag}:attempts`,
    tokens: `${tag}:tokens`,
    readyAt: `${tag}:ready_at`,
    wrr: `${tag}:wrr`,
    workers: `${tag}:workers`,
    doorbell: partitioned ? `${tag}:rang` : `${tag}:doorbell`,
    leaseDoorbell: partitioned ? `${tag}:lease-rang` : `${tag}:doorbell`,
    tombstones: `${tag}:cancelled`,
    workerSlots: `${tag}:worker_slots`,
    ratesPrefix: `${tag}:rates:`,
    leaseCallPrefix: `${tag}:lease-call:`,
    cancelChannel: `${control}:cancel`,
    dueChannel: `${control}:due`,
    delayedMark: `${tag}:delayed:loaded`,
    sweepHeld: (pass) => `${tag}:sweep:held:${pass}`,
    lock: (name) => `${control}:lock:${name}`,
    tenantQueue: (priority, tenant) => `${tenantQueuePrefix}${priority}:${tenant}`,
    tenantBlock: [tenantQueuePrefix, ...rings, ...parked, parkedTenants, running, tenants, ...leftPasses],
  };
}
