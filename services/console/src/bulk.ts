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
      if (!(err instanceof ApiError) || err.status !== 429) throw err;
      if (err.fields.includes('burst') && err.burst && err.burst > 0 && (limit === undefined || err.burst < limit)) limit = err.burst;
      else if (err.fields.includes('rate_limit') && err.retryAfterMs !== null && waits++ < MAX_RATE_WAITS) await new Promise((r) => setTimeout(r, err.retryAfterMs!));
      else throw err;
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

/** A modal confirmation (a real <dialog>: focus is trapped and Escape cancels); resolves to the choice. */
export function confirmDialog(question: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'button', class: 'primary', id: 'confirm-yes' }, confirmLabel);
    const no = h('button', { type: 'button', id: 'confirm-no' }, 'Keep them');
    const dialog = h('dialog', { 'aria-labelledby': 'confirm-q', class: 'confirm' }, h('p', { id: 'confirm-q' }, question), h('div', { class: 'toolbar' }, yes, no));
    const done = (v: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(v);
    };
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
