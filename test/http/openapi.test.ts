import { Validator } from '@seriousme/openapi-schema-validator';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/http/app.js';
import { httpErrorKinds, statusOf, type HttpErrorKind } from '../../src/http/error-catalogue.js';
import { errorKinds } from '../../src/order/errors.js';
import { observeService } from '../observability/observed-app.js';

// The OpenAPI document at GET /openapi.json, checked against the OpenAPI 3 schema and against
// the routes the app really serves: a route without an entry, or an error kind a route
// answers without a documented status, fails here.

/** The dashboard's own files: served, but no part of the API, so hidden from the document. */
const hiddenStaticFiles = [
  'GET /dashboard/dashboard.js',
  'GET /dashboard/dashboard.css',
  'GET /dashboard/favicon.svg',
  'GET /favicon.ico',
];

/** Every kind `POST /order` may answer: the service's kinds, and the edge's before it. */
const orderErrorKinds: readonly HttpErrorKind[] = [
  ...errorKinds,
  'request_timeout',
  'payload_too_large',
  'unsupported_media_type',
  'headers_too_large',
];

interface Operation {
  summary?: string;
  description?: string;
  parameters?: { name: string; in: string }[];
  responses: Record<string, { description: string; headers?: Record<string, unknown> }>;
}
interface OpenapiDocument {
  [field: string]: unknown;
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

let app: App | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** The app with every route it can serve: metrics, dashboard, operator actions, bench floor. */
async function documented(): Promise<{ app: App; doc: OpenapiDocument }> {
  const observed = observeService();
  app = buildApp({ ...observed, adminToken: 'operator-token', benchFloorRoute: true });
  app.addHook('onClose', () => observed.service.close());
  await app.ready();
  const response = await app.inject({ method: 'GET', url: '/openapi.json' });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
  return { app, doc: response.json<OpenapiDocument>() };
}

/**
 * servedRoutes lists every route of the router as `METHOD /path`, read from
 * `printRoutes`, which shows the router itself: a route added any way at all is in it.
 * Parameters are written the OpenAPI way (`{order_id}`).
 */
function servedRoutes(app: App): string[] {
  const routes: string[] = [];
  const pathAtDepth: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const node = /^(.*?)(?:[├└]── )(\S+)(?: \(([^)]*)\))?$/.exec(line);
    if (node === null) continue;
    const [, indent = '', segment = '', methods] = node;
    const depth = indent.length / 4;
    pathAtDepth.length = depth;
    const path = (pathAtDepth[depth - 1] ?? '') + segment;
    pathAtDepth[depth] = path;
    for (const method of methods?.split(', ') ?? []) {
      routes.push(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return routes;
}

function operation(doc: OpenapiDocument, route: string): Operation | undefined {
  const [method = '', path = ''] = route.split(' ');
  return doc.paths[path]?.[method.toLowerCase()];
}

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3 document', async () => {
    const { doc } = await documented();
    expect(doc.openapi).toMatch(/^3\./);
    const result = await new Validator().validate(structuredClone(doc));
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
  });

  it('has an entry, with a summary and a description, for every route served', async () => {
    const { app, doc } = await documented();
    const served = servedRoutes(app);
    // The router is read right: the routes of each kind are there.
    for (const route of ['POST /order', 'GET /order/{order_id}', 'GET /', 'POST /bench/floor']) {
      expect(served, route).toContain(route);
    }
    // HEAD answers as GET without a body, so GET's entry documents it.
    const documentable = served.filter(
      (route) => !route.startsWith('HEAD ') && !hiddenStaticFiles.includes(route),
    );
    const missing = documentable.filter((route) => operation(doc, route) === undefined);
    expect(missing, 'routes served without an entry in the document').toStrictEqual([]);
    for (const route of documentable) {
      const entry = operation(doc, route);
      expect(entry?.summary, `summary of ${route}`).toBeTruthy();
      expect(entry?.description, `description of ${route}`).toBeTruthy();
    }
    const hidden = hiddenStaticFiles.filter((route) => operation(doc, route) === undefined);
    expect(hidden, 'static files hidden from the document').toStrictEqual(hiddenStaticFiles);
    expect(served).toEqual(expect.arrayContaining(hiddenStaticFiles));
  });

  it('lists no route that is not served', async () => {
    const { app, doc } = await documented();
    const served = new Set(servedRoutes(app));
    const listed = Object.entries(doc.paths).flatMap(([path, entries]) =>
      Object.keys(entries).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(listed.filter((route) => !served.has(route))).toStrictEqual([]);
  });

  it("documents every error kind of POST /order under the kind's status", async () => {
    const { doc } = await documented();
    const { responses } = operation(doc, 'POST /order') ?? { responses: {} };
    const undocumented = orderErrorKinds.filter(
      (kind) => !responses[String(statusOf[kind])]?.description.includes(`\`${kind}\``),
    );
    expect(undocumented).toStrictEqual([]);
    expect(responses['200']?.description).toBeTruthy();
  });

  it('documents every error kind somewhere, each under its own status only', async () => {
    const { doc } = await documented();
    const documentedKinds = new Set<string>();
    for (const entries of Object.values(doc.paths)) {
      for (const { responses } of Object.values(entries)) {
        for (const [status, { description }] of Object.entries(responses)) {
          for (const [, kind = ''] of description.matchAll(/`(\w+)`: /g)) {
            expect(String(statusOf[kind as HttpErrorKind]), `status of ${kind}`).toBe(status);
            documentedKinds.add(kind);
          }
        }
      }
    }
    expect([...httpErrorKinds].filter((kind) => !documentedKinds.has(kind))).toStrictEqual([]);
  });

  it('documents the headers: Idempotency-Key, idempotent-replayed, order-needs-operator, Retry-After, Allow', async () => {
    const { doc } = await documented();
    const order = operation(doc, 'POST /order');
    expect(order?.parameters).toContainEqual(
      expect.objectContaining({ name: 'idempotency-key', in: 'header' }),
    );
    const headersOf = (route: string, status: string) =>
      Object.keys(operation(doc, route)?.responses[status]?.headers ?? {}).sort();
    expect(headersOf('POST /order', '200')).toStrictEqual(['idempotent-replayed']);
    expect(headersOf('POST /order', '409')).toStrictEqual(['retry-after']);
    expect(headersOf('POST /order', '503')).toStrictEqual([
      'idempotent-replayed',
      'order-needs-operator',
      'retry-after',
    ]);
    // A replayed timeout or a decline may come with its flag, never with Retry-After.
    expect(headersOf('POST /order', '504')).toStrictEqual([
      'idempotent-replayed',
      'order-needs-operator',
    ]);
    expect(headersOf('POST /order', '400')).toStrictEqual([
      'idempotent-replayed',
      'order-needs-operator',
    ]);
    expect(headersOf('POST /order', '422')).toStrictEqual([]);
    expect(headersOf('GET /order/{order_id}', '503')).toStrictEqual(['retry-after']);
    expect(headersOf('GET /order', '405')).toStrictEqual(['allow']);
    expect(headersOf('POST /admin/runs/{run_id}/compensations/{step}/settle', '401')).toStrictEqual(
      ['www-authenticate'],
    );
  });
});
