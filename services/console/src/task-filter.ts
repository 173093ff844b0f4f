/** The filter form shared by Tasks and Dead letters: its values live in the page's hash query. */
import { h } from './dom.js';
import { localToIso, PRIORITIES, STATUSES } from './format.js';
import { field, select } from './ui.js';

export interface TaskFilter {
  status: string;
  type: string;
  priority: string;
  created_after: string;
  created_before: string;
}

export function filterFrom(query: URLSearchParams): TaskFilter {
  return {
    status: query.get('status') ?? '',
    type: query.get('type') ?? '',
    priority: query.get('priority') ?? '',
    created_after: query.get('created_after') ?? '',
    created_before: query.get('created_before') ?? '',
  };
}

/** RFC 3339 (UTC) ↔ a datetime-local input's value, which has no zone (the browser's local time). */
function isoToLocal(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const off = d.getTimezoneOffset() * 60_000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}

export function filterForm(initial: TaskFilter, opts: { withStatus: boolean; submitLabel: string }, onApply: (f: TaskFilter) => void): HTMLFormElement {
  const status = select('status', STATUSES, initial.status);
  const type = h('input', { name: 'type', type: 'text', value: initial.type, autocomplete: 'off', placeholder: 'e.g. email' });
  const priority = select('priority', PRIORITIES, initial.priority);
  const after = h('input', { name: 'created_after', type: 'datetime-local', value: initial.created_after ? isoToLocal(initial.created_after) : '' });
  const before = h('input', { name: 'created_before', type: 'datetime-local', value: initial.created_before ? isoToLocal(initial.created_before) : '' });
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter tasks' },
    opts.withStatus ? field('Status', status) : null,
    field('Type', type),
    field('Priority', priority),
    field('Created after', after),
    field('Created before', before),
    h('div', { class: 'field actions' }, h('button', { type: 'submit' }, opts.submitLabel)),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    onApply({ status: opts.withStatus ? status.value : initial.status, type: type.value.trim(), priority: priority.value, created_after: localToIso(after.value), created_before: localToIso(before.value) });
  });
  return form;
}
