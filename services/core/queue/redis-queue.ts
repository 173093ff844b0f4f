/** The Redis adapter of TaskQueue: every state change is one Lua script, fenced by the lease token. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import type { RetryPolicy } from '../tasks/backoff';
import { PRIORITIES, Priority, priorityIndex } from '../tasks/priority';
import { queueKeys, QueueKeys } from './keys';
import type { CancelOptions, CancelState, Doorbell, EnqueueItem, TenantOverview, Finished, FinishItem, Held, IndexEntry, Lease, LeaseBatch, LeaseOptions, Promoted, QueueMessage, QueueStats, Reaped, Released, SettleItem, Sweep, TaskQueue, TaskRef, TenantDispatch, TenantStats, DelayedMark, DueMark, LockOptions } from './queue';

export type Strategy = 'weighted' | 'strict';

export interface RedisQueueOptions {
  prefix: string;
  strategy: Strategy;
  weights: Record<Priority, number>;
  /** Tenants stats() reports one by one (TENANT_METRICS_LIMIT); the rest are summed. Default 50. */
  tenantStatsLimit?: number;
  /** Ids one script of the sweep's repair reads at most (see sweep()). Default 1000. */
  sweepPageSize?: number;
  /**
   * One partition of several (partitioned-queue.ts): its hash tag and index, and where a ring of
   * its scripts goes (the doorbell is in the control slot, out of the scripts' reach).
   */
  partition?: { tag: string; index: number; relayRing: () => void };
}

const SCRIPTS = ['enqueue', 'lease', 'extend', 'finish', 'release', 'reap', 'promote', 'lock', 'unlock', 'stats', 'announce', 'settle', 'ring', 'sweep', 'sweep-held', 'sweep-unheld', 'dispatch', 'cancel', 'requeue', 'overview', 'purge', 'mark'] as const;
type ScriptName = (typeof SCRIPTS)[number];
/** Scripts that may ring the doorbell (includes/doorbell.lua), besides lease. */
type RingingScript = 'enqueue' | 'finish' | 'release' | 'reap' | 'promote' | 'settle' | 'requeue' | 'dispatch';
type ScriptFn = (keys: string[], args: (string | number)[]) => Promise<unknown>;

function scriptDir(): string {
  // Compiled code runs from dist/; the .lua files stay beside the TypeScript source.
  const here = path.join(__dirname, 'lua');
  try {
    readFileSync(path.join(here, 'lease.lua'));
    return here;
  } catch {
    return path.resolve(__dirname, '../../../../services/core/queue/lua');
  }
}

const scriptSource = new Map<ScriptName, string>();
/** Reads a script, replacing each `-- @include name` line with `includes/name.lua` (shared fragments). */
function loadScript(name: ScriptName): string {
  let src = scriptSource.get(name);
  if (!src) {
    src = readFileSync(path.join(scriptDir(), `${name}.lua`), 'utf8').replace(/^-- @include ([a-z-]+)$/gm, (_line, inc: string) =>
      readFileSync(path.join(scriptDir(), 'includes', `${inc}.lua`), 'utf8'),
    );
    scriptSource.set(name, src);
  }
  return src;
}

interface WireMessage {
  type: string;
  payload: unknown;
  created_at: number;
  /** Only for a task with its own policy or timeout: plain tasks' messages stay as small as they were. */
  retry?: RetryPolicy;
  timeout_ms?: number;
  /** Only for a delayed task: its due time (ms). */
  run_at?: number;
  /** Only for a workflow step: its key. */
  step?: string;
  /** Only for a task an operator retried: the attempts counted before. */
  retry_base?: number;
  /** Only for a workflow step whose dependencies' results are small: those results. */
  parents?: Record<string, unknown>;
}

