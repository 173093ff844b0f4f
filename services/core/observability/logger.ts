/**
 * Structured JSON logs (pino). Services log lifecycle and problems; per-task lines are debug only.
 *
 * No log line may carry a payload, an idempotency key or a secret, whatever failed. Errors are the
 * risk: ioredis attaches the failed command with its arguments (every payload of a batch, or the
 * AUTH password), pg attaches `detail`/`where` (`Key (key)=(…)`, `Failing row contains (…)`), and
 * messages quote the offending input (`invalid input syntax for type uuid: "…"`). So every error
 * is logged through safeError(): the class name, codes, schema names and a message cut before the
 * first quoted value, plus the stack's frames, and nothing else.
 */
import pino, { DestinationStream, Logger } from 'pino';

export type { Logger };

export function createLogger(service: string, level: string, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: safeError, error: safeError },
    formatters: {
      level: (label) => ({ level: label }),
      // Errors under any other key (`reason`, `cause`, …) would otherwise be JSON.stringified with
      // all their enumerable fields, ioredis's `command` among them. Runs before the serializers.
      log: (obj) => {
        let out = obj;
        for (const key of Object.keys(obj)) {
          if (key === 'err' || key === 'error' || !(obj[key] instanceof Error)) continue;
          if (out === obj) out = { ...obj };
          out[key] = safeError(obj[key]);
        }
        return out;
      },
    },
    hooks: {
      // log.error(err) and log.error({ err }) without a message take err.message as the line's
      // `msg` unserialized; give them the cut message instead.
      logMethod(args, method) {
        const [first] = args as unknown[];
        if (args.length === 1 && first !== null && typeof first === 'object') {
          const err = first instanceof Error ? first : (first as { err?: unknown }).err;
          const message = (err as { message?: unknown } | undefined)?.message;
          if (typeof message === 'string') return method.call(this, first as object, safeMessage(message));
        }
        return method.apply(this, args);
      },
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** Fields of an error that hold codes or schema names, never values (pg, Node system errors, HTTP). */
const SAFE_FIELDS = ['code', 'errno', 'syscall', 'severity', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine', 'status', 'statusCode'] as const;
const MAX_MESSAGE = 300;
const MAX_NESTED = 5;

export interface SafeError {
  type: string;
  message: string;
  stack?: string;
  cause?: SafeError;
  errors?: SafeError[];
  [field: string]: unknown;
}

/**
 * What may be logged of `value` when it was thrown: see the file comment. Anything that is not an
 * Error is reduced the same way (a thrown string is cut like a message; a thrown object keeps only
 * the safe fields).
 */
export function safeError(value: unknown, depth = 0): SafeError | string | number | boolean | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return safeMessage(value);
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value !== 'object') return typeof value;
  const e = value as Record<string, unknown>;
  const type = errorType(value);
  const message = typeof e.message === 'string' ? safeMessage(e.message) : '';
  const out: SafeError = { type, message };
  for (const field of SAFE_FIELDS) {
    const v = e[field];
    // Only short scalars: a code or a name, not a value some library stored under the same name.
    if ((typeof v === 'string' && v.length <= 128 && !/["\n]/.test(v)) || typeof v === 'number') out[field] = v;
  }
  if (typeof e.stack === 'string') out.stack = [`${type}: ${message}`, ...stackFrames(e.stack)].join('\n');
  if (depth < 3) {
    if (e.cause !== undefined) out.cause = safeError(e.cause, depth + 1) as SafeError;
    if (Array.isArray(e.errors)) out.errors = e.errors.slice(0, MAX_NESTED).map((x) => safeError(x, depth + 1) as SafeError);
  }
  return out;
}

/** One line for stderr (start-up failures): `Type: message [code]` with the same cuts as safeError. */
export function safeErrorText(value: unknown): string {
  const s = safeError(value);
  if (s === null || typeof s !== 'object') return String(s);
  return `${s.type}: ${s.message}${s.code !== undefined ? ` [${String(s.code)}]` : ''}`;
}

/**
 * A message up to where values start. Postgres, V8 and Node quote what they reject
 * (`…for type uuid: "x"`, `value "x" is out of range`, `Unexpected token 'x', "xyz" is not valid
 * JSON`) and pg prints keys as `(col)=(value)`; everything from the first `"` or `=(` is dropped,
 * so a quoted identifier goes too (pg gives it again in `constraint`/`table`/`column`).
 */
export function safeMessage(message: string): string {
  let end = Math.min(message.length, MAX_MESSAGE);
  for (const marker of ['"', '=(', '\n']) {
    const at = message.indexOf(marker);
    if (at !== -1 && at < end) end = at;
  }
  if (end === message.length) return message;
  return `${message.slice(0, end).replace(/[\s:,(]+$/, '')} […]`;
}

/** The class name (pg's DatabaseError is named `error`), else the name it gives itself. */
function errorType(value: object): string {
  const identifier = (v: unknown): v is string => typeof v === 'string' && /^[A-Za-z_$][\w$]{0,63}$/.test(v);
  const ctor = (value as { constructor?: { name?: unknown } }).constructor?.name;
  if (identifier(ctor) && ctor !== 'Object') return ctor;
  const name = (value as { name?: unknown }).name;
  return identifier(name) ? name : 'Error';
}

/** The `at …` lines of a V8 stack: code locations only (the message line above them is rebuilt). */
function stackFrames(stack: string): string[] {
  return stack.split('\n').filter((line) => /^\s+at /.test(line)).slice(0, 20);
}
