/**
 * Postgres array literals for the batch statements' `unnest($1::uuid[], …)` parameters.
 * node-postgres turns a JS array into a literal itself, but through a generic per-element path
 * (type checks, two regex replaces per string, a nested call per element): serializing the ten
 * arrays of one outcome batch was 7 % of a worker's CPU, more than the statement's own planning
 * on the server. These build the same literal directly; the SQL casts it as before.
 */

/**
 * Quoted and escaped, as array_in reads it: any text is safe inside double quotes with `\` and `"`
 * escaped (backslashes first). Literal replaceAll, not a regex with `$&`, which costs several times as
 * much per match: a JSON payload is full of quotes.
 */
function quoted(s: string): string {
  return s.indexOf('"') < 0 && s.indexOf('\\') < 0 ? `"${s}"` : `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** text[] (or any type read from text: uuid[], jsonb[]); null (or undefined) elements are SQL NULL. */
export function textArray(values: readonly (string | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (i > 0) out += ',';
    out += v == null ? 'NULL' : quoted(v);
  }
  return `${out}}`;
}

/** int[] / float8[]: finite numbers as JS prints them; NaN and ±Infinity as float8 spells them. */
export function numberArray(values: readonly number[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    out += String(values[i]);
  }
  return `${out}}`;
}

export function boolArray(values: readonly boolean[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    out += values[i] ? 't' : 'f';
  }
  return `${out}}`;
}
