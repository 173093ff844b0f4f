/**
 * Pushes to Redis of tasks read waiting in Postgres, made under share locks on the rows still
 * waiting. Between the read and the push a worker may have run such a task, written its outcome and
 * made Redis forget it: pushed then, it would run a second time. A worker's outcome write (which
 * Redis forgetting follows) waits for a share lock, so while the push holds one Redis still knows a
 * task being run and the push leaves it alone.
 */
import type { Pool, PoolClient } from 'pg';
import { withTimeout } from '../process/with-timeout';
import { inTransaction } from './transaction';

/**
 * A row locked already (an outcome, cancel or retry being written) is waited for, then read again
 * (an outcome written meanwhile leaves it out), but not for longer than this. Skipping locked rows
 * instead left a task unpushed whenever a check that changes nothing (a retry of a task queued
 * already, the retention sweep) held its lock for a moment.
 */
const LOCK_WAIT = "SET LOCAL lock_timeout = '2s'";

/** How long a push may hold its locks by default: a stalled Redis must not hold up outcome writes. */
export const LOCKED_PUSH_TIMEOUT_MS = 2000;

export interface LockedPush {
  client: PoolClient;
  /** Of `ids`, those whose rows match `still` (SQL on `tasks`), share-locked until the push ends. */
  lockStill(ids: string[], still: string): Promise<Set<string>>;
  /** `push`, or a rejection past the push timeout (the transaction then rolls back and its locks go). */
  bounded<R>(push: Promise<R>): Promise<R>;
}

/**
 * Runs `work` (lock the rows still waiting, push those) in one transaction. Every caller's push
 * fails the same way past `timeoutMs`: it rejects, naming `what`, and the locks are let go; the
 * reconciler backs up a push that did not land.
 */
export function pushUnderShareLocks<T>(pool: Pool, what: string, work: (tx: LockedPush) => Promise<T>, timeoutMs = LOCKED_PUSH_TIMEOUT_MS): Promise<T> {
  return inTransaction(pool, async (client) => {
    await client.query(LOCK_WAIT);
    return work({
      client,
      async lockStill(ids, still) {
        const { rows } = await client.query<{ id: string }>(`SELECT id FROM tasks WHERE id = ANY($1::uuid[]) AND ${still} ORDER BY id FOR SHARE`, [ids]);
        return new Set(rows.map((r) => r.id));
      },
      bounded: (push) => withTimeout(push, timeoutMs, `${what}: no answer`),
    });
  });
}
