/** How workflows are shown: a table of many, the fields and step table of one. --json prints the API's objects instead. */
import type { Workflow, WorkflowCreated, WorkflowDetail } from '../client';
import { fields as showFields, table } from './output';

function short(text: string | null, max = 60): string | null {
  if (text === null) return null;
  const one = text.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/** `5/8 (1 failed)`: steps final of all, and how many of those failed. */
const progress = (w: Workflow) => `${w.steps_total - w.steps_unfinished}/${w.steps_total}${w.steps_failed ? ` (${w.steps_failed} failed)` : ''}`;

export function workflowTable(workflows: Workflow[]): string {
  return table(
    workflows.map((w) => ({ ...w, steps_done: progress(w) })),
    ['id', 'name', 'status', 'steps_done', 'on_failure', 'created_at', 'finished_at'],
  );
}

export function workflowCreated(c: WorkflowCreated & { created: boolean }): string {
  const w = c.workflow;
  const head = c.created ? `${w.id} ${w.name} created: ${w.steps_total} step(s)` : `${w.id} ${w.name} already submitted with this idempotency key (nothing new was created)`;
  return `${head}\n${table(c.steps, ['key', 'task_id'])}`;
}

export function workflowDetail(d: WorkflowDetail): string {
  const w = d.workflow;
  const counts = Object.entries(w.counts)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${s} ${n}`)
    .join(', ');
  const fields: [string, unknown][] = [
    ['id', w.id],
    ['tenant', w.tenant],
    ['name', w.name],
    ['status', w.status],
    ['on_failure', w.on_failure],
    ['steps', `${progress(w)} final; ${counts}`],
    ['created_at', w.created_at],
    ['finished_at', w.finished_at],
    ['cancel_requested_at', w.cancel_requested_at],
    ['idempotency_key', w.idempotency_key],
  ];
  const steps = d.steps.map((s) => ({ ...s, depends_on: s.depends_on.length ? s.depends_on : null, last_error: short(s.last_error) }));
  return `${showFields(fields)}\n\nSTEPS\n${table(steps, ['key', 'status', 'depends_on', 'task_id', 'type', 'attempts', 'cancelled_by', 'last_error'])}`;
}
