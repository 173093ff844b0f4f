/** `tasks list` and `dlq list`: pages of GET /tasks up to --limit tasks, newest first. */
import type { ListedTask, TaskFilter, TaskSchedulerClient } from '../client';
import type { Io } from './io';
import { json } from './output';
import { taskTable } from './task-output';

export const LIST_MAX = 100_000;
const PAGE_MAX = 500;

export async function printListing(client: TaskSchedulerClient, filter: TaskFilter, opts: { limit: number; cursor?: string; json: boolean }, io: Io): Promise<number> {
  const tasks: ListedTask[] = [];
  let cursor = opts.cursor;
  let next: string | null = null;
  // Each page asks for no more than is still wanted, so next_cursor resumes right after the last task shown.
  for (;;) {
    const page = await client.listPage({ ...filter, limit: Math.min(PAGE_MAX, opts.limit - tasks.length), cursor });
    tasks.push(...page.tasks);
    next = page.next_cursor;
    if (next === null || tasks.length >= opts.limit) break;
    cursor = next;
  }
  if (opts.json) io.out(json({ tasks, next_cursor: next }));
  else {
    io.out(taskTable(tasks));
    if (next !== null) io.err(`more tasks: add --cursor ${next}\n`);
  }
  return 0;
}
