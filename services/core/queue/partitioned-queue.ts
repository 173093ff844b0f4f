/**
 * The queue over several partitions of the keyspace (REDIS_PARTITIONS > 1, docs/redis-cluster.md):
 * one RedisQueue per partition, each touching only its own hash tag, and the control slot
 * `{prefix}` for the doorbell, worker announcements and locks. A tenant and all its tasks live in
 * one partition (partitionOf), so every script stays single-slot and fair dispatch within a
 * partition is as before; calls about tasks go to their tenant's partition, calls about leases to
 * the partition their token names, and passes over the whole queue to every partition.
 */
import type Redis from 'ioredis';
import { DependencyTimeoutError } from '../process/with-timeout';
import { Priority } from '../tasks/priority';
import type { QueueKeys } from './keys';
import { partitionOf, partitionTags } from './partitions';
import type { CancelOptions, CancelState, Doorbell, EnqueueItem, Finished, FinishItem, Held, IndexEntry, Lease, LeaseBatch, LeaseOptions, Promoted, QueueStats, Reaped, Released, SettleItem, Sweep, TaskQueue, TaskRef, TenantDispatch, TenantOverview, TenantStats, DelayedMark, DueMark, LockOptions } from './queue';
import { RedisQueue, RedisQueueOptions, tokenPartition } from './redis-queue';

export interface PartitionedQueueOptions extends Omit<RedisQueueOptions, 'partition'> {
  partitions: number;
  /**
   * How long a partition found empty is left out of lease rounds, unless this process sees a ring
   * (the doorbell, or one of its own scripts) first. Default 250 ms.
   */
  emptyRecheckMs?: number;
  /**
   * How long a lease round waits for one partition (default 1000 ms). One that has not answered by
   * then (a master stalled, or unreachable without a reset) sits the round out like one that
   * failed; leases its late answer brings are handed back, uncounted.
   */
  leaseWaitMs?: number;
  /**
   * How long a pass over the whole queue (reap, promote, sweep, indexed, the delayed loader's mark) waits for one partition
   * (default 2000 ms). One that has not answered sits the pass out like one that failed; what its
   * late answer did (reaped leases, promoted retries, forgotten tasks) is handed to the next pass.
   */
  passWaitMs?: number;
}

export class PartitionedQueue implements TaskQueue {
  readonly parts: RedisQueue[];
  /** The control slot: doorbell, worker announcements, locks (its task keys stay empty). */
  private readonly control: RedisQueue;
  /** Per partition: found empty at (ms; 0: not known empty), tenants active per priority at the last lease (null: not known). */
  private readonly emptyAt: number[];
  /** Per partition: when its last lease call failed (ms; 0: it answered). */
  private readonly failedAt: number[];
  private readonly active: (Record<Priority, number> | null)[];
  /** The lease rounds' rotation over priorities, and per priority over partitions (see leaseShares). */
  private readonly credit: LeaseCredit;
  private cursor: number;
  private ringQueued = false;
  /** Per partition, the sweep's last count of ids held twice (see TaskQueue.sweep). */
  private readonly heldTwice: number[];
  /** What passes that had stopped waiting for a partition were told by its late answer: handed to the next pass of their kind. */
  private lateReaped: Reaped[] = [];
  private latePromoted: Promoted[] = [];
  private lateForgotten: string[] = [];

  constructor(
    readonly redis: Redis,
    private readonly opts: PartitionedQueueOptions,
  ) {
    const { partitions: n, ...base } = opts;
    this.control = new RedisQueue(redis, base);
    this.parts = partitionTags(opts.prefix, n).map((tag, index) => new RedisQueue(redis, { ...base, partition: { tag, index, relayRing: () => this.relayRing() } }));
    this.emptyAt = new Array<number>(n).fill(0);
    this.failedAt = new Array<number>(n).fill(0);
    this.active = new Array<Record<Priority, number> | null>(n).fill(null);
    this.credit = { priority: [0, 0, 0, 0], partition: PRIORITY_ORDER.map(() => new Array<number>(n).fill(0)) };
    this.heldTwice = new Array<number>(n).fill(0);
    this.cursor = Math.floor(Math.random() * n);
  }

