/** The array literals the batch statements pass read back in Postgres as the values they were built from. */
import { boolArray, numberArray, textArray } from '../../services/core/db/pg-arrays';
import { Stack, createStack } from '../support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await createStack();
});
afterAll(async () => {
  await stack.close();
});

async function roundTrip(literal: string, type: string): Promise<unknown[]> {
  return (await stack.pool.query(`SELECT $1::${type} AS a`, [literal])).rows[0].a;
}

it('text: any characters survive, null stays NULL, "NULL" stays a string', async () => {
  const values = ['plain', '', ' spaced ', 'a,b', '{braces}', 'quote " inside', 'back\\slash', '\\"both\\"', 'NULL', 'null', 'ünïcödé ✓', 'line\nbreak\ttab', null, '"', '\\\\"\\"""\\', JSON.stringify({ s: 'a\n"\\'.repeat(50_000) })];
  expect(await roundTrip(textArray(values), 'text[]')).toEqual(values);
  expect(await roundTrip(textArray([]), 'text[]')).toEqual([]);
  expect(await roundTrip(textArray([undefined as unknown as string]), 'text[]')).toEqual([null]);
});

it('uuid and jsonb read from the same literal', async () => {
  const ids = ['0192d4e0-0000-7000-8000-000000000001', '0192d4e0-0000-7000-8000-000000000002'];
  expect(await roundTrip(textArray(ids), 'uuid[]')).toEqual(ids);
  const docs = [{ a: 'x "y" \\ z', n: [1, 2], nested: { ok: true } }, {}, 'just a string'];
  const { rows } = await stack.pool.query(`SELECT to_json($1::jsonb[]) AS a`, [textArray(docs.map((d) => JSON.stringify(d)))]);
  expect(rows[0].a).toEqual(docs);
});

it('numbers and booleans', async () => {
  const floats = [0, -0, 1.5, -2.25, 1e-7, 1e21, 123456789.123, Number.MAX_SAFE_INTEGER];
  expect((await roundTrip(numberArray(floats), 'float8[]')).map(Number)).toEqual(floats.map((x) => (Object.is(x, -0) ? 0 : x)));
  expect((await roundTrip(numberArray([NaN, Infinity, -Infinity]), 'float8[]')).map(Number)).toEqual([NaN, Infinity, -Infinity]);
  expect(await roundTrip(numberArray([0, 1, -5, 2147483647]), 'int[]')).toEqual([0, 1, -5, 2147483647]);
  expect(await roundTrip(boolArray([true, false, true]), 'bool[]')).toEqual([true, false, true]);
});
