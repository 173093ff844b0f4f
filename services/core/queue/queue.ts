/**
 * The queue as the worker and the maintenance loops see it. Postgres decides what a task's state
 * is; the queue decides who may work on it right now, and proves it with a lease token.
 */
import type { RetryPolicy } from '../tasks/backoff';
import type { Priority } from '../tasks/priority';

export interface QueueMessage {
  id: string;
  /** The task's tenant: its ready list, its share of the leases and its running cap (docs/fair-dispatch.md). */
  tenant: string;
  type: string;
  priority: Priority;
  payload: unknown;
  maxAttempts: number;
  /** When the task was first accepted (ms since epoch); enqueue-to-start is measured from here. */
  createdAtMs: number;
  /** The task's own retry policy and timeout (POST /tasks `retry`, `timeout_ms`), when it has them. */
  retry?: RetryPolicy;
  timeoutMs?: number;
  /** A delayed task's due time (ms since epoch): its start lateness is measured from here. */
  runAtMs?: number;
  /** A workflow step's key (its handler gets the results of the steps it depends on). */
  stepKey?: string;
  /** Attempts counted before an operator's retry: backoff counts this budget's attempts from 1 again. */
  retryBase?: number;
  /** A step's dependencies' results, when they came with the message (else its worker reads them). */
  parents?: Record<string, unknown>;
}

export interface EnqueueItem extends QueueMessage {
  /**
   * The payload as JSON text, when the caller has it already (the reconciler reads `payload::text`
   * from Postgres): sent as is instead of serializing `payload`, which is then ignored. Must be one
   * valid JSON value; workers get JSON.parse of it.
   */
  payloadJson?: string;
  /** A step's dependencies' results as JSON text (an object by step key), to send along. */
  parentsJson?: string;
  /** Attempts already started (0 for a new task; more when the reconciler re-indexes). */
  attempts: number;
  /** Ms since epoch when a retry is due; absent or past means ready now. */
  dueAtMs?: number;
}

/** A task by id and tenant: the tenant says which partition of the keyspace holds it (partitions.ts). */
export interface TaskRef {
  id: string;
  tenant: string;
}

export interface Lease {
  message: QueueMessage;
  token: string;
  attempt: number;
  deadlineMs: number;
  /** When this attempt became ready (ms, Redis clock): per-attempt wait = leasedAtMs - readyAtMs. */
  readyAtMs: number;
  leasedAtMs: number;
}

export interface Held {
  id: string;
  token: string;
  priority: Priority;
}

/** A lease handed back; `attemptCounted`: the attempt counts (one lost, recorded by the reaper). */
export interface Released extends Held {
  attemptCounted?: boolean;
}

export interface Reaped {
  id: string;
  /** The lease's token (a `dead` or `held` one is still held by it, for holdMs). */
  expiredToken: string;
  attempt: number;
  /** `held`: a workflow step with attempts left, queued again by the reaper once Postgres has the lost attempt. */
  destination: 'queued' | 'dead' | 'held';
  priority: Priority;
  type: string;
  tenant: string;
}

/** An attempt's outcome as Postgres recorded it, for ending its lease in Redis. */
export interface FinishItem extends Held {
  outcome: 'succeeded' | 'retrying' | 'dead';
  /** For `retrying`: how long until the retry is due. */
  delayMs?: number;
  /**
   * Postgres applied this outcome, having counted this many attempts: if the lease is gone, move
   * the task where the outcome says anyway (unless another lease holds it). 0: only end the lease.
   */
  settleAttempts: number;
}

/** Per finished item: ended under its lease, lease gone but settled, or nothing changed (stale). */
export type Finished = 'finished' | 'settled' | 'stale';

export interface SettleItem {
  id: string;
  tenant: string;
  priority: Priority;
  /**
   * The task's status in Postgres: queued → ready; retrying → the retry set; dead → the dead-letter
   * list; succeeded, cancelled (final) and waiting (a step its dependencies' success will push) → forgotten.
   */
  state: 'queued' | 'retrying' | 'dead' | 'succeeded' | 'cancelled' | 'waiting';
  attempts: number;
  /** For `retrying`: when the retry is due (ms since epoch). */
  dueAtMs?: number;
  /** A lease that still holds the task (the reaper's hold of an expired one): ended, if still current. */
  token?: string;
}

