/**
 * Bulk retry/cancel through POST /tasks/{retry,cancel}: a dry run counts what matches, the user
 * confirms that number, then calls follow next_cursor while has_more, reporting progress.
 */
import { ApiError, post } from './api.js';
import { h } from './dom.js';
import type { BulkResult } from '../../client/types';

export type BulkAnswer = BulkResult;
type Filter = Record<string, string>;

const clean = (f: Filter): Filter => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== ''));

/** How many tasks the action would take: dry runs over the whole backlog (each call is bounded by the API). */
export async function countMatching(action: 'retry' | 'cancel', filter: Filter): Promise<number> {
  let matched = 0;
  let cursor: string | null = null;
  do {
    const a: BulkAnswer = await post<BulkAnswer>(`/tasks/${action}`, { filter: clean(filter), dry_run: true, ...(cursor ? { cursor } : {}) });
    matched += a.matched;
    cursor = a.has_more ? a.next_cursor : null;
  } while (cursor);
  return matched;
}

/** Waits of a call the tenant's rate limit refuses before giving up. */
const MAX_RATE_WAITS = 30;

/** A rate-limit refusal (429 naming rate_limit, with Retry-After) is waited out, up to MAX_RATE_WAITS times; true when it was. */
async function waitedOut(err: unknown, waits: number): Promise<boolean> {
  if (!(err instanceof ApiError) || err.status !== 429 || !err.fields.includes('rate_limit') || err.retryAfterMs === null || waits >= MAX_RATE_WAITS) return false;
  await new Promise((r) => setTimeout(r, err.retryAfterMs!));
  return true;
}

/** Calls `fn` again after each rate-limit refusal, as Retry-After says: the refusal is for now, not for good. */
export async function underRateLimit<T>(fn: () => Promise<T>): Promise<T> {
  for (let waits = 0; ; waits++) {
    try {
      return await fn();
    } catch (err) {
      if (!(await waitedOut(err, waits))) throw err;
    }
  }
}

/** A bulk run that stopped on a refusal or an error: `changed` tasks were changed before it (they stay changed). */
export class BulkStopped extends Error {
  constructor(
    readonly changed: number,
    readonly reason: unknown,
  ) {
    super(reason instanceof Error ? reason.message : String(reason));
  }
}

export async function runBulk(action: 'retry' | 'cancel', filter: Filter, progress: (changed: number, calls: number) => void): Promise<number> {
  let changed = 0;
  let calls = 0;
  let cursor: string | null = null;
  // A retry is admitted under the tenant's limits: a call larger than its burst is refused whole
  // (then sent again no larger than the burst), one over its rate waits for Retry-After.
  let limit: number | undefined;
  let waits = 0;
  for (;;) {
    let a: BulkAnswer;
    try {
      a = await post<BulkAnswer>(`/tasks/${action}`, { filter: clean(filter), ...(cursor ? { cursor } : {}), ...(limit ? { limit } : {}) });
    } catch (err) {
      const burst = err instanceof ApiError && err.status === 429 && err.fields.includes('burst') && err.burst && err.burst > 0 && (limit === undefined || err.burst < limit) ? err.burst : null;
      if (burst !== null) limit = burst;
      // What the calls before this one changed is done: the caller must be able to say so.
      else if (!(await waitedOut(err, waits++))) throw new BulkStopped(changed, err);
      continue;
    }
    waits = 0;
    changed += a.changed;
    calls += 1;
    progress(changed, calls);
    cursor = a.has_more ? a.next_cursor : null;
    if (!cursor) return changed;
  }
}

/** The confirmations open now: each answered 'no' by dismissDialogs. */
const open = new Set<() => void>();

/**
 * Answers every open confirmation 'no' and removes it: called when the page changes, since a
 * modal <dialog> lives in <body>, outside the page, and would stay over the next one, blocking it,
 * asking about tasks no longer shown.
 */
export function dismissDialogs(): void {
  for (const no of [...open]) no();
}

/** A modal confirmation (a real <dialog>: focus is trapped and Escape cancels); resolves to the choice. */
export function confirmDialog(question: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'button', class: 'primary', id: 'confirm-yes' }, confirmLabel);
    const no = h('button', { type: 'button', id: 'confirm-no' }, 'Keep them');
    const dialog = h('dialog', { 'aria-labelledby': 'confirm-q', class: 'confirm' }, h('p', { id: 'confirm-q' }, question), h('div', { class: 'toolbar' }, yes, no));
    const done = (v: boolean) => {
      open.delete(dismiss);
      dialog.close();
      dialog.remove();
      resolve(v);
    };
    const dismiss = () => done(false);
    open.add(dismiss);
    yes.addEventListener('click', () => done(true));
    no.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', (ev) => {
      ev.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}
