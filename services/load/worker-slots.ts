/**
 * The Slots of the Workers × Slots column: GET /queues lists the live workers with their slot counts
 * (WORKER_POOL). The workers that ran this run's tasks are preferred; when none of them is listed
 * any more (they stopped), the live ones stand in. Slots that differ between workers give null (the
 * note asks for -slots), as does an API that does not list workers or answer.
 */
import type { TaskSchedulerClient } from '../client';
import type { RunFact } from './summary';

interface WorkerInfo {
  id: string;
  slots: number;
}

export async function workerSlots(client: TaskSchedulerClient, runs: RunFact[]): Promise<number | null> {
  // Only a column of the table: an API that cannot say leaves it '?' (the note says -slots).
  const answer = await client.queues().catch(() => null);
  const workers = listed(answer?.workers);
  if (workers.length === 0) return null;
  const ran = new Set(runs.map((r) => r.workerId));
  const relevant = workers.filter((w) => ran.has(w.id));
  const slots = new Set((relevant.length ? relevant : workers).map((w) => w.slots));
  return slots.size === 1 ? [...slots][0]! : null;
}

function listed(value: unknown): WorkerInfo[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((w: { id?: unknown; slots?: unknown }) => (typeof w?.id === 'string' && typeof w?.slots === 'number' ? [{ id: w.id, slots: w.slots }] : []));
}
