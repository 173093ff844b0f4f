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
    expect(validateTaskInput({ type: 'noop' }, undefined, 5)).toEqual({ type: 'noop', priority: 'default', payload: {}, max_retries: 5, idempotency_key: null });
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
