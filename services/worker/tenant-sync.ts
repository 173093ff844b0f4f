/**
 * Brings tenants' weights and running caps from Postgres (the `tenants` rows `tenants set`
 * writes) to Redis, where lease.lua reads them: every second, the rows changed since the last
 * pass (with a few seconds of overlap, so a row committed late with an earlier updated_at is not
 * missed); all rows at start and whenever Redis says it lost them. Every worker runs one: the
 * writes are idempotent, and a setting reaches Redis within about a second of its commit.
 */
import type { Pool } from 'pg';
import type { Logger } from '../core/observability/logger';
import type { TaskQueue, TenantDispatch } from '../core/queue/queue';
import { withTimeout } from '../core/process/with-timeout';
import { PeriodicService } from '../core/service';

/** Rows updated up to this long before the newest one seen are read again (commit order ≠ updated_at order). */
const OVERLAP_MS = 5000;
/** Rows per query and per script call (every row is sent at start and after Redis lost them). */
const SEND_PAGE = 1000;
/**
 * A script call not answered by then fails the pass (`since` stays, so the next pass sends the rows
 * again): a stalled master must not stop every later pass, and with them every other partition's settings.
 */
const SEND_TIMEOUT_MS = 5000;

interface Row {
  name: string;
  weight: number | null;
  max_running: number | null;
  updated_at_text: string;
}

export class TenantSync extends PeriodicService<{ sent: number; changed: number }> {
  /** updated_at of the newest row sent (as Postgres prints it); null: send every row next. */
  private since: string | null = null;

  constructor(
    private readonly deps: { pool: Pool; queue: TaskQueue },
    private readonly defaultMaxRunning: number,
    intervalMs: number,
    log: Logger,
    private readonly sendTimeoutMs = SEND_TIMEOUT_MS,
  ) {
    super('tenant-sync', intervalMs, log);
  }

  /** Starts with a pass at once, so leasing applies the tenants' settings from the first second. */
  override start(): void {
    super.start();
    this.runWithin(0);
  }

  async runOnce(): Promise<{ sent: number; changed: number }> {
    if (this.since === null) return this.send(null);
    const rows = await this.read(this.since, null);
    const res = await this.configure(rows);
    if (!res.complete) {
      // Redis lost the settings (restarted, flushed): every row again, now. Forgotten first: the
      // call above made Redis look complete again, so should this resend fail, only `since` being
      // null makes the next pass send every row (else the rows not changed lately stay lost).
      this.since = null;
      return this.send(null);
    }
    return this.send(this.since, rows, res.changed);
  }

  /**
   * The rows changed since `since` (null: every row), in pages of SEND_PAGE (one query and one
   * script call each, `first` already sent), so neither the worker's memory nor a script's time
   * on Redis grows with the number of tenants. `since` moves only once the last page is in: a
   * failure part way makes the next pass start again from where it did.
   */
  private async send(since: string | null, first: Row[] | null = null, firstChanged = 0): Promise<{ sent: number; changed: number }> {
    let rows = first;
    let changed = firstChanged;
    let sent = first?.length ?? 0;
    let last: Row | null = first?.[first.length - 1] ?? null;
    while (rows === null || rows.length === SEND_PAGE) {
      rows = await this.read(since, last);
      // Sent even when empty the first time: the default cap goes with it.
      if (rows.length > 0 || last === null) changed += (await this.configure(rows)).changed;
      sent += rows.length;
      last = rows[rows.length - 1] ?? last;
    }
    // Ordered by updated_at: the last row is the newest.
    this.since = last?.updated_at_text ?? this.since;
    if (changed > 0) this.log.info({ changed }, 'tenant dispatch settings applied');
    return { sent, changed };
  }

  private configure(rows: Row[]): Promise<{ changed: number; complete: boolean }> {
    return withTimeout(this.deps.queue.configureTenants(this.defaultMaxRunning, rows.map(dispatchOf)), this.sendTimeoutMs, 'tenant settings: no answer');
  }

  /**
   * A page of the rows changed since `since` (null: every row), after `after` in (updated_at, name)
   * order. `since` counts no later than the database's clock now: a row written while that clock ran
   * ahead (a forward step, corrected since) must not hide the rows written after it, dated earlier.
   */
  private async read(since: string | null, after: Row | null): Promise<Row[]> {
    const { rows } = await this.deps.pool.query<Row>({
      name: 'tenant-dispatch-settings',
      text: `SELECT name, weight, max_running, updated_at::text AS updated_at_text FROM tenants
              WHERE ($1::timestamptz IS NULL OR updated_at > LEAST($1::timestamptz, now()) - $2 * interval '1 millisecond')
                AND ($3::timestamptz IS NULL OR (updated_at, name) > ($3::timestamptz, $4::text))
              ORDER BY updated_at, name
              LIMIT $5`,
      values: [since, OVERLAP_MS, after?.updated_at_text ?? null, after?.name ?? null, SEND_PAGE],
    });
    return rows;
  }
}

function dispatchOf(r: Row): TenantDispatch {
  return { tenant: r.name, weight: r.weight ?? 1, maxRunning: r.max_running };
}
