import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import type { Pool } from '../../core/semaphore.js';
import type { Tracker } from '../../core/tracker.js';
import type { RecentOrders, TimelineOrder } from '../../observability/recent-orders.js';

export interface DashboardRoutesOptions {
  recentOrders: RecentOrders;
  courierPool: Pool;
  tracker: Tracker;
}

/** DashboardState is the body of `GET /dashboard/state`, polled by the page. */
export interface DashboardState {
  pool: { size: number; in_use: number; waiting: number };
  steps_in_flight: number;
  orders_total: number;
  by_kind: Record<string, number>;
  /** Recent settled orders, newest first. */
  timeline: TimelineOrder[];
}

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
  { recentOrders, courierPool, tracker },
  done,
) => {
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
  app.get('/dashboard/state', (_request, reply): DashboardState => {
    void reply.header('cache-control', 'no-store');
    return {
      pool: { size: courierPool.size, in_use: courierPool.inUse, waiting: courierPool.waiting },
      steps_in_flight: tracker.active,
      orders_total: recentOrders.total,
      by_kind: recentOrders.byKind(),
      timeline: recentOrders.timeline(),
    };
  });
  done();
};

let cachedAssets: { page: Asset; script: Asset; style: Asset } | undefined;

/**
 * loadAssets reads the page, script and style once per process. They sit next to this file
 * in the source tree; compiled code (dist/) reads them from the source tree too, as the
 * TypeScript build copies no assets. Throws if they cannot be found.
 */
function loadAssets(): { page: Asset; script: Asset; style: Asset } {
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
  };
  return cachedAssets;
}
