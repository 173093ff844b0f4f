/**
 * Prometheus metrics, with the Go system's names and labels. Each process owns a registry.
 * Label values are bounded: task types reach metrics only once a handler exists for them
 * (others are reported as `unknown`), and no id ever becomes a label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { OTHER_TENANTS } from './tenant-labels';
import type { QueueStats } from '../queue/queue';
import { FINAL_STATUSES, PRIORITIES, Priority } from '../tasks/priority';

const RUN_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
// Waits range from sub-millisecond on an idle system to many minutes behind a backlog or backoff.
const WAIT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export type ApiMetrics = ReturnType<typeof apiMetrics>;
export function apiMetrics(registry: Registry) {
  const m = {
    enqueued: new Counter({ name: 'tasks_enqueued_total', help: 'Tasks accepted and queued (idempotent replays not counted).', registers: [registry] }),
    rateLimited: new Counter({
      name: 'tasks_rate_limited_total',
      help: 'Tasks refused with 429 by their tenant\'s rate limit (a refused batch counts each task), by tenant (bounded: TENANT_METRICS_LIMIT, then _other).',
      labelNames: ['tenant'] as const,
      registers: [registry],
    }),
    quotaRefused: new Counter({
      name: 'tasks_quota_refused_total',
      help: 'Tasks refused with 429 by a tenant quota, by tenant (bounded as above) and quota (max_unfinished).',
      labelNames: ['tenant', 'quota'] as const,
      registers: [registry],
    }),
    cancelled: new Counter({
      name: 'tasks_cancelled_total',
      help: 'Tasks an operator cancelled, by how: waiting (cancelled at once) or running (its attempt asked to stop).',
      labelNames: ['how'] as const,
      registers: [registry],
    }),
    redriven: new Counter({
      name: 'tasks_redriven_total',
      help: 'Dead or cancelled tasks an operator put back to work (POST /tasks/:id/retry and the bulk retry), by the status they left.',
      labelNames: ['from'] as const,
      registers: [registry],
    }),
    workflowsStarted: new Counter({ name: 'workflows_started_total', help: 'Workflows created by POST /workflows (idempotent replays not counted); their steps count in tasks_enqueued_total.', registers: [registry] }),
    authFailures: new Counter({
      name: 'auth_failures_total',
      help: 'Requests refused with 401, by reason: missing (no bearer key), malformed, unknown, revoked_or_expired.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    authKeyLookups: new Counter({
      name: 'auth_key_lookups_total',
      help: 'API key ids looked up in Postgres (keys not in the cache), by result: verified (a key seen valid on this replica, read again and still stored), found (an id that exists, not yet presented with its secret here), not_found (also a key deleted after it was seen valid here), refused (503: too many unknown ids waiting).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests served, by route template, method and status code.',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by route template and method.',
      labelNames: ['route', 'method'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
  // Known label values start at 0 (as initCounters does for the worker's): a series that first
  // appears at its first event's value hides that event from rate() and increase(). Per-tenant
  // counters cannot, their label values being unknown until then.
  for (const reason of ['missing', 'malformed', 'unknown', 'revoked_or_expired']) m.authFailures.inc({ reason }, 0);
  for (const result of ['verified', 'found', 'not_found', 'refused']) m.authKeyLookups.inc({ result }, 0);
  for (const how of ['waiting', 'running']) m.cancelled.inc({ how }, 0);
  for (const from of ['dead', 'cancelled']) m.redriven.inc({ from }, 0);
  return m;
}

export type WorkerMetrics = ReturnType<typeof workerMetrics>;
export function workerMetrics(registry: Registry) {
  const c = (name: string, help: string, labelNames: readonly string[] = []) => new Counter({ name, help, labelNames, registers: [registry] });
  let inflightNow = () => 0;
  let abandonedNow = () => 0;
  return {
    /** Where processing_inflight is read from at scrape time (the processor's map of attempts). */
    countInflight(read: () => number): void {
      inflightNow = read;
    },
    /** Where handlers_abandoned is read from at scrape time. */
    countAbandoned(read: () => number): void {
      abandonedNow = read;
    },
    dequeued: c('tasks_dequeued_total', 'Attempts leased from the queue, by priority.', ['priority']),
    succeeded: c('tasks_succeeded_total', 'Attempts that succeeded (recorded in Postgres), by type and priority.', ['type', 'priority']),
    failed: c('tasks_failed_total', 'Attempts that failed (each failed attempt, retried or not), by type and priority.', ['type', 'priority']),
    dead: c('tasks_dead_total', 'Tasks that reached a dead-letter queue (final failures), by type and priority.', ['type', 'priority']),
    retried: c('tasks_retried_total', 'Failed attempts scheduled for a retry.'),
    reaped: c('tasks_reaped_total', 'Expired leases reclaimed by the reaper.'),
    cancelledRuns: c('tasks_cancelled_running_total', 'Running attempts that ended because an operator cancelled their task.'),
    acks: c('acks_total', 'Tasks acknowledged (removed from Redis after a final outcome).'),
    leasesLost: c('leases_lost_total', 'Attempts whose lease was lost before their outcome was recorded; the outcome was discarded.'),
    reconciled: c('reconciler_repairs_total', 'Repairs made by the reconciler: tasks re-indexed in Redis (requeued), vanished leases expired (lease_vanished), tasks Redis knew but held nowhere (unheld; each is also requeued), and waiting tasks whose cancel Redis had applied but Postgres had not (cancelled).', ['kind']),
    promoted: c('tasks_promoted_total', 'Due retries and delayed tasks moved to their queue by the retry pump, by priority.', ['priority']),
    workflowsFinished: c('workflows_finished_total', 'Workflows that ended, by status (succeeded, failed, cancelled); each end is counted once across all workers (a workflow resumed by a retry counts again when it ends again).', ['status']),
    // Set by every worker every 15 s: aggregate with max.
    workflowsRunning: new Gauge({ name: 'workflows_running', help: 'Workflows not finished yet, as a worker last counted them in Postgres.', registers: [registry] }),
    stepWait: new Histogram({
      name: 'workflow_step_wait_seconds',
      help: 'How long a workflow step waited from being queued (its last dependency succeeded, or the workflow was created for a step without any) to its first start, by priority.',
      labelNames: ['priority'],
      buckets: WAIT_BUCKETS,
      registers: [registry],
    }),
    delayedLoaded: c('delayed_tasks_loaded_total', 'Delayed tasks the loader brought from Postgres into Redis ahead of their due time (they were due beyond the horizon when submitted).'),
    // Set by each worker's loader when it takes the lock for a pass, at most every 15 s (the lock is
    // released after each pass, so every worker exports a count, up to 15 s old). Aggregate with max by (priority).
    scheduledWaiting: new Gauge({
      name: 'tasks_scheduled_waiting',
      help: 'Delayed tasks (run_at, delay_ms) not yet due and not yet started, by priority, as the loader last counted them in Postgres.',
      labelNames: ['priority'],
      registers: [registry],
    }),
    startLateness: new Histogram({
      name: 'task_start_lateness_seconds',
      help: 'How late a delayed task\'s first attempt started after its run_at (start - run_at), by priority.',
      labelNames: ['priority'],
      buckets: WAIT_BUCKETS,
      registers: [registry],
    }),
    scheduleTicks: c('schedule_ticks_total', 'Cron schedule ticks by outcome: fired (its task was created), skipped_misfire (missed by more than SCHEDULE_MISFIRE_GRACE_MS and dropped by the misfire policy; at most 200 counted per schedule and pass), skipped_overlap (overlap skip while the schedule\'s previous task was unfinished).', ['outcome']),
    // Set by every worker's ticker after each pass: aggregate with max.
    scheduleLag: new Gauge({
      name: 'schedule_tick_lag_seconds',
      help: 'How late the most overdue tick of an unpaused schedule is (database clock: now minus the earliest next_tick; 0 when none is due), as this worker\'s ticker last read it.',
      registers: [registry],
    }),
    deleted: c('tasks_deleted_total', 'Final tasks deleted by retention (with their runs), by the status they had.', ['status']),
    // Set by the worker whose sweep holds the retention lock, at the end of each of its passes; the
    // others export nothing. Aggregate with max by (status).
    oldestFinished: new Gauge({
      name: 'retention_oldest_finished_age_seconds',
      help: 'How long ago the oldest task of each final status still stored finished (0 when none is stored), as the last retention pass found.',
      labelNames: ['status'],
      registers: [registry],
    }),
    runSeconds: new Histogram({ name: 'task_run_seconds', help: 'Handler run time per attempt, by type.', labelNames: ['type'], buckets: RUN_BUCKETS, registers: [registry] }),
    enqueueToStart: new Histogram({
      name: 'enqueue_to_start_seconds',
      help: 'Time from the first enqueue of a task to the start of its first attempt, by priority.',
      labelNames: ['priority'],
      buckets: WAIT_BUCKETS,
      registers: [registry],
    }),
    attemptWait: new Histogram({
      name: 'attempt_wait_seconds',
      help: 'Time from an attempt becoming ready (enqueue, retry due, reclaim) to its start, by priority.',
      labelNames: ['priority'],
      buckets: WAIT_BUCKETS,
      registers: [registry],
    }),
    // Read when scraped rather than kept by inc()/dec() twice per attempt: prom-client hashes a
    // label object on each of those, labels or not.
    inflight: new Gauge({
      name: 'processing_inflight',
      help: 'Attempts running in this worker process (or finished, their outcome being written).',
      registers: [registry],
      collect() {
        this.set(inflightNow());
      },
    }),
    abandoned: new Gauge({
      name: 'handlers_abandoned',
      help: 'Handlers still running after their attempts ended, because they ignore their abort signal (at most WORKER_MAX_ABANDONED hold up leasing).',
      registers: [registry],
      collect() {
        this.set(abandonedNow());
      },
    }),
  };
}

