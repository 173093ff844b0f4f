/**
 * The OpenAPI document: valid OpenAPI 3.1 by a standard validator, as `npm run -s openapi` prints
 * it; every schema in it compiles; its paths are the API's paths (method-not-allowed.ts's table,
 * which lists every route app.ts serves), with the same methods.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { buildOpenApiDocument } from '../../services/api/openapi/document';
import { ROUTES } from '../../services/api/method-not-allowed';
import { openApiAjv, pathTemplate, refTo } from '../support/contract';

const ROOT = path.join(__dirname, '../..');

it('npm run -s openapi prints a document a standard OpenAPI 3.1 validator accepts', () => {
  const printed = execFileSync(process.execPath, ['--import', 'tsx', 'services/api/openapi/print.ts'], { cwd: ROOT, encoding: 'utf8' });
  expect(JSON.parse(printed)).toEqual(buildOpenApiDocument());
  const result = JSON.parse(execFileSync(process.execPath, ['test/support/validate-openapi.mjs'], { cwd: ROOT, input: printed, encoding: 'utf8' }));
  expect(result).toMatchObject({ valid: true, version: '3.1' });
});

it('every schema in it compiles, its $refs resolving', () => {
  const doc = buildOpenApiDocument();
  const ajv = openApiAjv(doc);
  const schemas: string[][] = [];
  // Every `schema` of a parameter, header or media type, and every component schema.
  const walk = (node: unknown, at: string[]) => {
    if (node === null || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if ((k === 'schema' && at[1] !== 'schemas') || (at.length === 2 && at[0] === 'components' && at[1] === 'schemas')) schemas.push([...at, k]);
      else walk(v, [...at, k]);
    }
  };
  walk(doc, []);
  expect(schemas.length).toBeGreaterThan(30);
  for (const s of schemas) expect(() => ajv.compile({ $ref: refTo(s) })).not.toThrow();
});

it('documents every path the API serves, with its methods, and no other', () => {
  const doc = buildOpenApiDocument();
  const examples: Record<string, string> = { '{id}': '01a22612-3814-77a3-b56a-d007e5a4999a' };
  const documented = Object.entries(doc.paths).map(([template, ops]) => ({
    path: template.replace(/\{[^}]+\}/g, (p) => examples[p] ?? 'x'),
    methods: Object.keys(ops).map((m) => m.toUpperCase()),
  }));
  // Each documented path is served with exactly its documented methods (HEAD comes with GET).
  for (const { path: p, methods } of documented) {
    const served = ROUTES.find((r) => r.pattern.test(p));
    expect({ p, methods: served?.methods.filter((m) => m !== 'HEAD').sort() }).toEqual({ p, methods: [...methods].sort() });
  }
  // Each served path pattern is documented.
  for (const r of ROUTES) expect({ pattern: r.pattern.source, documented: documented.some((d) => r.pattern.test(d.path)) }).toEqual({ pattern: r.pattern.source, documented: true });
  expect(pathTemplate('/tasks/batch')).toBe('/tasks/batch');
  expect(pathTemplate('/tasks/cancel')).toBe('/tasks/cancel');
  expect(pathTemplate(`/tasks/${examples['{id}']}/cancel`)).toBe('/tasks/{id}/cancel');
});

it("names each operation's scope, and its problems", () => {
  const doc = buildOpenApiDocument({ bulkMaxLimit: 123 });
  const op = (p: string, m: string) => doc.paths[p]![m] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  expect(op('/tasks', 'post').security).toEqual([{ apiKey: ['tasks:write'] }]);
  expect(op('/tasks/{id}', 'get').security).toEqual([{ apiKey: ['tasks:read'] }]);
  expect(op('/healthz', 'get').security).toEqual([]);
  expect(op('/openapi.json', 'get').security).toEqual([]);
  expect(Object.keys(op('/tasks', 'post').responses).sort()).toEqual(['200', '201', '400', '401', '403', '408', '409', '413', '415', '417', '429', '431', '500', '503']);
  expect(Object.keys(op('/tasks/{id}/cancel', 'post').responses).sort()).toEqual(['200', '202', '400', '401', '403', '404', '408', '409', '417', '431', '500', '503']);
  expect(op('/tasks', 'post').responses['401'].headers['WWW-Authenticate'].required).toBe(true);
  expect(op('/tasks', 'post').responses['201'].headers.Location.required).toBe(true);
  expect(op('/tasks/retry', 'post').requestBody.content['application/json'].schema.properties.limit.maximum).toBe(123);
});