export interface Promoted {
  moved: Record<Priority, number>;
  /** Ms (Redis clock) until the earliest retry still waiting is due; null when none waits. */
  nextDueInMs: number | null;
}

export interface IndexEntry {
  /** The attempts Redis counted, when they use up the task's attempts and no lease holds it; else null. */
  deadLetteredAfter: number | null;
}

/** What a sweep found (see TaskQueue.sweep). */
export interface Sweep {
  /** Tasks Redis knows, and entries its ready lists, retry, processing and dead-letter sets hold. */
  known: number;
  held: number;
  /** Held entries of tasks Redis does not know (they could never run): removed. */
  orphans: number;
  /** Ids held in two places (or twice in one): counted, left alone (as given, when not searched). */
  heldTwice: number;
  /** Known tasks held nowhere: forgotten, for the reconciler to index again from Postgres. */
  forgotten: string[];
  /**
   * Fair-dispatch state put right: ready lists no ring named (put back), and running counts that
   * did not add up to the leases held (recounted).
   */
  tenantRepairs: number;
}

export interface QueueStats {
  ready: Record<Priority, number>;
  /**
   * Of those, the ones a worker may lease now: tenants parked at their running cap left out (more
   * workers cannot start those). What the autoscaler's depth trigger counts.
   */
  leasable: Record<Priority, number>;
  retrying: Record<Priority, number>;
  dead: Record<Priority, number>;
  processing: number;
  /** How long the longest-waiting ready task of each queue has waited since it last became ready (not always a list's head: lua/includes/oldest.lua); 0 when empty. */
  oldestWaitingSeconds: Record<Priority, number>;
  /** Workers whose announcement has not lapsed. */
  liveWorkers: number;
  /**
   * Per tenant, ready tasks (all priorities) and attempts running: the busiest few (see
   * RedisQueueOptions.tenantStatsLimit), then, when more have work, one row `tenant: null` with the rest.
   */
  tenants: TenantStats[];
}

export interface TenantStats {
  tenant: string | null;
  ready: number;
  running: number;
}

/** How workers share out one tenant's tasks, as its row in Postgres says. */
export interface TenantDispatch {
  tenant: string;
  /** 1..1000: its share of the leases within a priority, relative to other tenants with work there. */
  weight: number;
  /** Attempts of the tenant running at once across all workers; 0 unlimited; null: the default. */
  maxRunning: number | null;
}

export interface LeaseBatch {
  leases: Lease[];
  /** Tasks still ready after this lease that a worker may take now (not those of tenants at their running cap); at least this many. */
  left: number;
  /** Tenants with ready work in each priority's ring afterwards (a partition of several counts them; else absent). */
  active?: Record<Priority, number>;
}

export interface LeaseOptions {
  max: number;
  visibilityMs: number;
  /** The leasing worker's id; tokens start with it (and `~`) so a lost lease can name its worker. */
  owner?: string;
  /** Running cap of tenants without one of their own (TENANT_MAX_RUNNING); 0 or absent: unlimited. */
  defaultMaxRunning?: number;
}

/**
 * Rung by every change that makes tasks ready; each ring wakes one waiting worker, not all of them.
 */
export interface Doorbell {
  /** Waits up to `timeoutMs` for a ring; true if this waiter took one. False on timeout, on failure, or once closed. */
  wait(timeoutMs: number): Promise<boolean>;
  /** Rings (passes on a ring this waiter took but cannot use). */
  ring(): Promise<unknown>;
  /** Ends a pending wait (it answers false); a later wait starts over. */
  close(): void;
}

/** What cancel() found: a lease holds the task (its holder was told, unless abortLeased is false), it was waiting and is removed, or Redis did not hold it. */
export type CancelState = 'leased' | 'removed' | 'absent';

export interface CancelOptions {
  /**
   * Default true (an operator's cancel): a leased task's holder is told to abort it, and it is
   * tombstoned. False (a workflow stopping after a failure): a leased task is left alone.
   */
  abortLeased?: boolean;
}

