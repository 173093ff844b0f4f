/**
 * Leases tasks into free slots and runs their handlers at once; each outcome goes through the
 * Completer. Starts reach Postgres lazily: an attempt still running after START_RECORD_DELAY_MS is
 * marked `running` (in batches); a faster one is written once, with its outcome. That takes a
 * round trip and a row update per task off the hot path; the Redis lease already counts the
 * attempt (see attempt-store). The map of running attempts is shared with the heartbeater, which
 * aborts those whose lease was lost.
 */
import { performance } from 'node:perf_hooks';
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import { perKey, WorkerMetrics } from '../core/observability/metrics';
import type { Doorbell, Lease, LeaseBatch, TaskQueue } from '../core/queue/queue';
import { cancelRecorded, markRunning, recordReleased } from '../core/tasks/attempt-store';
import { stopHoldingLeases } from '../core/workflows/stop-on-failure';
import { BackoffPolicy, RetryPolicy, retryDelayMs } from '../core/tasks/backoff';
import { formatPath, JsonProblem, scanJson } from '../core/json/json-scan';
import { wallClockAt } from './clock';
import type { Completer } from './completer';
import { type ParentResults, ParentResultsTooLarge } from './parent-results';
import { CancelledError, LeaseLostError, ShutdownError, TaskTimeoutError } from './errors';
import type { Handler, HandlerRegistry, TaskContext } from './handlers';

/**
 * One running attempt. Its AbortSignal is created only when the handler reads it: most handlers
 * never do, and an AbortController plus listener per task was a visible share of the worker's CPU.
 */
export class Running {
  /** Postgres shows this attempt as running (only attempts outliving the start-record delay are). */
  recorded = false;
  /** A start record was sent but its answer never came: Postgres may show it as running. */
  maybeRecorded = false;
  /** The handler has settled; only its outcome write is pending, which records the start itself. */
  finished = false;
  aborted = false;
  reason: unknown = undefined;
  private controller: AbortController | null = null;
  private rejectRace: ((reason: unknown) => void) | null = null;

  constructor(
    readonly lease: Lease,
    readonly startedAtMs: number,
    /**
     * Until when (performance.now()) the lease is surely held: a visibility timeout after the send
     * of the last lease or extend call Redis confirmed. Past it the lease may have been reaped.
     */
    public heldUntil: number,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
    this.rejectRace?.(reason);
  }

  /**
   * Settles with `work`, or rejects as soon as the attempt is aborted: a handler that ignores its
   * signal must not hold the slot. (One promise: Promise.race, with its array, iterator and second
   * promise, was a tenth of what a worker allocated per attempt.)
   */
  race<T>(work: Promise<T>): Promise<T> {
    if (this.aborted) return Promise.reject(this.reason);
    return new Promise<T>((resolve, reject) => {
      this.rejectRace = reject;
      // Promise.resolve: a handler from HANDLERS_MODULE may return a plain value (or a thenable);
      // for a native promise it is the promise itself, so no allocation.
      Promise.resolve(work).then(resolve, reject);
    });
  }
}

/** What a handler gets (TaskContext); `signal` comes from the attempt, made only when read. */
class AttemptContext implements TaskContext {
  readonly id: string;
  readonly type: string;
  readonly payload: unknown;
  readonly attempt: number;
  readonly parents?: Record<string, unknown>;

  constructor(
    private readonly running: Running,
    parents: Record<string, unknown> | undefined,
  ) {
    const { message, attempt } = running.lease;
    this.id = message.id;
    this.type = message.type;
    this.payload = message.payload;
    this.attempt = attempt;
    if (parents) this.parents = parents;
  }

  get signal(): AbortSignal {
    return this.running.signal;
  }
}

export interface ProcessorOptions {
  workerId: string;
  slots: number;
  /**
   * Settled attempts whose outcomes are not written yet at which leasing pauses, for at most
   * `unwrittenPauseMs` (see the loop)…
   */
  maxUnwritten: number;
  unwrittenPauseMs: number;
  /** …and at which it stops until they are written, however long that takes. */
  maxUnwrittenHard: number;
  leaseBatch: number;
  /** Handlers running on past their attempts (see Processor.abandoned) beyond which leasing waits. */
  maxAbandoned: number;
  /** Running cap of tenants without their own (TENANT_MAX_RUNNING; 0 unlimited), enforced by the lease. */
  tenantMaxRunning: number;
  /**
   * A busy worker whose last lease left nothing behind (it keeps up with arrivals) starts its next
   * lease at least this long after that one, so each lease takes several submissions' tasks rather
   * than each batch of the API costing a doorbell wake-up and a lease call of its own. An idle
   * worker, and one behind a backlog, lease at once. Burst (2 ms), 5 interleaved pairs: drain
   * median 2.20 → 2.08 s, tasks per lease 5.8 → 7.4, empty leases −75 %, doorbell waits −80 %; p95
   * enqueue-to-start at 2,400 tasks/s 2.5–2.9 → 3.3–4.4 ms.
   */
  leaseGapMs: number;
  /** WORKER_LEASE_AHEAD_MS: see Processor.ahead (0: off). */
  leaseAheadMs: number;
  visibilityMs: number;
  /** A step handed back whose workflow's stop failed: its lease runs out this soon, for the reaper to stop it. */
  reclaimAfterMs: number;
  pollIntervalMs: number;
  taskTimeoutMs: number;
  startRecordDelayMs: number;
  backoff: BackoffPolicy;
}

