/** Reasons an attempt's AbortSignal fires; each leads to a different outcome. */
export class LeaseLostError extends Error {
  override name = 'LeaseLostError';
  constructor(readonly taskId: string) {
    super(`lease on task ${taskId} was lost; the outcome will be discarded`);
  }
}

export class TaskTimeoutError extends Error {
  override name = 'TaskTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`handler timed out after ${timeoutMs} ms`);
  }
}

export class ShutdownError extends Error {
  override name = 'ShutdownError';
  constructor() {
    super('worker shutting down; the attempt is handed back');
  }
}

export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor(readonly taskId: string) {
    super(`task ${taskId} was cancelled by an operator`);
  }
}
