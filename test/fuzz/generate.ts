/**
 * Request generators for the API fuzzer, built on fast-check arbitraries. Request i of a run is
 * drawn from its own seed derived from (run seed, i), so any one request can be rebuilt alone.
 *
 * Every generated request says what it may get back (`expect`), as tightly as the README allows:
 * a valid body 201 (200/409 with a key), a body the API cannot store 400, a wrong media type 415, a
 * wrong method on a known path 405, and so on. Where the README leaves the answer open (mutated
 * bytes, odd but plausible content types) only the universal rules apply.
 *
 * Every request then gets a credential (credentials.ts): mostly a key allowed to do what it asks,
 * sometimes a hostile one, and the auth.* requests are about credentials and tenants alone.
 */
import fc from 'fast-check';
import { brotliCompressSync, constants as zlibConstants, deflateSync, gzipSync } from 'node:zlib';
import { asKey, key, withCredential } from './credentials';
import { ExpectedTask, FuzzRequest, HttpRequest, ItemExpect, SEEN, SEEN_UPPER, Spec, TENANTS, WF_SEEN } from './model';
import { encodeCursor } from '../../services/core/tasks/task-cursor';
import { STATUSES } from '../../services/core/tasks/priority';
import { ACTION_STATUSES } from '../../services/api/schemas/bulk';
// A PRNG for layout choices (whitespace, key order, byte edits), seeded by a generated integer.
import { prng } from '../../services/load/plan';

/** Brotli at quality 4: the default (11) is its slowest setting, and the API reads either the same. */
const brotli = (b: Buffer | string): Buffer => brotliCompressSync(b, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 4 } });

export interface GenSettings {
  /** MAX_BODY_BYTES of the API under test. */
  maxBodyBytes: number;
  /** DEFAULT_MAX_RETRIES of the API under test. */
  defaultMaxRetries: number;
  /** MAX_PAYLOAD_DEPTH of the API under test. */
  maxPayloadDepth: number;
}

export const DEFAULT_GEN: GenSettings = { maxBodyBytes: 1048576, defaultMaxRetries: 5, maxPayloadDepth: 64 };

const PRIORITIES = ['critical', 'high', 'default', 'low'];
const JSON_CT: [string, string] = ['Content-Type', 'application/json'];
const VALID = [201];
const KEYED = [201, 200, 409];

// ---------------------------------------------------------------------------------------------
// Small deterministic helpers (seeded from fast-check values)
// ---------------------------------------------------------------------------------------------


const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

const WS = [' ', '\n', '\t', '\r\n', '  '];

/**
 * JSON text of `v` with shuffled keys and, when `spacing` > 0, random whitespace between tokens:
 * the same value must be read (and hashed for idempotency) the same whatever its layout. Never
 * leaves whitespace after the last token, so no strict prefix of an object is valid JSON.
 */
export function render(v: unknown, rnd: () => number, spacing: number): string {
  const ws = () => (spacing > 0 && rnd() < spacing ? pick(rnd, WS) : '');
  const go = (x: unknown): string => {
    if (Array.isArray(x)) return x.length === 0 ? `[${ws()}]` : `[${ws()}${x.map(go).join(`${ws()},${ws()}`)}${ws()}]`;
    if (x !== null && typeof x === 'object') {
      const keys = Object.keys(x);
      for (let i = keys.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [keys[i], keys[j]] = [keys[j]!, keys[i]!];
      }
      const o = x as Record<string, unknown>;
      const body = keys.map((k) => `${JSON.stringify(k)}${ws()}:${ws()}${go(o[k])}`).join(`${ws()},${ws()}`);
      return keys.length === 0 ? `{${ws()}}` : `{${ws()}${body}${ws()}}`;
    }
    return JSON.stringify(x) ?? 'null';
  };
  return go(v);
}

/** What the API must answer for a body it accepts, from the body as the client wrote it. */
export function expectedTask(text: string | Buffer, headerKey: string | undefined, g: GenSettings): ExpectedTask {
  let s = text.toString();
  if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
  const o = JSON.parse(s) as Record<string, unknown>;
  return {
    type: o.type as string,
    priority: (o.priority as string | undefined) ?? 'default',
    payload: o.payload === undefined ? {} : o.payload,
    max_retries: (o.max_retries as number | undefined) ?? g.defaultMaxRetries,
    idempotency_key: (o.idempotency_key as string | undefined) ?? headerKey ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// Valid values
// ---------------------------------------------------------------------------------------------

const charArb = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789_-.'.split('')) },
  {
    weight: 3,
    arbitrary: fc.constantFrom('é', 'ß', 'Ω', '中', '文', '😀', '👩‍👩‍👧', '𝄞', '\u200b', '\u202e', '\ufeff', '\ufffd', '\uffff', '\\', '"', '/', '\n', '\r', '\t', '\u0001', '\u001f', '\u007f', '\u0080', '\u2028', '\u2029', '\\u0000', '</script>', "'", '%00'),
  },
  // Any scalar value: every code point but the surrogates, and not NUL (which Postgres refuses).
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 0x10ffff }).filter((c) => c < 0xd800 || c > 0xdfff).map((c) => String.fromCodePoint(c)) },
);
const strArb = fc.string({ unit: charArb, maxLength: 24 });
const keyArb = fc.oneof({ weight: 8, arbitrary: fc.string({ unit: charArb, maxLength: 12 }) }, { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', '', 'toString', 'payload', 'type') });

/** Numbers a double holds exactly, so the API must store them (JSON.stringify writes them exactly). */
const numArb = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.maxSafeInteger(),
  fc.constantFrom(0, -0, 1, -1, 0.1, 1e308, -1.7976931348623157e308, 5e-324, 2 ** 53, -(2 ** 53), 2 ** 60, 1e21, 1.5e300, 123456789012345, 1e-7),
);
const scalarArb = fc.oneof(strArb, numArb, fc.boolean(), fc.constant(null));

const jsonArb: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 4 }, scalarArb, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 6 }),
  object: fc.dictionary(keyArb, tie('value'), { maxKeys: 6 }),
})).value;

/** A payload: mostly small objects, sometimes any JSON value, sometimes a long string. */
const payloadArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: fc.dictionary(keyArb, jsonArb, { maxKeys: 6 }) },
  { weight: 2, arbitrary: jsonArb.filter((v) => v !== null) },
  { weight: 1, arbitrary: fc.tuple(strArb, fc.integer({ min: 1000, max: 30000 })).map(([s, n]) => ({ text: (s || 'x').repeat(Math.ceil(n / Math.max(1, s.length))) })) },
);

const TYPE_CHARS = 'ABCXYZabcxyz0123456789_.:-'.split('');
/** Handlers that finish at once (noop, flaky, always_fail) or types no handler knows (dead after retries). */
const typeArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant('noop') },
  { weight: 2, arbitrary: fc.constant('always_fail') },
  { weight: 2, arbitrary: fc.constant('flaky') },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...TYPE_CHARS), minLength: 1, maxLength: 128 }) },
);

/** A valid task body as an object (rendered later), never keyed. */
const taskObjArb: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    type: typeArb,
    priority: fc.option(fc.constantFrom(...PRIORITIES), { nil: undefined }),
    retries: fc.option(fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.constant(100) }), { nil: undefined }),
    payload: fc.option(payloadArb, { nil: undefined }),
    fails: fc.integer({ min: 0, max: 3 }),
    sleeper: fc.integer({ min: 0, max: 40 }),
  })
  .map(({ type, priority, retries, payload, fails, sleeper }) => {
    const o: Record<string, unknown> = {};
    // sleeper only with a few milliseconds, so every task ends soon.
    if (sleeper <= 3) {
      o.type = 'sleeper';
      o.payload = { sleep_ms: sleeper };
    } else {
      o.type = type;
      if (type === 'flaky') o.payload = { ...(payload && typeof payload === 'object' && !Array.isArray(payload) ? payload : {}), fail_attempts: fails };
      else if (payload !== undefined) o.payload = payload;
    }
    if (priority !== undefined) o.priority = priority;
    // 100 retries only where the first attempt succeeds.
    if (retries !== undefined) o.max_retries = retries === 100 && o.type !== 'noop' ? 3 : retries;
    return o;
  });

/**
 * Idempotency keys come from a small pool, so keys repeat (replays) and meet different bodies
 * (conflicts) across requests, batches and bursts.
 */
export const KEY_POOL: readonly string[] = [
  ...Array.from({ length: 40 }, (_, i) => `k${i}`),
  '!',
  '~'.repeat(255),
  '"quoted"',
  'a\\b',
  '{"k":1}',
  '%20',
  '<key>',
  'k-'.repeat(100),
];

/** The body sent with `key`: one of two variants, so the same key meets the same body or another. */
export function keyedTaskObj(key: string, variant: number): Record<string, unknown> {
  const h = hash(key);
  const type = ['noop', 'always_fail', 'flaky', 'noop'][h % 4]!;
  const o: Record<string, unknown> = {
    type,
    max_retries: (h >>> 3) % 3,
    payload: variant === 0 ? { key, note: 'é😀\\u0000', n: h % 1000 } : { key, variant, nested: [{ a: [1, 2.5, null] }], fail_attempts: 1 },
  };
  const priority = PRIORITIES[(h >>> 5) % 4]!;
  // 'default' is sometimes left out: the same request either way.
  if (priority !== 'default' || variant === 0) o.priority = priority;
  return o;
}

interface Keyed {
  key: string;
  variant: number;
  via: 'body' | 'header' | 'both';
}
const keyedArb: fc.Arbitrary<Keyed> = fc.record({
  key: fc.constantFrom(...KEY_POOL),
  variant: fc.integer({ min: 0, max: 1 }),
  via: fc.constantFrom<Keyed['via']>('body', 'header', 'both'),
});

// ---------------------------------------------------------------------------------------------
// Hostile pieces
// ---------------------------------------------------------------------------------------------

/** A JSON string token holding a lone surrogate (escaped), which Postgres cannot store. */
const SURROGATE_TOKENS = ['"\\ud800"', '"\\udfff"', '"a\\ud83d"', '"\\ude00b"', '"\\udc00\\ud800"', '"\\uD800\\u0041"', '"x\\uDBFF"'];
const NUL_TOKENS = ['"\\u0000"', '"a\\u0000b"', '"\\u0000\\u0000"', '"\\u0000"'];
/** Numbers a double cannot hold exactly. */
const BAD_NUMBERS = ['1e400', '-1e400', '1e-400', '-1e-400', '12345678901234567890', '-12345678901234567890', '9007199254740993', '1.00000000000000000001', '0.1000000000000000055511151231257827', `1${'0'.repeat(400)}`, '1e309', '2e-324'];
/** Numbers a double holds exactly, written oddly. */
const GOOD_NUMBERS = ['1e308', '-1.7976931348623157e308', '5e-324', '-0', '0.0', '0.1', '9007199254740992', '-9007199254740992', '1e21', '1E2', '1.5e300', '123456789012345', '0.000001', '1e-7', '1.0', '-0.0e0'];
/** Byte sequences that are not UTF-8. */
const BAD_UTF8: number[][] = [[0xff], [0xfe], [0xc0, 0x80], [0xc3], [0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x80, 0x80, 0xaf], [0xf8, 0x88, 0x80, 0x80, 0x80]];

/** Replaced in rendered text by a hostile token: a JSON string that renders as itself. */
const HOLE = 'HOLE_9f3c';
const HOLE_TOKEN = JSON.stringify(HOLE);

type HoleAt = 'payload' | 'payload-key' | 'payload-deep' | 'type' | 'priority' | 'max_retries' | 'idempotency_key';

