/** Priorities, highest first. The index is how Lua scripts address the per-priority keys. */
export const PRIORITIES = ['critical', 'high', 'default', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

export function isPriority(v: unknown): v is Priority {
  return typeof v === 'string' && (PRIORITIES as readonly string[]).includes(v);
}

export function priorityIndex(p: Priority): number {
  return PRIORITIES.indexOf(p);
}

export const STATUSES = ['waiting', 'scheduled', 'queued', 'running', 'retrying', 'succeeded', 'dead', 'cancelled'] as const;
/** Statuses a task never leaves on its own (an operator may retry a dead or cancelled one). */
export const FINAL_STATUSES = ['succeeded', 'dead', 'cancelled'] as const;
export type TaskStatus = (typeof STATUSES)[number];
