/** Overview: GET /queues every 2 s, per priority, with a sparkline of each priority's backlog. */
import { get } from '../api.js';
import { fill, h } from '../dom.js';
import { PRIORITIES } from '../format.js';
import { PageContext, poll } from '../router.js';
import { sparkline } from '../sparkline.js';
import { errorText, heading, notice } from '../ui.js';
import type { QueuesResponse } from '../../../client/types';

type PriorityStats = QueuesResponse['priorities'][string];
type Queues = QueuesResponse;

const COUNTS = ['queued', 'scheduled', 'retrying', 'running', 'dead'] as const;
const RATES = ['enqueued', 'succeeded', 'retried', 'dead'] as const;
const HISTORY = 60; // samples: two minutes at one every 2 s

export async function overviewPage(ctx: PageContext): Promise<void> {
  const history: Record<string, number[]> = Object.fromEntries(PRIORITIES.map((p) => [p, []]));
  const cells = new Map<string, HTMLElement>();
  const cell = (p: string, f: string) => {
    const td = h('td', { 'data-priority': p, 'data-field': f, class: 'num' }, '–');
    cells.set(`${p}.${f}`, td);
    return td;
  };
  const sparks = new Map<string, HTMLElement>(PRIORITIES.map((p) => [p, h('td', { class: 'spark-cell' })]));
  const head = ['Priority', ...COUNTS, ...RATES.map((r) => `${r} / min`), 'oldest wait', 'backlog (2 min)'];
  const tableEl = h(
    'div',
    { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': 'Queues per priority' },
    h(
      'table',
      { id: 'queues' },
      h('caption', { class: 'sr-only' }, 'Tasks per priority: counts now, and what went through in the last minute'),
      h('thead', {}, h('tr', {}, ...head.map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        {},
        ...PRIORITIES.map((p) => h('tr', {}, h('th', { scope: 'row' }, p), ...COUNTS.map((f) => cell(p, f)), ...RATES.map((r) => cell(p, `last_minute.${r}`)), cell(p, 'oldest'), sparks.get(p)!)),
      ),
    ),
  );
  const summary = h('p', { id: 'overview-summary', class: 'summary' }, '–');
  const workers = h('ul', { id: 'workers', class: 'workers' });
  const msg = notice();
  fill(ctx.main, heading('Overview'), summary, tableEl, h('h2', {}, 'Workers alive'), workers, msg.el);

  poll(ctx, 2000, async () => {
    let q: Queues;
    try {
      q = await get<Queues>('/queues');
    } catch (err) {
      msg.say(`Could not read the queues: ${errorText(err)}`, 'error');
      return;
    }
    msg.say('');
    for (const p of PRIORITIES) {
      const st = q.priorities[p];
      if (!st) continue;
      for (const f of COUNTS) cells.get(`${p}.${f}`)!.textContent = String(st[f]);
      for (const r of RATES) cells.get(`${p}.last_minute.${r}`)!.textContent = String(st.last_minute[r]);
      cells.get(`${p}.oldest`)!.textContent = st.oldest_waiting_seconds > 0 ? `${st.oldest_waiting_seconds.toFixed(1)} s` : '–';
      const hist = history[p]!;
      hist.push(st.queued + st.retrying + st.running);
      if (hist.length > HISTORY) hist.shift();
      fill(sparks.get(p)!, sparkline(hist, `${p} waiting and running`));
    }
    // null: Redis did not answer for the workers (a Redis Cluster master); the queues still show.
    const alive = q.workers ?? [];
    const slots = alive.reduce((n, w) => n + (w.slots ?? 0), 0);
    const seen = q.workers ? `${alive.length} worker(s), ${slots} slots` : 'workers not known';
    summary.textContent = `Tenant ${q.tenant} · ${q.running_now} running now · ${seen} · as of ${q.as_of.slice(11, 19)} UTC`;
    const none = q.workers ? 'No worker is alive.' : 'Not known: Redis did not answer.';
    fill(workers, ...(alive.length ? alive.map((w) => h('li', {}, w.slots === null ? w.id : `${w.id} (${w.slots} slots)`)) : [h('li', {}, none)]));
  });
}
