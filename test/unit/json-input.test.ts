/** What the API refuses in a body's JSON text before parsing it, and what it keeps exactly. */
import { numberProblem } from '../../services/core/json/exact-number';
import { parseBatchBody, parseTaskBody } from '../../services/api/input/read-json';
import { ProblemError } from '../../services/api/problem';

const limits = { maxPayloadDepth: 64 };
const body = (text: string) => Buffer.from(text, 'utf8');

function problemOf(fn: () => unknown): ProblemError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProblemError);
    return err as ProblemError;
  }
  throw new Error('expected a problem');
}

describe('numberProblem', () => {
  it.each(['0', '-0', '1.0', '0.1', '1e2', '-12.5e-3', '9007199254740992', '1.7976931348623157e308', '5e-324', '123456789012345', '0.30000000000000004'])(
    'accepts %s (a double holds it exactly)',
    (t) => expect(numberProblem(t)).toBeNull(),
  );
  it.each(['1e400', '-1e400', '1e-400', '9007199254740993', '12345678901234567890', '0.1000000000000000055511151231257827'])(
    'refuses %s',
    (t) => expect(numberProblem(t)).not.toBeNull(),
  );
});

describe('parseTaskBody', () => {
  it.each([
    ['a lone high surrogate in a string', '{"type":"x","payload":{"s":"\\ud800"}}', 'payload.s'],
    ['a lone low surrogate in a key', '{"type":"x","payload":{"\\udc00":1}}', 'payload'],
    ['a reversed pair', '{"type":"x","payload":["\\udc00\\ud800"]}', 'payload[0]'],
    ['NUL in a string', '{"type":"x","payload":{"a":{"b":"x\\u0000"}}}', 'payload.a.b'],
    ['NUL in a key', '{"type":"x","payload":{"\\u0000":1}}', 'payload'],
    ['a number beyond a double', '{"type":"x","payload":{"n":1e400}}', 'payload.n'],
    ['an integer above 2^53', '{"type":"x","payload":{"n":[9007199254740993]}}', 'payload.n[0]'],
    ['a key that is not an identifier', '{"type":"x","payload":{"a b":1e999}}', 'payload["a b"]'],
    ['nesting 5,000 deep', `{"type":"x","payload":${'['.repeat(5000)}${']'.repeat(5000)}}`, 'payload[0][0][0][0][0][0][0][0][0][0][0]…'],
    ['nesting one level too deep', `{"type":"x","payload":${'{"a":'.repeat(65)}1${'}'.repeat(65)}}`, 'payload.a.a.a.a.a.a.a.a.a.a.a…'],
  ])('refuses %s with 400 naming the field', (_what, text, field) => {
    const p = problemOf(() => parseTaskBody(body(text), limits));
    expect(p.status).toBe(400);
    expect(p.errors.map((e) => e.field)).toEqual([field]);
  });

  it('refuses bytes that are not UTF-8', () => {
    const p = problemOf(() => parseTaskBody(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), limits));
    expect(p.errors[0]).toEqual({ field: '(body)', message: 'must be UTF-8 encoded JSON' });
  });

  it('keeps what it can store exactly: escaped text that only looks like NUL, pairs, big exact numbers, 64 levels', () => {
    const text = `{"type":"x","payload":{"s":"\\\\u0000","e":"\\ud83d\\ude00","n":9007199254740992,"f":0.1,"d":${'['.repeat(63)}${']'.repeat(63)}}}`;
    const parsed = parseTaskBody(body(text), limits) as { payload: Record<string, unknown> };
    expect(parsed.payload.s).toBe('\\u0000');
    expect(parsed.payload.e).toBe('😀');
    expect(parsed.payload.n).toBe(2 ** 53);
    expect(JSON.stringify(parsed).length).toBeGreaterThan(0);
  });

  it('reports malformed JSON as such, an empty body as {} and drops a BOM', () => {
    expect(problemOf(() => parseTaskBody(body('{"type":"x",'), limits)).errors[0]!.field).toBe('(body)');
    expect(parseTaskBody(Buffer.alloc(0), limits)).toEqual({});
    expect(parseTaskBody(body('\ufeff{"type":"x"}'), limits)).toEqual({ type: 'x' });
  });

  it('finds where strings end among escaped quotes and backslashes, and the problems after them', () => {
    const text = `{"type":"x","payload":{"a":"${'\\"\\\\'.repeat(1000)}","b":"\\\\\\"","c":"x\\u0000"}}`;
    expect(problemOf(() => parseTaskBody(body(text), limits)).errors).toEqual([{ field: 'payload.c', message: expect.stringMatching(/NUL/) }]);
  });

  it('scans a string-heavy 1 MiB body without recursion', () => {
    const big = JSON.stringify({ type: 'x', payload: Array.from({ length: 20_000 }, (_, i) => ({ s: `é\\"${i}`, n: i / 3 })) });
    expect((parseTaskBody(body(big), limits) as { payload: unknown[] }).payload).toHaveLength(20_000);
  });
});

describe('parseBatchBody', () => {
  it("gives each task its own problems; a too-deep payload is cut out before parsing and its neighbours survive", () => {
    const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
    const text = `{"tasks":[{"type":"a"},{"type":"b","payload":${deep}},{"type":"c","payload":"\\udfff"},{"type":"d","payload":{"n":1e400}}]}`;
    const { body: parsed, itemProblems } = parseBatchBody(body(text), limits);
    const tasks = (parsed as { tasks: { type: string }[] }).tasks;
    expect(tasks.map((t) => t.type)).toEqual(['a', 'b', 'c', 'd']);
    expect([...itemProblems.keys()]).toEqual([1, 2, 3]);
    expect(itemProblems.get(2)!.errors).toEqual([{ field: 'payload', message: expect.stringMatching(/lone UTF-16 surrogate/) }]);
    expect(itemProblems.get(3)!.errors[0]!.field).toBe('payload.n');
  });

  it('names the first ten of a task\'s thousands of problems by their whole path, and leaves the next task alone', () => {
    const many = Array.from({ length: 5000 }, () => '"\\ud800"').join(',');
    const text = `{"tasks":[{"type":"a","payload":{"x y":{"k":[${many}]}}},{"type":"b","payload":{"z":["\\udc00"]}},{"type":"c"}]}`;
    const { body: parsed, itemProblems } = parseBatchBody(body(text), limits);
    expect((parsed as { tasks: unknown[] }).tasks).toHaveLength(3);
    expect(itemProblems.get(0)!.errors.map((e) => e.field)).toEqual(Array.from({ length: 10 }, (_, i) => `payload["x y"].k[${i}]`));
    expect(itemProblems.get(1)!.errors.map((e) => e.field)).toEqual(['payload.z[0]']);
    expect(itemProblems.has(2)).toBe(false);
  });

  it('refuses the whole request for a problem outside the tasks', () => {
    expect(problemOf(() => parseBatchBody(body('{"tasks":[],"x":"\\ud800"}'), limits)).errors[0]!.field).toBe('x');
  });
});
