/**
 * Changing REDIS_PARTITIONS offline (docs/redis-cluster.md §3.7): every task's state is copied from
 * its partition in the old layout to its tenant's partition in the new one, the layout is recorded,
 * then the old keys are deleted. Run with the api and workers stopped: nothing else writes meanwhile.
 *
 * Rerunnable: the run is recorded in the control slot (`{prefix}:repartition`: from, to, phase), so
 * an interrupted one is finished by running it again. Copying skips what the target already holds
 * (hashes and sets are idempotent; a ready list resumes at the target's length, its only source
 * being its tenant's one list; dead-letter ids copied are remembered in a set of the target), and
 * the old keys are deleted only once everything is copied and the layout set.
 *
 * Bounded memory: tasks go in chunks (HSCAN, LRANGE, ZRANGE by index: stable with no writers);
 * only tenant names are held for a whole partition. Commands stay within one slot each (a pipeline
 * or script per partition), so the same code runs on a Redis Cluster.
 */
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { PRIORITIES } from '../tasks/priority';
import { queueKeys, QueueKeys } from './keys';
import { partitionOf, partitionTags } from './partitions';

export interface RepartitionOptions {
  prefix: string;
  to: number;
  /** The layout to read from; default the one recorded in `{prefix}:layout` (1 when none is). */
  from?: number;
  /** Go on despite live workers and leases, dropping the leases (announcements are left to expire): the reconciler recovers their tasks from Postgres. */
  force?: boolean;
  /** Entries per command (default 1000). */
  chunk?: number;
}

export interface RepartitionSummary {
  prefix: string;
  from: number;
  to: number;
  /** false: the queue was laid out in `to` partitions already and no run was pending. */
  changed: boolean;
  /** A run interrupted earlier was finished. */
  resumed: boolean;
  /** Tasks whose hashes (msg, meta, attempts, ready_at) were copied to another partition, and where they waited. */
  tasks: number;
  ready: number;
  retrying: number;
  dead: number;
  tombstones: number;
  /** Tenants found (ready lists, rings, dispatch settings, admission counters), and how many changed partition. */
  tenants: number;
  tenantsMoved: number;
  /** Leases dropped (--force). */
  leasesDropped: number;
  seconds: number;
}

/** Refused (exit 1 in the CLI): leases held, live workers, another run pending. Nothing was changed. */
export class RepartitionRefused extends Error {
  override name = 'RepartitionRefused';
}

type Conn = Redis | Cluster;
type Pipe = ReturnType<Redis['pipeline']>;

interface Part {
  tag: string;
  keys: QueueKeys;
  /** Admission counters (tenancy/admission.ts). */
  /** inFlight is not moved: its entries live at most IN_FLIGHT_TTL_MS, and the true-up reads every partition's. */
  admission: { buckets: string; admitted: string; base: string; admittedAtBase: string; inFlight: string };
  /** Dead-letter ids copied into this partition by the run (so a rerun does not push them twice). */
  copiedDead: string;
}

function part(prefix: string, tag: string): Part {
  return {
    tag,
    keys: queueKeys(prefix, tag),
    admission: { buckets: `${tag}:tenant:bucket`, admitted: `${tag}:tenant:admitted`, base: `${tag}:tenant:unfinished`, admittedAtBase: `${tag}:tenant:admitted_at_count`, inFlight: `${tag}:tenant:in_flight` },
    copiedDead: `${tag}:repartition:dead`,
  };
}

/** meta is "priorityIndex:maxAttempts:tenant"; no tenant part is `default` (written before tenants). */
function tenantOfMeta(meta: string): string {
  const a = meta.indexOf(':');
  const b = meta.indexOf(':', a + 1);
  return b < 0 ? 'default' : meta.slice(b + 1);
}

/** A token bucket field is `<tenant>:t` or `<tenant>:at` (tenancy/lua/admit.lua). */
function tenantOfBucketField(field: string): string {
  const c = field.lastIndexOf(':');
  return c < 0 ? field : field.slice(0, c);
}

// A tenant joining a ring gets the pass includes/tenants.lua's joinPass gives: just below the lowest.
// The pass it left its old partition's ring with is not carried: passes only compare within a ring.
const JOIN_RING = `
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local pass = (head[2] and tonumber(head[2]) or 1) - 1
redis.call('ZADD', KEYS[1], 'NX', pass, ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1`;

// Appends dead-letter ids not appended before (KEYS[2] remembers them), in order; returns how many.
const PUSH_ONCE = `
local n = 0
for i = 1, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n`;

