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

  private schedule(): void {
    if (!this.started) return;
    this.timer = setTimeout(() => {
      this.pass = this.runOnce()
        .catch((err: unknown) => this.log.warn({ err, service: this.name }, `${this.name} pass failed`))
        .finally(() => {
          this.pass = null;
          this.schedule();
        });
    }, this.intervalMs);
    this.timer.unref?.();
  }
}