  /** The keys of the partition holding tenant `default` (tests and benchmarks of one tenant). */
  get keys(): QueueKeys {
    return this.partitionFor('default').keys;
  }

  partitionFor(tenant: string): RedisQueue {
    return this.parts[partitionOf(tenant, this.parts.length)]!;
  }

  /** Rings the control slot's doorbell for a script of a partition that rang its own (coalesced per tick). */
  private relayRing(): void {
    this.emptyAt.fill(0);
    if (this.ringQueued) return;
    this.ringQueued = true;
    queueMicrotask(() => {
      this.ringQueued = false;
      this.control.ringDoorbell().catch(() => undefined); // a lost ring costs a poll interval, no more
    });
  }

  async enqueue(items: EnqueueItem[]): Promise<boolean[]> {
    return this.byTenant(items, (q, group) => q.enqueue(group));
  }

  async requeue(items: EnqueueItem[]): Promise<boolean[]> {
    return this.byTenant(items, (q, group) => q.requeue(group));
  }

  async cancel(tasks: TaskRef[], opts: CancelOptions = {}): Promise<CancelState[]> {
    return this.byTenant(tasks, (q, group) => q.cancel(group, opts));
  }

  async liftTombstones(tasks: TaskRef[]): Promise<void> {
    await this.byTenant(tasks, async (q, group) => {
      await q.liftTombstones(group);
      return group.map(() => undefined);
    });
  }

  /**
   * undefined for the tasks of a partition that failed or did not answer within passWaitMs (not
   * known either way: the caller must not take them for unknown to Redis); throws when every
   * partition was asked and failed (an outage).
   */
  indexed(tasks: TaskRef[]): Promise<(IndexEntry | null | undefined)[]> {
    return this.answeringByTenant('indexed', tasks, (q, group) => q.indexed(group));
  }

  /** enqueue (requeue when `replace`) in the partitions that answer: undefined for the items of the others (see indexed). */
  pushAnswering(items: EnqueueItem[], replace: boolean): Promise<(boolean | undefined)[]> {
    return this.answeringByTenant(replace ? 'requeue' : 'enqueue', items, (q, group) => (replace ? q.requeue(group) : q.enqueue(group)));
  }