const STATE_FIELDS = ['from', 'to', 'phase'] as const;

export class Repartitioner {
  private readonly chunk: number;
  private readonly control: string;
  private readonly stateKey: string;
  private readonly layoutKey: string;
  private summary!: RepartitionSummary;
  private readonly tenantsSeen = new Set<string>();
  private readonly tenantsMoved = new Set<string>();
  private olds: Part[] = [];
  private news: Part[] = [];

  constructor(
    private readonly redis: Conn,
    private readonly opts: RepartitionOptions,
  ) {
    this.chunk = opts.chunk ?? 1000;
    this.control = `{${opts.prefix}}`;
    this.stateKey = `${this.control}:repartition`;
    this.layoutKey = `${this.control}:layout`;
  }

  async run(): Promise<RepartitionSummary> {
    const started = Date.now();
    const { prefix, to } = this.opts;
    if (!Number.isInteger(to) || to < 1) throw new Error(`--to must be a positive integer, not ${to}`);
    const state = await this.redis.hmget(this.stateKey, ...STATE_FIELDS);
    const recorded = await this.redis.get(this.layoutKey);
    let from: number;
    let phase: string;
    const resumed = state[0] !== null;
    if (resumed) {
      // A run was interrupted: finish it before anything else, or its half-copied keys are orphaned.
      from = Number(state[0]);
      const pendingTo = Number(state[1]);
      if (pendingTo !== to || (this.opts.from !== undefined && this.opts.from !== from)) {
        throw new RepartitionRefused(`an interrupted repartition from ${from} to ${pendingTo} partition(s) is pending (${this.stateKey}): run it again with --to ${pendingTo} first`);
      }
      phase = state[2] ?? 'copy';
    } else {
      from = this.opts.from ?? (recorded === null ? 1 : Number(recorded));
      phase = 'copy';
    }
    this.summary = { prefix, from, to, changed: false, resumed, tasks: 0, ready: 0, retrying: 0, dead: 0, tombstones: 0, tenants: 0, tenantsMoved: 0, leasesDropped: 0, seconds: 0 };
    if (!resumed && from === to) {
      // Nothing to move; record the layout if none was, as a process starting with it would.
      if (recorded === null) await this.redis.set(this.layoutKey, String(to), 'NX');
      return this.done(started);
    }
    this.summary.changed = true;
    this.olds = partitionTags(prefix, from).map((tag) => part(prefix, tag));
    this.news = partitionTags(prefix, to).map((tag) => part(prefix, tag));

    if (phase === 'copy') {
      await this.checkIdle();
      if (!resumed) await this.redis.hset(this.stateKey, 'from', from, 'to', to, 'phase', 'copy');
      if (this.opts.force) for (const old of this.olds) await this.dropLeases(old);
      for (const old of this.olds) await this.copyPartition(old);
      // The layout first, then the phase: a rerun after either finds the copy complete.
      await this.redis.set(this.layoutKey, String(to));
      await this.redis.hset(this.stateKey, 'phase', 'cleanup');
    }
    for (const old of this.olds) {
      if (this.isNewTag(old.tag)) await this.keepStaying(old);
      else await this.deletePartition(old);
    }
    for (const p of this.news) {
      await this.recountCustom(p);
      await this.redis.unlink(p.copiedDead);
    }
    await this.redis.del(this.stateKey);
    return this.done(started);
  }

  private done(started: number): RepartitionSummary {
    this.summary.tenants = this.tenantsSeen.size;
    this.summary.tenantsMoved = this.tenantsMoved.size;
    this.summary.seconds = Math.round((Date.now() - started) / 10) / 100;
    return this.summary;
  }

  private isNewTag(tag: string): boolean {
    return this.news.some((p) => p.tag === tag);
  }

  /** The new partition of a tenant, or null when that is the partition `from` (same tag: it stays in place). */
  private target(tenant: string, from: Part): Part | null {
    const p = this.news[partitionOf(tenant, this.news.length)]!;
    return p.tag === from.tag ? null : p;
  }

