import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import cluster from 'node:cluster';
import { Semaphore, type Pool } from './core/semaphore.js';
import type { OrderStore } from './ledger/order-store.js';
import { OrderError } from './order/errors.js';
import { buildApp, type App } from './http/app.js';
import { createObservability, type Observability } from './observability/observability.js';
import { clusterViewsOf, relayClusterViews } from './observability/cluster-views.js';
import { startupSummary } from './startup-summary.js';
import { simulatedSteps } from './order/simulated-steps.js';
import {
  OrderService,
  type OrderServiceOptions,
  type ServiceSettings,
} from './service/order-service.js';
import { importDriver } from './store/import-driver.js';
import { openOrderStore } from './store/open-order-store.js';
import { openProcessLog, type ProcessLog } from './process-log.js';
import {
  StartupError,
  listenStartupError,
  redisStartupError,
  storeStartupError,
} from './startup-error.js';
import { httpSteps } from './upstream/http-steps.js';
import { Upstreams } from './upstream/upstreams.js';

/**
 * startServer builds the order service and its HTTP app from `config`, and listens.
 * Resolves with the app once it is accepting connections.
 */
export async function startServer(config: Config, logger = pino()): Promise<App> {
  return (await startOrderServer(config, logger)).app;
}

/** RunningServer is a listening app, the order service behind it, and its shutdown. */
export interface RunningServer {
  readonly app: App;
  readonly service: OrderService;
  /**
   * shutDown drains, then closes: new orders are refused with 503 `shutting_down` and
   * `/readyz` answers 503 while the listener stays open (so clients get an answer rather
   * than a refused connection, and a load balancer sees the drain); orders in flight get up
   * to `drainTimeoutMs` to finish, then are aborted with `shutting_down`; finally the app
   * closes, and with it the service and its store. Resolves once closed; rejects only if
   * closing fails.
   */
  shutDown(): Promise<void>;
}

/**
 * startOrderServer is {@link startServer} that also hands back the service and the shutdown.
 * This is the composition root: the one place where the configuration becomes the options
 * of each module, and where the store, the observability, the service and the app are wired.
 * Rejects with a {@link StartupError} that names the variable to check if Redis cannot be
 * reached, the store cannot be opened or its recovery fails, or the server cannot listen;
 * what was opened is closed first.
 */
export async function startOrderServer(config: Config, logger = pino()): Promise<RunningServer> {
  const tracing =
    config.tracesExporter === 'none'
      ? undefined
      : (await import('./observability/tracing.js')).createTracing(config.tracesExporter);
  const observability = createObservability({
    metrics: config.metricsEnabled,
    defaultMetrics: config.metricsEnabled,
    dashboard: config.dashboardEnabled,
    tracing,
  });
  let courierPool: CourierPool;
  try {
    courierPool = await openCourierPool(config);
  } catch (error) {
    await observability.close();
    throw redisStartupError(config.redisUrl ?? '', error);
  }
  let store: OrderStore;
  try {
    store = await openOrderStore({
      kind: config.orderStore,
      dataDir: config.dataDir,
      sync: config.storeSync,
      databaseUrl: config.databaseUrl,
      databasePoolSize: config.databasePoolSize,
    });
  } catch (error) {
    await courierPool.close();
    await observability.close();
    throw storeStartupError(config, error);
  }
  const { pipeline } = config;
  const upstreams =
    pipeline === undefined ? undefined : new Upstreams(pipeline.connectionsPerOrigin);
  const service = observedService(observability, {
    ...serviceSettings(config),
    courierPool: courierPool.pool,
    steps: (pool) =>
      pipeline === undefined || upstreams === undefined
        ? simulatedSteps({ courierPool: pool })
        : httpSteps({
            plan: pipeline,
            upstreams,
            courierPool: pool,
            traceHeaders: observability.traceHeaders,
          }),
    dependenciesReady: () => courierPool.ready(),
    store,
    ownsStore: true,
    logger,
  });
  const metricsRegistry = observability.metrics?.registry;
  if (upstreams !== undefined && metricsRegistry !== undefined) {
    upstreams.registerMetrics(metricsRegistry);
  }
  try {
    await service.start();
  } catch (error) {
    await service.close();
    await upstreams?.close();
    await courierPool.close();
    await observability.close();
    throw storeStartupError(config, error);
  }
  logger.info(
    { ...startupSummary(config), instance_id: service.ledger.instanceId },
    'order store ready',
  );
  const clusterViews = clusterViewsOf(config.workers);
  const app = buildApp({
    service,
    logger,
    observability,
    clusterViews,
    benchFloorRoute: config.benchFloorRoute,
    adminToken: config.adminToken,
    simulationFields: pipeline === undefined,
    serverLimits: {
      headersTimeoutMs: config.headersTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      maxHeaderSizeBytes: config.maxHeaderSizeBytes,
    },
  });
  if (clusterViews !== undefined) {
    app.addHook('onClose', (_instance, closed) => {
      clusterViews.close();
      closed();
    });
  }
  app.addHook('onClose', async () => {
    await service.close();
    await upstreams?.close();
    await courierPool.close();
  });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await app.close();
    throw listenStartupError(config.host, config.port, error);
  }
  const shutDown = async (): Promise<void> => {
    const aborted = await service.shutDown(config.drainTimeoutMs);
    if (aborted > 0) {
      logger.warn(
        { inflight: aborted, drainTimeoutMs: config.drainTimeoutMs },
        'drain timed out: orders in flight were aborted',
      );
    }
    await app.close();
  };
  return { app, service, shutDown };
}