/**
 * A value per key, made on first use: for the labelled children of metrics on hot paths, so a call
 * builds no label object (and, for a histogram, no observer closure). prom-client still validates
 * and hashes the labels on each inc()/observe(). Label values are bounded (see above), so this
 * stays small.
 */
export function perKey<T>(make: (key: string) => T): (key: string) => T {
  const made = new Map<string, T>();
  return (key) => {
    let v = made.get(key);
    if (v === undefined) made.set(key, (v = make(key)));
    return v;
  };
}

type OutcomeCounters = { succeeded: Counter.Internal; failed: Counter.Internal; dead: Counter.Internal };

/** Outcome counters by task type (see perKey), then priority. */
export function outcomeCounters(m: WorkerMetrics): (type: string) => Record<Priority, OutcomeCounters> {
  return perKey((type) => {
    const of = (p: Priority) => ({ succeeded: m.succeeded.labels(type, p), failed: m.failed.labels(type, p), dead: m.dead.labels(type, p) });
    return { critical: of('critical'), high: of('high'), default: of('default'), low: of('low') };
  });
}

/**
 * Starts every labelled counter at 0 for its known label values, so a series exists before its
 * first event and rate() does not miss that event.
 */
export function initCounters(m: WorkerMetrics, types: string[]): void {
  for (const priority of PRIORITIES) {
    m.dequeued.inc({ priority }, 0);
    m.promoted.inc({ priority }, 0);
    m.startLateness.zero({ priority });
    for (const type of types) {
      for (const c of [m.succeeded, m.failed, m.dead]) c.inc({ type, priority }, 0);
    }
  }
  for (const kind of ['requeued', 'lease_vanished', 'unheld', 'cancelled']) m.reconciled.inc({ kind }, 0);
  for (const status of FINAL_STATUSES) m.deleted.inc({ status }, 0);
  for (const outcome of ['fired', 'skipped_misfire', 'skipped_overlap']) m.scheduleTicks.inc({ outcome }, 0);
}

