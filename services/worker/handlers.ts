/**
 * Task handlers by type. To add one, add an entry to `handlers` (or pass your own registry to
 * the Worker). A handler resolves on success and throws on failure; it should stop when
 * `signal` aborts (lease lost, timeout or shutdown), because its outcome is then discarded.
 */
export interface TaskContext {
  id: string;
  type: string;
  payload: unknown;
  attempt: number;
  signal: AbortSignal;
}

export type Handler = (ctx: TaskContext) => Promise<void>;
export type HandlerRegistry = ReadonlyMap<string, Handler>;

function field(payload: unknown, name: string): number {
  if (payload && typeof payload === 'object' && name in payload) {
    const v = (payload as Record<string, unknown>)[name];
    if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
    throw new Error(`payload.${name} must be a non-negative number`);
  }
  return 0;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A deliberate failure of a demo handler. Only its message is recorded, so it skips the stack
 * trace an Error captures when built (6.4 → 1.6 µs per throw here).
 */
function plannedFailure(message: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new Error(message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export const builtinHandlers: Record<string, Handler> = {
  noop: async () => undefined,
  /** Fails the first `fail_attempts` attempts, then succeeds. */
  flaky: async ({ payload, attempt }) => {
    const failAttempts = field(payload, 'fail_attempts');
    if (attempt <= failAttempts) throw plannedFailure(`flaky: attempt ${attempt} of ${failAttempts} planned failures`);
  },
  always_fail: async ({ attempt }) => {
    throw plannedFailure(`always_fail: attempt ${attempt} failed on purpose`);
  },
  /** Sleeps `sleep_ms` milliseconds, stopping early when aborted. */
  sleeper: async ({ payload, signal }) => sleep(field(payload, 'sleep_ms'), signal),
};

import { customHandlers } from "./custom-handlers";

export function defaultHandlers(extra: Record<string, Handler> = customHandlers): HandlerRegistry {
  return new Map(Object.entries({ ...builtinHandlers, ...extra }));
}

/** Loads `handlers` from a module named by HANDLERS_MODULE; a bad module stops start-up with a clear message. */
export function loadHandlersModule(modulePath: string): Record<string, Handler> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(require('node:path').resolve(modulePath)) as { handlers?: unknown };
  const found = mod.handlers;
  if (!found || typeof found !== 'object') throw new Error(`HANDLERS_MODULE ${modulePath} must export an object named "handlers"`);
  for (const [name, fn] of Object.entries(found)) {
    if (typeof fn !== 'function') throw new Error(`HANDLERS_MODULE ${modulePath}: handler "${name}" is not a function`);
  }
  return found as Record<string, Handler>;
}