export class Processor {
  /** Running attempts by lease token: one task can have two attempts alive when a lease was lost. */
  readonly running = new Map<string, Running>();
  private stopping = false;
  private loopDone: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private wakePending = false;
  /**
   * The queue held more than this worker's last lease took (its slots were full, or it asked for
   * a lease batch): a finishing attempt then wakes the lease loop. After a lease that left nothing
   * behind, new work announces itself (every script that makes tasks ready rings the doorbell), so
   * finishing attempts do not each cost an empty lease round trip.
   */
  private wantSlots = false;
  /** New work in Redis wakes one idle worker through it (see listen()). */
  private readonly doorbell: Doorbell;
  /** A doorbell wait is pending (at most one). */
  private listening = false;
  /** The lease loop idles waiting for new work (so a doorbell wait that times out is renewed). */
  private idleListening = false;
  /** When the last lease call started (performance.now()), and how many tasks it left behind. */
  private lastLease = -Infinity;
  private lastLeaseLeft = 0;
  /** When leasing began to pause for outcome writes (performance.now()); null when it is not. */
  private pausedAt: number | null = null;
  /**
   * Handlers still running after their attempts ended (they ignore their abort). They hold no
   * slot, so they are bounded apart: past `maxAbandoned` leasing waits for them (see the loop).
   */
  private readonly abandoned = new Set<Promise<void>>();
  /**
   * Leases taken ahead of free slots, oldest first, each started as a slot frees. A small pool
   * behind a backlog otherwise idled a lease round trip each time its slots emptied (at 12 slots,
   * one call per 12 no-ops). Taken only while attempts are short (`leaseAheadMs`), so one waits
   * about an attempt; handed back, uncounted, past `aheadMaxWaitMs`, on a cancel, or at the stop.
   */
  private readonly ahead: { lease: Lease; heldUntil: number; since: number }[] = [];
  /** Attempts' mean duration (ms), decayed over the last few dozen. */
  private attemptMs = Infinity;
  /** Handlers running: each holds one of the WORKER_POOL slots until it settles. */
  private readonly attempts = new Set<Promise<void>>();
  /**
   * Settled attempts whose outcome is being written. They no longer hold a slot: the completer
   * paces its writes (see completer.ts), and slots waiting on that bookkeeping would idle
   * handlers. At `maxUnwritten` of them leasing pauses, at `maxUnwrittenHard` it stops.
   */
  private readonly outcomes = new Set<Promise<void>>();
  private recordTimer: NodeJS.Timeout | null = null;
  /** The start-record write in flight, if any (a hand-back waits for it, so it cannot land later). */
  private recording: Promise<void> | null = null;
  private recordFailing = false;
  /** Labelled metric children (see perKey). */
  private readonly byPriority: (p: string) => { dequeued: { inc(): void }; wait: { observe(v: number): void }; toStart: { observe(v: number): void }; lateness: { observe(v: number): void } };
  private readonly runSeconds: (type: string) => { observe(v: number): void };

  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue; completer: Completer; handlers: HandlerRegistry; log: Logger; metrics: WorkerMetrics; parentResults: ParentResults },
    private readonly opts: ProcessorOptions,
  ) {
    this.doorbell = deps.queue.doorbell();
    const m = deps.metrics;
    m.countInflight(() => this.running.size);
    m.countAbandoned(() => this.abandoned.size);
    this.byPriority = perKey((p) => ({ dequeued: m.dequeued.labels(p), wait: m.attemptWait.labels(p), toStart: m.enqueueToStart.labels(p), lateness: m.startLateness.labels(p) }));
    this.runSeconds = perKey((type) => m.runSeconds.labels(type));
  }

  start(): void {
    if (this.loopDone) return;
    this.stopping = false;
    this.loopDone = this.loop();
    this.recordTimer ??= setInterval(() => this.recordStarts(), Math.max(10, Math.floor(this.opts.startRecordDelayMs / 2)));
  }

  /** Wakes an idle lease loop now (new work was announced). */
  wake(): void {
    if (this.wakeUp) this.wakeUp();
    // Not idle right now (mid-lease): remember it, so the next idle() returns at once instead of
    // sleeping through work that arrived meanwhile.
    else this.wakePending = true;
  }

  /** Stops leasing; running attempts continue until drain() or abortAll(). */
  async stopLeasing(): Promise<void> {
    this.stopping = true;
    this.doorbell.close();
    this.wake();
    await this.loopDone;
    this.loopDone = null;
  }

  /** Waits for running attempts to finish, up to `graceMs`; returns how many are still running. */
  async drain(graceMs: number): Promise<number> {
    const deadline = Date.now() + graceMs;
    while (this.attempts.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.attempts]), sleep(Math.min(100, Math.max(1, deadline - Date.now())))]);
    }
    return this.attempts.size;
  }

  /** The task ids of up to `max` attempts whose handlers still run (for the shutdown's log line). */
  unfinishedIds(max: number): string[] {
    const ids: string[] = [];
    for (const r of this.running.values()) {
      if (ids.length >= max) break;
      if (!r.finished) ids.push(r.lease.message.id);
    }
    return ids;
  }

  /** Aborts the running attempts of a task an operator cancelled; returns how many there were. */
  cancel(taskId: string): number {
    let n = 0;
    // Not started yet: it ends as one cancelled as it started would (its handler never runs), so
    // Postgres, which has the cancel asked of a leased task, records it cancelled.
    const waiting = this.ahead.filter((a) => a.lease.message.id === taskId);
    if (waiting.length > 0) {
      this.ahead.splice(0, this.ahead.length, ...this.ahead.filter((a) => a.lease.message.id !== taskId));
      for (const a of waiting) this.launch([a.lease], a.heldUntil, new CancelledError(taskId));
      n += waiting.length;
    }
    for (const r of this.running.values()) {
      if (r.lease.message.id !== taskId || r.finished) continue;
      r.abort(new CancelledError(taskId));
      n++;
    }
    return n;
  }

  /** Aborts what is still running with a shutdown reason (they are handed back) and waits for them. */
  async abortAll(): Promise<void> {
    // Not the finished ones waiting for their outcome writes: an aborted attempt's lease is no
    // longer extended, and one that ran out before its write landed was reaped and ran again.
    for (const r of this.running.values()) if (!r.finished) r.abort(new ShutdownError());
    await Promise.allSettled([...this.attempts]);
    await Promise.allSettled([...this.outcomes]);
    if (this.recordTimer) clearInterval(this.recordTimer);
    this.recordTimer = null;
    await this.recording;
  }

  private async loop(): Promise<void> {
    let errorDelay = 100;
    while (!this.stopping) {
      // Let attempts finishing in this turn release their slots first, so one lease call covers
      // them all instead of one slot at a time.
      if (this.attempts.size > 0) await new Promise((r) => setImmediate(r));
      // Outcomes are not reaching Postgres: running more would only pile up unrecorded work.
      if (this.deps.completer.failing) {
        await this.idle(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
        continue;
      }
      // Abandoned handlers take the room of slots beyond WORKER_MAX_ABANDONED: handlers that
      // ignore their abort (a call with no timeout) would otherwise pile up without bound.
      const free = this.freeSlots();
      this.handBackStaleAhead();
      if (free > 0 && this.ahead.length > 0) {
        this.launchAhead();
        continue;
      }
      const aheadRoom = this.aheadRoom(free);
      let room = free + aheadRoom - this.ahead.length;
      // With every slot busy, lease ahead only once half the allowance is free: one call then takes
      // several, rather than one per attempt that ends.
      if (free <= 0 && room < Math.ceil(aheadRoom / 2)) room = 0;
      const pause = this.writesPause();
      if (room <= 0 || pause > 0) {
        this.wantSlots = true;
        await this.idle(room <= 0 ? this.opts.pollIntervalMs : Math.min(pause, this.opts.pollIntervalMs));
        continue;
      }
      const gap = this.leaseGap();
      if (gap > 0) {
        await this.idle(gap);
        continue;
      }
      let batch: LeaseBatch;
      let leasedFrom = 0;
      // Past the pause point, no further than the stop.
      const max = Math.min(room, this.opts.leaseBatch, this.opts.maxUnwrittenHard - this.outcomes.size);
      try {
        this.lastLease = performance.now();
        leasedFrom = this.lastLease;
        batch = await this.deps.queue.leaseBatch({ max, visibilityMs: this.opts.visibilityMs, owner: this.opts.workerId, defaultMaxRunning: this.opts.tenantMaxRunning });
        this.wantSlots = batch.left > 0;
        this.lastLeaseLeft = batch.left;
        errorDelay = 100;
      } catch (err) {
        this.deps.log.warn({ err, retryInMs: errorDelay }, 'leasing failed; backing off');
        await this.idle(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
        continue;
      }
      // Slots may have freed while the call was out; the rest wait ahead.
      const now = Math.max(0, this.freeSlots());
      this.launch(now >= batch.leases.length ? batch.leases : batch.leases.slice(0, now), leasedFrom + this.opts.visibilityMs);
      for (let i = now; i < batch.leases.length; i++) this.ahead.push({ lease: batch.leases[i]!, heldUntil: leasedFrom + this.opts.visibilityMs, since: performance.now() });
      // Nothing left behind: wait for the doorbell rather than lease again at once or when a slot
      // frees (those calls, with pub/sub waking every worker, made 57 % of the burst's leases come
      // back empty). Work that arrives meanwhile rings it; a ring left while nobody waited stays.
      if (batch.left === 0) await this.idle(this.opts.pollIntervalMs, true);
    }
    // Stopping: what waits ahead never starts.
    await this.handBackAhead(this.ahead.splice(0));
  }

  /** Slots free now: abandoned handlers take the room of slots beyond WORKER_MAX_ABANDONED. */
  private freeSlots(): number {
    return Math.min(this.opts.slots, this.opts.slots + this.opts.maxAbandoned - this.abandoned.size) - this.attempts.size;
  }

  /**
   * How many leases may wait ahead of free slots now: while attempts are short, and a sixteenth of
   * the backlog at most. Behind a shallow one, leases waiting here are work another worker's free
   * slot could be running. A pool smaller than a lease call may take a whole call's worth.
   */
  private aheadRoom(free: number): number {
    const most = Math.min(Math.max(this.opts.slots, this.opts.leaseBatch), MAX_AHEAD, Math.floor(this.lastLeaseLeft / AHEAD_BACKLOG));
    if (most <= 0 || this.opts.leaseAheadMs <= 0 || free >= this.opts.leaseBatch || !(this.attemptMs < this.opts.leaseAheadMs)) return 0;
    // A slot held longer than that by one attempt would keep a lease waiting behind it: not while
    // one is (the burst's 25 ms sleepers among no-ops).
    const since = Date.now() - this.opts.leaseAheadMs;
    for (const r of this.running.values()) if (!r.finished && r.startedAtMs < since) return 0;
    return most;
  }

  /** Starts leases waiting ahead in the slots free now. */
  private launchAhead(): void {
    for (let free = this.freeSlots(); free > 0 && this.ahead.length > 0; free--) {
      const a = this.ahead.shift()!;
      this.launch([a.lease], a.heldUntil);
    }
  }

  /** A lease should not wait ahead for long: its lease runs on unextended, and another worker may be idle. */
  private aheadMaxWaitMs(): number {
    return Math.min(1000, this.opts.visibilityMs / 4);
  }

  private handBackStaleAhead(): void {
    const before = performance.now() - this.aheadMaxWaitMs();
    let n = 0;
    while (n < this.ahead.length && this.ahead[n]!.since < before) n++;
    if (n === 0) return;
    void this.handBackAhead(this.ahead.splice(0, n));
    // Attempts are no longer short: none leased ahead again until one ends and says how long they take.
    this.attemptMs = Infinity;
  }

  /** Leases that never started go back to the head of their lists, uncounted (a tombstoned one is forgotten). */
  private async handBackAhead(leases: { lease: Lease }[]): Promise<void> {
    if (leases.length === 0) return;
    await this.deps.queue.release(leases.map((a) => held(a.lease))).catch((err: unknown) => {
      this.deps.log.warn({ err, count: leases.length }, 'handing back leases taken ahead failed; the reaper will reclaim them');
    });
  }

  /**
   * How long leasing should still wait for outcome writes (ms; 0 = lease now). At `maxUnwritten`
   * unwritten outcomes it pauses until a write lands: under load that makes the next lease take
   * what piled up meanwhile in one call (the burst: a third fewer lease calls and doorbell waits,
   * worker CPU −25 %). A commit that stalls must not stall the worker too, so the pause ends after
   * `unwrittenPauseMs` either way (p95 enqueue-to-start at half load was 32–100 ms when it did not);
   * only `maxUnwrittenHard` stops leasing for good.
   */
  private writesPause(): number {
    const unwritten = this.outcomes.size;
    // Behind a backlog (the last lease left work behind) only the hard stop holds: pausing there
    // capped a small pool at its few slots' worth of outcomes per write.
    if (unwritten < this.opts.maxUnwritten || (this.lastLeaseLeft > 0 && unwritten < this.opts.maxUnwrittenHard)) {
      this.pausedAt = null;
      return 0;
    }
    if (unwritten >= this.opts.maxUnwrittenHard) return this.opts.pollIntervalMs;
    this.pausedAt ??= performance.now();
    return Math.max(0, this.opts.unwrittenPauseMs - (performance.now() - this.pausedAt));
  }

  /** How long the next lease should still wait (ms; 0 = now): see ProcessorOptions.leaseGapMs. */
  private leaseGap(): number {
    if (this.lastLeaseLeft > 0 || (this.attempts.size === 0 && this.outcomes.size === 0)) return 0;
    return this.lastLease + this.opts.leaseGapMs - performance.now();
  }

  /** Room for more work: a free slot, outcomes being written, and not so many waiting that leasing pauses. */
  private hasRoom(): boolean {
    return this.opts.slots > this.attempts.size + this.ahead.length && this.writesPause() === 0 && !this.deps.completer.failing;
  }

  /** `abortedBy`: the attempts end at once with this reason, their handlers not called. */
  private launch(leases: Lease[], heldUntil: number, abortedBy?: unknown): void {
    for (const l of leases) {
      const m = this.byPriority(l.message.priority);
      m.dequeued.inc();
      m.wait.observe(Math.max(0, l.leasedAtMs - l.readyAtMs) / 1000);
      // A delayed task's wait is measured from when it was due.
      if (l.attempt === 1) {
        if (l.message.stepKey !== undefined) this.deps.metrics.stepWait.observe({ priority: l.message.priority }, Math.max(0, l.leasedAtMs - l.readyAtMs) / 1000);
        if (l.message.runAtMs) m.lateness.observe(Math.max(0, l.leasedAtMs - l.message.runAtMs) / 1000);
        else m.toStart.observe(Math.max(0, l.leasedAtMs - l.message.createdAtMs) / 1000);
      }
      // then(done, done), not finally(): run() never rejects, and finally() costs two more closures and a promise.
      const done = () => {
        this.attempts.delete(attempt);
        if (this.ahead.length > 0 && !this.stopping) this.launchAhead();
        if (this.wantSlots) this.wake();
      };
      const attempt = this.run(l, heldUntil, abortedBy).then(done, done);
      this.attempts.add(attempt);
    }
  }

  /**
   * Marks attempts running longer than the start-record delay as `running` in Postgres, in one
   * statement. Their leases are extended first: one Redis no longer has (it lost data, and the
   * reconciler may have queued the task again) must not be recorded as running, so it is aborted,
   * as is one whose attempt is no longer current in Postgres (the task is final, or the attempt
   * was already counted as lost).
   */
  private recordStarts(): void {
    if (this.recording) return;
    const due = Date.now() - this.opts.startRecordDelayMs;
    const byTask = new Map<string, Running>();
    for (const r of this.running.values()) {
      if (r.recorded || r.finished || r.startedAtMs > due || r.aborted) continue;
      // At most one attempt per task in a statement: the newest.
      const other = byTask.get(r.lease.message.id);
      if (!other || other.lease.attempt < r.lease.attempt) byTask.set(r.lease.message.id, r);
    }
    if (byTask.size === 0) return;
    this.recording = this.record([...byTask.values()]).finally(() => {
      this.recording = null;
    });
  }

  private async record(batch: Running[]): Promise<void> {
    const lost = (r: Running) => r.abort(new LeaseLostError(r.lease.message.id));
    let sent: Running[] = [];
    try {
      const sentAt = performance.now();
      const held = await this.deps.queue.extend(
        batch.map((r) => ({ id: r.lease.message.id, token: r.lease.token })),
        this.opts.visibilityMs,
      );
      const live = batch.filter((_, i) => held[i]);
      for (const r of live) r.heldUntil = Math.max(r.heldUntil, sentAt + this.opts.visibilityMs);
      batch.forEach((r, i) => held[i] || lost(r));
      sent = live;
      const { started } = await markRunning(
        this.deps.pool,
        live.map((r) => ({ id: r.lease.message.id, token: r.lease.token, attempt: r.lease.attempt, startedAtMs: r.startedAtMs })),
      );
      if (this.recordFailing) this.deps.log.info('recording running attempts works again');
      this.recordFailing = false;
      for (const r of live) {
        if (started.has(r.lease.message.id)) r.recorded = true;
        else lost(r);
      }
    } catch (err) {
      // The statement may have committed without its answer arriving.
      for (const r of sent) r.maybeRecorded = true;
      // Retried on the next tick; an outcome that comes first records the start with it.
      if (!this.recordFailing) this.deps.log.warn({ err }, 'could not record running attempts; retrying');
      this.recordFailing = true;
    }
  }

  private async run(lease: Lease, heldUntil: number, abortedBy?: unknown): Promise<void> {
    const { message: msg } = lease;
    const t0 = performance.now();
    const startedAtMs = wallClockAt(t0);
    const attempt = new Running(lease, startedAtMs, heldUntil);
    this.running.set(lease.token, attempt);
    const handler = this.deps.handlers.get(msg.type);
    // The task's own timeout, else its handler's, else TASK_TIMEOUT_MS.
    const timeoutMs = msg.timeoutMs ?? handler?.timeoutMs ?? this.opts.taskTimeoutMs;
    const timer = setTimeout(() => attempt.abort(new TaskTimeoutError(timeoutMs)), timeoutMs);
    if (abortedBy !== undefined) attempt.abort(abortedBy);
    const typeLabel = handler ? msg.type : 'unknown';
    let error: string | null = null;
    let failure: unknown;
    let result: string | null = null;
    let work: Promise<unknown> | undefined;
    try {
      if (!handler) throw new Error(`unknown task type "${msg.type}": no handler is registered for it`);
      // A workflow step's handler gets the results of the steps it depends on, unless it never reads them.
      const parents = msg.stepKey === undefined || handler.parents === false ? undefined : (this.deps.parentResults.inline(msg.parents) ?? (await this.parentsOf(attempt, msg.id)));
      if (attempt.aborted) throw attempt.reason;
      work = handler(new AttemptContext(attempt, parents));
      const value = await attempt.race(work);
      // Most handlers return nothing: no serialization for them.
      if (value !== undefined && value !== null) result = resultJson(value);
    } catch (err) {
      // The race ended at the abort: the handler may run on (settled already, it leaves the set at once).
      if (attempt.aborted && work !== undefined) this.abandon(work);
      failure = attempt.aborted ? attempt.reason : err;
      error = errorText(failure);
    } finally {
      clearTimeout(timer);
      attempt.finished = true;
      // The attempt stays in `running` until its outcome is written (up to WORKER_MAX_UNWRITTEN of
      // them): it must not hold the payload and inline parents, which nothing reads from here on.
      msg.payload = undefined;
      delete msg.parents;
    }
    const durationMs = performance.now() - t0;
    this.runSeconds(typeLabel).observe(durationMs / 1000);
    this.attemptMs = this.attemptMs === Infinity ? durationMs : this.attemptMs * 0.95 + durationMs * 0.05;
    const reason: unknown = attempt.reason;
    // A cancel Postgres does not have (its transaction rolled back, its Redis call landing late)
    // hands the attempt back uncounted: charged as a failure, a last attempt would end dead.
    const unasked = reason instanceof CancelledError && !(await this.cancelAsked(msg.id));
    if (reason instanceof ShutdownError || unasked) {
      try {
        await this.handBack(attempt, unasked ? UNASKED_CANCEL : undefined);
      } finally {
        this.running.delete(lease.token);
      }
      return;
    }
    // The slot is free from here on; the outcome is written on its own.
    // writeOutcome() never rejects (the completer resolves every outcome); see launch() for then().
    const written = () => {
      this.outcomes.delete(outcome);
      if (this.wantSlots) this.wake();
    };
    const outcome = this.writeOutcome(attempt, typeLabel, durationMs, error, handler, { result, failure }).then(written, written);
    this.outcomes.add(outcome);
  }

  private abandon(work: unknown): void {
    const ended = () => {
      this.abandoned.delete(left);
      if (this.wantSlots) this.wake();
    };
    const left = Promise.resolve(work).then(ended, ended);
    this.abandoned.add(left);
  }

  /**
   * A step's parents as read from Postgres. A read that fails (Postgres away a moment: a lost
   * connection, a failover) is tried again for as long as the attempt runs, its timeout bounding
   * it: failed, the attempt was charged to the step although its handler never ran, and a step
   * without retries left ended dead, cancelling what depends on it.
   */
  private async parentsOf(attempt: Running, id: string): Promise<Record<string, unknown>> {
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        return await attempt.race(this.deps.parentResults.load(id));
      } catch (err) {
        if (attempt.aborted || err instanceof ParentResultsTooLarge) throw err;
        this.deps.log.warn({ err, taskId: id, retryInMs: delay }, 'reading a step’s parent results failed; trying again');
        await attempt.race(new Promise((r) => setTimeout(r, delay)));
      }
    }
  }

  /** Hands a settled attempt's outcome to the completer; the attempt stays in `running` (its lease heartbeated) until it is written. */
  private async writeOutcome(attempt: Running, typeLabel: string, durationMs: number, error: string | null, handler: Handler | undefined, ended: { result: string | null; failure: unknown }): Promise<void> {
    const handled = handler !== undefined;
    const { lease, startedAtMs, reason } = attempt;
    const { message: msg } = lease;
    const { log } = this.deps;
    try {
      if (reason instanceof LeaseLostError) log.warn({ taskId: msg.id, attempt: lease.attempt }, 'lease lost while running; outcome discarded');
      const dead = error !== null && (!handled || lease.attempt >= msg.maxAttempts);
      const res = await this.deps.completer.complete({
        id: msg.id,
        token: lease.token,
        attempt: lease.attempt,
        workerId: this.opts.workerId,
        startedAtMs,
        priority: msg.priority,
        typeLabel,
        durationMs,
        error,
        dead,
        delayMs: error !== null && !dead ? retryDelayMs(this.opts.backoff, policyOf(handler, msg.retry), lease.attempt - (msg.retryBase ?? 0)) : 0,
        leaseLost: reason instanceof LeaseLostError,
        result: error === null ? ended.result : null,
        errorType: error === null ? null : errorTypeOf(ended.failure),
        errorStack: error === null ? null : stackOf(ended.failure),
        step: msg.stepKey !== undefined,
      });
      // Not the handler's error text: handlers may quote their payload in it (task_runs keeps it).
      if (log.isLevelEnabled('debug')) log.debug({ taskId: msg.id, attempt: lease.attempt, failed: error !== null, dead, result: res }, 'attempt finished');
    } finally {
      this.running.delete(lease.token);
    }
  }

  /** Whether Postgres has the cancel that stopped an attempt; if it cannot say, the attempt ends as cancelled ones do. */
  private async cancelAsked(id: string): Promise<boolean> {
    try {
      if (await cancelRecorded(this.deps.pool, id)) return true;
    } catch (err) {
      this.deps.log.warn({ err, taskId: id }, 'could not read whether Postgres has the cancel; recording the attempt as cancelled');
      return true;
    }
    this.deps.log.warn({ taskId: id }, 'a cancel Postgres does not have stopped this attempt; handed back uncounted');
    return false;
  }

  /** `why`: what the run records (the hand-back at shutdown by default). */
  private async handBack(attempt: Running, why?: string): Promise<void> {
    const { log, queue } = this.deps;
    const { lease, startedAtMs } = attempt;
    await this.recording;
    // Read after the start record in flight has settled: its answer may be what says so.
    const recorded = attempt.recorded || attempt.maybeRecorded;
    const id = lease.message.id;
    let unrecorded = false;
    await recordReleased(this.deps.pool, [{ id, token: lease.token, attempt: lease.attempt, startedAtMs }], why).catch((err: unknown) => {
      log.warn({ err, taskId: id }, 'could not record the hand-back in Postgres');
      unrecorded = true;
    });
    // Postgres still runs the task under this lease and counts the attempt. Handed back in Redis
    // alone (uncounted), the next lease would repeat that attempt number, which is not current in
    // Postgres: it would run for nothing and wait out its lease. The reaper counts it as lost
    // instead (as for a worker that died), once this lease runs out: soon.
    if (unrecorded && recorded) {
      await queue.extend([{ id, token: lease.token }], this.opts.reclaimAfterMs).catch((err: unknown) => log.warn({ err, taskId: id }, 'shortening the lease failed; the reaper will reclaim it when it expires'));
      return;
    }
    // A step handed back in a workflow that stopped while it ran does not start again: stopped
    // while this worker still holds it, it is forgotten in Redis instead of handed back. Should the
    // stop fail, the lease is left to expire soon: the reaper holds the step and stops it then.
    let stopped = false;
    if (lease.message.stepKey !== undefined) {
      const s = await stopHoldingLeases(this.deps, [id], new Map([[id, lease.token]]), this.opts.reclaimAfterMs);
      if (s === null) return;
      stopped = s.has(id);
    }
    const ended = stopped ? queue.finish([{ ...held(lease), outcome: 'succeeded', settleAttempts: 0 }]) : queue.release([held(lease)]);
    await ended.catch((err: unknown) => log.warn({ err, taskId: id }, 'hand-back to Redis failed; the reaper will reclaim'));
  }

  /**
   * Keeps a doorbell wait pending for as long as the lease loop idles with room to spare (a wait
   * that times out while the loop still idles is renewed: a gap would leave this worker deaf to new
   * work until its next poll). Redis gives each ring to one waiting worker; one that took a ring
   * but has filled its slots since passes it on, and does not wait again until it has room, so
   * rings never bounce between full workers.
   */
  private listen(ms: number): void {
    if (this.listening) return;
    this.listening = true;
    void (async () => {
      try {
        while (this.idleListening && !this.stopping) {
          const t0 = performance.now();
          if (await this.doorbell.wait(ms)) {
            if (this.stopping || !this.hasRoom()) {
              this.doorbell.ring().catch((err: unknown) => this.deps.log.warn({ err }, 'passing on a doorbell ring failed; idle workers will poll'));
              // Work is waiting that this worker had no room for: it leases as soon as an attempt
              // or a write frees room (every other worker may be full too, and the ring handed back
              // then waits for a listener, while this loop would otherwise sleep until its poll).
              this.wantSlots = true;
            } else this.wake();
            return;
          }
          // Answered early without a ring: Redis is away (or the doorbell closed). Polling covers it.
          if (performance.now() - t0 < ms * 0.9) return;
        }
      } finally {
        this.listening = false;
      }
    })();
  }

  /** Waits `ms`, or less if woken; `listen`: a doorbell ring (new work in Redis) wakes it too. */
  private idle(ms: number, listen = false): Promise<void> {
    if (this.wakePending || this.stopping) {
      this.wakePending = false;
      return Promise.resolve();
    }
    this.idleListening = listen;
    if (listen) this.listen(ms);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        // Cleared here, not only by wake(): a wake-up after the timer fired must find the loop busy
        // (and set wakePending), or it would be lost.
        this.wakeUp = null;
        this.idleListening = false;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}

