import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { buildApp, type App } from './http/app.js';
import type { OrderMetrics } from './observability/metrics.js';
import { observabilityOptions, observeOrderService } from './observability/observability.js';
import type { Admission } from './order/admission.js';
import type { OrderService } from './order/order-service.js';
import { orderFromRecordedRequest } from './http/recorded-orders.js';
import { OrderLedger, type LedgerHooks } from './store/order-ledger.js';
import { openOrderStore } from './store/open-order-store.js';

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
  readonly service: OrderService & { readonly admission: Admission };
  /**
   * shutDown drains, then closes: new orders are refused with 503 `shutting_down` and
   * `/readyz` answers 503 while the listener stays open (so clients get an answer rather
   * than a refused connection, and a load balancer sees the drain); orders in flight get up
   * to `drainTimeoutMs` to finish, then are aborted with `shutting_down`; finally the app
   * closes. Resolves once closed; rejects only if closing the app fails.
   */
  shutDown(): Promise<void>;
}

/**
 * startOrderServer is {@link startServer} that also hands back the service and the shutdown.
 * Admission limits, the abandon grace and the HTTP server limits all come from `config`.
 */
export async function startOrderServer(config: Config, logger = pino()): Promise<RunningServer> {
  const { service, observability } = observeOrderService({
    ...observabilityOptions(config),
    courierPoolSize: config.courierPoolSize,
    maxInflightOrders: config.maxInflightOrders,
    courierQueueLimit: config.courierQueueLimit,
    abandonGraceMs: config.abandonGraceMs,
  });
  const ledger = await startLedger(service, config, logger, ledgerHooks(observability.metrics));
  const app = buildApp({
    ledger,
    service,
    requestTimeoutMs: config.requestTimeoutMs,
    logger,
    observability,
    benchFloorRoute: config.benchFloorRoute,
    serverLimits: {
      headersTimeoutMs: config.headersTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      keepAliveTimeoutMs: config.keepAliveTimeoutMs,
      maxHeaderSizeBytes: config.maxHeaderSizeBytes,
    },
  });
  app.addHook('onClose', () => ledger.close());
  await app.listen({ host: config.host, port: config.port });
  const shutDown = async (): Promise<void> => {
    const { admission } = service;
    admission.close();
    if (!(await settlesWithin(admission.drained(), config.drainTimeoutMs))) {
      logger.warn(
        { inflight: admission.inflight, drainTimeoutMs: config.drainTimeoutMs },
        'drain timed out: aborting orders in flight',
      );
      admission.abortInflight();
      // Aborted orders answer within their abandon grace period.
      await admission.drained();
    }
    await app.close();
  };
  return { app, service, shutDown };
}

/** ledgerHooks feeds the ledger's compensations, operator flags and recoveries to the metrics. */
function ledgerHooks(metrics: OrderMetrics | undefined): LedgerHooks | undefined {
  if (metrics === undefined) return undefined;
  return {
    compensationAttempted: (step, result) => {
      metrics.recordCompensation(step, result);
    },
    operatorFlagged: (_orderId, step) => {
      metrics.recordOperatorFlag(step);
    },
    orderRecovered: () => {
      metrics.recordRecovery();
    },
  };
}

/**
 * startLedger opens the order store and starts the order ledger over it, which first
 * recovers what a dead process left running. Its `close` also closes the store. Rejects if
 * the store cannot be opened or the recovery fails (the store is closed then).
 */
async function startLedger(
  service: OrderService,
  config: Config,
  logger: pino.Logger,
  hooks: LedgerHooks | undefined,
): Promise<OrderLedger> {
  const store = await openOrderStore(config);
  const ledger = new OrderLedger({
    store,
    ownsStore: true,
    pipeline: service.pipeline,
    steps: service.steps ?? [],
    toOrder: orderFromRecordedRequest,
    leaseMs: config.orderLeaseMs,
    compensationTimeoutMs: config.compensationTimeoutMs,
    compensationMaxAttempts: config.compensationMaxAttempts,
    compensationRetryBaseMs: config.compensationRetryBaseMs,
    sweepIntervalMs: Math.min(1000, Math.floor(config.orderLeaseMs / 3)),
    logger,
    hooks,
  });
  try {
    await ledger.start();
  } catch (error) {
    await store.close();
    throw error;
  }
  logger.info({ store: config.orderStore, instanceId: ledger.instanceId }, 'order store ready');
  return ledger;
}

/** settlesWithin resolves true if `promise` settles within `ms`, else false; no timer lingers. */
async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * main is the process entry point: read the configuration, listen, and on SIGTERM or SIGINT
 * drain (see {@link RunningServer.shutDown}) and exit 0. A second signal exits 1 at once.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      // LOG_LEVEL itself may be what is wrong: the reason is logged at the default level.
      pino().fatal(error.message);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
  const logger = pino({ level: config.logLevel });
  const server = await startOrderServer(config, logger);
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // An operator who asks twice wants out now, drained or not.
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight orders');
    server.shutDown().then(
      () => {
        logger.info('shut down cleanly');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
