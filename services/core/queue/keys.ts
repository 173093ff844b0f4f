/**
 * Every Redis key the queue uses, built in one place. All keys share one hash tag `{prefix}` so a
 * whole namespace lives in one Cluster slot and every script may touch all of them; scripts
 * receive every key they touch in KEYS, never build one.
 */
import { PRIORITIES } from '../tasks/priority';

export interface QueueKeys {
  /** Waiting task ids per priority, FIFO (RPUSH to enqueue, LPOP to lease). */
  queues: string[];
  /** Due-time ordered ids waiting for a retry, per priority. */
  retries: string[];
  /** Dead-lettered ids per priority, oldest first. */
  deadLetters: string[];
  /** id → deadline (ms, Redis clock) of every leased task. */
  processing: string;
  /** id → immutable message JSON (type, payload, created_at ms). */
  messages: string;
  /** id → "priorityIndex:maxAttempts". */
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
  /** Leader locks of single-copy services (the reconciler). */
  lock(name: string): string;
}

export function queueKeys(prefix: string): QueueKeys {
  const tag = `{${prefix}}`;
  return {
    queues: PRIORITIES.map((p) => `${tag}:q:${p}`),
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
    doorbell: `${tag}:doorbell`,
    lock: (name) => `${tag}:lock:${name}`,
  };
}
