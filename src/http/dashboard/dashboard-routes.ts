import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import type { Pool } from '../../core/semaphore.js';
import { needsOperator, type OrderRun } from '../../ledger/order-store.js';
import type { RecentOrders, TimelineOrder } from '../../observability/recent-orders.js';
import type { OrderService } from '../../service/order-service.js';

export interface DashboardRoutesOptions {
  recentOrders: RecentOrders;
  service: OrderService;
  /** Whether operator actions are enabled (an operator token is configured). */
  operatorActions: boolean;
}

/** AttentionRun is a run with a compensation still to do or flagged for an operator. */
export interface AttentionRun {
  run_id: string;
  order_id: string;
  kind: string;
  finished_at: number | undefined;
  needs_operator: boolean;
  steps: {
    name: string;
    compensation: string;
    attempts: number;
    last_error?: string;
    next_attempt_at?: number;
    needs_operator: boolean;
  }[];
}

/** DashboardState is the body of `GET /dashboard/state`, polled by the page. */
export interface DashboardState {
  pool: { size: number; in_use: number; waiting: number };
  steps_in_flight: number;
  orders_in_flight: number;
  orders_total: number;
  /** Orders settled per second over the last 5 s, counted by the server. */
  orders_per_second: number;
  by_kind: Record<string, number>;
  /** Orders refused before any step ran, since start, by reason. */
  refused: { overloaded: number; shutting_down: number };
  /** Runs with a compensation in progress or flagged for an operator, oldest first. */
  attention: AttentionRun[];
  /** Whether the operator actions (settling a flag) are enabled. */
  operator_actions: boolean;
  /** Recent settled orders, newest first. */
  timeline: TimelineOrder[];
}

/** How many runs needing attention the dashboard lists. */
const attentionLimit = 20;

interface Asset {
  body: string;
  contentType: string;
}

// The page may load only its own script and style, so an order id shown on it can never run
// as code even if the page had a bug.
const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/**
 * dashboardRoutes serves the live dashboard: `GET /` (the page), its script and style under
 * `/dashboard/`, and `GET /dashboard/state` (the courier pool, steps in flight, outcomes by
 * kind and the timeline of recent orders), which the page polls. The page is plain HTML,
 * JavaScript and CSS read once from disk: nothing is built at run time.
 */
export const dashboardRoutes: FastifyPluginCallback<DashboardRoutesOptions> = (
  app,
  { recentOrders, service, operatorActions },
  done,
) => {
  const { courierPool, tracker, admission } = service;
  const assets = loadAssets();
  const serve =
    (asset: Asset) =>
    (_request: unknown, reply: FastifyReply): FastifyReply =>
      reply
        .header('content-type', asset.contentType)
        .header('content-security-policy', contentSecurityPolicy)
        .header('cache-control', 'no-cache')
        .send(asset.body);
  app.get('/', serve(assets.page));
  app.get('/dashboard/dashboard.js', serve(assets.script));
  app.get('/dashboard/dashboard.css', serve(assets.style));
  app.get('/favicon.ico', serve(assets.icon));
  app.get('/dashboard/favicon.svg', serve(assets.icon));
  app.get('/dashboard/state', async (_request, reply): Promise<DashboardState> => {
    void reply.header('cache-control', 'no-store');
    return {
      pool: poolState(courierPool),
      steps_in_flight: tracker.active,
      orders_in_flight: admission.inflight,
      orders_total: recentOrders.total,
      orders_per_second: recentOrders.perSecond(),
      by_kind: recentOrders.byKind(),
      refused: admission.refused,
      attention: (await service.ledger.openCompensations(attentionLimit)).map(attentionRun),
      operator_actions: operatorActions,
      timeline: recentOrders.timeline(),
    };
  });
  done();
};

function poolState(pool: Pool): DashboardState['pool'] {
  return { size: pool.size, in_use: pool.inUse, waiting: pool.waiting };
}

function attentionRun(run: OrderRun): AttentionRun {
  return {
    run_id: run.runId,
    order_id: run.orderId,
    kind: run.outcome?.error?.kind ?? 'none',
    finished_at: run.finishedAt,
    needs_operator: needsOperator(run.compensations),
    steps: run.compensations
      .filter((c) => c.status !== 'not_needed')
      .map((c) => ({
        name: c.name,
        compensation: c.status,
        attempts: c.attempts,
        ...(c.lastError === undefined ? {} : { last_error: c.lastError }),
        ...(c.nextAttemptAt === undefined ? {} : { next_attempt_at: c.nextAttemptAt }),
        needs_operator: c.needsOperator,
      })),
  };
}

interface Assets {
  page: Asset;
  script: Asset;
  style: Asset;
  icon: Asset;
}

let cachedAssets: Assets | undefined;

/**
 * loadAssets reads the page, script and style once per process. They sit next to this file
 * in the source tree; compiled code (dist/) reads them from the source tree too, as the
 * TypeScript build copies no assets. Throws if they cannot be found.
 */
function loadAssets(): Assets {
  if (cachedAssets !== undefined) return cachedAssets;
  const candidates = [
    new URL('./static/', import.meta.url),
    new URL('../../../../src/http/dashboard/static/', import.meta.url),
  ];
  const dir = candidates.find((url) => existsSync(fileURLToPath(new URL('index.html', url))));
  if (dir === undefined) throw new Error('dashboard assets not found next to dashboard-routes');
  const read = (name: string, contentType: string): Asset => ({
    body: readFileSync(new URL(name, dir), 'utf8'),
    contentType,
  });
  cachedAssets = {
    page: read('index.html', 'text/html; charset=utf-8'),
    script: read('dashboard.js', 'text/javascript; charset=utf-8'),
    style: read('dashboard.css', 'text/css; charset=utf-8'),
    icon: read('favicon.svg', 'image/svg+xml'),
  };
  return cachedAssets;
}
