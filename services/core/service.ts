/**
 * The shape of every background loop: start() / stop() are idempotent, runOnce() does one pass
 * and returns counts. The loop is timer → runOnce → log and continue, so a failing pass never
 * kills the process; tests call runOnce() directly instead of sleeping.
 */
import type { Logger } from './observability/logger';

export abstract class PeriodicService<R> {
  private timer: NodeJS.Timeout | null = null;
  private pass: Promise<unknown> | null = null;
  private started = false;
  /** When the armed timer fires (performance.now()); Infinity while none is armed. */
  private nextAt = Infinity;
  /** The earliest pass asked for (runWithin) while a pass was running. */
  private wantAt = Infinity;

  constructor(
    readonly name: string,
    protected readonly intervalMs: number,
    protected readonly log: Logger,
  ) {
    if (!(intervalMs > 0)) throw new Error(`${name}: interval must be positive, got ${intervalMs}`);
  }

  abstract runOnce(): Promise<R>;

  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.pass?.catch(() => undefined);
  }

  /**
   * Makes the next pass start within `delayMs` (sooner than the interval, never later): for a
   * loop that knows when its next piece of work is due.
   */
  protected runWithin(delayMs: number): void {
    if (!this.started) return;
    const at = performance.now() + Math.max(0, delayMs);
    if (this.pass) {
      this.wantAt = Math.min(this.wantAt, at);
      return;
    }
    if (at >= this.nextAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.arm(at - performance.now());
  }

  private schedule(): void {
    if (!this.started) return;
    const delay = Math.min(this.intervalMs, this.wantAt - performance.now());
    this.wantAt = Infinity;
    this.arm(Math.max(0, delay));
  }

  private arm(delayMs: number): void {
    this.nextAt = performance.now() + delayMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.nextAt = Infinity;
      this.pass = this.runOnce()
        .catch((err: unknown) => this.log.warn({ err, service: this.name }, `${this.name} pass failed`))
        .finally(() => {
          this.pass = null;
          this.schedule();
        });
    }, delayMs);
    this.timer.unref?.();
  }
}
