/**
 * Task handlers by type. To add one, add an entry to `handlers` (or pass your own registry to
 * the Worker). A handler resolves on success (with its result: any JSON value up to 64 KiB, kept
 * as the task's `result`) and throws on failure; it should stop when `signal` aborts (lease lost,
 * timeout, cancel or shutdown), because its outcome is then discarded. A handler may carry
 * defaults for its type (`retry`, `timeoutMs`; see withDefaults), which a task's own override, and
 * say it never reads `parents` (`parents: false`).
 */
import type { RetryPolicy } from '../core/tasks/backoff';
import { checkRetryPolicy, checkTimeoutMs, PolicyProblem } from '../core/tasks/policy-check';

export interface TaskContext {
  id: string;
  type: string;
  payload: unknown;
  attempt: number;
  signal: AbortSignal;
  /** For a workflow step: the results of the steps it depends on, by step key (null where a step returned nothing). */
  parents?: Record<string, unknown>;
}

export type Handler = ((ctx: TaskContext) => Promise<unknown>) & {
  /** The retry policy of tasks of this type that set none of their own (fields left out: the environment's). */
  retry?: RetryPolicy;
  /** Their timeout (TASK_TIMEOUT_MS otherwise). */
  timeoutMs?: number;
  /**
   * false: the handler never reads `parents`, so a workflow step of this type starts without its
   * dependencies' results (none read from Postgres, and no ParentResultsTooLarge however large).
   */
  parents?: false;
};

export interface HandlerDefaults {
  retry?: RetryPolicy;
  timeoutMs?: number;
  /** false: see Handler.parents. */
  parents?: boolean;
}

/**
 * `fn` with defaults for its tasks: `withDefaults(async (ctx) => …, { retry: { backoff: 'fixed', base_ms: 500 }, timeoutMs: 5000 })`.
 * The defaults are held to a task's own bounds and refused at start-up (a typo would otherwise
 * quietly fall back to the environment's policy, or make every attempt time out at once). `fn`
 * is wrapped, not changed, so one function may serve two types with different defaults.
 */
export function withDefaults(fn: (ctx: TaskContext) => Promise<unknown>, defaults: HandlerDefaults): Handler {
  const problems: PolicyProblem[] = [];
  const retry = defaults.retry === undefined ? undefined : checkRetryPolicy(defaults.retry, problems);
  const timeoutMs = defaults.timeoutMs === undefined ? undefined : checkTimeoutMs(defaults.timeoutMs, problems, 'timeoutMs');
  if (defaults.parents !== undefined && typeof defaults.parents !== 'boolean') problems.push({ field: 'parents', message: 'must be true or false' });
  if (problems.length) throw new TypeError(`handler defaults: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`);
  const handler: Handler = (ctx) => fn(ctx);
  if (retry) handler.retry = { ...retry };
  if (timeoutMs !== undefined && timeoutMs !== null) handler.timeoutMs = timeoutMs;
  if (defaults.parents === false) handler.parents = false;
  return handler;
}
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

/** A built-in handler that never reads `parents`. */
const parentless = (fn: Handler): Handler => Object.assign(fn, { parents: false as const });

export const builtinHandlers: Record<string, Handler> = {
  noop: parentless(async () => undefined),
  /** Fails the first `fail_attempts` attempts, then succeeds. */
  flaky: parentless(async ({ payload, attempt }) => {
    const failAttempts = field(payload, 'fail_attempts');
    if (attempt <= failAttempts) throw plannedFailure(`flaky: attempt ${attempt} of ${failAttempts} planned failures`);
  }),
  always_fail: parentless(async ({ attempt }) => {
    throw plannedFailure(`always_fail: attempt ${attempt} failed on purpose`);
  }),
  /** Sleeps `sleep_ms` milliseconds, stopping early when aborted. */
  sleeper: parentless(async ({ payload, signal }) => sleep(field(payload, 'sleep_ms'), signal)),
  /** Returns its payload as its result (and, for a workflow step, its dependencies' results), for demos and checks. */
  echo: async ({ payload, parents }) => (parents === undefined ? { payload } : { payload, parents }),
};

import { customHandlers } from "./custom-handlers";

export function defaultHandlers(extra: Record<string, Handler> = customHandlers): HandlerRegistry {
  return new Map(Object.entries({ ...builtinHandlers, ...extra }));
}

/** Loads `handlers` from a module named by HANDLERS_MODULE; a bad module stops start-up with a clear message. */
export function loadHandlersModule(modulePath: string): Record<string, Handler> {
  let mod: { handlers?: unknown } | null | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require(require('node:path').resolve(modulePath)) as { handlers?: unknown };
  } catch (err) {
    // The bare error (a module's own throw, a SyntaxError) would not say which setting caused it.
    const text = err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : safeText(err);
    throw new Error(`HANDLERS_MODULE ${modulePath} could not be loaded: ${text}`);
  }
  const found = mod?.handlers;
  // An array or a Map would pass as an object and register nothing, or types named "0", "1"…
  if (!found || typeof found !== 'object' || Array.isArray(found) || found instanceof Map) throw new Error(`HANDLERS_MODULE ${modulePath} must export an object named "handlers"`);
  const out: Record<string, Handler> = {};
  for (const [name, entry] of Object.entries(found)) {
    // Replacing `echo` or `sleeper` would change what tasks of that type do without a word.
    if (Object.prototype.hasOwnProperty.call(builtinHandlers, name)) throw new Error(`HANDLERS_MODULE ${modulePath}: handler "${name}" would replace the built-in handler of that name`);
    if (Object.prototype.hasOwnProperty.call(customHandlers, name)) throw new Error(`HANDLERS_MODULE ${modulePath}: handler "${name}" would replace the one of that name in custom-handlers.ts`);
    // A function, or { handler, retry?, timeoutMs?, parents? } for a handler with defaults.
    if (typeof entry === 'function') {
      const { retry, timeoutMs, parents } = entry as Handler & HandlerDefaults;
      // Defaults set as the function's own properties are held to the same bounds: a timeoutMs past
      // 2^31 - 1 ms made setTimeout fire at once, failing every attempt as timed out.
      if (retry === undefined && timeoutMs === undefined && parents === undefined) out[name] = entry as Handler;
      else out[name] = checked(modulePath, name, () => withDefaults(entry as Handler, { retry, timeoutMs, parents }));
    } else if (entry && typeof entry === 'object' && typeof (entry as { handler?: unknown }).handler === 'function') {
      const { handler, retry, timeoutMs, parents, ...unknown } = entry as { handler: Handler } & HandlerDefaults;
      out[name] = checked(modulePath, name, () => {
        // A misspelt option (`timeout`) would otherwise be ignored without a word.
        const extra = Object.keys(unknown);
        if (extra.length) throw new TypeError(`${extra.join(', ')}: not a known option (handler, retry, timeoutMs, parents)`);
        return withDefaults(handler, { retry, timeoutMs, parents });
      });
    } else throw new Error(`HANDLERS_MODULE ${modulePath}: handler "${name}" is neither a function nor { handler, retry?, timeoutMs?, parents? }`);
  }
  return out;
}

function safeText(value: unknown): string {
  try {
    return String(value);
  } catch {
    return typeof value;
  }
}

function checked(modulePath: string, name: string, make: () => Handler): Handler {
  try {
    return make();
  } catch (err) {
    throw new Error(`HANDLERS_MODULE ${modulePath}: handler "${name}": ${(err as Error).message}`);
  }
}
