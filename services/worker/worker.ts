/**
 * One worker process: the processor plus its background services. Shutdown follows a fixed order:
 * stop leasing → drain running handlers (bounded by the grace period) → hand back what is left →
 * flush the completer → stop heartbeats and maintenance. Pools are closed by the caller.
 */
import { hostname } from 'node:os';
import type { Pool } from 'pg';
import type { Config } from '../core/config/config';
import type { Logger } from '../core/observability/logger';
import { initCounters, WorkerMetrics } from '../core/observability/metrics';
import type { TaskQueue } from '../core/queue/queue';
import { Completer } from './completer';
import type { HandlerRegistry } from './handlers';
import { Heartbeater } from './heartbeater';
import { KeyPruner } from './key-pruner';
import { ParentResults } from './parent-results';
import { Processor } from './processor';
import { Reaper } from './reaper';
import { Reconciler } from './reconciler';
import { RetentionSweeper } from './retention';
import { RetryPump } from './retry-pump';
import { DelayedLoader } from './delayed-loader';
import { WorkflowStats } from './workflow-stats';
import { WorkflowStopper } from './workflow-stopper';
import { ScheduleTicker } from './schedule-ticker';
import { StatsRefresher } from './stats-refresher';
import { TenantSync } from './tenant-sync';
import { goodbye } from './goodbye';

export interface WorkerDeps {
  cfg: Config;
  pool: Pool;
  queue: TaskQueue;
  handlers: HandlerRegistry;
  log: Logger;
  metrics: WorkerMetrics;
}

export class Worker {
  readonly id: string;
  readonly processor: Processor;
  readonly completer: Completer;
  readonly heartbeater: Heartbeater;
  readonly reaper: Reaper;
  readonly retryPump: RetryPump;
  readonly keyPruner: KeyPruner;
  readonly reconciler: Reconciler;
  readonly retention: RetentionSweeper;
  readonly statsRefresher: StatsRefresher;
  readonly tenantSync: TenantSync;
  readonly delayedLoader: DelayedLoader;
  readonly workflowStats: WorkflowStats;
  readonly workflowStopper: WorkflowStopper;
  readonly scheduleTicker: ScheduleTicker;
  private stopped: Promise<{ handedBack: number }> | null = null;
  private unsubscribe: Promise<() => Promise<void>> | null = null;
  private unsubscribeDue: Promise<() => Promise<void>> | null = null;

