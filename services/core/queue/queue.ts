/**
 * The queue as the worker and the maintenance loops see it. Postgres decides what a task's state
 * is; the queue decides who may work on it right now, and proves it with a lease token.
 */
import type { Priority } from '../tasks/priority';

export interface QueueMessage {
  id: string;
  type: string;
  priority: Priority;
  payload: unknown;
  maxAttempts: number;
  /** When the task was first accepted (ms since epoch); enqueue-to-start is measured from here. */
  createdAtMs: number;
}

export interface EnqueueItem extends QueueMessage {
  /** Attempts already started (0 for a new task; more when the reconciler re-indexes). */
  attempts: number;
  /** Ms since epoch when a retry is due; absent or past means ready now. */
  dueAtMs?: number;
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

export interface Reaped {
  id: string;
  expiredToken: string;
  attempt: number;
  destination: 'queued' | 'dead';
  priority: Priority;
  type: string;
}

export interface SettleItem {
  id: string;
  priority: Priority;
  state: 'queued' | 'retrying' | 'succeeded' | 'dead';
  attempts: number;
  /** For `retrying`: when the retry is due (ms since epoch). */
  dueAtMs?: number;
}

export interface QueueStats {
  ready: Record<Priority, number>;
  retrying: Record<Priority, number>;
  dead: Record<Priority, number>;
  processing: number;
  /** Age of the task at the head of each queue (how long the oldest waiting task has waited); 0 when empty. */
  oldestWaitingSeconds: Record<Priority, number>;
  /** Workers whose announcement has not lapsed. */
  liveWorkers: number;
}

export interface LeaseOptions {
  max: number;
  visibilityMs: number;
  /** The leasing worker's id; tokens start with it (and `~`) so a lost lease can name its worker. */
  owner?: string;
}

export interface TaskQueue {
  /** Indexes tasks as ready; returns, per item, whether it was newly pushed (false = already indexed). */
  enqueue(items: EnqueueItem[]): Promise<boolean[]>;
  lease(opts: LeaseOptions): Promise<Lease[]>;
  /** Per item, whether the lease was still held (and is now extended). */
  extend(held: Pick<Held, 'id' | 'token'>[], visibilityMs: number): Promise<boolean[]>;
  ack(held: Pick<Held, 'id' | 'token'>[]): Promise<boolean[]>;
  retry(items: (Held & { delayMs: number })[]): Promise<boolean[]>;
  bury(items: Held[]): Promise<boolean[]>;
  release(items: Held[]): Promise<boolean[]>;
  reap(limit: number): Promise<Reaped[]>;
  /**
   * Puts tasks no lease holds where Postgres says they are (state and attempt counter), for when
   * the fenced path could not; leased tasks are left to their holder. Returns how many moved.
   */
  settle(items: SettleItem[]): Promise<number>;
  promoteDue(limitPerPriority: number): Promise<Record<Priority, number>>;
  stats(): Promise<QueueStats>;
  deadLetterIds(priority: Priority, limit?: number): Promise<string[]>;
  /** Per id, whether Redis knows the task at all (waiting, leased, retrying or dead). */
  indexed(ids: string[]): Promise<boolean[]>;
  /** Calls `onReady` when tasks become ready anywhere; resolves to an unsubscribe function. */
  subscribeReady(onReady: () => void): Promise<() => Promise<void>>;
  announceWorker(workerId: string, ttlMs: number): Promise<void>;
  lock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  unlock(name: string, owner: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