  private async checkIdle(): Promise<void> {
    if (this.opts.force) return;
    const problems: string[] = [];
    for (const old of this.olds) {
      const [held, tokens] = await Promise.all([this.redis.zcard(old.keys.processing), this.redis.hlen(old.keys.tokens)]);
      if (held + tokens > 0) problems.push(`${Math.max(held, tokens)} lease(s) in ${old.tag}`);
    }
    const [sec, micro] = (await this.redis.time()) as [string | number, string | number];
    const now = Number(sec) * 1000 + Math.floor(Number(micro) / 1000);
    const alive = await this.redis.zcount(queueKeys(this.opts.prefix).workers, now, '+inf');
    if (alive > 0) problems.push(`${alive} worker(s) announced alive`);
    if (problems.length > 0) {
      throw new RepartitionRefused(
        `refused: ${problems.join(', ')}; stop every worker and the api first (a graceful shutdown hands leases back), or pass --force to drop the leases (the reconciler recovers their tasks from Postgres)`,
      );
    }
  }

  /** --force: forgets leased tasks (the reconciler indexes them again from Postgres) and the running counts. */
  private async dropLeases(old: Part): Promise<void> {
    const k = old.keys;
    for (;;) {
      const ids = await this.redis.zrange(k.processing, 0, this.chunk - 1);
      if (ids.length === 0) break;
      const pipe = this.pipe();
      for (const h of [k.messages, k.meta, k.attempts, k.readyAt, k.tokens]) pipe.hdel(h, ...ids);
      pipe.zrem(k.processing, ...ids);
      await this.exec(pipe);
      this.summary.leasesDropped += ids.length;
    }
    await this.redis.unlink(k.tokens, k.running);
  }

  private async copyPartition(old: Part): Promise<void> {
    const tenants = await this.tenantsOf(old);
    for (const t of tenants) {
      this.tenantsSeen.add(t);
      if (this.target(t, old)) this.tenantsMoved.add(t);
    }
    await this.copyHashes(old);
    for (const t of tenants) {
      const to = this.target(t, old);
      if (to) await this.copyReady(old, to, t);
    }
    await this.copyRetries(old);
    await this.copyDead(old);
    await this.copyTombstones(old);
    await this.copyByTenant(old, old.keys.tenantDispatch, (p) => p.keys.tenantDispatch, (f) => f, true);
    const a = old.admission;
    await this.copyByTenant(old, a.buckets, (p) => p.admission.buckets, tenantOfBucketField);
    await this.copyByTenant(old, a.admitted, (p) => p.admission.admitted, (f) => f);
    await this.copyByTenant(old, a.base, (p) => p.admission.base, (f) => f);
    await this.copyByTenant(old, a.admittedAtBase, (p) => p.admission.admittedAtBase, (f) => f);
  }

  /** Tenants that may have ready lists (the registry, rings and parked sets: what the sweep reads). */
  private async tenantsOf(p: Part): Promise<Set<string>> {
    const k = p.keys;
    const out = new Set<string>();
    let cursor = '0';
    do {
      const [next, names] = await this.redis.sscan(k.tenants, cursor, 'COUNT', this.chunk);
      for (const n of names) out.add(n);
      cursor = next;
    } while (cursor !== '0');
    for (const z of [...k.rings, ...k.parked]) {
      for (let i = 0; ; i += this.chunk) {
        const names = await this.redis.zrange(z, i, i + this.chunk - 1);
        for (const n of names) out.add(n);
        if (names.length < this.chunk) break;
      }
    }
    return out;
  }