/** What Redis knows of one tenant's queues right now (GET /queues). */
export interface TenantOverview {
  priorities: Record<Priority, { ready: number; oldestWaitingSeconds: number; lastMinute: { enqueued: number; succeeded: number; retried: number; dead: number; cancelled: number } }>;
  /** Leases the tenant holds (attempts running), all priorities. */
  running: number;
  /**
   * Live workers and their task slots (slots null: the worker did not say). null: not known (on a
   * Redis Cluster, the master holding the announcements did not answer in time).
   */
  workers: { id: string; slots: number | null }[] | null;
}

/**
 * A point in the delayed tasks' order (run_at, id): every task due before `ms`, and those due at
 * `ms` with an id up to `id` (null: all of them). A pass that stops inside a run of tasks sharing a
 * due time keeps the id, so the next goes on after it rather than from the start of the run.
 */
export interface DueMark {
  ms: number;
  id: string | null;
}

/** How far ahead delayed tasks have been loaded from Postgres (null: not known, load from the start). */
export interface DelayedMark {
  at: DueMark | null;
  /**
   * What each partition held, for the compare-and-set; null for a partition that failed or did not
   * answer in time (partitioned queue): `at` leaves it out, and its mark is not moved.
   */
  seen: (string | null)[];
}

export interface LockOptions {
  /**
   * Only renew a lock the owner still holds: a pass that checks it mid-way stops if it lapsed,
   * since another copy may have led (and ended) meanwhile.
   */
  renewOnly?: boolean;
}

