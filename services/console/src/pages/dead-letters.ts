/**
 * Dead letters: dead tasks, filtered; retry (or cancel) the ones selected, or every task matching
 * the filter through the bulk routes, after a confirmation that says how many.
 */
import { ApiError, call, get } from '../api.js';
import { fill, h } from '../dom.js';
import { BulkStopped, confirmDialog, countMatching, runBulk, underRateLimit } from '../bulk.js';
import { hrefFor, PageContext } from '../router.js';
import { filterForm, filterFrom } from '../task-filter.js';
import { errorText, heading, link, notice, refresher, table } from '../ui.js';
import { TASK_HEADERS, taskCells, TaskRow } from './tasks.js';

export async function deadLettersPage(ctx: PageContext): Promise<void> {
  const filter = { ...filterFrom(ctx.query), status: 'dead' };
  const cursor = ctx.query.get('cursor') ?? '';
  const form = filterForm(filter, { withStatus: false, submitLabel: 'Show dead tasks' }, (f) => {
    location.hash = hrefFor('dead', [], { ...f, status: '' });
  });
  const msg = notice();
  const stale = refresher();
  const progress = h('progress', { id: 'bulk-progress', max: 1, value: 0, hidden: true, 'aria-label': 'Bulk progress' });
  const all = h('input', { type: 'checkbox', id: 'pick-all', 'aria-label': 'Select every task on this page' });
  const listing = h('div', {});
  let boxes: HTMLInputElement[] = [];
  // The list is read again after an action, so it shows what the action did.
  const showList = async () => {
    const page = await get<{ tasks: TaskRow[]; next_cursor: string | null }>('/tasks', { ...filter, cursor, limit: 100 });
    boxes = page.tasks.map((t) => h('input', { type: 'checkbox', class: 'pick', value: t.id, 'aria-label': `Select task ${t.id}` }));
    all.checked = false;
    const rows = page.tasks.map((t, i) => [boxes[i]!, ...taskCells(t)]);
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of dead tasks' }, page.next_cursor ? link(hrefFor('dead', [], { ...filter, status: '', cursor: page.next_cursor }), 'Next page', { rel: 'next' }) : null);
    // A page reads a bounded stretch of tasks (LIST_SCAN_ROWS): an empty one with a cursor has more to search.
    const empty = page.next_cursor ? 'No dead task in this stretch; the next page carries on the search.' : 'No dead task matches.';
    fill(listing, table('Dead tasks, newest first', ['Select', ...TASK_HEADERS], rows, empty), pager);
  };
  await showList();
  all.addEventListener('change', () => boxes.forEach((b) => (b.checked = all.checked)));
  // A box is disabled once its task was acted on: "Select page" may tick it, but it is not sent again.
  const picked = () => boxes.filter((b) => b.checked && !b.disabled).map((b) => b.value);

  const filterNoStatus = { type: filter.type, priority: filter.priority, created_after: filter.created_after, created_before: filter.created_before, status: 'dead' };
  const busy = (on: boolean) => buttons.forEach((b) => (b.disabled = on));

  const onSelected = async (action: 'retry' | 'cancel') => {
    const ids = picked();
    if (ids.length === 0) return msg.say('Select at least one task first.', 'error');
    if (!(await confirmDialog(`${action === 'retry' ? 'Retry' : 'Cancel'} ${ids.length} selected task(s)?`, `${action === 'retry' ? 'Retry' : 'Cancel'} ${ids.length}`))) return;
    busy(true);
    progress.hidden = false;
    progress.max = ids.length;
    let done = 0;
    const refused: string[] = [];
    try {
      for (const [i, id] of ids.entries()) {
        try {
          // A 429 of the tenant's rate limit says when to come back: this task waits its turn.
          await underRateLimit(() => call('POST', `/tasks/${encodeURIComponent(id)}/${action}`));
          const box = boxes.find((b) => b.value === id);
          if (box) {
            box.checked = false;
            box.disabled = true;
          }
        } catch (err) {
          // The key was refused: the console has signed out, and every call left would be refused too.
          if (err instanceof ApiError && err.status === 401) return;
          refused.push(errorText(err));
        }
        done = i + 1;
        progress.value = done;
        msg.say(`${done} of ${ids.length} done…`);
      }
      const why = refused.length === 0 ? '' : refused.length === 1 ? `, 1 refused: ${refused[0]}` : `, ${refused.length} refused (the first: ${refused[0]})`;
      msg.say(`${ids.length - refused.length} task(s) ${action === 'retry' ? 'queued again' : 'cancelled'}${why}.`, refused.length ? 'error' : 'ok');
      await stale.run(showList);
    } finally {
      busy(false);
    }
  };

  const onMatching = async (action: 'retry' | 'cancel') => {
    busy(true);
    let n = 0;
    try {
      msg.say('Counting the tasks that match…');
      n = await countMatching(action, filterNoStatus);
      if (n === 0) return msg.say('No dead task matches the filter.', 'info');
      if (!(await confirmDialog(`${action === 'retry' ? 'Retry' : 'Cancel'} all ${n} dead task(s) matching the filter?`, `${action === 'retry' ? 'Retry' : 'Cancel'} ${n}`))) return msg.say('Nothing was changed.');
      progress.hidden = false;
      progress.max = n;
      const changed = await runBulk(action, filterNoStatus, (c, calls) => {
        progress.value = Math.min(c, n);
        msg.say(`${c} of ${n} ${action === 'retry' ? 'queued again' : 'cancelled'} (${calls} call(s))…`);
      });
      msg.say(`${changed} of ${n} dead task(s) ${action === 'retry' ? 'queued again' : 'cancelled'}.`, 'ok');
    } catch (err) {
      if (err instanceof BulkStopped) msg.say(`Stopped after ${err.changed} of ${n} dead task(s) ${action === 'retry' ? 'queued again' : 'cancelled'}: ${errorText(err.reason)}`, 'error');
      else msg.say(`Stopped: ${errorText(err)}`, 'error');
    } finally {
      await stale.run(showList);
      busy(false);
    }
  };

  const buttons = [
    h('button', { type: 'button', id: 'retry-selected', onclick: () => void onSelected('retry') }, 'Retry selected'),
    h('button', { type: 'button', id: 'retry-matching', class: 'primary', onclick: () => void onMatching('retry') }, 'Retry all matching'),
  ];
  fill(
    ctx.main,
    heading('Dead letters'),
    h('p', { class: 'help' }, 'Tasks that used up their retries. Retrying queues them again with a fresh budget; their earlier attempts stay in their history.'),
    form,
    h('div', { class: 'toolbar' }, h('label', { class: 'check' }, all, 'Select page'), ...buttons, progress),
    msg.el,
    stale.el,
    listing,
  );
}
