/** Tasks: GET /tasks filtered, a page at a time (next_cursor); each row opens the task. */
import { get } from '../api.js';
import { fill, h } from '../dom.js';
import { badge, time } from '../format.js';
import { hrefFor, PageContext } from '../router.js';
import { filterForm, filterFrom, TaskFilter } from '../task-filter.js';
import { heading, link, table } from '../ui.js';

export interface TaskRow {
  id: string;
  type: string;
  priority: string;
  status: string;
  attempts: number;
  max_retries: number;
  last_error: string | null;
  created_at: string;
  finished_at: string | null;
}

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
  const page = await get<{ tasks: TaskRow[]; next_cursor: string | null }>('/tasks', { ...filter, cursor, limit: 50 });
  const pager = h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages of tasks' },
    cursor ? link(hrefFor('tasks', [], { ...filter }), 'First page') : null,
    page.next_cursor ? link(hrefFor('tasks', [], { ...filter, cursor: page.next_cursor }), 'Next page', { rel: 'next' }) : null,
  );
  const shown = page.tasks.length === 0 && page.next_cursor ? 'No task in this stretch; the next page carries on the search.' : 'No task matches.';
  fill(ctx.main, heading('Tasks'), form, table('Tasks, newest first', TASK_HEADERS, page.tasks.map(taskCells), shown), pager);
}
