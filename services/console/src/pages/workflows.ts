/** Workflows: the list, and one workflow's graph (each node links to its step's task); cancel it. */
import { call, get } from '../api.js';
import { fill, h } from '../dom.js';
import { dagSvg } from '../dag.js';
import { badge, time } from '../format.js';
import { hrefFor, PageContext, poll } from '../router.js';
import { dl, errorText, heading, link, notice, oneAtATime, refresher, select, field, table } from '../ui.js';
import type { Workflow as WorkflowSummary, WorkflowDetail } from '../../../client/types';

type Workflow = WorkflowSummary;

// Beyond this many steps a drawing says little; the table lists them all.
const MAX_DRAWN = 400;

export async function workflowsPage(ctx: PageContext): Promise<void> {
  if (ctx.params[0]) return workflowPage(ctx, ctx.params[0]);
  const status = ctx.query.get('status') ?? '';
  const cursor = ctx.query.get('cursor') ?? '';
  const sel = select('status', ['running', 'succeeded', 'failed', 'cancelled'], status);
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter workflows' }, field('Status', sel), h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Show workflows')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = hrefFor('workflows', [], { status: sel.value });
  });
  const page = await get<{ workflows: Workflow[]; next_cursor: string | null }>('/workflows', { status, cursor, limit: 50 });
  const rows = page.workflows.map((w) => [
    link(hrefFor('workflows', [w.id]), w.name, { 'aria-label': `Workflow ${w.name} ${w.id}` }),
    badge(w.status),
    document.createTextNode(`${w.steps_total - w.steps_unfinished}/${w.steps_total}${w.steps_failed ? ` (${w.steps_failed} failed)` : ''}`),
    document.createTextNode(w.on_failure),
    document.createTextNode(time(w.created_at)),
    h('span', { class: 'mono' }, w.id),
  ]);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of workflows' }, page.next_cursor ? link(hrefFor('workflows', [], { status, cursor: page.next_cursor }), 'Next page', { rel: 'next' }) : null);
  // A page reads a bounded stretch of workflows: an empty one with a cursor has more to search.
  const shown = rows.length === 0 && page.next_cursor ? 'No workflow in this stretch; the next page carries on the search.' : 'No workflow yet.';
  fill(ctx.main, heading('Workflows'), form, table('Workflows, newest first', ['Name', 'Status', 'Steps done', 'On failure', 'Created', 'ID'], rows, shown), pager);
}

async function workflowPage(ctx: PageContext, id: string): Promise<void> {
  const msg = notice();
  const stale = refresher();
  const body = h('div', {});
  fill(ctx.main, h('p', {}, link(hrefFor('workflows'), '← Workflows')), heading(`Workflow ${id}`), msg.el, stale.el, body);
  let final = false;
  /** The answer drawn last: an unchanged one is not drawn again (a big workflow's table is costly, and a selection would go). */
  let drawn = '';
  const load = async () => {
    const detail = await get<WorkflowDetail>(`/workflows/${encodeURIComponent(id)}`);
    const { workflow: w, steps } = detail;
    final = w.status !== 'running';
    const text = JSON.stringify(detail);
    if (text === drawn) return;
    drawn = text;
    const cancel = h('button', { type: 'button', id: 'cancel-workflow', onclick: () => void onCancel() }, 'Cancel workflow');
    const counts = Object.entries(w.counts).filter(([, n]) => n > 0).map(([st, n]) => `${n} ${st}`).join(', ');
    const focused = document.activeElement?.id;
    fill(
      body,
      h('div', { class: 'toolbar' }, h('span', { class: 'status-line' }, `${w.name} `, badge(w.status)), final ? null : cancel),
      dl([
        ['Steps', `${w.steps_total} (${counts || 'none'})`],
        ['On failure', w.on_failure],
        ['Created', time(w.created_at)],
        ['Finished', time(w.finished_at)],
      ]),
      h('h2', {}, 'Graph'),
      steps.length <= MAX_DRAWN ? h('div', { class: 'dag-wrap', tabindex: 0, role: 'region', 'aria-label': 'Workflow graph, scrolls sideways' }, dagSvg(steps)) : h('p', {}, `${steps.length} steps: too many to draw; see the table.`),
      h('h2', {}, 'Steps'),
      table('Steps', ['Key', 'Status', 'Type', 'Depends on', 'Attempts', 'Cancelled by', 'Last error'], steps.map((st) => [
        link(hrefFor('tasks', [st.task_id]), st.key),
        badge(st.status),
        document.createTextNode(st.type),
        document.createTextNode(st.depends_on.join(', ') || '–'),
        document.createTextNode(String(st.attempts)),
        document.createTextNode(st.cancelled_by ?? '–'),
        h('span', { class: 'error-text' }, st.last_error ?? ''),
      ])),
    );
    if (focused) document.getElementById(focused)?.focus();
  };
  const onCancel = oneAtATime(async () => {
    try {
      const r = await call<{ cancelled: number; cancelling: number }>('POST', `/workflows/${encodeURIComponent(id)}/cancel`);
      msg.say(`Workflow cancelled: ${r.body.cancelled} step(s) cancelled, ${r.body.cancelling} being stopped.`, 'ok');
    } catch (err) {
      msg.say(`Could not cancel: ${errorText(err)}`, 'error');
    }
    await stale.run(load);
  });
  await load();
  poll(ctx, 2000, async () => {
    if (!final) await stale.run(load);
  });
}