/**
 * serviceSettings picks the numbers that shape the order service out of the configuration,
 * where their defaults live.
 */
export function serviceSettings(config: Config): ServiceSettings {
  return {
    requestTimeoutMs: config.requestTimeoutMs,
    maxInflightOrders: config.maxInflightOrders,
    overloadWaitMs: config.overloadWaitMs,
    overloadWindowMs: config.overloadWindowMs,
    retryAfterSeconds: config.retryAfterSeconds,
    answerSlackMs: config.answerSlackMs,
    abandonGraceMs: config.abandonGraceMs,
    orderLeaseMs: config.orderLeaseMs,
    compensationTimeoutMs: config.compensationTimeoutMs,
    compensationMaxAttempts: config.compensationMaxAttempts,
    compensationRetryBaseMs: config.compensationRetryBaseMs,
    compensationRetryMaxMs: config.compensationRetryMaxMs,
  };
}

/**
 * observedService builds an order service watched by `observability`: the service waits
 * for couriers through the observed pool, its pipeline reports to the observer, its ledger to
 * the hooks, and the metrics read its pool, tracker and admission.
 */
export function observedService(
  observability: Observability,
  options: OrderServiceOptions,
): OrderService {
  const service = new OrderService({
    ...options,
    courierPool: observability.observePool(options.courierPool),
    observer: observability.observer,
    ledgerHooks: observability.ledgerHooks,
  });
  observability.watch({
    courierPool: service.courierPool,
    tracker: service.tracker,
    admission: service.admission,
    stepNames: service.pipeline.stepNames,
  });
  return service;
}

/** An open courier pool: the pool, whether it can serve, and how to close it. */
interface CourierPool {
  readonly pool: Pool;
  ready(): boolean;
  close(): Promise<void>;
}

/**
 * openCourierPool opens the pool the configuration names: shared by every instance on Redis
 * (REDIS_URL), or an in-process semaphore. Rejects if Redis cannot be reached, or if ioredis
 * (an optional peer dependency, loaded only then) is not installed.
 */
async function openCourierPool(config: Config): Promise<CourierPool> {
  if (config.redisUrl === undefined) {
    return {
      pool: new Semaphore(config.courierPoolSize),
      ready: () => true,
      close: () => Promise.resolve(),
    };
  }
  const { RedisPool } = await importDriver(
    'ioredis',
    'the shared courier pool (REDIS_URL)',
    () => import('./pool/redis-pool.js'),
  );
  const pool = await RedisPool.open({
    url: config.redisUrl,
    size: config.courierPoolSize,
    prefix: config.redisKeyPrefix,
    leaseMs: config.courierLeaseMs,
    unavailable: () => new OrderError('unavailable', 'the courier pool is unavailable'),
  });
  return { pool, ready: () => pool.ready, close: () => pool.close() };
}

/** The simulated pipeline's steps: payment, vendor notification, courier assignment. */
const simulatedStepCount = 3;

/**
 * shutdownLimitMs is how long a shutdown may take before the process exits anyway: the drain,
 * then the grace of steps that ignore the abort, the compensations under way (one attempt
 * each, `stepCount` at most per order, one after the other) and 5 s to close the store.
 */
function shutdownLimitMs(config: Config, stepCount: number): number {
  return (
    config.drainTimeoutMs + config.abandonGraceMs + stepCount * config.compensationTimeoutMs + 5000
  );
}

/**
 * main is the process entry point: read the configuration, listen, and on SIGTERM or SIGINT
 * drain (see {@link RunningServer.shutDown}) and exit 0. A second signal exits 1 at once (see
 * {@link onStopSignals}), and so does a shutdown not done within {@link shutdownLimitMs}.
 * Every exit goes through `log`, so a log destination that fails or stalls never keeps the
 * process from exiting.
 */
