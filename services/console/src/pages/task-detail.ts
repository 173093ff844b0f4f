/**
 * One task: payload, result, retry policy, and every attempt (worker, outcome including the
 * fencing outcomes `expired` and `discarded`, error, duration); cancel or retry it. While the task
 * is not final the page refreshes every 2 s, so a cancel or retry is seen to take effect.
 */
import { ApiError, call, get } from '../api.js';
import { fill, h } from '../dom.js';
import { badge, duration, FINAL, json, time } from '../format.js';
import { hrefFor, PageContext, poll } from '../router.js';
import { dl, errorText, heading, link, notice, oneAtATime, refresher } from '../ui.js';
import type { Task as TaskWithRuns, TaskRun } from '../../../client/types';

type Run = TaskRun;
type Task = TaskWithRuns;

const OUTCOME_NOTES: Record<string, string> = {
  expired: 'its lease ran out (the worker stopped answering); the attempt was taken back',
  discarded: 'finished after its lease had passed to another attempt; its result was not used',
};

function timeline(runs: Run[]): HTMLElement {
  if (runs.length === 0) return h('p', { class: 'empty' }, 'No attempt yet.');
  return h(
    'ol',
    { class: 'timeline', 'aria-label': 'Attempts' },
    ...runs.map((r) =>
      h(
        'li',
        { class: 'run', 'data-outcome': r.outcome },
        h('div', { class: 'run-head' }, h('strong', {}, `Attempt ${r.attempt}`), badge(r.outcome), h('span', {}, duration(r.duration_ms))),
        OUTCOME_NOTES[r.outcome] ? h('p', { class: 'help' }, OUTCOME_NOTES[r.outcome]) : null,
        dl([
          ['Worker', r.worker_id ?? '–'],
          ['Started', time(r.started_at)],
          ['Finished', time(r.finished_at)],
          ...(r.error ? ([['Error', h('span', { class: 'error-text' }, `${r.error_type ? `${r.error_type}: ` : ''}${r.error}`)]] as [string, Node][]) : []),
        ]),
        r.error_stack ? h('details', { 'data-attempt': r.attempt }, h('summary', {}, 'Stack'), h('pre', {}, r.error_stack)) : null,
      ),
    ),
  );
}

export async function taskPage(ctx: PageContext): Promise<void> {
  const id = ctx.params[0]!;
  const msg = notice();
  // Apart from msg, so a refresh does not erase what an action said.
  const stale = refresher();
  const body = h('div', { id: 'task-body' });
  const title = heading(`Task ${id}`);
  fill(ctx.main, h('p', {}, link(hrefFor('tasks'), '← Tasks')), title, msg.el, stale.el, body);
  let current: Task | null = null;
  /** The answer drawn last: an unchanged one is not drawn again. */
  let drawn = '';

  const act = oneAtATime(async (action: 'cancel' | 'retry') => {
    try {
      const res = await call<Task>('POST', `/tasks/${encodeURIComponent(id)}/${action}`);
      msg.say(action === 'retry' ? 'Queued again.' : res.status === 202 ? 'Cancel requested: the running attempt is being stopped.' : 'Cancelled.', 'ok');
    } catch (err) {
      msg.say(`Could not ${action}: ${errorText(err)}`, 'error');
    }
    await stale.run(load);
  });

  const load = async () => {
    let t: Task;
    try {
      t = await get<Task>(`/tasks/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        fill(body, h('p', { class: 'notice error', role: 'alert' }, `No task ${id} (404): it does not exist, or belongs to another tenant.`));
        current = null;
        drawn = '';
        return;
      }
      throw err;
    }
    current = t;
    // Drawn again only when it changed, so a refresh leaves the page as the operator left it (a
    // Stack opened, text selected); when it did change, the Stacks open stay open.
    const text = JSON.stringify(t);
    if (text === drawn) return;
    drawn = text;
    const opened = new Set([...body.querySelectorAll('details[open]')].map((d) => d.getAttribute('data-attempt')));
    const canCancel = !FINAL.has(t.status);
    const canRetry = t.status === 'dead' || t.status === 'cancelled';
    const focused = document.activeElement?.id;
    fill(
      body,
      h(
        'div',
        { class: 'toolbar' },
        h('span', { class: 'status-line' }, 'Status ', badge(t.status)),
        canCancel ? h('button', { type: 'button', id: 'cancel-task', onclick: () => void act('cancel') }, t.cancel_requested_at ? 'Cancel (requested)' : 'Cancel') : null,
        canRetry ? h('button', { type: 'button', id: 'retry-task', class: 'primary', onclick: () => void act('retry') }, 'Retry') : null,
      ),
      dl([
        ['Type', t.type],
        ['Priority', t.priority],
        ['Attempts', `${t.attempts} (max retries ${t.max_retries})`],
        ['Created', time(t.created_at)],
        ['Started', time(t.started_at)],
        ['Finished', time(t.finished_at)],
        ['Next attempt', time(t.next_attempt_at)],
        ['Timeout', t.timeout_ms ? duration(t.timeout_ms) : 'handler default'],
        ['Retry policy', t.retry ? json(t.retry) : 'handler / environment default'],
        ...(t.schedule ? ([['Schedule', link(hrefFor('schedules', [t.schedule]), t.schedule)]] as [string, Node][]) : []),
        ...(t.workflow_id ? ([['Workflow', link(hrefFor('workflows', [t.workflow_id]), `${t.step_key ?? ''} in ${t.workflow_id}`)]] as [string, Node][]) : []),
        ...(t.last_error ? ([['Last error', h('span', { class: 'error-text' }, t.last_error)]] as [string, Node][]) : []),
      ]),
      h('h2', {}, 'Payload'),
      h('pre', { class: 'json', tabindex: 0, 'aria-label': 'Payload' }, json(t.payload)),
      h('h2', {}, 'Result'),
      h('pre', { class: 'json', tabindex: 0, 'aria-label': 'Result' }, t.result === null ? '–' : json(t.result)),
      h('h2', {}, 'Attempts'),
      timeline(t.runs ?? []),
    );
    for (const d of body.querySelectorAll('details')) if (opened.has(d.getAttribute('data-attempt'))) d.open = true;
    // A refresh must not take the keyboard focus away from the button the user is on.
    if (focused) document.getElementById(focused)?.focus();
  };

  await load();
  poll(ctx, 2000, async () => {
    if (current && !FINAL.has(current.status)) await stale.run(load);
  });
}