/** A task object with a hole at `at`; tokens that are not strings only fit value positions. */
function withHole(base: Record<string, unknown>, at: HoleAt, valid: unknown): Record<string, unknown> {
  const o: Record<string, unknown> = { ...base };
  switch (at) {
    case 'payload':
      o.payload = { ok: valid, bad: HOLE };
      break;
    case 'payload-key':
      o.payload = { ok: valid, [HOLE]: 1 };
      break;
    case 'payload-deep':
      o.payload = { a: [valid, { b: [[HOLE]] }] };
      break;
    default:
      o[at] = HOLE;
  }
  return o;
}

function fill(text: string, token: Buffer | string): Buffer {
  const at = text.indexOf(HOLE_TOKEN);
  const t = typeof token === 'string' ? Buffer.from(token, 'utf8') : token;
  return Buffer.concat([Buffer.from(text.slice(0, at)), t, Buffer.from(text.slice(at + HOLE_TOKEN.length))]);
}

interface Body {
  kind: string;
  body: Buffer;
  expect?: number[];
  /** Set when the body is valid: what a 201/200 must hold (without a header key). */
  valid?: boolean;
  /** Not JSON at all (an unclosed nesting): inside a batch it fails the whole body. */
  malformed?: boolean;
}

const layoutArb = fc.record({ seed: fc.integer(), spacing: fc.constantFrom(0, 0, 0.2, 0.6) });

/** A valid task body (text), not keyed. */
const validBodyArb = fc.tuple(taskObjArb, layoutArb).map(([o, l]) => render(o, prng(l.seed), l.spacing));

function hostileBodyArb(g: GenSettings): fc.Arbitrary<Body> {
  const base = fc.tuple(taskObjArb, jsonArb, layoutArb);
  const valueAt = fc.constantFrom<HoleAt>('payload', 'payload-deep', 'type', 'priority', 'max_retries', 'idempotency_key');
  const stringAt = fc.constantFrom<HoleAt>('payload', 'payload-key', 'payload-deep', 'type', 'priority', 'idempotency_key');
  const holed = (kind: string, at: fc.Arbitrary<HoleAt>, token: fc.Arbitrary<Buffer | string>, expect: number[] | undefined, valid = false) =>
    fc.tuple(base, at, token).map(([[o, v, l], where, t]): Body => ({ kind, body: fill(render(withHole(o, where, v), prng(l.seed), l.spacing), t), expect, valid }));
  const depth = (min: number, max: number) => fc.integer({ min, max });
  const maxD = g.maxPayloadDepth;
  return fc.oneof(
    holed('hostile.surrogate', stringAt, fc.constantFrom(...SURROGATE_TOKENS), [400]),
    holed('hostile.nul', stringAt, fc.constantFrom(...NUL_TOKENS), [400]),
    // A raw control byte inside a string is not JSON.
    holed('hostile.raw-control', stringAt, fc.constantFrom('"a\u0000b"', '"\u0000"', '"\u0001"', '"line\nbreak"'), [400]),
    holed('hostile.bad-number', valueAt, fc.constantFrom(...BAD_NUMBERS), [400]),
    holed('hostile.bad-utf8', stringAt, fc.constantFrom(...BAD_UTF8).map((b) => Buffer.concat([Buffer.from('"a'), Buffer.from(b), Buffer.from('z"')])), [400]),
    // The text \u0000 (a backslash, then u0000) and exact numbers are stored as sent.
    fc.tuple(taskObjArb, layoutArb, fc.constantFrom('"\\\\u0000"', '"\\\\ud800"', '"a\\\\u0000\\\\"', ...GOOD_NUMBERS)).map(([o, l, t]): Body => {
      const body = fill(render({ ...o, type: o.type === 'flaky' ? 'noop' : o.type, payload: { v: HOLE } }, prng(l.seed), l.spacing), t);
      return { kind: 'hostile.storable', body, expect: VALID, valid: true };
    }),
    // Nesting: up to MAX_PAYLOAD_DEPTH is stored, deeper is refused (and never parsed).
    fc.tuple(fc.oneof(depth(1, maxD), fc.constantFrom(maxD - 1, maxD, maxD + 1, maxD + 2), depth(maxD + 1, 10000)), fc.constantFrom('array', 'object', 'mixed', 'unclosed'), fc.constantFrom('payload', 'type')).map(([d, shape, where]): Body => {
      const nested = nest(d, shape);
      const body = Buffer.from(where === 'payload' ? `{"type":"noop","payload":${nested}}` : `{"type":${nested}}`);
      const ok = where === 'payload' && shape !== 'unclosed' && d <= maxD;
      return { kind: `hostile.deep-${ok ? 'ok' : 'refused'}`, body, expect: ok ? VALID : [400], valid: ok, malformed: shape === 'unclosed' };
    }),
    // Invalid UTF-8 anywhere in an otherwise valid body.
    fc.tuple(validBodyArb, fc.nat(), fc.constantFrom(...BAD_UTF8)).map(([text, at, bad]): Body => {
      const b = Buffer.from(text);
      const i = at % (b.length + 1);
      return { kind: 'hostile.bad-utf8-anywhere', body: Buffer.concat([b.subarray(0, i), Buffer.from(bad), b.subarray(i)]), expect: [400] };
    }),
    // A strict prefix of an object is never JSON (and an empty body reads as {}: no type).
    fc.tuple(validBodyArb, fc.nat()).map(([text, at]): Body => ({ kind: 'hostile.truncated', body: Buffer.from(text).subarray(0, at % text.length), expect: [400] })),
    fc.tuple(validBodyArb, fc.integer(), fc.integer({ min: 1, max: 6 })).map(([text, seed, n]): Body => ({ kind: 'hostile.mutated', body: mutate(Buffer.from(text), prng(seed), n) })),
    // A BOM is dropped today; refusing it would be as fine, as long as nothing half-happens.
    validBodyArb.map((text): Body => ({ kind: 'hostile.bom', body: Buffer.from(`\ufeff${text}`), expect: [201, 400], valid: true })),
    validBodyArb.map((text): Body => ({ kind: 'hostile.double-bom', body: Buffer.from(`\ufeff\ufeff${text}`), expect: [400] })),
    fc.constantFrom('', ' ', '\n\t ', '\r\n').map((s): Body => ({ kind: 'hostile.empty', body: Buffer.from(s), expect: [400] })),
    fc.constantFrom('[]', '[{"type":"noop"}]', '"noop"', '1', 'null', 'true', '{}', '{"type":"noop"}{"type":"noop"}', '{"type":"noop"},', '{"type":"noop"', "{'type':'noop'}", '{type:"noop"}', '{"type":"noop",}', '{"tasks":[{"type":"noop"}]}').map(
      (s): Body => ({ kind: 'hostile.not-a-task', body: Buffer.from(s), expect: [400] }),
    ),
    invalidFieldsArb.map((b) => ({ ...b, kind: `hostile.${b.kind}` })),
    // Up to the size limit, built to make a naive read quadratic: a string of escapes with no quote
    // in it (stored as sent), a number with a run of zeros inside (refused: no double holds it).
    fc.tuple(fc.constantFrom('escapes', 'zeros'), fc.integer({ min: 1, max: 8 })).map(([shape, eighths]): Body => {
      const room = Math.floor((g.maxBodyBytes * eighths) / 8) - 64;
      return shape === 'escapes'
        ? { kind: 'hostile.costly-escapes', body: Buffer.from(`{"type":"noop","payload":{"s":"${'a\\n'.repeat(Math.floor(room / 3))}"}}`), expect: VALID, valid: true }
        : { kind: 'hostile.costly-zeros', body: Buffer.from(`{"type":"noop","payload":{"n":1.${'0'.repeat(room)}1}}`), expect: [400] };
    }),
  );
}

/** A value nested `d` levels (objects and arrays each count one; `{}` is 1). */
function nest(d: number, shape: string): string {
  if (shape === 'unclosed') return '['.repeat(d);
  if (shape === 'array') return '['.repeat(d) + ']'.repeat(d);
  if (shape === 'object') return '{"a":'.repeat(d - 1) + '{}' + '}'.repeat(d - 1);
  let open = '';
  let close = '';
  for (let i = 0; i < d - 1; i++) {
    open += i % 2 ? '[' : '{"k":';
    close = (i % 2 ? ']' : '}') + close;
  }
  return `${open}[]${close}`;
}

/** A few random byte edits: flips, inserts, deletes, duplicated or swapped slices. */
function mutate(b: Buffer, rnd: () => number, n: number): Buffer {
  let out = Buffer.from(b);
  const interesting = [0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x30, 0x2d, 0x65, 0xff, 0xc3, 0xed, 0x0a];
  for (let k = 0; k < n; k++) {
    const i = Math.floor(rnd() * (out.length + 1));
    const op = Math.floor(rnd() * 6);
    const byte = rnd() < 0.5 ? pick(rnd, interesting) : Math.floor(rnd() * 256);
    if (op === 0 && out.length > 0) out[Math.min(i, out.length - 1)] = byte;
    else if (op === 1) out = Buffer.concat([out.subarray(0, i), Buffer.from([byte]), out.subarray(i)]);
    else if (op === 2) out = Buffer.concat([out.subarray(0, i), out.subarray(i + 1 + Math.floor(rnd() * 4))]);
    else if (op === 3) out = Buffer.concat([out.subarray(0, i), out.subarray(Math.floor(rnd() * out.length), Math.floor(rnd() * out.length)), out.subarray(i)]);
    else if (op === 4) out = Buffer.concat([out.subarray(0, i), Buffer.from(pick(rnd, ['\\u', '\\ud800', '1e999', '"', '{', ']', 'null', '\ufeff', '\\'])), out.subarray(i)]);
    else out = Buffer.concat([out.subarray(i), out.subarray(0, i)]);
  }
  return out;
}

/** Fields with values the API must refuse (400), and valid edge values it must take. */
const invalidFieldsArb: fc.Arbitrary<Body> = (() => {
  const bad: [string, unknown[]][] = [
    ['type', [undefined, '', 'a'.repeat(129), 'a b', 'é', 'noop\n', 'no/op', 1, null, true, [], {}, ['noop']]],
    ['priority', ['urgent', '', 'HIGH', 'Default', 'high ', 1, null, [], {}, true]],
    ['max_retries', [-1, 101, 1.5, '3', null, true, [], {}, 1e3, -0.5, 1000000, 100.5, '']],
    ['payload', [null]],
    ['idempotency_key', ['', 'x'.repeat(256), 'a b', 'é', 'k\t', ' k', 1, null, true, [], {}]],
    ['delay_ms', [-1, 1.5, '100', null, true, [], {}, 367 * 86_400_000, 1e300]],
    ['run_at', ['', 'tomorrow', '2026-12-05T10:00:00', '2026-02-30T10:00:00Z', '2026-12-05T24:00:00Z', 1, null, true, [], {}, '9999-12-31T23:59:59Z']],
  ];
  const unknown = ['Type', 'prio', 'extra', 'constructor', 'tasks', 'id', 'status', 'maxRetries', ''];
  return fc.oneof(
    fc.tuple(fc.constantFrom(...bad), fc.nat(), taskObjArb, layoutArb).map(([[field, values], i, o, l]): Body => {
      const obj: Record<string, unknown> = { ...o };
      const v = values[i % values.length];
      if (v === undefined) delete obj[field];
      else obj[field] = v;
      return { kind: `field.${field}`, body: Buffer.from(render(obj, prng(l.seed), l.spacing)), expect: [400] };
    }),
    fc.tuple(fc.constantFrom(...unknown), jsonArb, taskObjArb, layoutArb).map(([field, v, o, l]): Body => ({
      kind: 'field.unknown',
      body: Buffer.from(render({ ...o, [field]: v }, prng(l.seed), l.spacing)),
      expect: [400],
    })),
    // A delay given twice over.
    taskObjArb.map((o): Body => ({ kind: 'field.delay-twice', body: Buffer.from(JSON.stringify({ ...o, delay_ms: 10, run_at: '2026-01-01T00:00:00Z' })), expect: [400] })),
    // `__proto__` as a field name (JSON.parse makes it an own key).
    taskObjArb.map((o): Body => ({ kind: 'field.proto', body: Buffer.from(`${JSON.stringify(o).slice(0, -1)},"__proto__":{"type":"x"}}`), expect: [400] })),
    fc.constantFrom<Record<string, unknown>>(
      { type: 'a'.repeat(128) },
      { type: 'A.b:c-d_e' },
      { type: '0' },
      { type: '-' },
      { type: 'noop', max_retries: 0 },
      { type: 'noop', max_retries: 100 },
      { type: 'noop', priority: 'low', max_retries: 2 },
      { type: 'noop', payload: [] },
      { type: 'noop', payload: 0 },
      { type: 'noop', payload: '' },
      { type: 'noop', payload: false },
      // Delays short enough that every task still ends soon; a time in the past runs now.
      { type: 'noop', delay_ms: 0 },
      { type: 'noop', delay_ms: 30 },
      { type: 'noop', priority: 'high', delay_ms: 1 },
      { type: 'noop', run_at: '2000-01-01T00:00:00Z' },
      { type: 'noop', run_at: '1999-12-31T23:00:00-01:00' },
    ).map((o): Body => ({ kind: 'field.edge-valid', body: Buffer.from(JSON.stringify(o)), expect: VALID, valid: true })),
    // Numbers written oddly are still integers: 1e1 is 10, 2.0 is 2.
    fc.constantFrom('{"type":"noop","max_retries":1e1}', '{"type":"noop","max_retries":2.0}', '{"type":"noop","max_retries":-0}').map(
      (s): Body => ({ kind: 'field.edge-number', body: Buffer.from(s), expect: VALID, valid: true }),
    ),
  );
})();

