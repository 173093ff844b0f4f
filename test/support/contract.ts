/**
 * The contract test's helper: every answer a test receives is checked against the OpenAPI
 * document (services/api/openapi/document.ts) — its status is documented for the operation, its
 * media type is the documented one, its required headers are there and the documented ones match
 * their schemas, and its body validates (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses). A test
 * opts in by using this module's `fetch` instead of the global one.
 */
import Ajv2020, { ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { buildOpenApiDocument, OpenApiDocument } from '../../services/api/openapi/document';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const openApiDocument: OpenApiDocument = buildOpenApiDocument();
const DOC_ID = 'https://task-scheduler.invalid/openapi.json';

/** An ajv for the document's schemas: 2020-12, standard formats, OpenAPI's own keywords allowed. */
export function openApiAjv(doc: OpenApiDocument = openApiDocument): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  addFormats(ajv);
  ajv.addSchema(doc as object, DOC_ID);
  return ajv;
}

/** A $ref to `pointer` in the document added by openApiAjv. */
export function refTo(pointer: string[]): string {
  return `${DOC_ID}#/${pointer.map((p) => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/')}`;
}

const ajv = openApiAjv();
const compiled = new Map<string, ValidateFunction>();

/** A validator of the schema at `pointer` (a JSON pointer into the document), its $refs resolved in it. */
export function schemaAt(pointer: string[]): ValidateFunction {
  const ref = refTo(pointer);
  let v = compiled.get(ref);
  if (!v) compiled.set(ref, (v = ajv.compile({ $ref: ref })));
  return v;
}

const templates = Object.keys(openApiDocument.paths).map((template) => ({
  template,
  params: (template.match(/\{/g) ?? []).length,
  // As express matches: case-insensitive, an optional trailing slash.
  pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}/?$`, 'i'),
}));

/** The document's path template for a concrete path (literal segments win over parameters, as the routes are ordered). */
export function pathTemplate(path: string): string | undefined {
  const found = templates.filter((t) => t.pattern.test(path)).sort((a, b) => a.params - b.params);
  return found[0]?.template;
}

export interface Received {
  status: number;
  headers: Headers | Record<string, string | string[] | undefined>;
  /** The body as text ('' when there is none). */
  body: string;
}

function header(h: Received['headers'], name: string): string | undefined {
  if (typeof (h as Headers).get === 'function') return (h as Headers).get(name) ?? undefined;
  const v = (h as Record<string, string | string[] | undefined>)[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

const SERVER_RESPONSES: Record<number, string> = { 408: 'RequestTimeout', 417: 'ExpectationFailed', 431: 'HeadersTooLarge', 503: 'PipelineFull' };

/** Throws, saying what differs, unless the answer to `method path` is one the document describes. */
export function expectContract(method: string, pathOrUrl: string, received: Received): void {
  // The path as sent (an origin, the query and a fragment aside): express routes it without
  // resolving dot segments (/tasks/./batch is no /tasks/batch), as URL would.
  const path = pathOrUrl.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '').split(/[?#]/)[0] || '/';
  const m = method.toLowerCase() === 'head' ? 'get' : method.toLowerCase();
  const where = `${method.toUpperCase()} ${path} → ${received.status}`;
  const template = pathTemplate(path);
  let pointer: string[];
  // The HTTP server answers these itself, before routing (server.ts): on any path, with any method.
  const server = SERVER_RESPONSES[received.status];
  if (server && (template === undefined || !openApiDocument.paths[template]![m])) {
    pointer = ['components', 'responses', server];
  } else if (template === undefined) {
    if (received.status !== 404) throw new Error(`${where}: the path is not in the OpenAPI document, yet the answer is not 404`);
    pointer = ['components', 'responses', 'NotFound'];
  } else if (!openApiDocument.paths[template]![m]) {
    if (received.status !== 405) throw new Error(`${where}: ${template} has no ${m.toUpperCase()} in the OpenAPI document, yet the answer is not 405`);
    pointer = ['components', 'responses', 'MethodNotAllowed'];
  } else {
    pointer = ['paths', template, m, 'responses', String(received.status)];
  }
  const response = resolve(pointer);
  if (!response) throw new Error(`${where}: status ${received.status} is not documented for ${m.toUpperCase()} ${template}`);

  for (const [name, spec] of Object.entries((response.headers ?? {}) as Record<string, Json>)) {
    const h = spec.$ref ? (resolve(spec.$ref.slice(2).split('/')) as Json) : spec;
    const value = header(received.headers, name);
    if (value === undefined) {
      if (h.required) throw new Error(`${where}: the header ${name} is required and missing`);
      continue;
    }
    const check = ajv.compile(h.schema);
    if (!check(value)) throw new Error(`${where}: the header ${name}: ${JSON.stringify(value)} ${ajv.errorsText(check.errors)}`);
  }

  if (method.toLowerCase() === 'head') return;
  const media = (header(received.headers, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const content = (response.content ?? {}) as Json;
  if (!content[media]) throw new Error(`${where}: Content-Type ${JSON.stringify(media)}, documented: ${Object.keys(content).join(', ') || 'no body'}`);
  let body: unknown;
  try {
    body = JSON.parse(received.body);
  } catch {
    throw new Error(`${where}: the body is not JSON: ${received.body.slice(0, 200)}`);
  }
  const validate = schemaAt([...pointerOf(pointer), 'content', media, 'schema']);
  if (!validate(body)) {
    throw new Error(`${where}: the body does not match the OpenAPI document: ${ajv.errorsText(validate.errors, { separator: '; ' })}\n${received.body.slice(0, 1000)}`);
  }
}

/** Follows a response's own $ref, so the schema pointer lands where the schema is. */
function pointerOf(pointer: string[]): string[] {
  const raw = resolve(pointer, false) as Json;
  return raw?.$ref ? raw.$ref.slice(2).split('/') : pointer;
}

function resolve(pointer: string[], follow = true): Json {
  let node: unknown = openApiDocument;
  for (const p of pointer) node = (node as Json | undefined)?.[p];
  const n = node as Json;
  return follow && n?.$ref ? resolve(n.$ref.slice(2).split('/')) : n;
}

/**
 * The global fetch, with each answer checked by expectContract (a mismatch fails the test). Tests
 * import it as `fetch`, so a response shape drifting from the document fails where it is received.
 */
export async function fetch(input: string | URL, init?: RequestInit): Promise<Response> {
  const res = await globalThis.fetch(input, init);
  const body = await res.clone().text();
  expectContract(init?.method ?? 'GET', String(input), { status: res.status, headers: res.headers, body });
  return res;
}
