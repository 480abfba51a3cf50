import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { buildApp, type App } from './http/app.js';
import {
  observabilityOptions,
  observeOrderService,
} from './observability/observability.js';

/**
 * startServer builds the order service and its HTTP app from `config`, and listens.
 * Resolves with the app once it is accepting connections.
 */
export async function startServer(config: Config, logger = pino()): Promise<App> {
  const { service, observability } = observeOrderService({
    ...observabilityOptions(config),
    courierPoolSize: config.courierPoolSize,
  });
  const app = buildApp({
    service,
    requestTimeoutMs: config.requestTimeoutMs,
    logger,
    observability,
  });
  await app.listen({ host: config.host, port: config.port });
  return app;
}

/**
 * main is the process entry point: read the configuration, listen, and on SIGTERM or SIGINT
 * stop accepting, let in-flight orders finish (each bounded by its deadline) and exit 0.
 */
async function main(): Promise<void> {
  const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'info' });
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      logger.fatal(error.message);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
  const app = await startServer(config, logger);
  const shutdown = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'shutting down: draining in-flight orders');
    app.close().then(
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
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