// ---------------------------------------------------------------------------------------------
// Single requests
// ---------------------------------------------------------------------------------------------

interface Wire {
  headers: [string, string][];
  body: Buffer;
  framing: Spec['framing'];
  chunks?: number;
}

/** How a body travels: plain with its length, chunked, or compressed (the express path). */
const wireArb = fc.record({ how: fc.constantFrom('length', 'length', 'length', 'length', 'length', 'chunked', 'gzip', 'deflate', 'br'), chunks: fc.integer({ min: 2, max: 8 }) });
function wire(body: Buffer, w: { how: string; chunks: number }, headers: [string, string][] = [JSON_CT]): Wire {
  switch (w.how) {
    case 'chunked':
      return { headers, body, framing: 'chunked', chunks: w.chunks };
    case 'gzip':
      return { headers: [...headers, ['Content-Encoding', 'gzip']], body: gzipSync(body), framing: 'length' };
    case 'deflate':
      return { headers: [...headers, ['Content-Encoding', 'deflate']], body: deflateSync(body), framing: 'length' };
    case 'br':
      return { headers: [...headers, ['Content-Encoding', 'br']], body: brotli(body), framing: 'length' };
    default:
      return { headers, body, framing: 'length' };
  }
}

function postTask(kind: string, w: Wire, expect: number[] | undefined, task?: ExpectedTask, path = '/tasks'): HttpRequest {
  return { transport: 'http', copies: 1, fresh: false, spec: { kind, method: 'POST', path, headers: w.headers, body: w.body, framing: w.framing, chunks: w.chunks, expect, task } };
}

/** A keyed request: the key in the body, the Idempotency-Key header, or both. */
function keyedSpec(k: Keyed, layout: { seed: number; spacing: number }, w: { how: string; chunks: number }, g: GenSettings, kind = 'valid.keyed'): Spec {
  const obj = keyedTaskObj(k.key, k.variant);
  if (k.via !== 'header') obj.idempotency_key = k.key;
  const text = render(obj, prng(layout.seed), layout.spacing);
  const headerKey = k.via === 'body' ? undefined : k.key;
  const wired = wire(Buffer.from(text), w, headerKey === undefined ? [JSON_CT] : [JSON_CT, ['Idempotency-Key', headerKey]]);
  return { kind, method: 'POST', path: '/tasks', headers: wired.headers, body: wired.body, framing: wired.framing, chunks: wired.chunks, expect: KEYED, task: expectedTask(text, headerKey, g) };
}

function validArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(
    { weight: 10, arbitrary: fc.tuple(validBodyArb, wireArb).map(([text, w]) => postTask('valid.task', wire(Buffer.from(text), w), VALID, expectedTask(text, undefined, g))) },
    { weight: 7, arbitrary: fc.tuple(keyedArb, layoutArb, wireArb).map(([k, l, w]): FuzzRequest => ({ transport: 'http', copies: 1, fresh: false, spec: keyedSpec(k, l, w, g) })) },
    // Near the body limit: at most MAX_BODY_BYTES is taken, one byte more is 413, whatever the path.
    { weight: 1, arbitrary: hugeArb(g) },
  );
}

/** A body of about MAX_BODY_BYTES (a long string of 1- to 4-byte characters). */
function hugeArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      delta: fc.oneof(fc.integer({ min: -64, max: 64 }), fc.constantFrom(0, 1, -1), fc.integer({ min: -200000, max: -1000 }), fc.integer({ min: 1, max: g.maxBodyBytes })),
      char: fc.constantFrom('a', 'é', '中', '😀', '\\n'),
      how: fc.constantFrom('length', 'length', 'chunked', 'gzip'),
      chunks: fc.integer({ min: 2, max: 16 }),
    })
    .map(({ delta, char, how, chunks }) => {
      const target = g.maxBodyBytes + delta;
      const body = sized(target, char);
      const ok = body.length <= g.maxBodyBytes;
      const task = ok ? expectedTask(body, undefined, g) : undefined;
      return postTask(`huge.${how}`, wire(body, { how, chunks }), ok ? VALID : [413], task);
    });
}

/** `{"type":"noop","payload":{"s":"…"}}` of exactly `target` bytes (or the smallest such body). */
function sized(target: number, char: string): Buffer {
  const head = '{"type":"noop","payload":{"s":"';
  const tail = '"}}';
  const room = Math.max(0, target - head.length - tail.length);
  const w = Buffer.byteLength(char);
  const n = Math.floor(room / w);
  return Buffer.from(head + char.repeat(n) + 'a'.repeat(room - n * w) + tail);
}

const CT_415 = [
  'text/plain',
  'text/plain; charset=utf-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'text/html',
  'application/octet-stream',
  'application/jsonx',
  'application/merge-patch+json',
  'text/json',
  'json',
  '*/*',
  '',
  'application/json; charset=latin1',
  'application/json; charset=iso-8859-1',
  'application/json; charset=utf-16',
  'application/json; charset=utf-16le',
  'application/json; charset=us-ascii',
  'application/json; charset=windows-1252',
  'application/json; charset=utf-32',
  'application/json; charset=utf-7',
];
/** Plausible spellings of JSON whose answer the README leaves open (taken or 415). */
const CT_OPEN = [
  'APPLICATION/JSON',
  'Application/Json; Charset=UTF-8',
  'application/json ; charset=utf-8',
  'application/json; charset=utf8',
  'application/json;;',
  'application/json; boundary=x',
  'application/json, text/plain',
  'application/json; charset=utf-8; charset=latin1',
  'application/*',
  'application/json; charset=',
  'application/json; q=1',
  'application/json; charset="utf-8',
];
const CT_OK = ['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; charset="utf-8"', 'application/json; charset=UTF-8'];

function mediaArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(
    fc.tuple(validBodyArb, fc.constantFrom(...CT_415), fc.boolean(), fc.constantFrom('/tasks', '/tasks/batch')).map(([text, ct, utf16, path]) => {
      const body = path === '/tasks' ? text : `{"tasks":[${text}]}`;
      return postTask(`media.415${path === '/tasks' ? '' : '-batch'}`, { headers: ct === '' && utf16 ? [] : [['Content-Type', ct]], body: Buffer.from(body, utf16 && ct.includes('16') ? 'utf16le' : 'utf8'), framing: 'length' }, [415], undefined, path);
    }),
    fc.tuple(validBodyArb, fc.constantFrom(...CT_OPEN)).map(([text, ct]) => postTask('media.open', { headers: [['Content-Type', ct]], body: Buffer.from(text), framing: 'length' }, undefined)),
    fc.tuple(validBodyArb, fc.constantFrom(...CT_OK), wireArb).map(([text, ct, w]) => postTask('media.ok', wire(Buffer.from(text), w, [['Content-Type', ct]]), VALID, expectedTask(text, undefined, g))),
  );
}

function encodingArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  const enc = (name: string, body: Buffer): Wire => ({ headers: [JSON_CT, ['Content-Encoding', name]], body, framing: 'length' });
  return fc.oneof(
    // Valid compressed bodies, in any case of the encoding's name.
    fc.tuple(validBodyArb, fc.constantFrom('gzip', 'deflate', 'br', 'GZIP', 'Deflate', 'identity', 'IDENTITY')).map(([text, name]) => {
      const raw = Buffer.from(text);
      const n = name.toLowerCase();
      const body = n === 'gzip' ? gzipSync(raw) : n === 'deflate' ? deflateSync(raw) : n === 'br' ? brotli(raw) : raw;
      return postTask('encoding.valid', enc(name, body), VALID, expectedTask(text, undefined, g));
    }),
    // Corrupt data under a known encoding.
    fc.tuple(validBodyArb, fc.constantFrom('gzip', 'deflate', 'br'), fc.constantFrom('random', 'truncated', 'plain', 'other'), fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat()).map(([text, name, how, bytes, at]) => {
      const raw = Buffer.from(text);
      const packed = name === 'gzip' ? gzipSync(raw) : name === 'deflate' ? deflateSync(raw) : brotli(raw);
      let body: Buffer;
      if (how === 'random') body = Buffer.concat([Buffer.from('x'), Buffer.from(bytes)]);
      else if (how === 'truncated') body = packed.subarray(0, 1 + (at % (packed.length - 1)));
      else if (how === 'plain') body = raw;
      else body = name === 'gzip' ? deflateSync(raw) : gzipSync(raw);
      // A brotli stream has no header to check: random bytes may decode to anything.
      return postTask('encoding.corrupt', enc(name, body), name === 'br' && how !== 'truncated' ? undefined : [400]);
    }),
    // Valid compression around a body the API must refuse.
    fc.tuple(hostileBodyArb(g), fc.constantFrom('gzip', 'deflate')).map(([b, name]) => postTask(`encoding.${b.kind}`, enc(name, name === 'gzip' ? gzipSync(b.body) : deflateSync(b.body)), b.expect)),
    fc.tuple(validBodyArb, fc.constantFrom('compress', 'x-gzip', 'gzip, identity', 'deflate, gzip', 'gzip, gzip', 'bzip2', 'x-compress', '*', 'gzip;q=1', 'chunked')).map(([text, name]) =>
      postTask('encoding.unsupported', enc(name, gzipSync(Buffer.from(text))), [415]),
    ),
    fc.tuple(validBodyArb).map(([text]) => postTask('encoding.zstd', enc('zstd', Buffer.from(text)), undefined)),
    // A small body that inflates past the limit.
    fc.tuple(fc.integer({ min: 1, max: 4 }), fc.constantFrom('gzip', 'deflate')).map(([mb, name]) => postTask('encoding.bomb', enc(name, bomb(g.maxBodyBytes * mb + 1, name)), [413])),
  );
}

