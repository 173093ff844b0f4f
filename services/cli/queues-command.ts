/** `queues`: GET /queues as a table per priority and one of the workers, or --json as the API answers. */
import type { QueuesResponse } from '../client';
import { PRIORITIES } from '../core/tasks/priority';
import { API_OPTIONS, apiClient } from './api-client';
import { parse } from './args';
import type { Io } from './io';
import { json, table } from './output';

export const QUEUES_USAGE = 'queues [--json]';

export async function queuesCommand(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const { values } = parse(args, { ...API_OPTIONS, json: { type: 'boolean' } }, { min: 0, max: 0, names: '' });
  const answer = await apiClient(values, env).queues();
  io.out(values.json ? json(answer) : queuesText(answer));
  return 0;
}

export function queuesText(q: QueuesResponse): string {
  const rows = PRIORITIES.flatMap((p) => {
    const c = q.priorities?.[p];
    if (!c) return [];
    const m = c.last_minute;
    return {
      priority: p,
      queued: c.queued,
      scheduled: c.scheduled,
      retrying: c.retrying,
      running: c.running,
      dead: c.dead,
      cancelled: c.cancelled,
      oldest_wait: `${c.oldest_waiting_seconds}s`,
      // The last minute's flow: what came in, and how it went.
      'in/min': m.enqueued,
      'ok/min': m.succeeded,
      'retried/min': m.retried,
      'dead/min': m.dead,
      'cancelled/min': m.cancelled,
    };
  });
  const head = `tenant ${q.tenant} · ${q.running_now} running now · as of ${q.as_of}\n`;
  const workers = q.workers === null ? '(not known: Redis did not answer)\n' : q.workers?.length ? table(q.workers, ['id', 'slots']) : '(none alive)\n';
  return `${head}\n${table(rows, Object.keys(rows[0] ?? { priority: '' }))}\nWORKERS\n${workers}`;
}