export interface TaskQueue {
  /** Indexes tasks as ready; returns, per item, whether it was newly pushed (false = already indexed). */
  enqueue(items: EnqueueItem[]): Promise<boolean[]>;
  lease(opts: LeaseOptions): Promise<Lease[]>;
  /** lease(), and how many tasks it left ready behind (so a worker knows whether to come back at once). */
  leaseBatch(opts: LeaseOptions): Promise<LeaseBatch>;
  /** Per item, whether the lease was still held (and is now extended). */
  extend(held: Pick<Held, 'id' | 'token'>[], visibilityMs: number): Promise<boolean[]>;
  /** Ends leases with their outcomes (mixed in one call, fenced by token); see FinishItem. */
  finish(items: FinishItem[]): Promise<Finished[]>;
  release(items: Released[]): Promise<boolean[]>;
  /**
   * Reclaims expired leases: a task with attempts left is queued again at once; one out of
   * attempts (destination `dead`) stays leased under its token for `holdMs`, to be buried with
   * finish() once Postgres has the lost attempt. So does a workflow step with attempts left
   * (`held`), released (attempt counted) or, if its workflow stopped, finished, once Postgres has it.
   */
  reap(limit: number, holdMs: number): Promise<Reaped[]>;
  /**
   * Puts tasks no lease holds where Postgres says they are (state and attempt counter), for when
   * the fenced path could not; leased tasks are left to their holder, unless it is the item's
   * `token` (that lease ends, in the same step). A tombstoned task is forgotten. Returns how many moved.
   */
  settle(items: SettleItem[]): Promise<number>;
  /** Moves due retries to their queues; says how many, and how soon the next waiting one is due. */
  promoteDue(limitPerPriority: number): Promise<Promoted>;
  stats(): Promise<QueueStats>;
  /**
   * Stores tenants' weights and running caps for leasing (only those given; others keep theirs);
   * `defaultMaxRunning` is recorded to notice a change. `complete` is false when Redis held no
   * settings before (it lost them): the caller should send every tenant.
   */
  configureTenants(defaultMaxRunning: number, tenants: TenantDispatch[]): Promise<{ changed: number; complete: boolean }>;
  deadLetterIds(priority: Priority, limit?: number): Promise<string[]>;
  /**
   * An operator cancels tasks (the caller holds their Postgres rows): waiting ones are removed, the
   * holders of leased ones are told (onCancel), and every id is tombstoned so nothing queues it
   * again until an operator's retry lifts the tombstone (liftTombstones). See lua/cancel.lua.
   */
  cancel(tasks: TaskRef[], opts?: CancelOptions): Promise<CancelState[]>;
  /**
   * An operator's retry lifts the tasks' tombstones while it holds their Postgres rows, before it
   * commits: a tombstone found by requeue() afterwards is a cancel that came after the retry.
   */
  liftTombstones(tasks: TaskRef[]): Promise<void>;
  /**
   * Puts dead or cancelled tasks back to work (replacing what Redis holds of them): ready, or in
   * their due-time set when `dueAtMs` is ahead (a delayed task retried before its run_at); false
   * for a task leased now, or tombstoned (cancelled since its retry lifted the tombstone: it stays out).
   */
  requeue(items: EnqueueItem[]): Promise<boolean[]>;
  /** Per id, whether an operator asked to cancel it (the heartbeat's backstop for a missed message). */
  cancelRequested(held: Pick<Held, 'id' | 'token'>[]): Promise<boolean[]>;
  /**
   * Subscribes to cancels of leased tasks (a connection of its own); resolves to an unsubscribe.
   * `onSubscribed` runs each time the subscription is in place (cancels sent before were missed).
   */
  onCancel(onCancel: (taskId: string) => void, onSubscribed?: () => void): Promise<() => Promise<void>>;
  /**
   * Subscribes to announcements of delayed tasks due sooner than any other waiting one (their due
   * time, ms since epoch), so a retry pump promotes them on time; resolves to an unsubscribe.
   */
  onDue(onDue: (dueAtMs: number) => void): Promise<() => Promise<void>>;
  /**
   * Per id, what Redis holds of the task: null when it does not know it at all, else whether it has
   * used up its attempts with no lease holding it (Redis dead-lettered it); undefined when its
   * partition did not answer (partitioned queue, others answering): not known either way.
   */
  indexed(tasks: TaskRef[]): Promise<(IndexEntry | null | undefined)[]>;
  /**
   * enqueue (requeue when `replace`) for the reconciler's repairs, in the partitions that answer
   * (partitioned queue only): undefined for the items of one that failed or did not answer in time
   * (pushed or not: not known); throws only when none answered.
   */
  pushAnswering?(items: EnqueueItem[], replace: boolean): Promise<(boolean | undefined)[]>;
  /**
   * Checks that every task Redis knows is held somewhere (ready, leased, retrying or dead-lettered):
   * a count when all is well; when not, forgets up to `limit` tasks held nowhere (they could never
   * be leased) and removes held entries of unknown tasks. `heldTwiceBefore`: ids held twice that an
   * earlier sweep reported; an excess of just that many is taken as those. See lua/sweep.lua.
   */
  sweep(limit: number, heldTwiceBefore?: number): Promise<Sweep>;
  /**
   * Forgets what Redis still holds of tasks retention deleted from Postgres (a dead task's
   * dead-letter entry and message); returns how many it held. See lua/purge.lua.
   */
  purge(tasks: TaskRef[]): Promise<number>;
  /**
   * purge in the partitions that answer, each waited for at most passWaitMs (partitioned queue
   * only): how many tasks they held, and the tasks of the partitions that failed or did not answer
   * in time, which Redis may still hold. Throws when every partition was asked and failed.
   */
  purgeAnswering?(tasks: TaskRef[]): Promise<{ held: number; unanswered: TaskRef[] }>;
  /** A doorbell, for an idle worker to wait on until tasks become ready (one per waiting worker). */
  doorbell(): Doorbell;
  announceWorker(workerId: string, ttlMs: number, slots?: number): Promise<void>;
  /** One tenant's queues as Redis holds them, and the live workers (see lua/overview.lua). */
  overview(tenant: string): Promise<TenantOverview>;
  /** The delayed-task loader's mark: tasks up to `at` are loaded into every partition that answered. */
  delayedMark(): Promise<DelayedMark>;
  /**
   * Moves the mark to `at` where it still holds what delayedMark() saw; false if any had changed
   * (lost, or moved by another loader) or was not moved. Not moved: a partition `seen` has no
   * value for, or one holding any of `unpushed` (tasks of the pass whose push got no answer).
   */
  setDelayedMark(seen: (string | null)[], at: DueMark, unpushed?: TaskRef[]): Promise<boolean>;
  /** Takes or renews the named lock for `owner` (with `renewOnly`, only renews it); true while `owner` holds it. */
  lock(name: string, owner: string, ttlMs: number, opts?: LockOptions): Promise<boolean>;
  unlock(name: string, owner: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