const bombs = new Map<string, Buffer>();
/** A compressed body that inflates to `size` bytes (built once per size: compressing megabytes is slow). */
function bomb(size: number, name: string): Buffer {
  const key = `${name}:${size}`;
  let b = bombs.get(key);
  if (!b) {
    const big = sized(size, 'a');
    b = name === 'gzip' ? gzipSync(big) : deflateSync(big);
    bombs.set(key, b);
  }
  return b;
}

function hostileArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  return fc.tuple(hostileBodyArb(g), wireArb).map(([b, w]) => {
    // Compression must not change the verdict; a body over the limit is covered by hugeArb.
    const task = b.valid ? expectedTask(b.body, undefined, g) : undefined;
    return postTask(b.kind, wire(b.body, w), b.expect, task);
  });
}

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

interface Item {
  text: Buffer;
  expect: ItemExpect;
  /** Makes the whole request 400 (bytes that are not UTF-8 anywhere fail the body). */
  poisons?: boolean;
}

function itemArbs(g: GenSettings) {
  const valid = fc.tuple(validBodyArb).map(([t]): Item => ({ text: Buffer.from(t), expect: { statuses: VALID, task: expectedTask(t, undefined, g) } }));
  const keyed = fc.tuple(keyedArb, layoutArb).map(([k, l]): Item => {
    const t = render({ ...keyedTaskObj(k.key, k.variant), idempotency_key: k.key }, prng(l.seed), l.spacing);
    return { text: Buffer.from(t), expect: { statuses: KEYED, task: expectedTask(t, undefined, g) } };
  });
  const invalid = invalidFieldsArb.filter((b) => !b.valid).map((b): Item => ({ text: b.body, expect: { statuses: [400] } }));
  const hostile = hostileBodyArb(g)
    .filter((b) => b.expect !== undefined && ['hostile.surrogate', 'hostile.nul', 'hostile.bad-number', 'hostile.deep-ok', 'hostile.deep-refused', 'hostile.storable', 'hostile.bad-utf8'].includes(b.kind))
    .map((b): Item => {
      // In a batch only the item fails, except bytes that are not UTF-8, which fail the body.
      if (b.kind === 'hostile.bad-utf8') return { text: b.body, expect: { statuses: [400] }, poisons: true };
      // An unclosed deep array is not JSON at all: that fails the whole body too.
      if (b.malformed) return { text: b.body, expect: { statuses: [400] }, poisons: true };
      return { text: b.body, expect: b.valid ? { statuses: VALID, task: expectedTask(b.body, undefined, g) } : { statuses: [400] } };
    });
  const notObject = fc.constantFrom('1', 'null', '"noop"', '[]', '[{"type":"noop"}]', 'true', '{}', '-0').map((s): Item => ({ text: Buffer.from(s), expect: { statuses: [400] } }));
  return { valid, keyed, invalid, hostile, notObject };
}

function batchArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  const a = itemArbs(g);
  const mixed = fc.oneof({ weight: 6, arbitrary: a.valid }, { weight: 4, arbitrary: a.keyed }, { weight: 2, arbitrary: a.invalid }, { weight: 2, arbitrary: a.hostile }, { weight: 1, arbitrary: a.notObject });
  // Big batches mostly replay keys and fail validation, so they stay cheap for the worker.
  const cheap = fc.oneof({ weight: 12, arbitrary: a.keyed }, { weight: 7, arbitrary: a.invalid }, { weight: 1, arbitrary: a.valid });
  // A big batch repeats a few generated items (so keys repeat inside it), in a seeded order.
  const big = fc.tuple(fc.array(cheap, { minLength: 4, maxLength: 16 }), fc.integer({ min: 101, max: 1000 }), fc.integer()).map(([pool, n, seed]) => {
    const rnd = prng(seed);
    return Array.from({ length: n }, () => pick(rnd, pool));
  });
  const items = fc.oneof(
    { weight: 28, arbitrary: fc.array(mixed, { minLength: 1, maxLength: 8 }) },
    { weight: 6, arbitrary: fc.array(mixed, { minLength: 9, maxLength: 50 }) },
    { weight: 1, arbitrary: big },
  );
  const wellFormed = fc.tuple(items, fc.constantFrom('', ' ', '\n'), wireArb).map(([list, sp, w]): FuzzRequest => {
    const body = Buffer.concat([Buffer.from(`{${sp}"tasks"${sp}:${sp}[`), ...list.flatMap((it, i) => (i ? [Buffer.from(`,${sp}`), it.text] : [it.text])), Buffer.from(`]${sp}}`)]);
    const poisoned = list.some((it) => it.poisons);
    const over = body.length > g.maxBodyBytes;
    const wired = wire(body, w);
    const spec: Spec = { kind: `batch.${list.length > 100 ? 'large' : list.length > 8 ? 'medium' : 'small'}`, method: 'POST', path: '/tasks/batch', headers: wired.headers, body: wired.body, framing: wired.framing, chunks: wired.chunks };
    if (over) spec.expect = [413];
    else if (poisoned) spec.expect = [400];
    else {
      spec.expect = [200];
      spec.batch = list.map((it) => it.expect);
    }
    return { transport: 'http', copies: 1, fresh: false, spec };
  });
  // Malformed as a whole: nothing in it may be created.
  const whole = fc
    .oneof(
      fc.constantFrom('{}', '{"tasks":{}}', '{"tasks":"x"}', '{"tasks":null}', '{"tasks":1}', '[]', '[{"type":"noop"}]', '{"tasks":[]}', 'null', '', '{"tasks":[{"type":"noop"}]', '{"tasks":[{"type":"noop"}],"extra":1}', '{"Tasks":[{"type":"noop"}]}'),
      fc.integer({ min: 1001, max: 1300 }).map((n) => `{"tasks":[${Array(n).fill('{"type":"noop"}').join(',')}]}`),
      fc.integer({ min: 65, max: 10000 }).map((d) => `{"x":${nest(d, 'array')},"tasks":[{"type":"noop"}]}`),
      fc.integer({ min: 100, max: 10000 }).map((d) => `{"tasks":${'['.repeat(d)}`),
      fc.tuple(fc.array(validBodyArb, { minLength: 1, maxLength: 5 }), fc.constantFrom(...SURROGATE_TOKENS, ...NUL_TOKENS)).map(([ts, tok]) => `{"tasks":[${ts.join(',')}],"note":${tok}}`),
    )
    .map((s) => postTask('batch.malformed', { headers: [JSON_CT], body: Buffer.from(s), framing: 'length' }, [400], undefined, '/tasks/batch'));
  return fc.oneof({ weight: 5, arbitrary: wellFormed }, { weight: 1, arbitrary: whole });
}

// ---------------------------------------------------------------------------------------------
// Methods and paths
// ---------------------------------------------------------------------------------------------

const POST_PATHS = ['/tasks/batch', '/tasks/batch/'];
/** GET lists tasks, POST creates one. */
const LIST_PATHS = ['/tasks', '/tasks/'];
const GET_PATHS = ['/tasks/{uuid}', `/tasks/${SEEN}`, '/healthz', '/readyz', '/healthz/', '/readyz/', '/openapi.json', '/openapi.json/'];
const OTHER_METHODS = ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'PURGE', 'SEARCH', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'MKCOL', 'REPORT', 'LINK', 'UNLINK'];
const NO_BODY = new Set(['GET', 'HEAD', 'TRACE']);

function request(kind: string, method: string, path: string, expect: number[] | undefined, extra: Partial<Spec> = {}, body?: Buffer): HttpRequest {
  const withBody = body !== undefined && !NO_BODY.has(method);
  return {
    transport: 'http',
    copies: 1,
    fresh: false,
    spec: { kind, method, path, headers: withBody ? [JSON_CT] : [], body: withBody ? body : Buffer.alloc(0), framing: withBody ? 'length' : 'none', expect, ...extra },
  };
}

const segUnit = fc.constantFrom(...'abcxyz0129-._~!$&\'()*+,;=:@'.split(''), '%20', '%2F', '%2f', '%zz', '%', '%00', '%C3%A9', '%FF', '%2e%2e');
const segArb = fc.string({ unit: segUnit, minLength: 1, maxLength: 20 });
const queryArb = fc.oneof(
  fc.constantFrom('?', '?a=1', '?a=1&a=2', '?a[]=1&a[b]=2', '?%zz=%zz', '?=&=&', '?x=%00', '?type=noop&priority=high', '?__proto__[x]=1', '?a=1#frag'),
  fc.string({ unit: fc.constantFrom(...'abc=&%+[]'.split('')), maxLength: 40 }).map((s) => `?${s}`),
  fc.integer({ min: 1000, max: 6000 }).map((n) => `?pad=${'q'.repeat(n)}`),
);

function methodsArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  const bodyArb = fc.option(validBodyArb.map((t) => Buffer.from(t)), { nil: undefined });
  return fc.oneof(
    // A known path with a method it does not take: 405 with Allow (and nothing created).
    fc.tuple(fc.constantFrom(...POST_PATHS), fc.constantFrom('GET', 'HEAD', ...OTHER_METHODS), bodyArb).map(([path, m, body]) => request('method.wrong', m, path, [405], { allow: 'POST' }, body)),
    fc.tuple(fc.constantFrom(...LIST_PATHS), fc.constantFrom(...OTHER_METHODS), bodyArb).map(([path, m, body]) => request('method.wrong', m, path, [405], { allow: 'GET, HEAD, POST' }, body)),
    fc.tuple(fc.constantFrom(...GET_PATHS), fc.constantFrom('POST', ...OTHER_METHODS), bodyArb, fc.uuid(), fc.nat()).map(([path, m, body, uuid, seen]) =>
      request('method.wrong', m, path.replace('{uuid}', uuid), [405], { allow: 'GET, HEAD', seen }, body),
    ),
    // Unknown paths, whatever the method: 404.
    fc.tuple(fc.constantFrom('/', '/task', '/tasksx', '/tasks/a/', '/tasks/batch/', '/healthz/', '/readyz/', '/x-', '/.well-known/', '/api/v1/', '/metrics/', '/tasks/%2e%2e/'), fc.option(segArb, { nil: '' }), fc.constantFrom('GET', 'HEAD', 'POST', ...OTHER_METHODS), bodyArb).map(
      ([prefix, seg, m, body]) => {
        const path = prefix.endsWith('/') && seg === '' && prefix !== '/' ? `${prefix}x` : prefix + seg;
        return request('path.unknown', m, path, [404], {}, body);
      },
    ),
    fc.tuple(fc.constantFrom('//tasks', '/tasks%2Fbatch', '/%74asks', '/../tasks', '/tasks/./batch', '/metrics', '/.env', '/favicon.ico', '/tasks/batch/batch'), fc.constantFrom('GET', 'POST', 'PUT'), bodyArb).map(([path, m, body]) => request('path.odd', m, path, undefined, {}, body)),
    fc.tuple(fc.integer({ min: 1000, max: 12000 }), fc.constantFrom('GET', 'POST', 'DELETE')).map(([n, m]) => request('path.long-unknown', m, `/x-${'a'.repeat(n)}`, [404])),
    // Past node's 16 KiB head limit: refused, but still as a problem the client can read.
    fc.tuple(fc.integer({ min: 17000, max: 40000 }), fc.constantFrom('GET', 'POST')).map(([n, m]) => request('path.too-long', m, `/tasks/${'a'.repeat(n)}`, [408, 414, 431])),
    // GET /tasks/:id: ids answered 201 earlier, unknown ids, and things that are not ids.
    fc.tuple(fc.constantFrom(`/tasks/${SEEN}`, `/tasks/${SEEN_UPPER}`, `/tasks/${SEEN}/`), fc.constantFrom('GET', 'HEAD'), fc.nat()).map(([path, m, seen]) => request('get.seen', m, path, [200], { seen })),
    // A query parameter the route does not know is refused, not ignored.
    fc.tuple(fc.constantFrom('GET', 'HEAD'), fc.nat()).map(([m, seen]) => request('get.unknown-param', m, `/tasks/${SEEN}?x=1`, [400], { seen })),
    fc.tuple(fc.uuid(), fc.boolean(), fc.constantFrom('GET', 'HEAD')).map(([id, upper, m]) => request('get.unknown', m, `/tasks/${upper ? id.toUpperCase() : id}`, [404])),
    fc.tuple(fc.oneof(segArb, fc.constantFrom('%zz', '%00', '%', 'a%2Fb', '00000000-0000-0000-0000-00000000000g', '0190a1b2c3d47e5f8a9b0c1d2e3f4a5b', '{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}', 'null', 'undefined', '-1', '0'), fc.integer({ min: 200, max: 8000 }).map((n) => 'f'.repeat(n)))).map(([id]) =>
      request('get.not-an-id', 'GET', `/tasks/${id}`, id === 'batch' ? [405] : [400]),
    ),
    fc.tuple(fc.constantFrom('/healthz', '/readyz', '/healthz/', '/HEALTHZ', '/readyz/'), fc.option(queryArb, { nil: '' }), fc.constantFrom('GET', 'HEAD')).map(([path, q, m]) => request('health', m, path + q, path === '/HEALTHZ' ? undefined : [200])),
    // The document needs no key either, whatever credential comes with it.
    fc.tuple(fc.constantFrom('/openapi.json', '/openapi.json/', '/OPENAPI.json'), fc.option(queryArb, { nil: '' }), fc.constantFrom('GET', 'HEAD')).map(([path, q, m]) => request('openapi', m, path + q, [200])),
    // Decorated but valid: a query string or a trailing slash does not change POST /tasks.
    fc.tuple(validBodyArb, fc.constantFrom('/tasks?', '/tasks/'), fc.option(queryArb, { nil: '' })).map(([text, path, q]) =>
      request('path.decorated', 'POST', path === '/tasks?' ? `/tasks${q || '?'}` : `/tasks/${q}`, VALID, { task: expectedTask(text, undefined, g) }, Buffer.from(text)),
    ),
    fc.tuple(validBodyArb).map(([text]) => request('path.case', 'POST', '/TASKS', undefined, {}, Buffer.from(text))),
  );
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