  /** msg, meta, attempts, ready_at of every task whose tenant changes partition. */
  private async copyHashes(old: Part): Promise<void> {
    const k = old.keys;
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(k.meta, cursor, 'COUNT', this.chunk);
      cursor = next;
      const groups = new Map<Part, { ids: string[]; metas: string[] }>();
      for (let i = 0; i < flat.length; i += 2) {
        const to = this.target(tenantOfMeta(flat[i + 1]!), old);
        if (!to) continue;
        const g = groups.get(to) ?? { ids: [], metas: [] };
        g.ids.push(flat[i]!);
        g.metas.push(flat[i + 1]!);
        groups.set(to, g);
      }
      if (groups.size === 0) continue;
      const ids = [...groups.values()].flatMap((g) => g.ids);
      const src = this.pipe();
      src.hmget(k.messages, ...ids).hmget(k.attempts, ...ids).hmget(k.readyAt, ...ids);
      const [msgs, attempts, readyAt] = (await this.exec(src)) as (string | null)[][];
      const writes: Promise<unknown[]>[] = [];
      let j = 0;
      for (const [to, g] of groups) {
        const f = { msg: [] as string[], attempts: [] as string[], readyAt: [] as string[] };
        for (const id of g.ids) {
          if (msgs![j] != null) f.msg.push(id, msgs![j]!);
          if (attempts![j] != null) f.attempts.push(id, attempts![j]!);
          if (readyAt![j] != null) f.readyAt.push(id, readyAt![j]!);
          j++;
        }
        const dst = this.pipe();
        if (f.msg.length) dst.hset(to.keys.messages, ...f.msg);
        if (f.attempts.length) dst.hset(to.keys.attempts, ...f.attempts);
        if (f.readyAt.length) dst.hset(to.keys.readyAt, ...f.readyAt);
        // meta last: a task known in the target (meta) has the rest there already.
        dst.hset(to.keys.meta, ...g.ids.flatMap((id, i) => [id, g.metas[i]!]));
        writes.push(this.exec(dst));
      }
      for (const res of await Promise.all(writes)) this.summary.tasks += Number(res[res.length - 1]);
    } while (cursor !== '0');
  }

  /** A tenant's ready lists, in order; a rerun resumes at the target's length (the list's only source is this one). */
  private async copyReady(old: Part, to: Part, tenant: string): Promise<void> {
    for (const [i, priority] of PRIORITIES.entries()) {
      const src = old.keys.tenantQueue(priority, tenant);
      const dst = to.keys.tenantQueue(priority, tenant);
      const [len, done] = await Promise.all([this.redis.llen(src), this.redis.llen(dst)]);
      for (let at = done; at < len; at += this.chunk) {
        const ids = await this.redis.lrange(src, at, at + this.chunk - 1);
        if (ids.length === 0) break;
        await this.redis.rpush(dst, ...ids);
        this.summary.ready += ids.length;
      }
      if (len > 0) await this.redis.eval(JOIN_RING, 2, to.keys.rings[i]!, to.keys.tenants, tenant);
    }
  }

  /** Ids of a chunk grouped by the partition their tenant moves to (ids without meta stay: the sweep removes them). */
  private async groupByTarget(old: Part, ids: string[], scores?: string[]): Promise<Map<Part, string[]>> {
    const metas = await this.redis.hmget(old.keys.meta, ...ids);
    const groups = new Map<Part, string[]>();
    ids.forEach((id, i) => {
      const m = metas[i];
      if (m == null) return;
      const to = this.target(tenantOfMeta(m), old);
      if (!to) return;
      const g = groups.get(to) ?? [];
      if (scores) g.push(scores[i]!, id);
      else g.push(id);
      groups.set(to, g);
    });
    return groups;
  }

  /** Retry entries with their due times. */
  private async copyRetries(old: Part): Promise<void> {
    for (const [p, key] of old.keys.retries.entries()) {
      for (let at = 0; ; at += this.chunk) {
        const flat = await this.redis.zrange(key, at, at + this.chunk - 1, 'WITHSCORES');
        if (flat.length === 0) break;
        const ids = flat.filter((_, i) => i % 2 === 0);
        const scores = flat.filter((_, i) => i % 2 === 1);
        const groups = await this.groupByTarget(old, ids, scores);
        const added = await Promise.all([...groups].map(([to, pairs]) => this.redis.zadd(to.keys.retries[p]!, ...pairs)));
        this.summary.retrying += added.reduce((a, b) => a + Number(b), 0);
        if (ids.length < this.chunk) break;
      }
    }
  }

  /** Dead-letter lists, in order (each source's order; sources one after another). */
  private async copyDead(old: Part): Promise<void> {
    for (const [p, key] of old.keys.deadLetters.entries()) {
      for (let at = 0; ; at += this.chunk) {
        const ids = await this.redis.lrange(key, at, at + this.chunk - 1);
        if (ids.length === 0) break;
        const groups = await this.groupByTarget(old, ids);
        const pushed = await Promise.all([...groups].map(([to, g]) => this.redis.eval(PUSH_ONCE, 2, to.keys.deadLetters[p]!, to.copiedDead, ...g)));
        this.summary.dead += pushed.reduce((a: number, b) => a + Number(b), 0);
        if (ids.length < this.chunk) break;
      }
    }
  }

  /**
   * Tombstones to every new partition: a cancelled task's meta is gone, so its tenant is unknown;
   * one in a partition the task does not live in never matches, and all lapse after 10 minutes.
   */
  private async copyTombstones(old: Part): Promise<void> {
    const targets = this.news.filter((p) => p.tag !== old.tag);
    if (targets.length === 0) return;
    for (let at = 0; ; at += this.chunk) {
      const flat = await this.redis.zrange(old.keys.tombstones, at, at + this.chunk - 1, 'WITHSCORES');
      if (flat.length === 0) break;
      const pairs: string[] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push(flat[i + 1]!, flat[i]!);
      await Promise.all(targets.map((p) => this.redis.zadd(p.keys.tombstones, ...pairs)));
      this.summary.tombstones += pairs.length / 2;
      if (flat.length < 2 * this.chunk) break;
    }
  }

  /** A hash of per-tenant fields (dispatch settings, admission counters) to each tenant's new partition; `*` (the default) to all. */
  private async copyByTenant(old: Part, key: string, dstKey: (p: Part) => string, tenantOf: (field: string) => string, star = false): Promise<void> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(key, cursor, 'COUNT', this.chunk);
      cursor = next;
      const groups = new Map<Part, string[]>();
      const add = (p: Part, f: string, v: string) => groups.set(p, [...(groups.get(p) ?? []), f, v]);
      for (let i = 0; i < flat.length; i += 2) {
        const f = flat[i]!;
        const v = flat[i + 1]!;
        if (star && f === '*') {
          for (const p of this.news) if (p.tag !== old.tag) add(p, f, v);
          continue;
        }
        const tenant = tenantOf(f);
        this.tenantsSeen.add(tenant);
        const to = this.target(tenant, old);
        if (to) {
          this.tenantsMoved.add(tenant);
          add(to, f, v);
        }
      }
      await Promise.all([...groups].map(([p, fv]) => this.redis.hset(dstKey(p), ...fv)));
    } while (cursor !== '0');
  }

  /** Every key of an old partition none of the new ones shares. The control slot's own keys stay. */
  private async deletePartition(old: Part): Promise<void> {
    const k = old.keys;
    const tenants = await this.tenantsOf(old);
    // The lists first: the registry and rings name them, so a rerun still finds them.
    let batch: string[] = [];
    for (const t of tenants) {
      for (const priority of PRIORITIES) batch.push(k.tenantQueue(priority, t));
      if (batch.length >= this.chunk) {
        await this.unlinkSameSlot(batch);
        batch = [];
      }
    }
    if (batch.length) await this.unlinkSameSlot(batch);
    const control = old.tag === this.control;
    const keys = [
      k.messages, k.meta, k.attempts, k.tokens, k.readyAt, k.processing, k.wrr, k.tenantDispatch, k.tombstones, k.running,
      ...k.retries, ...k.deadLetters, ...k.parked, k.parkedTenants, ...k.rings, k.tenants, ...k.leftPasses,
      ...Object.values(old.admission), old.copiedDead, k.delayedMark,
      // A partition of several has its own placeholders; the single one's are the control slot's.
      ...(control ? [] : [k.doorbell, k.leaseDoorbell, k.workers, k.workerSlots]),
      ...(await this.rateBuckets(k)),
    ];
    await this.unlinkSameSlot(keys);
  }

  /** Rate buckets (includes/rates.lua: 10 s each, expiring after 90 s) that may still exist. */
  private async rateBuckets(k: QueueKeys): Promise<string[]> {
    const [sec] = (await this.redis.time()) as [string | number, string | number];
    const bucket = Math.floor((Number(sec) * 1000) / 10_000);
    return Array.from({ length: 12 }, (_, i) => `${k.ratesPrefix}${bucket + 1 - i}`);
  }

  /**
   * An old partition whose tag a new one shares (M > 1 and N > 1 may give partition k the same
   * salt): the tasks and tenants that stay are left in place, those that moved are removed.
   */
  private async keepStaying(old: Part): Promise<void> {
    const k = old.keys;
    // The delayed-task loader's mark goes: the next pass loads from the start (what is indexed already is skipped).
    await this.redis.unlink(k.delayedMark);
    const stays = (tenant: string) => this.target(tenant, old) === null;
    const staysById = async (ids: string[]) => (await this.redis.hmget(k.meta, ...ids)).map((m) => m != null && stays(tenantOfMeta(m)));
    // Dead letters first, while meta still names every tenant: rebuilt without those that moved
    // (a rerun rebuilds from the list as it is, so it is safe to repeat).
    const scratch = `${old.tag}:repartition:scratch`;
    for (const key of k.deadLetters) {
      await this.redis.unlink(scratch);
      for (let at = 0; ; at += this.chunk) {
        const ids = await this.redis.lrange(key, at, at + this.chunk - 1);
        if (ids.length === 0) break;
        const keep = await staysById(ids);
        const kept = ids.filter((_, i) => keep[i]);
        if (kept.length) await this.redis.rpush(scratch, ...kept);
        if (ids.length < this.chunk) break;
      }
      if ((await this.redis.exists(scratch)) === 1) await this.redis.rename(scratch, key);
      else await this.redis.unlink(key);
    }
    for (const key of k.retries) {
      let cursor = '0';
      do {
        const [next, flat] = await this.redis.zscan(key, cursor, 'COUNT', this.chunk);
        cursor = next;
        const ids = flat.filter((_, i) => i % 2 === 0);
        if (ids.length === 0) continue;
        const metas = await this.redis.hmget(k.meta, ...ids);
        const gone = ids.filter((_, i) => metas[i] != null && !stays(tenantOfMeta(metas[i]!)));
        if (gone.length) await this.redis.zrem(key, ...gone);
      } while (cursor !== '0');
    }
    const tenants = await this.tenantsOf(old);
    for (const t of tenants) {
      if (stays(t)) continue;
      const pipe = this.pipe();
      pipe.unlink(...PRIORITIES.map((p) => k.tenantQueue(p, t)));
      for (const z of [...k.rings, ...k.parked, ...k.leftPasses]) pipe.zrem(z, t);
      pipe.srem(k.parkedTenants, t).srem(k.tenants, t).hdel(k.running, t);
      await this.exec(pipe);
    }
    // No lease is left: a tenant held at its running cap may lease again.
    for (const [p, parked] of k.parked.entries()) {
      for (;;) {
        const flat = await this.redis.zrange(parked, 0, this.chunk - 1, 'WITHSCORES');
        if (flat.length === 0) break;
        const pipe = this.pipe();
        const names: string[] = [];
        for (let i = 0; i < flat.length; i += 2) {
          pipe.zadd(k.rings[p]!, 'NX', flat[i + 1]!, flat[i]!);
          names.push(flat[i]!);
        }
        pipe.zrem(parked, ...names);
        await this.exec(pipe);
      }
    }
    await this.redis.unlink(k.parkedTenants);
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(k.meta, cursor, 'COUNT', this.chunk);
      cursor = next;
      const gone = flat.filter((_, i) => i % 2 === 0 && !stays(tenantOfMeta(flat[i + 1]!)));
      if (gone.length === 0) continue;
      const pipe = this.pipe();
      // meta last: a task whose meta is still here is removed again by a rerun.
      for (const h of [k.messages, k.attempts, k.readyAt, k.tokens, k.meta]) pipe.hdel(h, ...gone);
      await this.exec(pipe);
    } while (cursor !== '0');
    const a = old.admission;
    for (const [key, tenantOf] of [
      [k.tenantDispatch, (f: string) => f],
      [a.buckets, tenantOfBucketField],
      [a.admitted, (f: string) => f],
      [a.base, (f: string) => f],
      [a.admittedAtBase, (f: string) => f],
    ] as const) {
      let c = '0';
      do {
        const [next, flat] = await this.redis.hscan(key, c, 'COUNT', this.chunk);
        c = next;
        const gone = flat.filter((f, i) => i % 2 === 0 && f !== '*' && !stays(tenantOf(f)));
        if (gone.length) await this.redis.hdel(key, ...gone);
      } while (c !== '0');
    }
  }

  /** wrr's `custom`: tenants with settings of their own, read by every lease (lua/dispatch.lua counts it the same way). */
  private async recountCustom(p: Part): Promise<void> {
    let custom = 0;
    let any = false;
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(p.keys.tenantDispatch, cursor, 'COUNT', this.chunk);
      cursor = next;
      for (let i = 0; i < flat.length; i += 2) {
        any = true;
        if (flat[i] !== '*' && flat[i + 1] !== '1:-1') custom++;
      }
    } while (cursor !== '0');
    if (any) await this.redis.hset(p.keys.wrr, 'custom', custom);
  }

  /** UNLINK of keys of one slot, in chunks (one command per chunk, as a cluster requires). */
  private async unlinkSameSlot(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += this.chunk) await this.redis.unlink(...keys.slice(i, i + this.chunk));
  }

  private pipe(): Pipe {
    return (this.redis as Redis).pipeline();
  }

  /** Runs a pipeline (one slot), throwing its first error. */
  private async exec(pipe: Pipe): Promise<unknown[]> {
    const res = await pipe.exec();
    if (!res) throw new Error('pipeline aborted');
    return res.map(([err, v]) => {
      if (err) throw err;
      return v;
    });
  }
}

export function repartition(redis: Conn, opts: RepartitionOptions): Promise<RepartitionSummary> {
  return new Repartitioner(redis, opts).run();
}