/** JSON.stringify of the WireMessage; a payload given as JSON text is spliced in unparsed (same message once parsed). */
function wireMessage(it: EnqueueItem): string {
  const policy =
    (it.retry ? `,"retry":${JSON.stringify(it.retry)}` : '') + (it.timeoutMs ? `,"timeout_ms":${it.timeoutMs}` : '') + (it.runAtMs ? `,"run_at":${it.runAtMs}` : '') +
    (it.stepKey !== undefined ? `,"step":${JSON.stringify(it.stepKey)}` : '') +
    (it.retryBase ? `,"retry_base":${it.retryBase}` : '') +
    (it.parentsJson !== undefined ? `,"parents":${it.parentsJson}` : '');
  if (it.payloadJson === undefined && !policy) return JSON.stringify({ type: it.type, payload: it.payload, created_at: it.createdAtMs } satisfies WireMessage);
  const payload = it.payloadJson ?? JSON.stringify(it.payload === undefined ? {} : it.payload);
  return `{"type":${JSON.stringify(it.type)},"payload":${payload},"created_at":${JSON.stringify(it.createdAtMs)}${policy}}`;
}

/** How long a sweep's set of held ids outlives its last page, should the pass stop half way. */
const SWEEP_HELD_TTL_MS = 600_000;

/** Lost lease answers remembered (older ones' leases wait out their lease, as before). */
const MAX_UNANSWERED = 8;

export class RedisQueue implements TaskQueue {
  readonly keys: QueueKeys;
  private readonly run: Record<ScriptName, ScriptFn>;
  private readonly commands: Record<ScriptName, string>;
  /**
   * Lease tokens are this process's random nonce plus a call counter (and the task's place in the
   * call): unique for good (task_runs.lease_token is a unique key) without the 12 fresh random
   * bytes per call that were 4 % of a worker's CPU. Tokens fence writes; they are not secrets.
   */
  private readonly tokenNonce = randomBytes(12).toString('base64url');
  private leaseCalls = 0;
  /** Lease calls whose answer was lost (their leases may have been made): made again, one at a time. */
  private unanswered: string[] = [];
  /** The last lease call answered: its record goes with the next call. */
  private answered = '';
  private leasesInFlight = 0;
  /** A sweep's repair is running (see sweep()). */
  private repairing = false;