const latin1Arb = fc.string({ unit: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 20 });

function headersArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  const withHeaders = (kind: string, extra: [string, string][], text: string, expect: number[] | undefined, headerKey?: string): FuzzRequest =>
    postTask(kind, { headers: [JSON_CT, ...extra], body: Buffer.from(text), framing: 'length' }, expect, expect === VALID || expect === KEYED ? expectedTask(text, headerKey, g) : undefined);
  return fc.oneof(
    fc.tuple(validBodyArb, fc.integer({ min: 1000, max: 12000 })).map(([t, n]) => withHeaders('headers.long', [['X-Pad', 'p'.repeat(n)]], t, VALID)),
    fc.tuple(validBodyArb, fc.integer({ min: 20, max: 300 })).map(([t, n]) => withHeaders('headers.many', Array.from({ length: n }, (_, i): [string, string] => [`X-H-${i}`, `v${i}`]), t, VALID)),
    fc.tuple(validBodyArb, fc.integer({ min: 17000, max: 60000 }), fc.boolean()).map(([t, n, many]) =>
      withHeaders('headers.too-large', many ? Array.from({ length: Math.ceil(n / 1000) }, (_, i): [string, string] => [`X-Big-${i}`, 'b'.repeat(1000)]) : [['X-Pad', 'p'.repeat(n)]], t, [431]),
    ),
    fc.tuple(validBodyArb, fc.constantFrom(...KEY_POOL), fc.constantFrom(...KEY_POOL)).map(([t, a, b]) => withHeaders('headers.dup-key', [['Idempotency-Key', a], ['Idempotency-Key', b]], t, [400])),
    fc.tuple(validBodyArb, fc.oneof(fc.constantFrom('', 'x'.repeat(256), 'a b', 'k\tk', 'k k'), latin1Arb)).map(([t, k]) => withHeaders('headers.bad-key', [['Idempotency-Key', k]], t, [400])),
    // A header key that differs from the body's.
    fc.tuple(fc.constantFrom(...KEY_POOL), fc.constantFrom(...KEY_POOL)).filter(([a, b]) => a !== b).map(([a, b]) => withHeaders('headers.key-mismatch', [['Idempotency-Key', b]], JSON.stringify({ type: 'noop', idempotency_key: a }), [400])),
    fc.tuple(validBodyArb, fc.oneof(fc.constantFrom('', ' ', 'a b', 'x'.repeat(129), 'y'.repeat(4000), '\t', 'id\tid'), latin1Arb), fc.boolean()).map(([t, id, dup]) =>
      withHeaders('headers.request-id', dup ? [['X-Request-Id', id], ['X-Request-Id', 'ok-id']] : [['X-Request-Id', id]], t, VALID),
    ),
    fc.tuple(validBodyArb, fc.string({ unit: fc.constantFrom(...'abcXYZ019-_.:'.split('')), minLength: 1, maxLength: 128 })).map(([t, id]) => withHeaders('headers.request-id-sane', [['X-Request-Id', id]], t, VALID)),
    fc.tuple(validBodyArb, fc.constantFrom<[string, string][]>(
      [['Accept', 'text/html']],
      [['Accept', '*/*;q=0, application/xml']],
      [['Accept-Encoding', 'gzip, br, zstd']],
      [['Accept-Charset', 'latin1']],
      [['Connection', 'close']],
      [['Connection', 'keep-alive, Upgrade'], ['Upgrade', 'h2c']],
      [['Cookie', `a=${'c'.repeat(3000)}`]],
      [['X-Forwarded-For', '::1, 1.2.3.4, garbage']],
      [['Origin', 'null']],
      [['Range', 'bytes=0-1']],
      [['If-None-Match', '*']],
      [['TE', 'trailers']],
      [['Content-Language', 'xx']],
      [['X-Latin1', '\u00e9\u00ff\u0080']],
    )).map(([t, extra]) => withHeaders('headers.misc', extra, t, VALID)),
    fc.tuple(validBodyArb, wireArb).map(([t, w]) => postTask('headers.expect-continue', wire(Buffer.from(t), w, [JSON_CT, ['Expect', '100-continue']]), VALID, expectedTask(t, undefined, g))),
    fc.tuple(validBodyArb, fc.constantFrom('foo', '200-ok', '100-wait')).map(([t, e]) => withHeaders('headers.expect-unknown', [['Expect', e]], t, [417])),
    fc.tuple(validBodyArb, fc.constantFrom<[string, string][]>([['Content-Type', 'text/plain']], [['Content-Type', 'application/json']])).map(([t, extra]) => withHeaders('headers.dup-content-type', extra, t, undefined)),
    // An explicit Content-Length is sent as given (leading zeros still say the right length).
    fc.tuple(validBodyArb).map(([t]) => postTask('headers.length-zeros', { headers: [JSON_CT, ['Content-Length', `000${Buffer.byteLength(t)}`]], body: Buffer.from(t), framing: 'length' }, undefined)),
  );
}

// ---------------------------------------------------------------------------------------------
// Concurrency: the same request several times at once
// ---------------------------------------------------------------------------------------------

function burstArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(
    fc.tuple(keyedArb, layoutArb, wireArb, fc.integer({ min: 2, max: 8 })).map(([k, l, w, n]): FuzzRequest => ({ transport: 'http', copies: n, fresh: false, spec: keyedSpec(k, l, w, g, 'burst.keyed') })),
    fc.tuple(validBodyArb, fc.integer({ min: 2, max: 4 })).map(([t, n]): FuzzRequest => ({ ...postTask('burst.unkeyed', { headers: [JSON_CT], body: Buffer.from(t), framing: 'length' }, VALID, expectedTask(t, undefined, g)), copies: n })),
    fc.tuple(fc.array(itemArbs(g).keyed, { minLength: 1, maxLength: 6 }), fc.integer({ min: 2, max: 4 })).map(([items, n]): FuzzRequest => ({
      transport: 'http',
      copies: n,
      fresh: false,
      spec: { kind: 'burst.batch', method: 'POST', path: '/tasks/batch', headers: [JSON_CT], body: Buffer.from(`{"tasks":[${items.map((i) => i.text.toString()).join(',')}]}`), framing: 'length', expect: [200], batch: items.map((i) => i.expect) },
    })),
    fc.tuple(fc.nat(), fc.integer({ min: 2, max: 8 })).map(([seen, n]): FuzzRequest => ({ ...request('burst.get', 'GET', `/tasks/${SEEN}`, [200], { seen }), copies: n })),
  );
}

// ---------------------------------------------------------------------------------------------
// Raw bytes: framing the HTTP parser must survive
// ---------------------------------------------------------------------------------------------

/** The bytes of a well-framed request (Content-Length set), for raw sends. */
export function serialize(s: Spec, opts: { version?: string; close?: boolean; host?: boolean } = {}): Buffer {
  const lines = [`${s.method} ${s.path} HTTP/${opts.version ?? '1.1'}`];
  if (opts.host !== false) lines.push('Host: 127.0.0.1');
  for (const [k, v] of s.headers) lines.push(`${k}: ${v}`);
  if (s.framing !== 'none') lines.push(`Content-Length: ${s.body.length}`);
  if (opts.close) lines.push('Connection: close');
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), s.body]);
}

/**
 * Raw request bytes: the head (and any framing after the body) byte for byte, the body as UTF-8, as
 * its declared length counts it. In latin1, characters past U+00FF would lose their high byte (U+0127
 * becomes an apostrophe), and a length declared shorter than the body could cover all of it.
 */
export function rawBytes(before: string, body: string, after = ''): Buffer {
  return Buffer.concat([Buffer.from(before, 'latin1'), Buffer.from(body), Buffer.from(after, 'latin1')]);
}

/** Well-framed raw requests end in a close; they wait for it as long as node:http requests wait for answers. */
const WELL_FRAMED_WAIT_MS = 30_000;

function rawArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  // Broken POSTs carry a good key, so the server gets as far as it can; a task it reports is alpha's.
  const broken = (kind: string, bytes: Buffer | string, halfClose = true, waitMs = 2000): FuzzRequest => ({ transport: 'raw', kind, bytes: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1'), halfClose, waitMs, parts: null, tenant: 'alpha' });
  const head = (cl: string, extra = '') => `POST /tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key('alpha-rw')}\r\nContent-Type: application/json\r\n${cl ? `Content-Length: ${cl}\r\n` : ''}${extra}\r\n`;
  const unkeyed = fc.oneof(
    fc.tuple(validBodyArb).map(([t]) => ({ kind: 'raw.post', method: 'POST', path: '/tasks', headers: [JSON_CT], body: Buffer.from(t), framing: 'length', expect: VALID, task: expectedTask(t, undefined, g) } as Spec)),
    fc.constant({ kind: 'raw.health', method: 'GET', path: '/healthz', headers: [], body: Buffer.alloc(0), framing: 'none', expect: [200] } as Spec),
    fc.uuid().map((id) => ({ kind: 'raw.get', method: 'GET', path: `/tasks/${id}`, headers: [], body: Buffer.alloc(0), framing: 'none', expect: [404] } as Spec)),
    hostileBodyArb(g)
      .filter((b) => b.expect !== undefined && !b.valid)
      .map((b) => ({ kind: `raw.${b.kind}`, method: 'POST', path: '/tasks', headers: [JSON_CT], body: b.body, framing: 'length', expect: b.expect } as Spec)),
    fc.constantFrom('PUT', 'DELETE').map((m) => ({ kind: 'raw.wrong-method', method: m, path: '/tasks', headers: [], body: Buffer.alloc(0), framing: 'none', expect: [405], allow: 'GET, HEAD, POST' } as Spec)),
  );
  const wellFramed = fc.tuple(unkeyed, fc.integer()).map(([s, seed]) => withCredential(s, prng(seed)));
  return fc.oneof(
    // Declared shorter than sent: the server reads a prefix (never valid JSON) and the rest as garbage.
    fc.tuple(validBodyArb, fc.nat()).map(([t, n]) => broken('raw.short-length', rawBytes(head(String(n % Buffer.byteLength(t))), t))),
    // Declared longer than sent, then EOF (or, without EOF, the client gives up).
    fc.tuple(validBodyArb, fc.integer({ min: 1, max: 5000 }), fc.boolean()).map(([t, extra, half]) => broken('raw.long-length', rawBytes(head(String(Buffer.byteLength(t) + extra)), t), half, half ? 2000 : 400)),
    fc.tuple(validBodyArb, fc.constantFrom('abc', '-1', '1.5', '0x10', '', ' ', '1 1', '99999999999999999999', '+15', '15, 16')).map(([t, cl]) => broken('raw.bad-length', rawBytes(`${head('')}`.replace('\r\n\r\n', `\r\nContent-Length: ${cl}\r\n\r\n`), t))),
    fc.tuple(validBodyArb).map(([t]) => broken('raw.two-lengths', rawBytes(head(String(Buffer.byteLength(t)), `Content-Length: ${Buffer.byteLength(t) + 1}\r\n`), t))),
    fc.tuple(validBodyArb).map(([t]) => broken('raw.length-and-chunked', rawBytes(head(String(Buffer.byteLength(t)), 'Transfer-Encoding: chunked\r\n') + `${Buffer.byteLength(t).toString(16)}\r\n`, t, '\r\n0\r\n\r\n'))),
    fc.tuple(validBodyArb, fc.constantFrom('zz', '-1', 'ffffffffffffffffff', '1;', '')).map(([t, size]) => broken('raw.bad-chunk', rawBytes(head('', 'Transfer-Encoding: chunked\r\n') + `${size}\r\n`, t, '\r\n0\r\n\r\n'))),
    fc.tuple(validBodyArb, fc.constantFrom('gzip', 'chunked, gzip', 'identity', 'chunked, chunked', 'xchunked')).map(([t, te]) => broken('raw.transfer-encoding', rawBytes(head('', `Transfer-Encoding: ${te}\r\n`) + `${Buffer.byteLength(t).toString(16)}\r\n`, t, '\r\n0\r\n\r\n'))),
    fc.constantFrom(
      'GET /healthz HTTP/1.1\r\n\r\n',
      'GET /healthz HTTP/1.1\nHost: x\n\n',
      'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n',
      'GET /healthz\r\n\r\n',
      'get /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'FOO /tasks HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /x-\u00e9\u00ff HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /tasks/ab cd HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0000b\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n  folded\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Space : a\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      'CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n',
      '\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    ).map((s) => broken('raw.bad-head', s)),
    fc.uint8Array({ minLength: 1, maxLength: 400 }).map((b) => broken('raw.garbage', Buffer.from(b))),
    // Well framed, so every answer is checked like any other: HTTP/1.0, pipelining, and a half-close.
    wellFramed.map((s): FuzzRequest => ({ transport: 'raw', kind: 'raw.http10', bytes: serialize(s, { version: '1.0', host: false }), halfClose: false, waitMs: WELL_FRAMED_WAIT_MS, parts: [s] })),
    fc.array(wellFramed, { minLength: 2, maxLength: 4 }).map((parts): FuzzRequest => ({
      transport: 'raw',
      kind: 'raw.pipelined',
      bytes: Buffer.concat(parts.map((p, i) => serialize(p, { close: i === parts.length - 1 }))),
      halfClose: false,
      waitMs: WELL_FRAMED_WAIT_MS,
      parts,
    })),
    // Sent whole, then the sending side closed: each request is still answered (none makes an untold task).
    fc.array(wellFramed, { minLength: 1, maxLength: 3 }).map((parts): FuzzRequest => ({
      transport: 'raw',
      kind: 'raw.half-closed',
      bytes: Buffer.concat(parts.map((p) => serialize(p))),
      halfClose: true,
      waitMs: WELL_FRAMED_WAIT_MS,
      parts,
    })),
    fc.tuple(validBodyArb, fc.integer()).map(([t, seed]): FuzzRequest => {
      const s = withCredential({ kind: 'raw.absolute-form', method: 'POST', path: 'http://127.0.0.1/tasks', headers: [JSON_CT], body: Buffer.from(t), framing: 'length' }, prng(seed));
      return { transport: 'raw', kind: s.kind, bytes: serialize(s, { close: true }), halfClose: false, waitMs: WELL_FRAMED_WAIT_MS, parts: [s] };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Keys and tenants
// ---------------------------------------------------------------------------------------------

const http = (spec: Spec, copies = 1): HttpRequest => ({ transport: 'http', copies, fresh: false, spec });

function authArb(g: GenSettings): fc.Arbitrary<FuzzRequest> {
  const hostile = (s: Spec, seed: number) => withCredential(s, prng(seed), 0);
  const good = (s: Spec, seed: number) => withCredential(s, prng(seed), 1);
  return fc.oneof(
    // Only the credential decides: a valid task, a small valid batch, a GET of the tenant's task.
    fc.tuple(validBodyArb, wireArb, fc.integer()).map(([t, w, seed]) => http(hostile(postTask('auth.post', wire(Buffer.from(t), w), VALID, expectedTask(t, undefined, g)).spec, seed))),
    fc.tuple(fc.array(validBodyArb, { minLength: 1, maxLength: 4 }), fc.integer()).map(([ts, seed]) =>
      http(
        hostile(
          { kind: 'auth.batch', method: 'POST', path: '/tasks/batch', headers: [JSON_CT], body: Buffer.from(`{"tasks":[${ts.join(',')}]}`), framing: 'length', expect: [200], batch: ts.map((t) => ({ statuses: VALID, task: expectedTask(t, undefined, g) })) },
          seed,
        ),
      ),
    ),
    fc.tuple(fc.nat(), fc.constantFrom('GET', 'HEAD'), fc.integer()).map(([seen, m, seed]) => http(hostile(request('auth.get', m, `/tasks/${SEEN}`, [200], { seen }).spec, seed))),
    // Another tenant's task is not found, exactly like a task that does not exist.
    fc.tuple(fc.nat(), fc.constantFrom('GET', 'HEAD'), fc.integer()).map(([seen, m, seed]) => http(good(request('auth.get-other', m, `/tasks/${SEEN}`, [200], { seen, seenFrom: 'other' }).spec, seed))),
    // One idempotency key from several tenants at once: a task per tenant, never another's replay.
    fc.tuple(keyedArb, layoutArb, fc.integer({ min: 1, max: 3 }), fc.integer()).map(([k, l, n, seed]): FuzzRequest => {
      const s = keyedSpec(k, l, { how: 'length', chunks: 2 }, g, 'auth.same-key');
      const rnd = prng(seed);
      return { ...http(asKey(s, 'alpha-rw', rnd), n), together: [asKey(s, 'beta-w', rnd), asKey(s, 'admin', rnd, 'alpha'), asKey(s, 'admin', rnd, 'gamma'), asKey(s, 'beta-rw', rnd)] };
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Operators: cancel and retry, one task or in bulk
// ---------------------------------------------------------------------------------------------

const ACTIONS = ['cancel', 'retry'] as const;
const STATUS_WORDS = [...STATUSES];
const filterArb = fc.record(
  {
    type: fc.constantFrom('noop', 'flaky', 'always_fail', 'sleeper', 'x.y:z'),
    // Names of schedulesArb's pool (a triggered task carries one), and one no schedule has.
    schedule: fc.constantFrom('nightly', 'a', 'no-such-schedule'),
    priority: fc.oneof(fc.constantFrom(...PRIORITIES), fc.subarray(PRIORITIES, { minLength: 1 })),
    created_after: fc.constantFrom('2020-01-01T00:00:00Z', '2026-12-05T10:00:00+01:00', '2999-01-01T00:00:00.123Z'),
    created_before: fc.constantFrom('2999-01-01T00:00:00Z', '2020-01-01T00:00:00-05:00'),
  },
  { requiredKeys: [] },
);

/** A position to carry on from, as the service would give one: anywhere in time, any id. */
const cursorArb = fc
  .tuple(fc.constantFrom('2020-01-01 00:00:00+00', '2026-12-05 10:00:00.123456+01', '2999-01-01 00:00:00.5-05'), fc.uuid())
  .map(([createdAt, id]) => encodeCursor({ createdAt, id: id.toLowerCase() }));

/** A valid bulk body for `action` (a status it applies to, small limits: the traffic stays bounded). */
function bulkBodyArb(action: (typeof ACTIONS)[number]): fc.Arbitrary<Record<string, unknown>> {
  const statuses = [...ACTION_STATUSES[action]];
  return fc
    .record({ filter: filterArb, status: fc.option(fc.subarray(statuses, { minLength: 1 }), { nil: undefined }), limit: fc.integer({ min: 1, max: 20 }), dry_run: fc.boolean(), cursor: fc.option(cursorArb, { nil: undefined }) })
    .map(({ filter, status, limit, dry_run, cursor }) => ({ filter: status ? { ...filter, status } : filter, limit, dry_run, ...(cursor ? { cursor } : {}) }));
}

const badBulkArb = fc.oneof(
  fc.constantFrom('{"filter":{"status":"bogus"}}', '{"filter":{"colour":"red"}}', '{"filter":[]}', '{"limit":0}', '{"limit":1e9}', '{"limit":"5"}', '{"dry_run":"yes"}', '{"extra":1}', '[]', '"dead"', '{"filter":{"created_after":"yesterday"}}', '{"filter":{"priority":["high","urgent"]}}', '{"filter":{"type":""}}', '{"cursor":"abc"}', '{"cursor":5}', '{"cursor":null}', '{"cursor":"WyIyMDI2IiwieCJd"}', '{"filter":{"created_before":"9999-12-31T23:59:59-23:59"}}', `{"cursor":"${Buffer.from('["2026-02-30 00:00:00+00","01234567-89ab-7def-8123-456789abcdef"]').toString('base64url')}"}`),
  fc.constantFrom(...STATUS_WORDS).map((s) => JSON.stringify({ filter: { status: [s, 'nope'] } })),
);

const listQueryArb = fc
  .record(
    {
      status: fc.subarray(STATUS_WORDS, { minLength: 1 }).map((s) => s.join(',')),
      type: fc.constantFrom('noop', 'flaky', 'sleeper', 'a.b:c'),
      priority: fc.constantFrom(...PRIORITIES),
      created_after: fc.constantFrom('2020-01-01T00:00:00Z', '2026-12-05T10:00:00.5%2B01:00'),
      created_before: fc.constantFrom('2999-01-01T00:00:00Z'),
      schedule: fc.constantFrom('nightly', 'a', 'no-such-schedule'),
      limit: fc.integer({ min: 1, max: 500 }).map(String),
      cursor: cursorArb,
    },
    { requiredKeys: [] },
  )
  .map((q) => Object.entries(q).map(([k, v]) => `${k}=${v}`).join('&'));
const badListQueryArb = fc.constantFrom('status=bogus', 'priority=urgent', 'limit=0', 'limit=501', 'limit=x', 'cursor=abc', 'type=a%20b', 'type=a&type=b', 'colour=red', 'created_after=today', 'status=', 'cursor=WyIyMDI2IiwieCJd', 'created_after=0000-01-01T00:00:00Z', 'created_before=9999-12-31T23:59:59-23:59', `cursor=${Buffer.from('["2026-02-30 00:00:00+00","01234567-89ab-7def-8123-456789abcdef"]').toString('base64url')}`);

function operatorArb(): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(
    // GET /tasks: filters (answered with the tenant's own tasks only), and parameters it refuses.
    fc.tuple(listQueryArb, fc.constantFrom('GET', 'HEAD')).map(([q, m]) => request('op.list', m, `/tasks${q ? `?${q}` : ''}`, [200])),
    badListQueryArb.map((q) => request('op.list-invalid', 'GET', `/tasks?${q}`, [400])),
    fc.constantFrom('GET', 'HEAD').map((m) => request('op.queues', m, '/queues', [200])),
    fc.constantFrom('POST', 'PUT', 'DELETE').map((m) => request('op.queues-method', m, '/queues', [405], { allow: 'GET, HEAD' })),
    // A task the tenant was told about, whatever its state by now.
    fc.tuple(fc.constantFrom(...ACTIONS), fc.nat(), fc.boolean()).map(([a, seen, upper]) =>
      request(`op.${a}-seen`, 'POST', `/tasks/${upper ? SEEN_UPPER : SEEN}/${a}`, a === 'cancel' ? [200, 202, 409] : [200, 409], { seen }),
    ),
    // Another tenant's task is not found; nor is an unknown one; a non-id is a 400.
    fc.tuple(fc.constantFrom(...ACTIONS), fc.nat()).map(([a, seen]) => request(`op.${a}-other`, 'POST', `/tasks/${SEEN}/${a}`, [404], { seen, seenFrom: 'other' })),
    fc.tuple(fc.constantFrom(...ACTIONS), fc.uuid()).map(([a, id]) => request(`op.${a}-unknown`, 'POST', `/tasks/${id}/${a}`, [404])),
    fc.tuple(fc.constantFrom(...ACTIONS), fc.constantFrom('x', '123', 'null', '%zz', 'f'.repeat(40), '00000000-0000-0000-0000-00000000000g')).map(([a, id]) => request(`op.${a}-not-an-id`, 'POST', `/tasks/${id}/${a}`, [400])),
    fc.tuple(fc.constantFrom(...ACTIONS), fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH'), fc.uuid(), fc.boolean()).map(([a, m, id, bulk]) => request('op.method-wrong', m, bulk ? `/tasks/${a}` : `/tasks/${id}/${a}`, [405], { allow: 'POST' })),
    fc.constantFrom(...ACTIONS).chain((a) => fc.tuple(bulkBodyArb(a), layoutArb).map(([b, l]) => request(`op.bulk-${a}`, 'POST', `/tasks/${a}`, [200], {}, Buffer.from(render(b, prng(l.seed), l.spacing))))),
    fc.tuple(fc.constantFrom(...ACTIONS), badBulkArb).map(([a, b]) => request(`op.bulk-${a}-invalid`, 'POST', `/tasks/${a}`, [400], {}, Buffer.from(b))),
  );
}

// ---------------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------------

/** A few names, so creations collide (409), and reads, changes and triggers find them (or not: 404). */
const SCHEDULE_NAMES = ['nightly', 'hourly.report', 'a', 'Z-9_x.y', 'n'.repeat(128)];
/**
 * Expressions that fire nowhere near a fuzz run (1 January, 29 February, a year from now at the
 * soonest but for a run across New Year), so no tick makes a task no answer told of.
 */
const QUIET_CRONS = ['0 0 1 1 *', '30 4 29 2 *', '0 0 0 1 1 *', '@yearly', '15 6 2 1 *'];
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe'];

const scheduleTaskArb = fc.record(
  {
    // noop: a triggered task ends at once, so the run drains.
    type: fc.constant('noop'),
    payload: payloadArb,
    priority: fc.constantFrom(...PRIORITIES),
    max_retries: fc.integer({ min: 0, max: 3 }),
    retry: fc.record({ backoff: fc.constantFrom('exponential', 'linear', 'fixed'), base_ms: fc.integer({ min: 1, max: 1000 }), jitter: fc.constantFrom('full', 'none') }, { requiredKeys: [] }),
    timeout_ms: fc.integer({ min: 1, max: 86_400_000 }),
  },
  { requiredKeys: ['type'] },
);

const scheduleFieldsArb = fc.record(
  {
    cron: fc.constantFrom(...QUIET_CRONS),
    timezone: fc.constantFrom(...ZONES),
    task: scheduleTaskArb,
    misfire: fc.constantFrom('skip', 'run_once', 'catch_up'),
    catch_up_limit: fc.integer({ min: 1, max: 1000 }),
    overlap: fc.constantFrom('allow', 'skip'),
    paused: fc.boolean(),
  },
  { requiredKeys: [] },
);

/** Bodies the schedule routes must refuse (400), whether the schedule exists or not. */
const BAD_SCHEDULE_FIELDS: Record<string, unknown>[] = [
  { cron: '61 * * * *' },
  { cron: '* * *' },
  { cron: '0 0 30 2 *' },
  { cron: '' },
  { cron: 5 },
  { timezone: 'Mars/Olympus' },
  { timezone: '' },
  { task: { type: 'no op' } },
  { task: { type: 'noop', idempotency_key: 'k' } },
  { task: { type: 'noop', delay_ms: 1000 } },
  { task: { type: 'noop', run_at: '2030-01-01T00:00:00Z' } },
  { task: { type: 'noop', retry: { base_ms: 0 } } },
  { task: { type: 'noop', payload: null } },
  { task: 'noop' },
  { misfire: 'later' },
  { catch_up_limit: 0 },
  { catch_up_limit: 1001 },
  { overlap: 'never' },
  { paused: 'yes' },
  { colour: 'red' },
];

function schedulesArb(): fc.Arbitrary<FuzzRequest> {
  const name = fc.constantFrom(...SCHEDULE_NAMES);
  const at = (n: string) => `/schedules/${n}`;
  const body = (o: unknown, l: { seed: number; spacing: number }) => Buffer.from(render(o, prng(l.seed), l.spacing));
  const badName = fc.constantFrom('-x', 'a%20b', '%C3%A9', 'n'.repeat(129), '.hidden', '%zz');
  return fc.oneof(
    // Create: a name of the pool (taken, by now, or not), or one the API must refuse.
    fc.tuple(name, fc.constantFrom(...QUIET_CRONS), scheduleTaskArb, scheduleFieldsArb, layoutArb).map(([n, cron, task, extra, l]) => request('sched.create', 'POST', '/schedules', [201, 409], {}, body({ ...extra, name: n, cron, task }, l))),
    fc.tuple(name, fc.constantFrom(...BAD_SCHEDULE_FIELDS), layoutArb).map(([n, bad, l]) => request('sched.create-invalid', 'POST', '/schedules', [400], {}, body({ name: n, cron: '@yearly', task: { type: 'noop' }, ...bad }, l))),
    fc.tuple(fc.constantFrom('-x', 'a b', 'é', 'n'.repeat(129), '.hidden', '', 'a/b', 5, null), layoutArb).map(([n, l]) => request('sched.create-bad-name', 'POST', '/schedules', [400], {}, body({ name: n, cron: '@yearly', task: { type: 'noop' } }, l))),
    fc.constantFrom('{}', '[]', '"x"', 'null', '{"name":"a"}', '{"name":"a","cron":"@yearly"}').map((b) => request('sched.create-malformed', 'POST', '/schedules', [400], {}, Buffer.from(b))),
    // Reads: the list (with its query), one schedule with a preview, and what they refuse.
    fc.tuple(fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }), fc.constantFrom('GET', 'HEAD')).map(([limit, m]) => request('sched.list', m, `/schedules${limit ? `?limit=${limit}` : ''}`, [200])),
    fc.constantFrom('limit=0', 'limit=501', 'limit=x', 'cursor=abc!', 'cursor=', 'colour=red', 'limit=1&limit=2').map((q) => request('sched.list-invalid', 'GET', `/schedules?${q}`, [400])),
    fc.tuple(name, fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }), fc.constantFrom('GET', 'HEAD')).map(([n, preview, m]) => request('sched.get', m, `${at(n)}${preview ? `?preview=${preview}` : ''}`, [200, 404])),
    fc.tuple(name, fc.constantFrom('preview=0', 'preview=101', 'preview=x', 'preview=1&preview=2', 'other=1')).map(([n, q]) => request('sched.get-invalid', 'GET', `${at(n)}?${q}`, [400])),
    fc.tuple(badName, fc.constantFrom('GET', 'DELETE', 'PATCH')).map(([n, m]) => request('sched.bad-name', m, at(n), [400], {}, m === 'PATCH' ? Buffer.from('{"paused":true}') : undefined)),
    // Changes: a patch, pause and resume, delete, trigger; and patches the API must refuse.
    fc.tuple(name, scheduleFieldsArb, layoutArb).map(([n, f, l]) => request('sched.patch', 'PATCH', at(n), Object.keys(f).length ? [200, 404] : [400], {}, body(f, l))),
    fc.tuple(name, fc.boolean()).map(([n, paused]) => request('sched.pause', 'PATCH', at(n), [200, 404], {}, Buffer.from(JSON.stringify({ paused })))),
    fc.tuple(name, fc.constantFrom(...BAD_SCHEDULE_FIELDS, { name: 'renamed' }), layoutArb).map(([n, bad, l]) => request('sched.patch-invalid', 'PATCH', at(n), [400], {}, body(bad, l))),
    name.map((n) => request('sched.delete', 'DELETE', at(n), [200, 404])),
    name.map((n) => request('sched.trigger', 'POST', `${at(n)}/trigger`, [201, 404])),
    // Methods a schedule path does not take.
    fc.tuple(name, fc.constantFrom('PUT', 'POST', 'OPTIONS')).map(([n, m]) => request('sched.method-wrong', m, at(n), [405], { allow: 'GET, HEAD, PATCH, DELETE' })),
    fc.tuple(name, fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH')).map(([n, m]) => request('sched.method-wrong', m, `${at(n)}/trigger`, [405], { allow: 'POST' })),
    fc.constantFrom('PUT', 'DELETE', 'PATCH').map((m) => request('sched.method-wrong', m, '/schedules', [405], { allow: 'GET, HEAD, POST' })),
  );
}

// ---------------------------------------------------------------------------------------------
// Workflows
// ---------------------------------------------------------------------------------------------

/** Step types that end soon: at once, after a failure or two, or dead (cancelling their dependents). */
const STEP_TYPES = ['noop', 'noop', 'noop', 'echo', 'flaky', 'always_fail', 'sleeper'];

/**
 * A valid workflow of 1-6 steps from a seed: each step depends on some earlier ones (so there is no
 * cycle), listed in a shuffled order (the order does not matter), with task fields now and then.
 */
export function workflowBody(seed: number, name: string, onFailure?: string): Record<string, unknown> {
  const rnd = prng(seed);
  const n = 1 + Math.floor(rnd() * 6);
  const keys = Array.from({ length: n }, (_, i) => pick(rnd, ['s', 'step.', 'k:', 'A_', 'x-']) + i);
  const steps = keys.map((key, i) => {
    const o: Record<string, unknown> = { key, type: pick(rnd, STEP_TYPES) };
    if (o.type === 'flaky') o.payload = { fail_attempts: 1 };
    else if (o.type === 'sleeper') o.payload = { sleep_ms: Math.floor(rnd() * 4) };
    else if (rnd() < 0.3) o.payload = { i, note: 'é😀' };
    const deps = keys.slice(0, i).filter(() => rnd() < 0.5);
    if (deps.length || rnd() < 0.3) o.depends_on = deps;
    if (rnd() < 0.3) o.priority = pick(rnd, PRIORITIES);
    o.max_retries = Math.floor(rnd() * 3);
    if (rnd() < 0.2) o.retry = { backoff: 'fixed', base_ms: 1 };
    if (rnd() < 0.2) o.timeout_ms = 60_000;
    return o;
  });
  for (let i = steps.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [steps[i], steps[j]] = [steps[j]!, steps[i]!];
  }
  return { name, ...(onFailure ? { on_failure: onFailure } : {}), tasks: steps };
}

const WF_NAMES = ['etl', 'nightly.report', 'a', 'Z-9_x:y'];
const WF_KEYS = Array.from({ length: 12 }, (_, i) => `wf-k${i}`);

/** Bodies POST /workflows must refuse (400), each for one reason. */
const BAD_WORKFLOWS: unknown[] = [
  {},
  { name: 'x' },
  { name: 'x', tasks: [] },
  { name: 'x', tasks: {} },
  { name: 'has space', tasks: [{ key: 'a', type: 'noop' }] },
  { name: 'x', on_failure: 'explode', tasks: [{ key: 'a', type: 'noop' }] },
  { name: 'x', colour: 'red', tasks: [{ key: 'a', type: 'noop' }] },
  { name: 'x', tasks: ['noop'] },
  { name: 'x', tasks: [{ type: 'noop' }] },
  { name: 'x', tasks: [{ key: '-a', type: 'noop' }] },
  { name: 'x', tasks: [{ key: 'a', type: 'no op' }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop', priority: 'urgent' }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop', payload: null }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop', delay_ms: 5 }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop', idempotency_key: 'k' }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop', depends_on: 'b' }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop', depends_on: ['a'] }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop' }, { key: 'a', type: 'noop' }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['a', 'a'] }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop' }, { key: 'b', type: 'noop', depends_on: ['ghost'] }] },
  { name: 'x', tasks: [{ key: 'a', type: 'noop', depends_on: ['c'] }, { key: 'b', type: 'noop', depends_on: ['a'] }, { key: 'c', type: 'noop', depends_on: ['b'] }] },
  [],
  'etl',
  null,
];

const workflowQueryArb = fc
  .record(
    {
      status: fc.subarray(['running', 'succeeded', 'failed', 'cancelled'], { minLength: 1 }).map((s) => s.join(',')),
      name: fc.constantFrom(...WF_NAMES),
      created_after: fc.constantFrom('2020-01-01T00:00:00Z', '2026-12-05T10:00:00.5%2B01:00'),
      created_before: fc.constantFrom('2999-01-01T00:00:00Z'),
      limit: fc.integer({ min: 1, max: 500 }).map(String),
      cursor: cursorArb,
    },
    { requiredKeys: [] },
  )
  .map((q) => Object.entries(q).map(([k, v]) => `${k}=${v}`).join('&'));

function workflowsArb(): fc.Arbitrary<FuzzRequest> {
  const body = (o: unknown, l: { seed: number; spacing: number }) => Buffer.from(render(o, prng(l.seed), l.spacing));
  const badId = fc.constantFrom('x', '123', 'null', '%zz', 'f'.repeat(40), '00000000-0000-0000-0000-00000000000g');
  return fc.oneof(
    fc.tuple(fc.integer(), fc.constantFrom(...WF_NAMES), fc.constantFrom(undefined, 'cancel_dependents', 'continue'), layoutArb).map(([seed, name, policy, l]) => request('wf.create', 'POST', '/workflows', [201], {}, body(workflowBody(seed, name, policy), l))),
    // A key from a small pool with one of two bodies: a replay (200) or a conflict (409) once used.
    fc.tuple(fc.constantFrom(...WF_KEYS), fc.integer({ min: 0, max: 1 }), layoutArb).map(([key, variant, l]) => {
      const r = request('wf.create-keyed', 'POST', '/workflows', [201, 200, 409], {}, body(workflowBody(hash(key) + variant, WF_NAMES[variant]!), l));
      r.spec.headers.push(['Idempotency-Key', key]);
      return r;
    }),
    fc.tuple(fc.constantFrom(...BAD_WORKFLOWS), layoutArb).map(([b, l]) => request('wf.create-invalid', 'POST', '/workflows', [400], {}, body(b, l))),
    fc.constantFrom('{"name":', 'not json', '{"name":"x","tasks":[{"key":"a","type":"noop","payload":{"s":"\\u0000"}}]}').map((b) => request('wf.create-malformed', 'POST', '/workflows', [400], {}, Buffer.from(b))),
    fc.tuple(workflowQueryArb, fc.constantFrom('GET', 'HEAD')).map(([q, m]) => request('wf.list', m, `/workflows${q ? `?${q}` : ''}`, [200])),
    fc.constantFrom('status=done', 'limit=0', 'limit=501', 'limit=x', 'cursor=abc', 'name=a%20b', 'name=a&name=b', 'colour=red', 'created_after=today', 'status=').map((q) => request('wf.list-invalid', 'GET', `/workflows?${q}`, [400])),
    fc.tuple(fc.nat(), fc.constantFrom('GET', 'HEAD'), fc.boolean()).map(([seen, m, upper]) => request('wf.get', m, `/workflows/${upper ? WF_SEEN.toUpperCase() : WF_SEEN}`, [200], { seen })),
    fc.tuple(fc.nat(), fc.constantFrom('GET', 'HEAD')).map(([seen, m]) => request('wf.get-other', m, `/workflows/${WF_SEEN}`, [404], { seen, seenFrom: 'other' })),
    fc.nat().map((seen) => request('wf.cancel', 'POST', `/workflows/${WF_SEEN}/cancel`, [200, 409], { seen })),
    fc.nat().map((seen) => request('wf.cancel-other', 'POST', `/workflows/${WF_SEEN}/cancel`, [404], { seen, seenFrom: 'other' })),
    fc.tuple(fc.uuid(), fc.boolean()).map(([id, cancel]) => request('wf.unknown', cancel ? 'POST' : 'GET', `/workflows/${id}${cancel ? '/cancel' : ''}`, [404])),
    fc.tuple(badId, fc.boolean()).map(([id, cancel]) => request('wf.not-an-id', cancel ? 'POST' : 'GET', `/workflows/${id}${cancel ? '/cancel' : ''}`, [400])),
    fc.constantFrom('PUT', 'DELETE', 'PATCH', 'OPTIONS').map((m) => request('wf.method-wrong', m, '/workflows', [405], { allow: 'GET, HEAD, POST' })),
    fc.tuple(fc.constantFrom('POST', 'PUT', 'DELETE', 'PATCH'), fc.uuid()).map(([m, id]) => request('wf.method-wrong', m, `/workflows/${id}`, [405], { allow: 'GET, HEAD' })),
    fc.tuple(fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH'), fc.uuid()).map(([m, id]) => request('wf.method-wrong', m, `/workflows/${id}/cancel`, [405], { allow: 'POST' })),
  );
}

/**
 * The admin routes: reads, keys created for the run's tenants (never revoked: a revoke names an
 * unknown id, so the run's own keys keep working), bodies and ids refused with a 400, other methods.
 */
function adminArb(): fc.Arbitrary<FuzzRequest> {
  const scopes = fc.subarray(['tasks:read', 'tasks:write', 'admin'], { minLength: 1 });
  const body = (o: unknown, l: { seed: number; spacing: number }) => Buffer.from(render(o, prng(l.seed), l.spacing));
  return fc.oneof(
    fc.tuple(fc.constantFrom('/admin/tenants', '/admin/keys'), fc.constantFrom('GET', 'HEAD')).map(([p, m]) => request('admin.read', m, p, [200])),
    fc.tuple(fc.constantFrom(...TENANTS), scopes, fc.option(fc.integer({ min: 1, max: 86_400_000 }), { nil: undefined }), layoutArb).map(([tenant, sc, exp, l]) =>
      request('admin.key-create', 'POST', '/admin/keys', [201], {}, body({ tenant, scopes: sc, ...(exp ? { expires_in_ms: exp } : {}), description: 'fuzz' }, l)),
    ),
    fc.constantFrom(
      '{}', '[]', 'null', '"x"', '{"tenant":"alpha"}', '{"tenant":"Alpha","scopes":["admin"]}', '{"tenant":"alpha","scopes":[]}', '{"tenant":"alpha","scopes":["root"]}',
      '{"tenant":"alpha","scopes":["admin","admin"]}', '{"tenant":"alpha","scopes":["admin"],"expires_in_ms":0}', '{"tenant":"alpha","scopes":["admin"],"expires_in_ms":1.5}',
      '{"tenant":"alpha","scopes":["admin"],"owner":"me"}', `{"tenant":"alpha","scopes":["admin"],"description":"${'d'.repeat(201)}"}`,
    ).map((b) => request('admin.key-create-invalid', 'POST', '/admin/keys', [400], {}, Buffer.from(b))),
    fc.stringMatching(/^[0-9a-f]{16}$/).map((id) => request('admin.revoke-unknown', 'POST', `/admin/keys/${id}/revoke`, [404])),
    fc.constantFrom('x', '0123', 'F'.repeat(16), 'g'.repeat(16), '%zz').map((id) => request('admin.revoke-not-an-id', 'POST', `/admin/keys/${id}/revoke`, [400])),
    fc.constantFrom('POST', 'PUT', 'DELETE').map((m) => request('admin.method-wrong', m, '/admin/tenants', [405], { allow: 'GET, HEAD' })),
    fc.constantFrom('PUT', 'DELETE', 'PATCH').map((m) => request('admin.method-wrong', m, '/admin/keys', [405], { allow: 'GET, HEAD, POST' })),
    fc.constantFrom('GET', 'PUT', 'DELETE').map((m) => request('admin.method-wrong', m, '/admin/keys/0123456789abcdef/revoke', [405], { allow: 'POST' })),
  );
}

// ---------------------------------------------------------------------------------------------
// Everything
// ---------------------------------------------------------------------------------------------

/** Every kind of request, in roughly even shares of the areas the fuzzer covers, each with a credential. */
export function requestArb(g: GenSettings = DEFAULT_GEN): fc.Arbitrary<FuzzRequest> {
  const fresh = (arb: fc.Arbitrary<FuzzRequest>) =>
    fc.tuple(arb, fc.integer({ min: 0, max: 19 })).map(([r, n]) => (r.transport === 'http' && n === 0 ? { ...r, fresh: true } : r));
  const credentialed = (arb: fc.Arbitrary<FuzzRequest>) =>
    fc.tuple(arb, fc.integer()).map(([r, seed]): FuzzRequest => (r.transport === 'http' ? { ...r, spec: withCredential(r.spec, prng(seed)) } : r));
  return fresh(credentialed(
    fc.oneof(
      { weight: 14, arbitrary: validArb(g) },
      { weight: 14, arbitrary: hostileArb(g) },
      { weight: 4, arbitrary: mediaArb(g) },
      { weight: 5, arbitrary: encodingArb(g) },
      { weight: 16, arbitrary: batchArb(g) },
      { weight: 18, arbitrary: methodsArb(g) },
      { weight: 12, arbitrary: headersArb(g) },
      { weight: 9, arbitrary: rawArb(g) },
      { weight: 4, arbitrary: burstArb(g) },
      { weight: 10, arbitrary: authArb(g) },
      { weight: 6, arbitrary: operatorArb() },
      { weight: 6, arbitrary: schedulesArb() },
      { weight: 6, arbitrary: workflowsArb() },
      { weight: 3, arbitrary: adminArb() },
    ),
  ));
}

/** The seed of request `index` in run `seed`: each request can be drawn again alone. */
export function requestSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) | 0;
}

export class RequestSource {
  private readonly arb: fc.Arbitrary<FuzzRequest>;

  constructor(
    readonly seed: number,
    g: GenSettings = DEFAULT_GEN,
  ) {
    this.arb = requestArb(g);
  }

  at(index: number): FuzzRequest {
    return fc.sample(this.arb, { seed: requestSeed(this.seed, index), numRuns: 1 })[0]!;
  }
}