/** What the run of an attempt stopped by a cancel Postgres never recorded says. */
const UNASKED_CANCEL = 'handed back: stopped by a cancel Postgres does not have (its request failed)';

/** Leases a worker takes ahead of free slots at most (see Processor.ahead)… */
const MAX_AHEAD = 64;
/** …and no more than this fraction of the backlog its last lease left. */
const AHEAD_BACKLOG = 16;

function held(l: Lease) {
  return { id: l.message.id, token: l.token, priority: l.message.priority };
}

/** The most a result may be, as JSON text. */
export const MAX_RESULT_BYTES = 65536;
const MAX_STACK_CHARS = 16384;

/** How deep a result may nest (as a payload may, by default): Postgres parses jsonb recursively. */
export const MAX_RESULT_DEPTH = 64;

/**
 * A handler's result as JSON text; throws (failing the attempt) when it is not JSON, too large, or
 * holds what Postgres jsonb refuses (a NUL, a lone surrogate, deep nesting): stored as it is, one
 * such result would fail the write of every outcome batched with it.
 */
function resultJson(value: unknown): string | null {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new Error(`result is not JSON-serializable: ${errorText(err)}`);
  }
  if (text === undefined) return null;
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_RESULT_BYTES) throw new Error(`result is ${bytes} bytes; the limit is ${MAX_RESULT_BYTES}`);
  let problem: JsonProblem | null = null;
  scanJson(text, { maxDepth: MAX_RESULT_DEPTH, depthMessage: `nests more than ${MAX_RESULT_DEPTH} levels of objects and arrays` }, (p) => {
    problem = p;
    return false;
  });
  if (problem !== null) {
    const { path, message } = problem as JsonProblem;
    throw new Error(`result${path.length > 0 ? ` at ${formatPath(path)}` : ''} ${message}`);
  }
  return text;
}

