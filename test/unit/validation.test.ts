import { canonicalJson, validateTaskInput } from '../../services/api/validation';
import { ProblemError } from '../../services/api/problem';

function fieldsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProblemError);
    expect((err as ProblemError).status).toBe(400);
    return (err as ProblemError).errors.map((e) => e.field);
  }
  throw new Error('expected a validation error');
}

describe('validateTaskInput', () => {
  it('applies defaults', () => {
    expect(validateTaskInput({ type: 'noop' }, undefined, 5)).toEqual({ type: 'noop', priority: 'default', payload: {}, max_retries: 5, max_retries_given: false, idempotency_key: null, retry: null, timeout_ms: null, run_at: null, delay: null });
  });

  it('takes a retry policy and a timeout, naming each bad field', () => {
    const ok = validateTaskInput({ type: 'noop', retry: { backoff: 'linear', base_ms: 100, max_ms: 1000, jitter: 'equal' }, timeout_ms: 5000 }, undefined, 5);
    expect(ok).toMatchObject({ retry: { backoff: 'linear', base_ms: 100, max_ms: 1000, jitter: 'equal' }, timeout_ms: 5000 });
    expect(fieldsOf(() => validateTaskInput({ type: 'noop', retry: { backoff: 'quadratic', base_ms: 0, max_ms: 1e12, jitter: 'half', colour: 1 } }, undefined, 5)).sort()).toEqual(
      ['retry.backoff', 'retry.base_ms', 'retry.colour', 'retry.jitter', 'retry.max_ms'],
    );
    expect(fieldsOf(() => validateTaskInput({ type: 'noop', retry: 'fixed' }, undefined, 5))).toEqual(['retry']);
    expect(fieldsOf(() => validateTaskInput({ type: 'noop', timeout_ms: 0 }, undefined, 5))).toEqual(['timeout_ms']);
    expect(fieldsOf(() => validateTaskInput({ type: 'noop', timeout_ms: 86_400_001 }, undefined, 5))).toEqual(['timeout_ms']);
  });

  it('takes the idempotency key from the header or the body, and refuses two different ones', () => {
    expect(validateTaskInput({ type: 'noop' }, 'k1', 5).idempotency_key).toBe('k1');
    expect(validateTaskInput({ type: 'noop', idempotency_key: 'k1' }, 'k1', 5).idempotency_key).toBe('k1');
    expect(fieldsOf(() => validateTaskInput({ type: 'noop', idempotency_key: 'k1' }, 'k2', 5))).toEqual(['Idempotency-Key']);
  });

  it.each([
    [[], ['(body)']],
    ['noop', ['(body)']],
    [{}, ['type']],
    [{ type: 7 }, ['type']],
    [{ type: 'has space' }, ['type']],
    [{ type: 'noop', priority: 'urgent' }, ['priority']],
    [{ type: 'noop', max_retries: 101 }, ['max_retries']],
    [{ type: 'noop', max_retries: -1 }, ['max_retries']],
    [{ type: 'noop', max_retries: 1.5 }, ['max_retries']],
    [{ type: 'noop', max_retries: '3' }, ['max_retries']],
    [{ type: 'noop', payload: null }, ['payload']],
    [{ type: 'noop', idempotency_key: '' }, ['idempotency_key']],
    [{ type: 'noop', idempotency_key: 5 }, ['idempotency_key']],
    [{ type: 'noop', extra: 1 }, ['extra']],
    [{ priority: 'x', max_retries: 'y' }, ['type', 'priority', 'max_retries']],
  ])('rejects %j naming %j', (body, fields) => {
    expect(fieldsOf(() => validateTaskInput(body, undefined, 5)).sort()).toEqual([...fields].sort());
  });
});

describe('canonicalJson', () => {
  it('is independent of key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe(canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }));
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: 2 }));
  });
});