  constructor(
    readonly redis: Redis,
    private readonly opts: RedisQueueOptions,
  ) {
    this.keys = queueKeys(opts.prefix, opts.partition?.tag);
    const run = {} as Record<ScriptName, ScriptFn>;
    this.commands = {} as Record<ScriptName, string>;
    for (const name of SCRIPTS) {
      const cmd = `ts_${name}`;
      if (!(cmd in redis)) redis.defineCommand(cmd, { lua: loadScript(name) });
      const fn = (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[cmd]!.bind(redis);
      run[name] = (keys, args) => fn(keys.length, ...keys, ...args);
      this.commands[name] = cmd;
    }
    if (opts.partition) for (const name of RINGING) run[name] = this.relaying(name);
    this.run = run;
  }

  /**
   * A ringing script of one partition of several: the script rings the partition's placeholder
   * doorbell, and the same round trip takes that ring back (LPOP, same slot, in one pipeline) to
   * pass it on to the control slot's doorbell, not awaited.
   */
  private relaying(name: RingingScript): ScriptFn {
    const cmd = this.commands[name];
    const rang = this.keys.doorbell;
    const relay = this.opts.partition!.relayRing;
    return async (keys, args) => {
      const pipe = this.redis.pipeline() as unknown as Record<string, (...a: unknown[]) => unknown> & { lpop(k: string): unknown; exec(): Promise<[Error | null, unknown][] | null> };
      pipe[cmd]!(keys.length, ...keys, ...args);
      pipe.lpop(rang);
      const res = await pipe.exec();
      if (!res) throw new Error(`${name}: pipeline aborted`);
      const [[err, value], [, ring]] = res as [[Error | null, unknown], [Error | null, unknown]];
      if (err) throw err;
      if (ring != null) relay();
      return value;
    };
  }

  async enqueue(items: EnqueueItem[]): Promise<boolean[]> {
    if (items.length === 0) return [];
    const k = this.keys;
    const args: (string | number)[] = [];
    for (const it of items) {
      args.push(it.id, priorityIndex(it.priority), it.maxAttempts, wireMessage(it), it.attempts, it.dueAtMs ?? 0, it.tenant);
    }
    const res = (await this.run.enqueue([k.messages, k.meta, k.attempts, k.readyAt, ...k.retries, k.doorbell, ...k.tenantBlock, k.tombstones, k.ratesPrefix], args)) as number[];
    // The last element: the due time of a task now earliest in its due-time set (0: none). A hint
    // for the retry pumps (onDue); one missed is promoted by their fallback scan.
    const earliest = res.pop()!;
    if (earliest > 0) this.redis.publish(k.dueChannel, String(earliest)).catch(() => undefined);
    return res.map((r) => r === 1);
  }

  async lease(opts: LeaseOptions): Promise<Lease[]> {
    return (await this.leaseBatch(opts)).leases;
  }

  async leaseBatch(opts: LeaseOptions): Promise<LeaseBatch> {
    const k = this.keys;
    const w = this.opts.weights;
    // A partition's tokens end in `.<partition>` (before lease.lua's `:k`): finish, extend and
    // release find a lease's partition from its token (tokenPartition).
    const call = `${this.tokenNonce}${(this.leaseCalls++).toString(36)}${this.opts.partition ? `.${this.opts.partition.index}` : ''}`;
    // A call whose answer was lost is made again (alone, so no other caller can get its leases):
    // lease.lua then answers with the leases it made, which would otherwise wait out their lease.
    const again = this.leasesInFlight === 0 ? this.unanswered.pop() : undefined;
    const tokenBase = again ?? (opts.owner ? `${opts.owner}~${call}` : call);
    const answered = this.answered;
    this.answered = '';
    this.leasesInFlight++;
    let res: (string | number)[];
    try {
      res = (await this.run.lease(
        [k.processing, k.messages, k.meta, k.attempts, k.tokens, k.readyAt, k.wrr, k.leaseDoorbell, k.tenantDispatch, ...k.tenantBlock, k.leaseCallPrefix],
        [opts.max, opts.visibilityMs, tokenBase, this.opts.strategy === 'strict' ? 1 : 0, w.critical, w.high, w.default, w.low, opts.defaultMaxRunning ?? 0, this.opts.partition ? 1 : 0, answered],
      )) as (string | number)[];
    } catch (err) {
      this.unanswered = [...this.unanswered.slice(-(MAX_UNANSWERED - 1)), tokenBase];
      this.answered ||= answered;
      throw err;
    } finally {
      this.leasesInFlight--;
    }
    this.answered = tokenBase;
    const now = Number(res[0]);
    const deadlineMs = now + opts.visibilityMs;
    const leases: Lease[] = [];
    for (let i = 3, k = 1; i < res.length; i += 5, k++) {
      // A lease of the call made again that has ended since.
      if (res[i] === '') continue;
      const wire = JSON.parse(res[i + 2] as string) as WireMessage;
      const meta = parseMeta(res[i + 3] as string);
      const message: QueueMessage = {
        id: res[i] as string,
        tenant: meta.tenant,
        type: wire.type,
        priority: meta.priority,
        payload: wire.payload,
        maxAttempts: meta.maxAttempts,
        createdAtMs: wire.created_at,
      };
      if (wire.retry) message.retry = wire.retry;
      if (wire.timeout_ms) message.timeoutMs = wire.timeout_ms;
      if (wire.run_at) message.runAtMs = wire.run_at;
      if (wire.step !== undefined) message.stepKey = wire.step;
      if (wire.retry_base) message.retryBase = wire.retry_base;
      if (wire.parents) message.parents = wire.parents;
      // As lease.lua makes them.
      leases.push({ message, token: `${tokenBase}:${k}`, attempt: res[i + 1] as number, deadlineMs, readyAtMs: Number(res[i + 4]), leasedAtMs: now });
    }
    const active = res[2] as unknown;
    return { leases, left: Number(res[1]), ...(Array.isArray(active) ? { active: byPriority((i) => Number(active[i] ?? 0)) } : {}) };
  }

  async extend(held: Pick<Held, 'id' | 'token'>[], visibilityMs: number): Promise<boolean[]> {
    if (held.length === 0) return [];
    const res = (await this.run.extend([this.keys.processing, this.keys.tokens], [visibilityMs, ...held.flatMap((h) => [h.id, h.token])])) as number[];
    return res.map((r) => r === 1);
  }

  async finish(items: FinishItem[]): Promise<Finished[]> {
    if (items.length === 0) return [];
    const args: (string | number)[] = [];
    for (const it of items) {
      args.push(it.id, it.token, OUTCOME_CODE[it.outcome], priorityIndex(it.priority), Math.max(0, Math.round(it.delayMs ?? 0)), it.settleAttempts);
    }
    const res = (await this.run.finish([...this.placementKeys(), this.keys.doorbell, this.keys.tombstones, this.keys.ratesPrefix], args)) as number[];
    return res.map((r) => FINISHED[r] ?? 'stale');
  }

  /** Tasks whose outcome is final, for the current lease holder: forgotten. */
  ack(held: Pick<Held, 'id' | 'token'>[]): Promise<boolean[]> {
    return this.finishAll(held.map((h) => ({ ...h, priority: 'default', outcome: 'succeeded', settleAttempts: 0 })));
  }

  /** Leased tasks to their retry set, due after delayMs. */
  retry(items: (Held & { delayMs: number })[]): Promise<boolean[]> {
    return this.finishAll(items.map((h) => ({ ...h, outcome: 'retrying', settleAttempts: 0 })));
  }

  /** Leased tasks to their dead-letter list. */
  bury(items: Held[]): Promise<boolean[]> {
    return this.finishAll(items.map((h) => ({ ...h, outcome: 'dead', settleAttempts: 0 })));
  }

  private async finishAll(items: FinishItem[]): Promise<boolean[]> {
    return (await this.finish(items)).map((r) => r === 'finished');
  }

  async release(items: Released[]): Promise<boolean[]> {
    if (items.length === 0) return [];
    const k = this.keys;
    const args = items.flatMap((h) => [h.id, h.token, priorityIndex(h.priority), h.attemptCounted ? 1 : 0]);
    const res = (await this.run.release([k.processing, k.tokens, k.attempts, k.meta, k.doorbell, ...k.tenantBlock, k.tombstones, k.messages, k.readyAt], args)) as number[];
    return res.map((r) => r === 1);
  }

  async reap(limit: number, holdMs: number): Promise<Reaped[]> {
    const k = this.keys;
    const res = (await this.run.reap(
      [k.processing, k.meta, k.attempts, k.tokens, k.readyAt, ...k.deadLetters, k.messages, k.doorbell, ...k.tenantBlock, k.tombstones],
      [limit, holdMs],
    )) as (string | number)[];
    const out: Reaped[] = [];
    for (let i = 0; i < res.length; i += 7) {
      out.push({
        id: String(res[i]),
        expiredToken: String(res[i + 1]),
        attempt: Number(res[i + 2]),
        destination: res[i + 3] === 'dead' ? 'dead' : res[i + 3] === 'held' ? 'held' : 'queued',
        priority: PRIORITIES[Number(res[i + 4])] ?? 'default',
        type: (JSON.parse(String(res[i + 5])) as Partial<WireMessage>).type ?? 'unknown',
        tenant: String(res[i + 6]),
      });
    }
    return out;
  }

  async cancel(tasks: TaskRef[], opts: CancelOptions = {}): Promise<CancelState[]> {
    if (tasks.length === 0) return [];
    const abortLeased = opts.abortLeased === false ? 0 : 1;
    const res = (await this.run.cancel([...this.placementKeys(), this.keys.tombstones, this.keys.ratesPrefix], [this.keys.cancelChannel, abortLeased, ...tasks.map((t) => t.id)])) as number[];
    return res.map((r) => (r === 2 ? 'leased' : r === 1 ? 'removed' : 'absent'));
  }

  async liftTombstones(tasks: TaskRef[]): Promise<void> {
    if (tasks.length > 0) await this.redis.zrem(this.keys.tombstones, ...tasks.map((t) => t.id));
  }

  async requeue(items: EnqueueItem[]): Promise<boolean[]> {
    if (items.length === 0) return [];
    const args = items.flatMap((it) => [it.id, priorityIndex(it.priority), it.maxAttempts, wireMessage(it), it.attempts, it.tenant, it.dueAtMs ?? 0]);
    const res = (await this.run.requeue([...this.placementKeys(), this.keys.tombstones, this.keys.doorbell], args)) as number[];
    // A delayed task put back before its run_at waits in its due-time set: the retry pumps are told
    // when, as for an enqueue (one missed is promoted by their fallback scan).
    const due = Math.min(...items.flatMap((it, i) => (res[i] === 1 && (it.dueAtMs ?? 0) > 0 ? [it.dueAtMs!] : [])));
    if (Number.isFinite(due)) this.redis.publish(this.keys.dueChannel, String(due)).catch(() => undefined);
    return res.map((r) => r === 1);
  }

  async overview(tenant: string): Promise<TenantOverview> {
    const k = this.keys;
    const r = ((await this.run.overview([k.workers, k.workerSlots, k.readyAt, ...k.tenantBlock, k.ratesPrefix], [tenant])) as (number | string)[]).map((x, i) => (i === 0 ? Number(x) : x));
    const now = Number(r[0]);
    const priorities = {} as TenantOverview['priorities'];
    PRIORITIES.forEach((p, i) => {
      const oldest = Number(r[5 + i]);
      const at = 10 + i * 5;
      priorities[p] = {
        ready: Number(r[1 + i]),
        oldestWaitingSeconds: oldest > 0 ? Math.max(0, now - oldest) / 1000 : 0,
        lastMinute: { enqueued: Number(r[at]), succeeded: Number(r[at + 1]), retried: Number(r[at + 2]), dead: Number(r[at + 3]), cancelled: Number(r[at + 4]) },
      };
    });
    const workers: TenantOverview['workers'] = [];
    const n = Number(r[30]);
    for (let i = 0; i < n; i++) workers.push({ id: String(r[31 + i * 2]), slots: Number(r[32 + i * 2]) || null });
    return { priorities, running: Number(r[9]), workers };
  }

  async cancelRequested(held: Pick<Held, 'id' | 'token'>[]): Promise<boolean[]> {
    if (held.length === 0) return [];
    const scores = await this.redis.zmscore(this.keys.tombstones, ...held.map((h) => h.id));
    return scores.map((s) => s !== null);
  }

  /**
   * Calls `onCancel(taskId)` when an operator cancels a task that is leased (see lua/cancel.lua),
   * on a connection of its own; the returned function ends the subscription. Messages sent while
   * it is not subscribed are lost: the heartbeat's cancelRequested() check covers them, and
   * `onSubscribed` is called each time the subscription is (again) in place, so the caller can run
   * that check at once instead of at the next heartbeat.
   */
  async onCancel(onCancel: (taskId: string) => void, onSubscribed?: () => void): Promise<() => Promise<void>> {
    return this.subscribe(this.keys.cancelChannel, onCancel, onSubscribed);
  }

  /** Calls `onDue(dueAtMs)` when a delayed task due sooner than any other waiting one is enqueued (see lua/enqueue.lua). */
  async onDue(onDue: (dueAtMs: number) => void): Promise<() => Promise<void>> {
    return this.subscribe(this.keys.dueChannel, (ms) => onDue(Number(ms)));
  }

  private async subscribe(channel: string, onMessage: (message: string) => void, onSubscribed?: () => void): Promise<() => Promise<void>> {
    const sub = this.redis.duplicate({ lazyConnect: false });
    sub.on('error', () => undefined);
    sub.on('message', (_channel: string, message: string) => onMessage(message));
    // ioredis subscribes again after every reconnect, then emits `ready`.
    let subscribed = false;
    sub.on('ready', () => subscribed && onSubscribed?.());
    // Not awaited: with Redis away at start-up the subscription waits for it, and a worker stopped
    // meanwhile must not wait for Redis to return.
    sub.subscribe(channel).then(
      () => {
        subscribed = true;
        onSubscribed?.();
      },
      () => undefined,
    );
    return async () => {
      sub.disconnect();
    };
  }

  /** The KEYS of the scripts that include placement.lua. */
  private placementKeys(): string[] {
    const k = this.keys;
    return [k.processing, k.messages, k.meta, k.attempts, k.tokens, k.readyAt, ...k.retries, ...k.deadLetters, ...k.tenantBlock];
  }

  async settle(items: SettleItem[]): Promise<number> {
    if (items.length === 0) return 0;
    const args = items.flatMap((it) => [it.id, priorityIndex(it.priority), it.state, it.attempts, Math.round(it.dueAtMs ?? 0), it.token ?? '']);
    return Number(await this.run.settle([...this.placementKeys(), this.keys.doorbell, this.keys.tombstones], args));
  }

  async promoteDue(limitPerPriority: number): Promise<Promoted> {
    const k = this.keys;
    const res = (await this.run.promote([...k.retries, k.readyAt, k.doorbell, k.meta, ...k.tenantBlock], [limitPerPriority])) as number[];
    const next = Number(res[4] ?? -1);
    return { moved: byPriority((i) => Number(res[i] ?? 0)), nextDueInMs: next < 0 ? null : next };
  }

  async stats(): Promise<QueueStats> {
    const k = this.keys;
    const raw = (await this.run.stats([...k.retries, ...k.deadLetters, k.processing, k.readyAt, k.workers, ...k.tenantBlock], [this.opts.tenantStatsLimit ?? 50])) as (number | string)[];
    const r = raw.slice(0, 24).map(Number);
    const now = r[0]!;
    const at = (i: number) => r[i] ?? 0;
    const tenants: TenantStats[] = [];
    for (let i = 24; i + 2 < raw.length; i += 3) tenants.push({ tenant: raw[i] === '' ? null : String(raw[i]), ready: Number(raw[i + 1]), running: Number(raw[i + 2]) });
    return {
      ready: byPriority((i) => at(1 + i)),
      leasable: byPriority((i) => at(19 + i)),
      retrying: byPriority((i) => at(5 + i)),
      dead: byPriority((i) => at(9 + i)),
      processing: at(13),
      oldestWaitingSeconds: byPriority((i) => (at(14 + i) > 0 ? Math.max(0, now - at(14 + i)) / 1000 : 0)),
      liveWorkers: at(18),
      tenants,
    };
  }

  async configureTenants(defaultMaxRunning: number, tenants: TenantDispatch[]): Promise<{ changed: number; complete: boolean }> {
    const k = this.keys;
    const args: (string | number)[] = [defaultMaxRunning];
    for (const t of tenants) args.push(t.tenant, t.weight, t.maxRunning ?? -1);
    const [changed, had] = (await this.run.dispatch([k.tenantDispatch, k.doorbell, ...k.tenantBlock, k.wrr], args)) as number[];
    return { changed: Number(changed), complete: Number(had) === 1 };
  }

  /** Ids ready at `priority`, tenant by tenant (ring, then parked; each list FIFO): for tests and operators. */
  async readyIds(priority: Priority): Promise<string[]> {
    const i = priorityIndex(priority);
    const tenants = [...new Set([...(await this.redis.zrange(this.keys.rings[i]!, 0, -1)), ...(await this.redis.zrange(this.keys.parked[i]!, 0, -1))])];
    const lists = await Promise.all(tenants.map((t) => this.redis.lrange(this.keys.tenantQueue(priority, t), 0, -1)));
    return lists.flat();
  }

  /** Announces a live worker until ttlMs from now; 0 withdraws the announcement. */
  async announceWorker(workerId: string, ttlMs: number, slots = 0): Promise<void> {
    await this.run.announce([this.keys.workers, this.keys.workerSlots], [workerId, ttlMs, slots]);
  }

  async deadLetterIds(priority: Priority, limit = 1000): Promise<string[]> {
    return this.redis.lrange(this.keys.deadLetters[priorityIndex(priority)]!, 0, limit - 1);
  }

  async indexed(tasks: TaskRef[]): Promise<(IndexEntry | null)[]> {
    if (tasks.length === 0) return [];
    const k = this.keys;
    const ids = tasks.map((t) => t.id);
    // One MULTI: a consistent snapshot of the three structures.
    const res = await this.redis.multi().hmget(k.meta, ...ids).hmget(k.attempts, ...ids).zmscore(k.processing, ...ids).exec();
    const failed = res?.find(([err]) => err);
    if (!res || failed) throw failed?.[0] ?? new Error('indexed: transaction aborted');
    const [meta, attempts, leased] = res.map(([, v]) => v as (string | null)[]);
    return ids.map((_, i) => {
      const m = meta![i];
      if (m == null) return null;
      const counted = Number(attempts![i] ?? 0);
      return { deadLetteredAfter: leased![i] == null && counted >= Number(m.split(':')[1]) ? counted : null };
    });
  }

  /**
   * The count (sweep.lua), and when it disagrees the repair, in pages of at most sweepPageSize ids
   * a script: every held structure read into a set of held ids (orphans removed on the way), then
   * the known tasks walked against it (sweep-unheld.lua checks an id it would forget against every
   * place itself, so a task that moved between pages is not forgotten), then a count again.
   */
  async sweep(limit: number, heldTwiceBefore = 0): Promise<Sweep> {
    const k = this.keys;
    const count = async (listsToo: boolean) =>
      (await this.run.sweep([k.messages, k.meta, k.attempts, k.tokens, k.readyAt, k.processing, ...k.retries, ...k.deadLetters, ...k.tenantBlock], [listsToo ? 0 : 1, heldTwiceBefore])) as (number | string)[];
    const res = await count(true);
    const out: Sweep = { known: Number(res[0]), held: Number(res[1]), orphans: 0, heldTwice: heldTwiceBefore, tenantRepairs: Number(res[2]), forgotten: [] };
    // One repair at a time in this process: a pass over a partition whose last repair outlived
    // passWaitMs only counts (two would each read everything, for nothing).
    if (Number(res[3]) !== 1 || this.repairing) return out;
    this.repairing = true;
    try {
      await this.repair(res.slice(4).map(String), limit, out);
    } finally {
      this.repairing = false;
    }
    // Ids held twice, counted in one script once the repair is done (each known task held once
    // but those): an id seen on two pages may only have moved between them, and counting those
    // made every later pass under load search again.
    const after = await count(false);
    out.heldTwice = Math.max(0, Number(after[1]) - Number(after[0]));
    return out;
  }

  /** The sweep's repair over `lists` (and the sets), adding to `out`; see sweep(). */
  private async repair(lists: string[], limit: number, out: Sweep): Promise<void> {
    const k = this.keys;
    const page = this.opts.sweepPageSize ?? 1000;
    // A set of this pass's own: another process's repair (a reconciler pass that outlived its
    // lock) cannot empty it half way, which would leave every id to sweep-unheld's checks.
    const held = k.sweepHeld(randomBytes(9).toString('base64url'));
    const structures: [string, boolean][] = [...lists.map((key): [string, boolean] => [key, false]), [k.processing, true], ...k.retries.map((key): [string, boolean] => [key, true])];
    for (const [key, isZset] of structures) {
      for (let offset = 0; ; ) {
        const [read, orphans, next] = (await this.run['sweep-held']([held, key, k.meta, k.tokens], [isZset ? 1 : 0, offset, page, SWEEP_HELD_TTL_MS])) as number[];
        out.orphans += orphans!;
        if (read! < page) break;
        offset = next!;
      }
    }
    let cursor = '0';
    do {
      const [next, ...gone] = (await this.run['sweep-unheld'](
        [held, k.messages, k.meta, k.attempts, k.tokens, k.readyAt, k.processing, ...k.retries, ...k.deadLetters, ...k.tenantBlock],
        [cursor, page, limit - out.forgotten.length],
      )) as string[];
      cursor = String(next);
      out.forgotten.push(...gone.map(String));
    } while (cursor !== '0' && out.forgotten.length < limit);
  }

  async purge(tasks: TaskRef[]): Promise<number> {
    if (tasks.length === 0) return 0;
    const k = this.keys;
    return Number(await this.run.purge([k.processing, k.messages, k.meta, k.attempts, k.tokens, k.readyAt, ...k.deadLetters], tasks.map((t) => t.id)));
  }

  /** The delayed-task loader's mark (see lua/mark.lua); `seen` is handed back to setDelayedMark. */
  async delayedMark(): Promise<DelayedMark> {
    const v = await this.redis.get(this.keys.delayedMark);
    return { at: v === null ? null : parseDueMark(v), seen: [v ?? ''] };
  }

  /** (`unpushed`: an unanswered push makes enqueue throw here, so a pass with one never gets this far.) */
  async setDelayedMark(seen: (string | null)[], at: DueMark, _unpushed?: TaskRef[]): Promise<boolean> {
    return (await this.run.mark([this.keys.delayedMark], [seen[0] ?? '', formatDueMark(at)])) === 1;
  }

  /** Takes or renews the named lock for `owner`; true while `owner` holds it. */
  async lock(name: string, owner: string, ttlMs: number, opts: LockOptions = {}): Promise<boolean> {
    return (await this.run.lock([this.keys.lock(name)], [owner, ttlMs, opts.renewOnly ? 1 : 0])) === 1;
  }

  async unlock(name: string, owner: string): Promise<void> {
    await this.run.unlock([this.keys.lock(name)], [owner]);
  }

  /** A doorbell of this queue, with its own connection (see RedisDoorbell). */
  doorbell(): Doorbell {
    return new RedisDoorbell(this.redis, this.keys.doorbell, () => this.ringDoorbell());
  }

  /** Rings the doorbell (wakes one waiting worker). */
  ringDoorbell(): Promise<unknown> {
    return this.run.ring([this.keys.doorbell], []);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/**
 * Waits for rings of the doorbell (tasks became ready: enqueued, promoted from a retry set, reaped
 * or handed back). BLPOP blocks its connection, so each doorbell has its own, opened on first use,
 * for one wait at a time; each ring goes to one waiter.
 */
class RedisDoorbell implements Doorbell {
  private conn: Redis | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    readonly ring: () => Promise<unknown>,
  ) {}

  async wait(timeoutMs: number): Promise<boolean> {
    if (!this.conn) {
      this.conn = this.redis.duplicate({ connectionName: 'doorbell', enableAutoPipelining: false, enableOfflineQueue: true });
      this.conn.on('error', () => undefined); // reconnects on its own; leasing polls meanwhile
    }
    try {
      // BLPOP takes seconds (fractions allowed); 0 would block for good.
      return (await this.conn.blpop(this.key, Math.max(0.001, timeoutMs / 1000))) !== null;
    } catch {
      return false; // Redis away, or close() ran
    }
  }

  close(): void {
    this.conn?.disconnect();
    this.conn = null;
  }
}

/** meta is "priorityIndex:maxAttempts:tenant" (written before tenants existed: no tenant, which is `default`). */
function parseMeta(meta: string): { priority: Priority; maxAttempts: number; tenant: string } {
  const a = meta.indexOf(':');
  const b = meta.indexOf(':', a + 1);
  return {
    priority: PRIORITIES[Number(meta.slice(0, a))] ?? 'default',
    maxAttempts: Number(b < 0 ? meta.slice(a + 1) : meta.slice(a + 1, b)),
    tenant: b < 0 ? 'default' : meta.slice(b + 1),
  };
}

/**
 * The loader's mark: "ms" (every task due up to then), or after a pass that stopped inside the
 * tasks due at ms, the last id it loaded as well, written "<ms - 1>.<the id as 39 decimal digits>".
 * A worker from before the id was kept reads that with Number() as ms - 1 (its Date drops the
 * fraction) and loads the tasks due at ms from the start again, as it always did: it neither fails
 * nor skips any. ("ms:id", which such a worker read as NaN, failing every pass until a newer worker
 * moved the mark, and every pass when none was left, is still read.)
 */
export function parseDueMark(v: string): DueMark {
  const colon = v.indexOf(':');
  if (colon >= 0) return { ms: Number(v.slice(0, colon)), id: v.slice(colon + 1) };
  const dot = v.indexOf('.');
  if (dot < 0) return { ms: Number(v), id: null };
  const hex = BigInt(v.slice(dot + 1)).toString(16).padStart(32, '0');
  return { ms: Number(v.slice(0, dot)) + 1, id: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}` };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function formatDueMark(at: DueMark): string {
  if (at.id === null) return String(at.ms);
  // Task ids are uuids as Postgres prints them; anything else keeps the "ms:id" form.
  if (!UUID.test(at.id)) return `${at.ms}:${at.id}`;
  return `${at.ms - 1}.${BigInt(`0x${at.id.replace(/-/g, '')}`).toString().padStart(39, '0')}`;
}

const RINGING: RingingScript[] = ['enqueue', 'finish', 'release', 'reap', 'promote', 'settle', 'requeue', 'dispatch'];

/** The partition a lease token was made in (see leaseBatch); 0 for a token of an unpartitioned queue. */
export function tokenPartition(token: string): number {
  const colon = token.lastIndexOf(':');
  const dot = token.lastIndexOf('.', colon);
  if (colon < 0 || dot < 0) return 0;
  const n = Number(token.slice(dot + 1, colon));
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

const OUTCOME_CODE: Record<FinishItem['outcome'], string> = { succeeded: 's', retrying: 'r', dead: 'd' };
const FINISHED: Finished[] = ['stale', 'finished', 'settled'];

function byPriority(f: (i: number) => number): Record<Priority, number> {
  return { critical: f(0), high: f(1), default: f(2), low: f(3) };
}