/** The task's policy over its handler's, field by field; undefined when neither has one. */
function policyOf(handler: Handler | undefined, own: RetryPolicy | undefined): RetryPolicy | undefined {
  if (!handler?.retry) return own;
  return own ? { ...handler.retry, ...own } : handler.retry;
}

/**
 * The error's code when it has a textual one (ECONNRESET), else its name (TaskTimeoutError).
 * A handler may throw anything (a getter that throws, a null-prototype object): describing it
 * must not throw, or the outcome would never be written and the task would stay leased for good.
 */
function errorTypeOf(err: unknown): string {
  try {
    if (err && typeof err === 'object') {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && code.length > 0) return storableText(code.slice(0, 200));
      const name = (err as { name?: unknown }).name;
      if (typeof name === 'string' && name.length > 0) return storableText(name.slice(0, 200));
    }
  } catch {
    // Falls back to its type below.
  }
  return typeof err;
}

/** The error's stack trace, bounded; null when it has no frames (the demo handlers' planned failures), which would only repeat `error`. */
function stackOf(err: unknown): string | null {
  let stack: unknown;
  try {
    stack = err instanceof Error ? err.stack : undefined;
  } catch {
    return null;
  }
  if (typeof stack !== 'string' || !stack.includes('\n    at ')) return null;
  return storableText(stack.length > MAX_STACK_CHARS ? `${stack.slice(0, MAX_STACK_CHARS)}…` : stack);
}

function errorText(err: unknown): string {
  let text: string;
  try {
    text = err instanceof Error ? String(err.message || err.name) : String(err);
  } catch {
    // String() throws for a null-prototype object, a toString that throws, a message getter that throws.
    text = `handler threw a${typeof err === 'object' ? 'n object' : ` ${typeof err}`} that cannot be shown as text`;
  }
  return storableText(text.length > 4000 ? `${text.slice(0, 4000)}…` : text);
}

/** Text Postgres can store: a NUL becomes U+FFFD (as a lone surrogate does when encoded as UTF-8). */
function storableText(text: string): string {
  return text.includes('\0') ? text.replace(/\0/g, '\uFFFD') : text;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
