import type { Config } from './config.js';

/**
 * StartupSummary is what an operator needs to see once at start-up to know what this
 * process shares with others: where orders are recorded, which courier pool it draws from,
 * and how many workers serve the port. Server addresses are shown without their credentials.
 */
export interface StartupSummary {
  readonly store: Config['orderStore'];
  /** PostgreSQL's host, port and database (never the user or password). */
  readonly database?: string;
  /** The embedded store's directory. */
  readonly data_dir?: string;
  /** `redis`: shared by every instance on that Redis; `in_process`: this process's own. */
  readonly courier_pool: 'redis' | 'in_process';
  /** Redis' host, port and database number (never the user or password). */
  readonly redis?: string;
  readonly redis_key_prefix?: string;
  readonly courier_pool_size: number;
  readonly workers: number;
}

/** startupSummary describes `config` for the start-up log line (see {@link StartupSummary}). */
export function startupSummary(config: Config): StartupSummary {
  const { orderStore: store, databaseUrl, redisUrl } = config;
  return {
    store,
    ...(store === 'postgres' && databaseUrl !== undefined
      ? { database: serverOf(databaseUrl) }
      : {}),
    ...(store === 'sqlite' ? { data_dir: config.dataDir } : {}),
    ...(redisUrl === undefined
      ? { courier_pool: 'in_process' }
      : {
          courier_pool: 'redis',
          redis: serverOf(redisUrl),
          redis_key_prefix: config.redisKeyPrefix,
        }),
    courier_pool_size: config.courierPoolSize,
    workers: config.workers,
  };
}

/**
 * serverOf is the host, port and path (the database) of a connection URL, and nothing else:
 * no user, password or query parameter (which may hold a password too). A value that is not
 * a URL is not shown at all.
 */
export function serverOf(connectionUrl: string): string {
  let url: URL;
  try {
    url = new URL(connectionUrl);
  } catch {
    return '(not a URL)';
  }
  const port = url.port === '' ? '' : `:${url.port}`;
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.hostname}${port}${path}`;
}