/**
 * `read`, called at most once per `sampleMs` however often it is asked (scrapes from several
 * Prometheus servers share one read); while a read fails, the last value it gave (null before any).
 */
function sampled<T>(read: () => Promise<T>, sampleMs: number): () => Promise<T | null> {
  let last = 0;
  let cached: T | null = null;
  let pending: Promise<void> | null = null;
  return async () => {
    if (Date.now() - last >= sampleMs || cached === null) {
      pending ??= read()
        .then((v) => {
          cached = v;
          last = Date.now();
        })
        .finally(() => {
          pending = null;
        });
      try {
        await pending;
      } catch {
        // The source is unavailable (Redis away): keep the last value rather than failing the whole scrape.
      }
    }
    return cached;
  };
}

/**
 * Queue gauges read from Redis at scrape time (cached for `sampleMs`). Only the API exports them;
 * with several API replicas every replica reports the same value, so dashboards and rules
 * aggregate them with max by (priority), never sum.
 */
export function queueGauges(registry: Registry, read: () => Promise<QueueStats>, sampleMs: number): void {
  const current = sampled(read, sampleMs);
  const perPriority = (name: string, help: string, pick: (s: QueueStats) => Record<Priority, number>) =>
    new Gauge({
      name,
      help,
      labelNames: ['priority'],
      registers: [registry],
      async collect() {
        const s = await current();
        if (s) for (const p of PRIORITIES) this.set({ priority: p }, pick(s)[p]);
      },
    });
  const single = (name: string, help: string, pick: (s: QueueStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const s = await current();
        if (s) this.set(pick(s));
      },
    });
  perPriority('queue_depth', 'Tasks waiting in each priority queue (Redis).', (s) => s.ready);
  perPriority('queue_depth_leasable', 'Of the tasks waiting in each priority queue, those a worker may lease now: tenants held at their running cap left out (Redis; the autoscaler counts these).', (s) => s.leasable);
  perPriority('retry_set_depth', 'Tasks waiting for a retry, per priority (Redis).', (s) => s.retrying);
  perPriority('dlq_depth', 'Tasks in each dead-letter queue (Redis).', (s) => s.dead);
  perPriority('queue_oldest_task_age_seconds', 'How long the longest-waiting ready task of each queue has waited since it last became ready (a task put back at the head after a lost lease counts from then), leaving out tenants held at their running cap (0 when none).', (s) => s.oldestWaitingSeconds);
  single('tasks_leased', 'Tasks currently leased by any worker (Redis processing set).', (s) => s.processing);
  single('workers_alive', 'Worker processes whose heartbeat announcement has not lapsed.', (s) => s.liveWorkers);
  // Per tenant: the busiest TENANT_METRICS_LIMIT (chosen by the stats script at each read), the
  // rest summed as `_other`; reset at each scrape, so a tenant whose work is done leaves no series.
  const perTenant = (name: string, help: string, pick: (t: QueueStats['tenants'][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['tenant'],
      registers: [registry],
      async collect() {
        const s = await current();
        if (!s) return;
        this.reset();
        for (const t of s.tenants) this.set({ tenant: t.tenant ?? OTHER_TENANTS }, pick(t));
      },
    });
  perTenant('tenant_queue_depth', 'Tasks of each tenant waiting, all priorities (Redis; the busiest TENANT_METRICS_LIMIT tenants, the rest as _other).', (t) => t.ready);
  perTenant('tenant_tasks_running', 'Attempts of each tenant leased by workers, the count its max-running caps (Redis; bounded as tenant_queue_depth).', (t) => t.running);
}