  constructor(private readonly deps: WorkerDeps) {
    const { cfg, pool, queue, log, metrics } = deps;
    this.id = cfg.WORKER_ID || `${hostname()}-${process.pid}`;
    // Outcome writes are paced (8 ms apart) while fewer outcomes than slots (up to 64) wait when
    // one is due, and reaching that many starts a write at once, so pacing never caps a worker's
    // throughput. Measured in the burst against 5 ms pacing with at most WORKER_POOL unwritten:
    // CPU 3.3–3.9 s against 3.5–3.7 s, drain 2.25–2.39 s against 2.25–2.35 s (noisy, same sitting).
    // With one such batch beyond the slots unwritten, leasing pauses until a write lands, for at
    // most 20 ms; past 64 more it stops (see Processor.writesPause).
    const eagerAt = Math.min(64, cfg.WORKER_POOL);
    // A step whose workflow's stop failed is left to the reaper's next pass, never beyond its lease.
    const reclaimAfterMs = Math.min(cfg.REAPER_SCAN_INTERVAL_MS, cfg.VIS_TIMEOUT_MS);
    const maxUnwritten = cfg.WORKER_POOL + eagerAt;
    this.completer = new Completer(
      // The pump exists by the time an outcome is written.
      { pool, queue, log, metrics, onRetryScheduled: (ms) => this.retryPump.retryScheduled(ms) },
      { maxBatch: 500, maxConcurrent: 2, overlapAt: 64, minGapMs: 8, eagerAt, flushAt: maxUnwritten, giveUpAfterMs: cfg.VIS_TIMEOUT_MS, reclaimAfterMs },
    );
    this.processor = new Processor(
      { pool, queue, completer: this.completer, handlers: deps.handlers, log, metrics, parentResults: new ParentResults(pool, cfg.WORKFLOW_PARENT_RESULTS_MAX_BYTES) },
      {
        workerId: this.id,
        slots: cfg.WORKER_POOL,
        maxUnwritten,
        unwrittenPauseMs: 20,
        maxUnwrittenHard: Math.max(maxUnwritten + 64, cfg.WORKER_MAX_UNWRITTEN),
        leaseBatch: cfg.LEASE_BATCH_SIZE,
        maxAbandoned: cfg.WORKER_MAX_ABANDONED,
        tenantMaxRunning: cfg.TENANT_MAX_RUNNING,
        leaseGapMs: cfg.LEASE_GAP_MS,
        leaseAheadMs: cfg.WORKER_LEASE_AHEAD_MS,
        visibilityMs: cfg.VIS_TIMEOUT_MS,
        reclaimAfterMs,
        pollIntervalMs: cfg.POLL_INTERVAL_MS,
        taskTimeoutMs: cfg.TASK_TIMEOUT_MS,
        startRecordDelayMs: cfg.START_RECORD_DELAY_MS,
        backoff: { baseMs: cfg.RETRY_BASE_MS, maxMs: cfg.RETRY_MAX_MS, jitterMs: cfg.RETRY_JITTER_MS },
      },
    );
    const heartbeatMs = cfg.HEARTBEAT_INTERVAL_MS || Math.max(50, Math.floor(cfg.VIS_TIMEOUT_MS / 3));
    this.heartbeater = new Heartbeater(this.id, this.processor.running, queue, cfg.VIS_TIMEOUT_MS, heartbeatMs, log, cfg.WORKER_POOL);
    const typeLabel = (type: string) => (deps.handlers.has(type) ? type : 'unknown');
    initCounters(metrics, [...deps.handlers.keys(), 'unknown']);
    this.reaper = new Reaper({ pool, queue, metrics, typeLabel }, cfg.REAPER_BATCH_SIZE, cfg.REAPER_SCAN_INTERVAL_MS, log, cfg.VIS_TIMEOUT_MS);
    this.retryPump = new RetryPump({ queue, metrics }, cfg.RETRY_BATCH_SIZE, cfg.RETRY_SCAN_INTERVAL_MS, log);
    this.keyPruner = new KeyPruner(pool, 60_000, log);
    this.statsRefresher = new StatsRefresher(pool, 2000, log);
    this.tenantSync = new TenantSync({ pool, queue }, cfg.TENANT_MAX_RUNNING, 1000, log);
    this.scheduleTicker = new ScheduleTicker({ pool, queue, metrics }, { pollMs: cfg.SCHEDULE_POLL_MS, graceMs: cfg.SCHEDULE_MISFIRE_GRACE_MS }, log);
    this.reconciler = new Reconciler(
      { pool, queue, metrics, typeLabel },
      { intervalMs: cfg.RECONCILE_INTERVAL_MS, graceMs: cfg.RECONCILE_GRACE_MS, batchSize: cfg.RECONCILE_BATCH_SIZE, payloadBytes: cfg.RECONCILE_PAYLOAD_BYTES },
      log,
    );
    this.workflowStats = new WorkflowStats({ pool, metrics }, 1000, log);
    this.workflowStopper = new WorkflowStopper({ pool, queue }, 1000, log);
    this.delayedLoader = new DelayedLoader(
      { pool, queue, metrics },
      { intervalMs: cfg.DELAYED_LOAD_INTERVAL_MS, horizonMs: cfg.DELAYED_HORIZON_MS, batch: 1000, maxPages: 20, countEveryMs: 15_000 },
      log,
    );
    this.retention = new RetentionSweeper(
      { pool, queue, metrics },
      {
        intervalMs: cfg.RETENTION_INTERVAL_MS,
        policy: { succeeded: cfg.RETENTION_SUCCEEDED_MS, dead: cfg.RETENTION_DEAD_MS, cancelled: cfg.RETENTION_CANCELLED_MS },
        batch: cfg.RETENTION_BATCH,
        pauseMs: cfg.RETENTION_PAUSE_MS,
      },
      log,
    );
  }