async function main(log: ProcessLog): Promise<void> {
  const { logger } = log;
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      // LOG_LEVEL itself may be what is wrong: the reason is logged at the default level.
      logger.fatal(error.message);
      log.exit(1);
      return;
    }
    throw error;
  }
  logger.level = config.logLevel;
  if (config.workers > 1 && cluster.isPrimary) {
    // Each worker ends its own shutdown within its limit; the primary waits 5 s more for them.
    const stepCount = config.pipeline?.steps.length ?? simulatedStepCount;
    superviseWorkers(config.workers, log, shutdownLimitMs(config, stepCount) + 5000);
    return;
  }
  const server = await startOrderServer(config, logger);
  const limitMs = shutdownLimitMs(config, server.service.pipeline.stepNames.length);
  const shutdown = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'shutting down: draining in-flight orders');
    // Whatever holds the shutdown up (a store that stopped answering), the process ends.
    setTimeout(() => {
      logger.error({ limit_ms: limitMs }, 'shutdown not done in time: exiting');
      log.exit(1);
    }, limitMs);
    server.shutDown().then(
      () => {
        logger.info('shut down cleanly');
        log.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        log.exit(1);
      },
    );
  };
  onStopSignals(shutdown, (signal) => {
    // An operator who asks twice wants out now, drained or not.
    logger.warn({ signal }, 'second signal: exiting at once');
    log.exit(1);
  });
}

/**
 * A stop signal that comes within this many milliseconds of the first is the same request
 * delivered twice: a terminal's Ctrl-C, or a signal sent to the process group, reaches both
 * npm and the server, and npm forwards its own copy to the server.
 */
const repeatedSignalMs = 500;

/**
 * onStopSignals calls `stop` on the first SIGTERM or SIGINT and `stopNow` on each later one,
 * but ignores any that comes within {@link repeatedSignalMs} of the first.
 */
function onStopSignals(
  stop: (signal: NodeJS.Signals) => void,
  stopNow: (signal: NodeJS.Signals) => void,
): void {
  let firstAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    const now = performance.now();
    if (firstAt === undefined) {
      firstAt = now;
      stop(signal);
    } else if (now - firstAt >= repeatedSignalMs) {
      stopNow(signal);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * superviseWorkers runs `count` worker processes (node:cluster) that serve on one port, the
 * connections spread between them. A worker that dies is replaced, except while none has
 * listened yet: a worker that cannot start (its own log line says why) would be replaced by
 * one failing the same way, for ever, so the primary stops every worker and exits 1. On
 * SIGTERM or SIGINT each worker is told to drain, and the primary exits 0 once all have
 * exited (1 on a second signal, see {@link onStopSignals}); a worker still running
 * `limitMs` after the signal is killed (SIGKILL) and the primary exits 1.
 */
function superviseWorkers(count: number, log: ProcessLog, limitMs: number): void {
  const { logger } = log;
  let stopping = false;
  let exitCode = 0;
  let listened = false;
  let limit: NodeJS.Timeout | undefined;
  const stopWorkers = (): void => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  };
  cluster.on('listening', () => {
    listened = true;
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping && !listened) {
      stopping = true;
      exitCode = 1;
      logger.error({ pid: worker.process.pid, code, signal }, 'a worker failed to start: stopping');
      stopWorkers();
    }
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        clearTimeout(limit);
        if (exitCode === 0) logger.info('every worker has exited');
        log.exit(exitCode);
      }
      return;
    }
    logger.warn({ pid: worker.process.pid, code, signal }, 'a worker died: starting another');
    cluster.fork();
  });
  // For as long as the primary lives: any worker's /metrics and /dashboard/state answer for all.
  relayClusterViews();
  for (let i = 0; i < count; i++) cluster.fork();
  logger.info({ workers: count }, 'started workers');
  onStopSignals(
    (signal) => {
      stopping = true;
      logger.info({ signal }, 'shutting down: each worker drains');
      stopWorkers();
      limit = setTimeout(() => {
        logger.error({ limit_ms: limitMs }, 'workers not stopped in time: killing them');
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
        log.exit(1);
      }, limitMs).unref();
    },
    (signal) => {
      logger.warn({ signal }, 'second signal: exiting at once');
      log.exit(1);
    },
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const log = openProcessLog();
  main(log).catch((error: unknown) => {
    // A start-up failure the operator can fix is one line that says what to check; anything
    // else is a bug, logged with its stack.
    if (error instanceof StartupError) {
      log.logger.fatal({ variable: error.variable }, error.message);
    } else {
      log.logger.fatal({ err: error }, 'the server failed to start');
    }
    log.exit(1);
  });
}
