/**
 * Request bodies to JSON values, refusing what the service could not store exactly: bytes that are
 * not UTF-8, and whatever scanJson finds (nesting, lone surrogates, NUL, inexact numbers). Both the
 * fast path and express's routes read bodies through here.
 */
import { isUtf8 } from 'node:buffer';
import { badRequest, FieldError, ProblemError } from '../problem';
import { formatPath, JsonProblem, scanJson } from '../../core/json/json-scan';

/** Problems reported per request (or per batch item); a body with more says so in the last one. */
const MAX_PROBLEMS = 10;

export interface JsonLimits {
  /** Deepest nesting of a task's payload (`{}` is 1). */
  maxPayloadDepth: number;
  /** Levels of the body around a payload beyond POST /tasks's one (a schedule's `task`: 1; a workflow's `tasks[i]`: 2). */
  payloadAt?: number;
}

function depthMessage(limits: JsonLimits): string {
  return `nests too deeply: a payload may nest ${limits.maxPayloadDepth} levels of objects and arrays`;
}

/** The body as text: UTF-8 only, a BOM dropped, an empty body read as `{}` (as express.json did). */
export function bodyText(raw: Buffer): string {
  if (raw.length === 0) return '{}';
  if (!isUtf8(raw)) throw badRequest('the body is not valid UTF-8', [{ field: '(body)', message: 'must be UTF-8 encoded JSON' }]);
  const text = raw.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`malformed JSON: ${(err as Error).message}`, [{ field: '(body)', message: 'is not valid JSON' }]);
  }
}

const toField = (path: JsonProblem['path']): string => (path.length === 0 ? '(body)' : formatPath(path));

/** A POST /tasks body: any problem refuses the request, and a too-deep body is never parsed. */
export function parseTaskBody(raw: Buffer, limits: JsonLimits): unknown {
  const text = bodyText(raw);
  const errors: FieldError[] = [];
  let deep = false;
  scanJson(text, { maxDepth: limits.maxPayloadDepth + 1 + (limits.payloadAt ?? 0), depthMessage: depthMessage(limits) }, (p) => {
    deep ||= p.span !== undefined;
    errors.push({ field: toField(p.path), message: p.message });
    return errors.length < MAX_PROBLEMS && !deep;
  });
  // Malformed JSON is reported as such, whatever the scan made of it (unless it is too deep to parse).
  const body = deep ? undefined : parse(text);
  if (errors.length > 0) throw badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
  return body;
}

export interface ParsedBatch {
  body: unknown;
  /** Problems found inside `tasks[i]`, by i, with fields relative to the task. */
  itemProblems: Map<number, ProblemError>;
}

/**
 * A POST /tasks/batch body: a problem inside one task belongs to that task alone (its neighbours
 * are still created); a value nested too deep is cut out before parsing, so it never becomes
 * objects. Problems outside the tasks refuse the whole request.
 */
export function parseBatchBody(raw: Buffer, limits: JsonLimits): ParsedBatch {
  const text = bodyText(raw);
  const items = new Map<number, FieldError[]>();
  const outside: FieldError[] = [];
  const cuts: [number, number][] = [];
  scanJson(text, { maxDepth: limits.maxPayloadDepth + 3, depthMessage: depthMessage(limits) }, (p) => {
    if (p.span) cuts.push(p.span);
    // Only the first two segments decide whose problem it is; the rest is decoded only if kept.
    const [first, i] = p.pathHead(2);
    if (first === 'tasks' && typeof i === 'number') {
      const list = items.get(i) ?? [];
      if (list.length < MAX_PROBLEMS) list.push({ field: toField(p.path.slice(2)), message: p.message });
      items.set(i, list);
      return true;
    }
    outside.push({ field: toField(p.path), message: p.message });
    return outside.length < MAX_PROBLEMS && !p.span;
  });
  if (outside.length > 0) throw badRequest(outside.map((e) => `${e.field} ${e.message}`).join('; '), outside);
  const body = parse(cuts.length === 0 ? text : cutOut(text, cuts));
  const itemProblems = new Map<number, ProblemError>();
  for (const [i, errors] of items) itemProblems.set(i, badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors));
  return { body, itemProblems };
}

/** The text with each span replaced by `null` (spans are in order and do not overlap). */
function cutOut(text: string, spans: [number, number][]): string {
  let out = '';
  let at = 0;
  for (const [start, end] of spans) {
    out += text.slice(at, start) + 'null';
    at = end;
  }
  return out + text.slice(at);
}
