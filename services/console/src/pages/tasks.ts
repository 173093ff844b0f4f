/** Tasks: GET /tasks filtered, a page at a time (next_cursor); each row opens the task. */
import { get } from '../api.js';
import { BulkStopped, confirmDialog, countMatching, runBulk } from '../bulk.js';
import { fill, h } from '../dom.js';
import { badge, time } from '../format.js';
import { hrefFor, PageContext } from '../router.js';
import { filterForm, filterFrom, TaskFilter } from '../task-filter.js';
import { errorText, heading, link, notice, refresher, table } from '../ui.js';
import type { ListedTask } from '../../../client/types';

export type TaskRow = ListedTask;

export function taskCells(t: TaskRow): Node[] {
  return [
    link(hrefFor('tasks', [t.id]), t.id, { class: 'mono', 'aria-label': `Task ${t.id}` }),
    badge(t.status),
    document.createTextNode(t.type),
    document.createTextNode(t.priority),
    document.createTextNode(`${t.attempts}`),
    document.createTextNode(time(t.created_at)),
    h('span', { class: 'error-text' }, t.last_error ?? ''),
  ];
}
export const TASK_HEADERS = ['ID', 'Status', 'Type', 'Priority', 'Attempts', 'Created', 'Last error'];

export async function tasksPage(ctx: PageContext): Promise<void> {
  const filter = filterFrom(ctx.query);
  const cursor = ctx.query.get('cursor') ?? '';
  const form = filterForm(filter, { withStatus: true, submitLabel: 'Show tasks' }, (f) => {
    location.hash = hrefFor('tasks', [], { ...f });
  });
  const listing = h('div', {});
  // The list is read again after Cancel all matching, so it shows what the cancel did.
  const showList = async () => {
    const page = await get<{ tasks: TaskRow[]; next_cursor: string | null }>('/tasks', { ...filter, cursor, limit: 50 });
    const pager = h(
      'nav',
      { class: 'pager', 'aria-label': 'Pages of tasks' },
      cursor ? link(hrefFor('tasks', [], { ...filter }), 'First page') : null,
      page.next_cursor ? link(hrefFor('tasks', [], { ...filter, cursor: page.next_cursor }), 'Next page', { rel: 'next' }) : null,
    );
    const shown = page.tasks.length === 0 && page.next_cursor ? 'No task in this stretch; the next page carries on the search.' : 'No task matches.';
    fill(listing, table('Tasks, newest first', TASK_HEADERS, page.tasks.map(taskCells), shown), pager);
  };
  await showList();
  const msg = notice();
  const stale = refresher();
  const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Cancel progress' });
  const cancelAll = h('button', { type: 'button', id: 'cancel-matching', onclick: () => void cancelMatching(filter, cancelAll, progress, msg).then(() => stale.run(showList)) }, 'Cancel all matching');
  fill(ctx.main, heading('Tasks'), form, h('div', { class: 'toolbar' }, cancelAll, progress), msg.el, stale.el, listing);
}

/** Cancels every unfinished task the filter matches (POST /tasks/cancel), after confirming how many. */
async function cancelMatching(filter: TaskFilter, button: HTMLButtonElement, progress: HTMLProgressElement, msg: ReturnType<typeof notice>): Promise<void> {
  button.disabled = true;
  let n = 0;
  try {
    msg.say('Counting the unfinished tasks that match…');
    const bulkFilter = { ...filter };
    n = await countMatching('cancel', bulkFilter);
    if (n === 0) return msg.say('No unfinished task matches the filter.');
    if (!(await confirmDialog(`Cancel all ${n} unfinished task(s) matching the filter? Running ones are asked to stop.`, `Cancel ${n}`))) return msg.say('Nothing was changed.');
    progress.hidden = false;
    progress.max = n;
    const changed = await runBulk('cancel', bulkFilter, (c, calls) => {
      progress.value = Math.min(c, n);
      msg.say(`${c} of ${n} cancelled (${calls} call(s))…`);
    });
    msg.say(`${changed} of ${n} task(s) cancelled.`, 'ok');
  } catch (err) {
    if (err instanceof BulkStopped) msg.say(`Stopped after ${err.changed} of ${n} task(s) cancelled: ${errorText(err.reason)}`, 'error');
    else msg.say(`Stopped: ${errorText(err)}`, 'error');
  } finally {
    button.disabled = false;
  }
}