  /** `call` per partition of the items' tenants, each bounded by passWaitMs; undefined for the items of one that failed or is late (its late answer dropped). */
  private async answeringByTenant<T extends { tenant: string }, R>(what: string, items: T[], call: (q: RedisQueue, group: T[]) => Promise<R[]>): Promise<(R | undefined)[]> {
    const out = new Array<R | undefined>(items.length).fill(undefined);
    const groups = [...this.groupBy(items, (t) => partitionOf(t.tenant, this.parts.length))];
    const results = await Promise.allSettled(groups.map(([p, g]) => this.bounded(p, what, call(this.parts[p]!, g.items), () => undefined)));
    // Throws only when every partition was asked and none answered (an outage); tasks all in one
    // partition that is down are undefined, like the tasks of one down partition among others.
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length === this.parts.length) throw failed[0]!.reason;
    results.forEach((r, i) => r.status === 'fulfilled' && groups[i]![1].at.forEach((at, j) => (out[at] = r.value[j]!)));
    return out;
  }

  async settle(items: SettleItem[]): Promise<number> {
    // Bounded: the reaper waits on it, and one stalled master must not stop its passes (a settle
    // not made leaves Redis's own decision, taken again at the next reap).
    const groups = [...this.groupBy(items, (it) => partitionOf(it.tenant, this.parts.length))];
    const moved = await Promise.all(groups.map(([p, g]) => this.bounded(p, 'settle', this.parts[p]!.settle(g.items), () => undefined)));
    return moved.reduce((a, b) => a + b, 0);
  }

  async purge(tasks: TaskRef[]): Promise<number> {
    const held = await this.eachGroup(this.groupBy(tasks, (t) => partitionOf(t.tenant, this.parts.length)), (q, group) => q.purge(group));
    return held.reduce((a, b) => a + b, 0);
  }

  /**
   * A partition that did not answer in time may still run the purge: its tasks, which the caller
   * keeps in Postgres (as dead), then have no dead-letter entry; a later purge of them finds
   * nothing to forget, and a redrive queues them from Postgres.
   */
  async purgeAnswering(tasks: TaskRef[]): Promise<{ held: number; unanswered: TaskRef[] }> {
    // Each partition's count on its first task (the rest 0), so a partition's tasks are undefined together.
    const answers = await this.answeringByTenant('purge', tasks, async (q, group) => {
      const n = await q.purge(group);
      return group.map((_, i) => (i === 0 ? n : 0));
    });
    return { held: answers.reduce<number>((sum, n) => sum + (n ?? 0), 0), unanswered: tasks.filter((_, i) => answers[i] === undefined) };
  }

  async finish(items: FinishItem[]): Promise<Finished[]> {
    return this.byToken('finish', items, (q, group) => q.finish(group), 'stale');
  }

  /** Tasks whose outcome is final, for the current lease holder: forgotten. */
  async ack(held: Pick<Held, 'id' | 'token'>[]): Promise<boolean[]> {
    return this.byToken('ack', held, (q, group) => q.ack(group), false);
  }

  /** Leased tasks to their retry set, due after delayMs. */
  async retry(items: (Held & { delayMs: number })[]): Promise<boolean[]> {
    return this.byToken('retry', items, (q, group) => q.retry(group), false);
  }

  /** Leased tasks to their dead-letter list. */
  async bury(items: Held[]): Promise<boolean[]> {
    return this.byToken('bury', items, (q, group) => q.bury(group), false);
  }

  async extend(held: Pick<Held, 'id' | 'token'>[], visibilityMs: number): Promise<boolean[]> {
    return this.byToken('extend', held, (q, group) => q.extend(group, visibilityMs), false);
  }

  async release(items: Released[]): Promise<boolean[]> {
    return this.byToken('release', items, (q, group) => q.release(group), false);
  }

  async cancelRequested(held: Pick<Held, 'id' | 'token'>[]): Promise<boolean[]> {
    return this.byToken('cancelRequested', held, (q, group) => q.cancelRequested(group), false);
  }

  async lease(opts: LeaseOptions): Promise<Lease[]> {
    return (await this.leaseBatch(opts)).leases;
  }

  /**
   * One lease round (docs/redis-cluster.md §3.3): `max` shared over the partitions not known empty
   * (nor failed just now) by priority, then by tenants at that priority (leaseShares), asked
   * concurrently, each for at most leaseWaitMs; a shortfall is then asked of the partitions that
   * had work left, highest priority first, one after another. A partition whose work is not known
   * gets a share at once, and one with work at a priority gets its turns at that priority, so no
   * tenant waits on another partition's backlog of the same or a lower priority.
   */
  async leaseBatch(opts: LeaseOptions): Promise<LeaseBatch> {
    const n = this.parts.length;
    const now = Date.now();
    const recheck = this.opts.emptyRecheckMs ?? 250;
    const order: number[] = [];
    const down: number[] = [];
    for (let i = 0; i < n; i++) {
      const p = (this.cursor + i) % n;
      if (now - this.failedAt[p]! < FAILED_RECHECK_MS) down.push(p);
      else if (this.emptyAt[p] === 0 || now - this.emptyAt[p]! >= recheck) order.push(p);
    }
    // Every partition failed just now: asked again, so that an outage stays an error.
    if (down.length === n) order.push(...down);
    this.cursor = (this.cursor + 1) % n;
    if (order.length === 0) return { leases: [], left: 0 };
    const shares = leaseShares(opts.max, order, this.active, this.opts.weights, this.opts.strategy === 'strict', this.credit);
    const asked = order.map((p, i) => ({ p, share: shares[i]! })).filter((a) => a.share > 0);
    const leases: Lease[] = [];
    const left = new Array<number>(n).fill(0);
    const errors: unknown[] = [];
    const take = (p: number, batch: LeaseBatch) => {
      leases.push(...batch.leases);
      left[p] = batch.left;
      this.active[p] = batch.left === 0 ? null : (batch.active ?? null);
      this.emptyAt[p] = batch.left === 0 ? Date.now() : 0;
      this.failedAt[p] = 0;
    };
    // A partition failing over (CLUSTERDOWN, TRYAGAIN) or away sits this round out, and the next
    // rounds for a second (each failure can take ioredis's retries, 1.6 s, to come): its share goes
    // to the others in the top-up. All failing is an outage.
    let answered = 0;
    const failed = (p: number, err: unknown) => {
      errors.push(err);
      this.failedAt[p] = Date.now();
    };
    const results = await Promise.allSettled(asked.map((a) => this.leaseFrom(a.p, { ...opts, max: a.share })));
    results.forEach((r, i) => (r.status === 'fulfilled' ? (answered++, take(asked[i]!.p, r.value)) : failed(asked[i]!.p, r.reason)));
    // The shortfall from the highest priority known down (strict: a lower one only once the higher ones are out).
    const unasked = order.filter((p) => !asked.some((a) => a.p === p));
    const topUp = [...asked.map((a) => a.p).filter((p) => left[p]! > 0), ...unasked];
    topUp.sort((a, b) => topPriority(this.active[a] ?? null) - topPriority(this.active[b] ?? null));
    for (const p of topUp) {
      const want = opts.max - leases.length;
      if (want <= 0) break;
      try {
        take(p, await this.leaseFrom(p, { ...opts, max: want }));
        answered++;
      } catch (err) {
        failed(p, err);
      }
    }
    if (answered === 0 && errors.length > 0) throw errors[0];
    // Partitions not asked this round may have work: the worker should come back at once.
    const notAsked = order.some((p) => !asked.some((a) => a.p === p) && this.emptyAt[p] === 0 && left[p] === 0) ? 1 : 0;
    const total = left.reduce((a, b) => a + b, 0) + notAsked;
    // Work left wakes another idle worker (lease.lua does so in its own slot; here the doorbell is
    // in the control slot). Never cleared: a ring a partition's enqueue just made must not be lost.
    if (left.some((l) => l > 0)) this.control.ringDoorbell().catch(() => undefined);
    return { leases, left: total };
  }

  /** One partition's lease call, bounded by leaseWaitMs: a late answer's leases go back to their lists. */
  private leaseFrom(p: number, opts: LeaseOptions): Promise<LeaseBatch> {
    const call = this.parts[p]!.leaseBatch(opts);
    const waitMs = this.opts.leaseWaitMs ?? 1000;
    return new Promise<LeaseBatch>((resolve, reject) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        reject(new DependencyTimeoutError(`partition ${p} did not answer a lease call within ${waitMs} ms`));
      }, waitMs);
      call.then(
        (batch) => {
          clearTimeout(timer);
          if (!late) return resolve(batch);
          const held = batch.leases.map((l) => ({ id: l.message.id, token: l.token, priority: l.message.priority }));
          // Not handed back (Redis away again): they wait out their lease, and the reaper queues them.
          this.parts[p]!.release(held).catch(() => undefined);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  async reap(limit: number, holdMs: number): Promise<Reaped[]> {
    const late = this.lateReaped.splice(0);
    const now = await this.everyPartition('reap', (q) => q.reap(limit, holdMs), (r) => this.lateReaped.push(...r)).catch((err: unknown) => {
      this.lateReaped.unshift(...late); // kept for the next pass
      throw err;
    });
    return [...late, ...now.flatMap((r) => r ?? [])];
  }

  async promoteDue(limitPerPriority: number): Promise<Promoted> {
    const late = this.latePromoted.splice(0);
    const each = await this.everyPartition('promote', (q) => q.promoteDue(limitPerPriority), (r) => this.latePromoted.push(r)).catch((err: unknown) => {
      this.latePromoted.unshift(...late);
      throw err;
    });
    // A late answer's retries are counted; its next due time is stale (the retry pump's next pass reads it again).
    const all = [...each.filter((r): r is Promoted => r !== undefined), ...late.map((r) => ({ ...r, nextDueInMs: null }))];
    const due = all.map((r) => r.nextDueInMs).filter((d): d is number => d !== null);
    return { moved: sumBy(all.map((r) => r.moved)), nextDueInMs: due.length ? Math.min(...due) : null };
  }

  async stats(): Promise<QueueStats> {
    const [all, control] = await Promise.all([Promise.all(this.parts.map((q) => q.stats())), this.control.stats()]);
    const oldest = {} as Record<Priority, number>;
    for (const p of Object.keys(control.ready) as Priority[]) oldest[p] = Math.max(...all.map((s) => s.oldestWaitingSeconds[p]));
    return {
      ready: sumBy(all.map((s) => s.ready)),
      leasable: sumBy(all.map((s) => s.leasable)),
      retrying: sumBy(all.map((s) => s.retrying)),
      dead: sumBy(all.map((s) => s.dead)),
      processing: all.reduce((a, s) => a + s.processing, 0),
      oldestWaitingSeconds: oldest,
      liveWorkers: control.liveWorkers,
      tenants: mergeTenantStats(
        all.flatMap((s) => s.tenants),
        this.opts.tenantStatsLimit ?? 50,
      ),
    };
  }

  /**
   * The tenant's partition, and the live workers from the control slot: that slot failing or not
   * answering within passWaitMs leaves workers null, as every tenant's answer would otherwise
   * fail (or wait) with one master.
   */
  async overview(tenant: string): Promise<TenantOverview> {
    const [mine, control] = await Promise.all([
      // Bounded: a tenant's GET /queues answers 503 while its partition's master is stalled.
      this.bounded(partitionOf(tenant, this.parts.length), 'overview', this.partitionFor(tenant).overview(tenant), () => undefined),
      this.bounded('control', 'overview', this.control.overview(tenant), () => undefined).catch(() => null),
    ]);
    return { ...mine, workers: control ? control.workers : null };
  }

  async configureTenants(defaultMaxRunning: number, tenants: TenantDispatch[]): Promise<{ changed: number; complete: boolean }> {
    const groups = this.groupBy(tenants, (t) => partitionOf(t.tenant, this.parts.length));
    // Every partition, with or without tenants of its own: the default cap is stored in each.
    const all = await Promise.all(this.parts.map((q, p) => q.configureTenants(defaultMaxRunning, groups.get(p)?.items ?? [])));
    return { changed: all.reduce((a, r) => a + r.changed, 0), complete: all.every((r) => r.complete) };
  }

  async sweep(limit: number, heldTwiceBefore = 0): Promise<Sweep> {
    const late = this.lateForgotten.splice(0);
    const each = await this.everyPartition(
      'sweep',
      (q, p) => q.sweep(limit, heldTwiceBefore === 0 ? 0 : this.heldTwice[p]),
      (s, p) => {
        this.heldTwice[p] = s.heldTwice;
        this.lateForgotten.push(...s.forgotten);
      },
    ).catch((err: unknown) => {
      this.lateForgotten.unshift(...late);
      throw err;
    });
    each.forEach((s, p) => s && (this.heldTwice[p] = s.heldTwice));
    const all = each.filter((s): s is Sweep => s !== undefined);
    return {
      known: all.reduce((a, s) => a + s.known, 0),
      held: all.reduce((a, s) => a + s.held, 0),
      orphans: all.reduce((a, s) => a + s.orphans, 0),
      // A partition that did not answer keeps its last count (not a duplicate gone away).
      heldTwice: this.heldTwice.reduce((a, b) => a + b, 0),
      tenantRepairs: all.reduce((a, s) => a + s.tenantRepairs, 0),
      forgotten: [...late, ...all.flatMap((s) => s.forgotten)],
    };
  }

  async readyIds(priority: Priority): Promise<string[]> {
    return (await Promise.all(this.parts.map((q) => q.readyIds(priority)))).flat();
  }

  async deadLetterIds(priority: Priority, limit = 1000): Promise<string[]> {
    return (await Promise.all(this.parts.map((q) => q.deadLetterIds(priority, limit)))).flat().slice(0, limit);
  }

  onCancel(onCancel: (taskId: string) => void, onSubscribed?: () => void): Promise<() => Promise<void>> {
    return this.control.onCancel(onCancel, onSubscribed);
  }

  onDue(onDue: (dueAtMs: number) => void): Promise<() => Promise<void>> {
    return this.control.onDue(onDue);
  }

  /** The control slot's doorbell; a wait that ends (rung or timed out) forgets which partitions were empty. */
  doorbell(): Doorbell {
    const bell = this.control.doorbell();
    return {
      wait: async (timeoutMs) => {
        const rung = await bell.wait(timeoutMs);
        this.emptyAt.fill(0);
        return rung;
      },
      ring: () => bell.ring(),
      close: () => bell.close(),
    };
  }

  /** Bounded by passWaitMs: the heartbeat waits for it, and a stalled control slot must not stop the partitions' extends. */
  announceWorker(workerId: string, ttlMs: number, slots?: number): Promise<void> {
    return this.bounded('control', 'announce', this.control.announceWorker(workerId, ttlMs, slots), () => undefined);
  }

  /**
   * The lowest mark of the partitions that answer (each waited for at most passWaitMs); null when
   * any of them has none (a partition that lost its data loads from the start). One failing or
   * stalled has `seen` null: its mark stays where it is (setDelayedMark), so loading goes on from
   * there once it answers, and the other partitions' loading does not wait for it.
   */
  async delayedMark(): Promise<DelayedMark> {
    const marks = await this.everyPartition('delayed mark', (q) => q.delayedMark(), () => undefined);
    const seen = marks.map((m) => (m ? m.seen[0]! : null));
    const answered = marks.filter((m): m is DelayedMark => m !== undefined);
    if (answered.some((m) => m.at === null)) return { at: null, seen };
    return { at: answered.map((m) => m.at!).reduce((low, at) => (dueMarkBefore(at, low) ? at : low)), seen };
  }

  async setDelayedMark(seen: (string | null)[], at: DueMark, unpushed: TaskRef[] = []): Promise<boolean> {
    // A partition that missed a push of this pass keeps its mark: the pass did not load all of it.
    const missed = new Set(unpushed.map((t) => partitionOf(t.tenant, this.parts.length)));
    const set = await this.everyPartition(
      'delayed mark',
      (q, p) => (seen[p] == null || missed.has(p) ? Promise.resolve(false) : q.setDelayedMark([seen[p]!], at)),
      () => undefined,
    );
    return set.every((s) => s === true);
  }

  lock(name: string, owner: string, ttlMs: number, opts?: LockOptions): Promise<boolean> {
    return this.control.lock(name, owner, ttlMs, opts);
  }

  unlock(name: string, owner: string): Promise<void> {
    return this.control.unlock(name, owner);
  }

  ping(): Promise<void> {
    return this.control.ping();
  }

  close(): Promise<void> {
    return this.control.close();
  }

  /**
   * `call` on every partition, concurrently; the answers in partition order, undefined where a
   * partition failed. Used by the passes whose scripts change Redis (reap, promote, sweep, and the
   * delayed loader's mark): a
   * partition failing over (CLUSTERDOWN, TRYAGAIN) or away sits the pass out, as in a lease round,
   * and the next pass tries it again; the others' scripts have run, so their answers must reach
   * the caller (a reaped lease not handed back is never recorded in Postgres). All failing is an outage.
   * Each partition is waited for at most passWaitMs; a late answer goes to `lateAnswer`.
   */
  private async everyPartition<R>(what: string, call: (q: RedisQueue, p: number) => Promise<R>, lateAnswer: (r: R, p: number) => void): Promise<(R | undefined)[]> {
    // One partition: as before, unbounded (nothing else to go on with).
    if (this.parts.length === 1) return [await call(this.parts[0]!, 0)];
    const results = await Promise.allSettled(this.parts.map((q, p) => this.bounded(p, what, call(q, p), (r) => lateAnswer(r, p))));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length === results.length) throw failed[0]!.reason;
    return results.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
  }

  /**
   * `call` (one partition's) waited for at most passWaitMs: one not answered by then (a master
   * stalled, or unreachable without a reset) is an error to the pass, and its answer, if it comes,
   * goes to `late`, so what its script did is not lost. One partition: not bounded.
   */
  private bounded<R>(p: number | 'control', what: string, call: Promise<R>, late: (r: R) => void): Promise<R> {
    if (this.parts.length === 1) return call;
    const waitMs = this.opts.passWaitMs ?? 2000;
    return new Promise<R>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        reject(new DependencyTimeoutError(`partition ${p} did not answer a ${what} call within ${waitMs} ms`));
      }, waitMs);
      call.then(
        (r) => {
          clearTimeout(timer);
          if (timedOut) late(r);
          else resolve(r);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private groupBy<T>(items: T[], partitionOfItem: (item: T) => number): Map<number, { items: T[]; at: number[] }> {
    const groups = new Map<number, { items: T[]; at: number[] }>();
    items.forEach((item, i) => {
      const p = partitionOfItem(item);
      let g = groups.get(p);
      if (!g) groups.set(p, (g = { items: [], at: [] }));
      g.items.push(item);
      g.at.push(i);
    });
    return groups;
  }

  private async eachGroup<T, R>(groups: Map<number, { items: T[] }>, call: (q: RedisQueue, items: T[]) => Promise<R>): Promise<R[]> {
    return Promise.all([...groups].map(([p, g]) => call(this.parts[p]!, g.items)));
  }

  /**
   * Calls `call` once per partition with that partition's items (concurrently); answers in the items' order.
   * `bound`: each partition is waited for at most passWaitMs (its late answer dropped).
   */
  private async scatter<T, R>(items: T[], partitionOfItem: (item: T) => number, call: (q: RedisQueue, items: T[]) => Promise<R[]>, unknown?: R, bound?: string): Promise<R[]> {
    const out = new Array<R>(items.length);
    const groups = this.groupBy(items, partitionOfItem);
    await Promise.all(
      [...groups].map(async ([p, g]) => {
        const q = this.parts[p];
        const res = q ? await (bound ? this.bounded(p, bound, call(q, g.items), () => undefined) : call(q, g.items)) : g.items.map(() => unknown as R);
        g.at.forEach((i, j) => (out[i] = res[j]!));
      }),
    );
    return out;
  }

  private byTenant<T extends { tenant: string }, R>(items: T[], call: (q: RedisQueue, items: T[]) => Promise<R[]>): Promise<R[]> {
    return this.scatter(items, (it) => partitionOf(it.tenant, this.parts.length), call);
  }

  /**
   * By the partition the lease token names; a token of no partition here (another layout) is stale.
   * Bounded: heartbeats, outcome writes and the reaper wait on these, and one stalled master must
   * not hold the leases of every other partition.
   */
  private byToken<T extends { token: string }, R>(what: string, items: T[], call: (q: RedisQueue, items: T[]) => Promise<R[]>, stale: R): Promise<R[]> {
    return this.scatter(items, (it) => tokenPartition(it.token), call, stale, what);
  }
}

/** Whether `a` comes before `b` in (run_at, id) order; a mark without an id covers all ids of its time. */
export function dueMarkBefore(a: DueMark, b: DueMark): boolean {
  if (a.ms !== b.ms) return a.ms < b.ms;
  return a.id !== null && (b.id === null || a.id < b.id);
}

const PRIORITY_ORDER: Priority[] = ['critical', 'high', 'default', 'low'];

/** How long a partition whose lease call failed is left out of lease rounds. */
const FAILED_RECHECK_MS = 1000;

/** Smooth weighted round-robin state of a partitioned queue's lease rounds. */
export interface LeaseCredit {
  priority: number[];
  /** Per priority, per partition. */
  partition: number[][];
}

/** The highest priority (index, 0 = critical) with tenants in its ring; 0 when not known. */
function topPriority(active: Record<Priority, number> | null): number {
  const i = active ? PRIORITY_ORDER.findIndex((p) => active[p] > 0) : -1;
  return i < 0 ? 0 : i;
}

/** One pick of the smooth weighted round-robin over `weights` (> 0 where eligible), ties to the first. */
function pick(credit: number[], candidates: number[], weight: (c: number) => number): number {
  let total = 0;
  let best = -1;
  for (const c of candidates) {
    const w = weight(c);
    if (w <= 0) continue;
    credit[c]! += w;
    total += w;
    if (best < 0 || credit[c]! > credit[best]!) best = c;
  }
  if (best >= 0) credit[best]! -= total;
  return best;
}

/**
 * A lease round's share of each partition in `order` (the partitions not known empty, from the
 * cursor): what one queue's lease.lua does across priorities and tenants, done across partitions
 * from the counts their last lease reported (`active`). Partitions whose work is not known get one
 * each first (they may hold any priority). The rest goes task by task: a priority by the smooth
 * weighted round-robin of QUEUE_STRATEGY over the priorities some partition has work at (strict:
 * always the highest), then a partition by its tenants at that priority. Without this, a worker
 * asking for a task or two served the partitions in turn: low tasks in one partition ran while
 * critical ones waited in another.
 */
export function leaseShares(max: number, order: number[], active: (Record<Priority, number> | null)[], weights: Record<Priority, number>, strict: boolean, credit: LeaseCredit): number[] {
  const known = order.filter((p) => active[p] && PRIORITY_ORDER.some((pr) => active[p]![pr] > 0));
  if (known.length === 0) return shareOut(max, order.map(() => 1));
  let given = 0;
  const shares = order.map((p) => (known.includes(p) || given >= max ? 0 : (given++, 1)));
  const at = (pr: number) => known.reduce((a, p) => a + active[p]![PRIORITY_ORDER[pr]!], 0);
  const present = [0, 1, 2, 3].filter((pr) => at(pr) > 0);
  for (; given < max; given++) {
    const pr = strict ? present[0]! : pick(credit.priority, present, (i) => weights[PRIORITY_ORDER[i]!]);
    const p = pick(credit.partition[pr]!, known, (q) => active[q]![PRIORITY_ORDER[pr]!]);
    shares[order.indexOf(p)]!++;
  }
  return shares;
}

/** `max` split in proportion to `weights`, at least 1 each while it lasts (the first ones first). */
export function shareOut(max: number, weights: number[]): number[] {
  const n = weights.length;
  if (max <= n) return weights.map((_, i) => (i < max ? 1 : 0));
  const total = weights.reduce((a, b) => a + Math.max(1, b), 0);
  const shares = weights.map((w) => 1 + Math.floor(((max - n) * Math.max(1, w)) / total));
  let rest = max - shares.reduce((a, b) => a + b, 0);
  for (let i = 0; rest > 0; i = (i + 1) % n, rest--) shares[i]!++;
  return shares;
}

function sumBy(rows: Record<Priority, number>[]): Record<Priority, number> {
  const out = { critical: 0, high: 0, default: 0, low: 0 };
  for (const r of rows) for (const p of Object.keys(out) as Priority[]) out[p] += r[p];
  return out;
}

/** The busiest `limit` tenants over all partitions (ordered as stats.lua orders them), the rest summed in one `null` row. */
export function mergeTenantStats(rows: TenantStats[], limit: number): TenantStats[] {
  const named = rows.filter((r) => r.tenant !== null).sort((a, b) => b.ready + b.running - (a.ready + a.running) || (a.tenant! < b.tenant! ? -1 : 1));
  const rest = rows.filter((r) => r.tenant === null).concat(named.slice(limit));
  const out = named.slice(0, limit);
  if (rest.length > 0) out.push({ tenant: null, ready: rest.reduce((a, r) => a + r.ready, 0), running: rest.reduce((a, r) => a + r.running, 0) });
  return out;
}
