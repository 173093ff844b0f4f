/** How tasks are shown: a table of many, the fields and runs of one. --json prints the API's objects instead. */
import type { ListedTask, Task } from '../client';
import { fields as showFields, table } from './output';

function short(text: string | null, max = 60): string | null {
  if (text === null) return null;
  const one = text.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

export function taskTable(tasks: ListedTask[]): string {
  const rows = tasks.map((t) => ({ ...t, last_error: t.last_error === null ? null : short(t.last_error) }));
  return table(rows, ['id', 'status', 'type', 'priority', 'attempts', 'created_at', 'finished_at', 'last_error']);
}

export function taskDetail(t: Task): string {
  const fields: [string, unknown][] = [
    ['id', t.id],
    ['tenant', t.tenant],
    ['type', t.type],
    ['priority', t.priority],
    ['status', t.status],
    ['attempts', `${t.attempts} (max_retries ${t.max_retries})`],
    ['created_at', t.created_at],
    ['started_at', t.started_at],
    ['finished_at', t.finished_at],
    ['next_attempt_at', t.next_attempt_at],
    ['cancel_requested_at', t.cancel_requested_at],
    ['idempotency_key', t.idempotency_key],
    ['retry', t.retry ? JSON.stringify(t.retry) : null],
    ['timeout_ms', t.timeout_ms],
    ['last_error', t.last_error],
    ['payload', JSON.stringify(t.payload)],
    ['result', t.result === null || t.result === undefined ? null : JSON.stringify(t.result)],
  ];
  const runs = t.runs ?? [];
  const runRows = runs.map((r) => ({ ...r, error: r.error === null ? null : short(r.error) }));
  return `${showFields(fields)}\n${runs.length ? `\nRUNS\n${table(runRows, ['attempt', 'outcome', 'worker_id', 'started_at', 'duration_ms', 'error_type', 'error'])}` : ''}`;
}