/**
 * `redis_eviction_policy_info{policy}`: 1 for Redis's current maxmemory-policy (`unknown` when it
 * cannot be read), so an alert can catch one that may evict queue data (see redis-eviction.ts).
 * Exported by the API, beside the queue gauges.
 */
export function evictionPolicyGauge(registry: Registry, read: () => Promise<string>, sampleMs: number): void {
  const current = sampled(read, sampleMs);
  new Gauge({
    name: 'redis_eviction_policy_info',
    help: "Redis's maxmemory-policy (1 for the current one; unknown when CONFIG is not permitted).",
    labelNames: ['policy'],
    registers: [registry],
    async collect() {
      const policy = await current();
      if (policy === null) return;
      this.reset();
      this.set({ policy }, 1);
    },
  });
}

/**
 * `work_next_due_seconds{kind}`: seconds until the next cron tick (`schedule`) or delayed task in
 * Postgres (`delayed`) is due, negative when overdue, absent when there is none (see
 * schedules/due-work.ts). Read from Postgres at scrape time (cached for `sampleMs`); exported by
 * the API, which runs at zero workers, so aggregate with min by (kind).
 */
export function dueWorkGauge(registry: Registry, read: () => Promise<{ schedule: number | null; delayed: number | null }>, sampleMs: number): void {
  const current = sampled(read, sampleMs);
  new Gauge({
    name: 'work_next_due_seconds',
    help: 'Seconds until the next tick of an unpaused cron schedule (kind="schedule") or the next delayed task waiting in Postgres (kind="delayed") is due; negative when overdue, absent when there is none. Only workers start them: at zero workers the autoscaler wakes one for them.',
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      const due = await current();
      if (!due) return;
      this.reset();
      if (due.schedule !== null) this.set({ kind: 'schedule' }, due.schedule);
      if (due.delayed !== null) this.set({ kind: 'delayed' }, due.delayed);
    },
  });
}

export type DependencyGauge = Gauge<'dependency'>;

/**
 * `dependency_up{dependency}`: 1 when the dependency answered its last readiness check in time,
 * else 0. Each check sets it; `refresh`, when given, runs one at scrape time, so the gauge stays
 * current whether or not anything asks /readyz.
 */
export function dependencyGauge(registry: Registry, refresh?: () => Promise<unknown>): DependencyGauge {
  return new Gauge({
    name: 'dependency_up',
    help: 'Whether the dependency (postgres, redis) answered its last readiness check in time: 1 or 0.',
    labelNames: ['dependency'] as const,
    registers: [registry],
    async collect() {
      await refresh?.();
    },
  });
}
