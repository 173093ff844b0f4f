/** `tasks list|get|cancel|retry`: tasks through the API, scoped to the key's tenant. */
import type { Changed } from '../client';
import { API_OPTIONS, apiClient } from './api-client';
import { parse, UsageError } from './args';
import type { Io } from './io';
import { mayHaveHappened } from './lost-answer';
import { json } from './output';
import { FILTER_OPTIONS, FILTER_USAGE, parseFilter } from './task-filter';
import { LIST_MAX, printListing } from './task-listing';
import { taskDetail } from './task-output';

export const TASKS_USAGE = `tasks list ${FILTER_USAGE} [--limit N] [--cursor C] [--json]
  tasks get ID [--json]
  tasks cancel ID [--json]
  tasks retry ID [--json]`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function tasksCommand(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'list': {
      const { values } = parse(rest, { ...FILTER_OPTIONS, ...API_OPTIONS, limit: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
      const filter = parseFilter(values);
      const limit = parseCount(values.limit, '--limit', 50, LIST_MAX);
      return printListing(apiClient(values, env), filter, { limit, cursor: cursorOption(values.cursor), json: values.json === true }, io);
    }
    case 'get': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, json: { type: 'boolean' } }, { min: 1, max: 1, names: 'the task ID' });
      const task = await apiClient(values, env).get(taskId(positionals[0]!));
      io.out(values.json ? json(task) : taskDetail(task));
      return 0;
    }
    case 'cancel':
    case 'retry': {
      const { values, positionals } = parse(rest, { ...API_OPTIONS, json: { type: 'boolean' } }, { min: 1, max: 1, names: 'the task ID' });
      const id = taskId(positionals[0]!);
      const client = apiClient(values, env);
      const changed = sub === 'cancel' ? await client.cancel(id) : await client.retry(id).catch((err) => mayHaveHappened(err, `it may have been queued again: see tasks get ${id} before retrying again`));
      io.out(values.json ? json(changed.task) : `${changed.task.id} ${changed.task.status}\n`);
      if (!values.json) io.err(`${explain(sub, changed)}\n`);
      return 0;
    }
    default:
      throw new UsageError(sub === undefined ? 'tasks needs a subcommand: list, get, cancel or retry' : `unknown tasks subcommand ${JSON.stringify(sub)}`);
  }
}

function explain(action: 'cancel' | 'retry', c: Changed): string {
  if (action === 'retry') return `task ${c.task.id} is queued again with a fresh budget of ${c.task.max_retries + 1} attempts`;
  if (c.status === 202) return `task ${c.task.id} is running: its attempt was asked to stop, and it becomes cancelled when that attempt ends`;
  return `task ${c.task.id} is cancelled`;
}

export function taskId(text: string): string {
  if (!UUID.test(text)) throw new UsageError(`ID must be a task id (a UUID), got ${JSON.stringify(text)}`);
  return text.toLowerCase();
}

export function cursorOption(v: string | boolean | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[\x21-\x7e]{1,1000}$/.test(v)) throw new UsageError('--cursor must be the next_cursor of an earlier listing');
  return v;
}

/** A whole number in [1, max], or `fallback` when the option is absent. */
export function parseCount(v: string | boolean | undefined, option: string, fallback: number, max: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !/^\d{1,9}$/.test(v) || Number(v) < 1 || Number(v) > max) throw new UsageError(`${option} must be a whole number from 1 to ${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}
