import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import type { ClusterView, ClusterViews } from '../../observability/cluster-views.js';
import type { RecentOrders } from '../../observability/recent-orders.js';
import type { OrderService } from '../../service/order-service.js';
import { errorResponses, retryAfter } from '../error-responses.js';
import { toRecordedOrder } from '../order-mapping.js';
import {
  attentionCountLimit,
  attentionLimit,
  attentionOrder,
  DashboardState,
  mergeDashboardStates,
} from './dashboard-state.js';

export interface DashboardRoutesOptions {
  recentOrders: RecentOrders;
  service: OrderService;
  /** Whether operator actions are enabled (an operator token is configured). */
  operatorActions: boolean;
  /**
   * The views of every worker, in a worker of `WORKERS=N`: `/dashboard/state` then answers
   * with the states of all workers merged, and this worker serves its own to the others.
   * None by default: the state of this process.
   */
  clusterViews?: ClusterViews | undefined;
}

const isDashboardState = TypeCompiler.Compile(DashboardState);

/** dashboardView is the dashboard state of each worker of `WORKERS=N`, as it alone sees it. */
export const dashboardView: ClusterView<DashboardState> = {
  name: 'dashboard',
  isPart: (value): value is DashboardState => isDashboardState.Check(value),
};

export type { DashboardState };

interface Asset {
  body: string;
  contentType: string;
}

// The page may load only its own script and style, so an order id shown on it can never run
// as code even if the page had a bug.
const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/**
 * How long after an order was refused as overloaded the dashboard still shows the service
 * overloaded, in milliseconds: longer than a poll (500 ms), so a steady stream of refusals
 * does not blink.
 */
const overloadSignalMs = 1000;

/** The dashboard's routes write their request lines at debug: an open page polls them. */
const polled = { requestLogLevel: 'debug' } as const;

/**
 * dashboardRoutes serves the live dashboard: `GET /` (the page), its script and style under
 * `/dashboard/`, and `GET /dashboard/state` (see {@link DashboardState}), which the page
 * polls. The page is plain HTML, JavaScript and CSS read once from disk: nothing is built at
 * run time. Its requests are logged at debug, not info: each open page polls twice a second.
 */
export const dashboardRoutes: FastifyPluginCallback<DashboardRoutesOptions> = (
  app,
  { recentOrders, service, operatorActions, clusterViews },
  done,
) => {
  const { stepNames } = service;
  const assets = loadAssets();
  const serve =
    (asset: Asset) =>
    (_request: unknown, reply: FastifyReply): FastifyReply =>
      reply
        .header('content-type', asset.contentType)
        .header('content-security-policy', contentSecurityPolicy)
        .header('cache-control', 'no-cache')
        .send(asset.body);
  const page = {
    summary: 'The dashboard',
    description:
      'A live page of the service: overload, rates, latency and errors over the last ' +
      'minutes, the courier pool, the runs needing attention and a timeline of recent ' +
      'orders, read from `GET /dashboard/state`.',
    response: {
      200: {
        description: 'The dashboard page.',
        content: { 'text/html': { schema: { type: 'string' } } },
      },
    },
  };
  // The page's own script, style and icon are no part of the API.
  const staticFile = { hide: true };
  const staticRoute = { schema: staticFile, config: polled };
  app.get('/', { schema: page, config: polled }, serve(assets.page));
  app.get('/dashboard/dashboard.js', staticRoute, serve(assets.script));
  app.get('/dashboard/dashboard.css', staticRoute, serve(assets.style));
  app.get('/favicon.ico', staticRoute, serve(assets.icon));
  app.get('/dashboard/favicon.svg', staticRoute, serve(assets.icon));
  const state = {
    summary: "The dashboard's state",
    description: 'What the dashboard shows, polled by its page.',
    response: {
      200: { ...DashboardState, description: 'The state of the service now.' },
      ...errorResponses(['internal', 'unavailable'], { 'retry-after': retryAfter('unavailable') }),
    },
  };
  /** localState is the state of this process alone. */
  const localState = async (): Promise<DashboardState> => {
    const runs = (await service.openCompensations(attentionCountLimit)).map((run) =>
      toRecordedOrder(run, stepNames),
    );
    const flagged = runs.filter((run) => run.needs_operator).length;
    // Read after the store answered, so that the figures are of one moment.
    const load = service.load();
    const now = performance.now();
    return {
      now: Date.now(),
      pool: { size: load.pool.size, in_use: load.pool.inUse, waiting: load.pool.waiting },
      steps_in_flight: load.stepsInFlight,
      orders_in_flight: load.ordersInFlight,
      overloaded:
        service.admission.overloaded || recentOrders.refusedOverloadedWithin(overloadSignalMs, now),
      orders_total: recentOrders.total,
      orders_per_second: recentOrders.perSecond(now),
      refused_per_second: recentOrders.refusedPerSecond(now),
      by_kind: recentOrders.byKind(),
      refused: { ...load.refused },
      last_minute: recentOrders.lastMinute(now),
      series: recentOrders.series(now),
      attention: runs.sort(attentionOrder).slice(0, attentionLimit),
      attention_count: {
        flagged,
        open: runs.length - flagged,
        more: runs.length >= attentionCountLimit,
      },
      operator_actions: operatorActions,
      timeline: recentOrders.timeline(),
    };
  };
  let stateNow = localState;
  if (clusterViews !== undefined) {
    const stopServing = clusterViews.serve(dashboardView, localState);
    app.addHook('onClose', (_instance, closed) => {
      stopServing();
      closed();
    });
    stateNow = async () => {
      const { parts } = await clusterViews.gather(dashboardView);
      // No worker could tell (this one's store failed too): answer as this one alone would.
      return parts.length === 0 ? localState() : mergeDashboardStates(parts);
    };
  }
  app.get(
    '/dashboard/state',
    { schema: state, config: polled },
    async (_request, reply): Promise<DashboardState> => {
      void reply.header('cache-control', 'no-store');
      return stateNow();
    },
  );
  done();
};

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