  start(): void {
    this.deps.queue.announceWorker(this.id, this.heartbeater.announceTtlMs, this.deps.cfg.WORKER_POOL).catch((err: unknown) => this.deps.log.warn({ err }, 'announcing the worker failed'));
    this.processor.start();
    // Operators' cancels of tasks running here abort their attempts at once (the heartbeat checks
    // too, and at once whenever the subscription is (re)made: a cancel sent before it was missed).
    this.unsubscribe = this.deps.queue
      .onCancel(
        (taskId) => {
          if (this.processor.cancel(taskId) > 0) this.deps.log.info({ taskId }, 'attempt cancelled by an operator');
        },
        () => this.heartbeater.checkNow(),
      )
      .catch((err: unknown) => {
        this.deps.log.warn({ err }, 'subscribing to cancels failed; cancelled tasks stop at the next heartbeat');
        return async () => undefined;
      });
    // A delayed task due sooner than any other waiting one is promoted on time (the pump's scan is the fallback).
    this.unsubscribeDue = this.deps.queue
      .onDue((dueAtMs) => this.retryPump.retryScheduled(Math.max(0, dueAtMs - Date.now())))
      .catch((err: unknown) => {
        this.deps.log.warn({ err }, 'subscribing to delayed-task announcements failed; the retry pump\'s scan promotes them');
        return async () => undefined;
      });
    this.heartbeater.start();
    this.reaper.start();
    this.delayedLoader.start();
    this.workflowStats.start();
    this.workflowStopper.start();
    this.retryPump.start();
    this.keyPruner.start();
    this.statsRefresher.start();
    this.tenantSync.start();
    this.reconciler.start();
    this.scheduleTicker.start();
    if (this.retention.enabled) this.retention.start();
    this.deps.log.info({ workerId: this.id, slots: this.deps.cfg.WORKER_POOL, strategy: this.deps.cfg.QUEUE_STRATEGY }, 'worker started');
  }

  /** Idempotent; resolves with how many attempts were handed back unfinished. */
  stop(graceMs: number = this.deps.cfg.SHUTDOWN_GRACE_MS): Promise<{ handedBack: number }> {
    this.stopped ??= this.shutdown(graceMs);
    return this.stopped;
  }

  private async shutdown(graceMs: number): Promise<{ handedBack: number }> {
    const { log } = this.deps;
    await this.processor.stopLeasing();
    const left = await this.processor.drain(graceMs);
    // Bounded: a pool of thousands of slots would make one line of every id.
    if (left > 0) log.warn({ count: left, taskIds: this.processor.unfinishedIds(20) }, 'grace period over; handing unfinished attempts back');
    await this.processor.abortAll();
    await this.completer.flush();
    await (await this.unsubscribe)?.();
    await (await this.unsubscribeDue)?.();
    await Promise.all([this.delayedLoader.stop(), this.workflowStats.stop(), this.workflowStopper.stop(), this.heartbeater.stop(), this.reaper.stop(), this.retryPump.stop(), this.keyPruner.stop(), this.statsRefresher.stop(), this.tenantSync.stop(), this.reconciler.stop(), this.retention.stop(), this.scheduleTicker.stop()]);
    await goodbye(this.deps.queue.announceWorker(this.id, 0));
    log.info({ handedBack: left }, 'worker stopped');
    return { handedBack: left };
  }
}
