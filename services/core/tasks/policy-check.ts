/**
 * Checks of a retry policy and a timeout against their schemas (task-fields.ts), shared by POST
 * /tasks and by handlers that declare defaults, so a task and a handler are held to the same bounds.
 * Hand-written rather than a schema validator: POST /tasks is the hot path.
 */
import type { RetryPolicy } from './backoff';
import { RetryPolicySchema, TimeoutMsSchema } from './task-fields';

export interface PolicyProblem {
  field: string;
  message: string;
}

const POLICY = RetryPolicySchema.properties;
const POLICY_KNOWN = new Set(Object.keys(POLICY));

const isIntIn = (v: unknown, s: { minimum?: number; maximum?: number }): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= s.minimum! && v <= s.maximum!;

/** A retry policy, or null with each problem named `<field>.<name>` (or `<field>` when it is not an object). */
export function checkRetryPolicy(v: unknown, problems: PolicyProblem[], field = 'retry'): RetryPolicy | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    problems.push({ field, message: 'must be an object: {"backoff", "base_ms", "max_ms", "jitter"}' });
    return null;
  }
  const r = v as Record<string, unknown>;
  const before = problems.length;
  for (const k of Object.keys(r)) if (!POLICY_KNOWN.has(k)) problems.push({ field: `${field}.${k}`, message: 'is not a known field' });
  for (const name of ['backoff', 'jitter'] as const) {
    const allowed = POLICY[name].enum as readonly string[];
    if (r[name] !== undefined && !(typeof r[name] === 'string' && allowed.includes(r[name] as string))) problems.push({ field: `${field}.${name}`, message: `must be one of ${allowed.join(', ')}` });
  }
  for (const name of ['base_ms', 'max_ms'] as const) {
    if (r[name] !== undefined && !isIntIn(r[name], POLICY[name])) problems.push({ field: `${field}.${name}`, message: `must be an integer between ${POLICY[name].minimum} and ${POLICY[name].maximum}` });
  }
  return problems.length === before ? (r as RetryPolicy) : null;
}

/** A timeout in milliseconds, or null with the problem named `field`. */
export function checkTimeoutMs(v: unknown, problems: PolicyProblem[], field = 'timeout_ms'): number | null {
  if (isIntIn(v, TimeoutMsSchema)) return v;
  problems.push({ field, message: `must be an integer between ${TimeoutMsSchema.minimum} and ${TimeoutMsSchema.maximum}` });
  return null;
}
