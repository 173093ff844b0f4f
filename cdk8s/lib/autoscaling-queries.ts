/**
 * The PromQL the worker autoscaler reads, for KEDA (a concrete selector) and for prometheus-adapter
 * (its `<<.LabelMatchers>>` placeholder) alike, so both kinds scale on the same numbers. Every
 * series here is a queue gauge the api exports from Redis (never the workers, so the values exist
 * at zero workers too); every api replica exports the same value, and `max` removes the duplicates.
 * docs/autoscaling.md explains the formulas.
 */

/** What the oldest-wait query needs besides the selector: WORKER_POOL and the target age. */
export interface OldestWaitParams {
  /** Task slots per worker process (WORKER_POOL). */
  workerSlots: number;
  targetOldestWaitSeconds: number;
}

/** The selector of the api's series in a namespace (KEDA's queries). */
export function apiSelector(namespace: string, apiJob: string): string {
  return `namespace="${namespace}",job="${apiJob}"`;
}

/**
 * Tasks waiting that a worker may lease now, over all priorities: a tenant's backlog held at its
 * running cap is left out, since more workers cannot start it (it pinned them at maxReplicas).
 * An api from before that gauge (a rolling upgrade) exports only queue_depth: read then.
 */
export function queueDepthQuery(selector: string): string {
  return `(sum(max by (priority) (queue_depth_leasable{${selector}})) or sum(max by (priority) (queue_depth{${selector}})))`;
}

/**
 * How long the oldest waiting task (any priority) has waited, counted only while every worker slot
 * is leased (more workers cannot help otherwise: the waiting tasks are a tenant's held at its
 * running cap, or the workers cannot lease), and at most the age that asks for one more worker per
 * WORKER_POOL waiting tasks (a few slow tasks must not multiply the workers). 0 otherwise.
 */
export function oldestWaitQuery(selector: string, p: OldestWaitParams): string {
  const age = `max(max by (priority) (queue_oldest_task_age_seconds{${selector}}))`;
  const workers = `max(workers_alive{${selector}})`;
  const cap = `${p.targetOldestWaitSeconds} * (${workers} + ceil(${queueDepthQuery(selector)} / ${p.workerSlots})) / clamp_min(${workers}, 1)`;
  const saturated = `max(tasks_leased{${selector}}) >= ${p.workerSlots} * ${workers}`;
  return `(clamp_max(${age}, scalar(${cap})) and on() (${saturated})) or on() vector(0)`;
}

/**
 * How far ahead of a cron tick, or of a delayed task waiting in Postgres, a worker is woken from
 * zero: KEDA's poll and the api's scrape (15 s each) plus a pod's start-up, so the worker runs by
 * the time the work is due (docs/autoscaling.md).
 */
export const WAKE_AHEAD_SECONDS = 60;

/**
 * 1 while any task is leased or waits for a retry, or a cron tick or a delayed task in Postgres is
 * due within WAKE_AHEAD_SECONDS (or overdue), else 0: with scale to zero it keeps one worker for
 * the running attempts and for the retry pump, and wakes one for the schedule ticker and the
 * delayed loader, all of which only workers run. (Scheduled work alone never reaches the queue
 * gauges: without the last part, schedules did not fire at zero workers.)
 */
export function leasesAndRetriesQuery(selector: string): string {
  const due = `count(min by (kind) (work_next_due_seconds{${selector}}) < ${WAKE_AHEAD_SECONDS}) or on() vector(0)`;
  return `clamp_max(max(tasks_leased{${selector}}) + sum(max by (priority) (retry_set_depth{${selector}})) + (${due}), 1)`;
}
