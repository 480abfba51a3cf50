import { tracesExporters, type TracesExporter } from './observability/traces-exporters.js';
import type { ServiceSettings } from './service/order-service.js';
import {
  PipelineFileError,
  loadPipelineFile,
  type PipelinePlan,
} from './upstream/pipeline-file.js';
import {
  orderStoreKinds,
  storeSyncLevels,
  type OrderStoreKind,
  type StoreSync,
} from './store/store-kinds.js';

export { orderStoreKinds, storeSyncLevels, type OrderStoreKind, type StoreSync };
export { tracesExporters, type TracesExporter };

/**
 * Config is the service's configuration, read from the environment once at start-up. The
 * numbers that shape the order service are its {@link ServiceSettings}, documented there.
 */
export interface Config extends ServiceSettings {
  /** Interface to listen on. */
  readonly host: string;
  /** TCP port to listen on; 0 picks a free port. */
  readonly port: number;
  /** Slots of the courier pool: how many courier assignments may run at once. */
  readonly courierPoolSize: number;
  /** Serves the benchmarks' framework floor, `POST /bench/floor` (BENCH_FLOOR_ROUTE). */
  readonly benchFloorRoute: boolean;
  /** pino log level (LOG_LEVEL): `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. */
  readonly logLevel: LogLevel;
  /** Prometheus metrics at `GET /metrics` (METRICS_ENABLED). */
  readonly metricsEnabled: boolean;
  /** The live dashboard at `GET /` and its timeline of recent orders (DASHBOARD_ENABLED). */
  readonly dashboardEnabled: boolean;
  /** Where traces go, from the standard OTEL_* variables; `none` turns tracing off. */
  readonly tracesExporter: TracesExporter;
  /** How long a shutdown waits for in-flight orders before aborting them. */
  readonly drainTimeoutMs: number;
  /** Time a client has to send the request headers (slowloris bound). */
  readonly headersTimeoutMs: number;
  /** Time a client has to send the whole request, headers and body; >= headersTimeoutMs. */
  readonly bodyTimeoutMs: number;
  /** How long an idle keep-alive connection is kept open. */
  readonly keepAliveTimeoutMs: number;
  /** Largest request head (request line and headers) accepted, in bytes; larger gets 431. */
  readonly maxHeaderSizeBytes: number;
  /**
   * Where orders are recorded: `sqlite` (embedded, under {@link dataDir}), `postgres` (at
   * {@link databaseUrl}; the default when it is set) or `memory` (nothing survives a restart).
   */
  readonly orderStore: OrderStoreKind;
  /** Directory of the embedded store. */
  readonly dataDir: string;
  /**
   * What a recorded order survives: `normal`, a crash of the process (the default); `full`,
   * also a crash of the machine or a power loss (every commit is flushed to the disk).
   */
  readonly storeSync: StoreSync;
  /** PostgreSQL connection string of the shared store. */
  readonly databaseUrl: string | undefined;
  /** Connections in the PostgreSQL pool. */
  readonly databasePoolSize: number;
  /** Redis URL of the courier pool shared by every instance (REDIS_URL); unset, in-process. */
  readonly redisUrl: string | undefined;
  /** Key prefix of the shared courier pool in Redis: instances with one prefix share it. */
  readonly redisKeyPrefix: string;
  /** Lease of a held courier slot in Redis: a dead instance's slots come back after it. */
  readonly courierLeaseMs: number;
  /** Worker processes serving on one port (node:cluster); more than 1 needs shared stores. */
  readonly workers: number;
  /**
   * The operator token (ADMIN_TOKEN) that operator actions require, as `Authorization:
   * Bearer <token>`; unset, the actions are disabled. At least 16 characters.
   */
  readonly adminToken: string | undefined;
  /**
   * The steps declared by PIPELINE_FILE, validated: real upstreams called over HTTP. Unset,
   * the steps are the simulated ones.
   */
  readonly pipeline: PipelinePlan | undefined;
}

/** The log levels LOG_LEVEL accepts: pino's own, and `silent` for none. */
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

/**
 * defaultServiceSettings are the numbers of {@link defaultConfig} that shape the order
 * service, exported by the package for a library user, for whom
 * `{ ...defaultServiceSettings, store, courierPool, steps }` is a complete set of options.
 */
export const defaultServiceSettings: ServiceSettings = {
  requestTimeoutMs: 2000,
  maxInflightOrders: 1000,
  overloadWaitMs: 50,
  overloadWindowMs: 1000,
  retryAfterSeconds: 1,
  answerSlackMs: 25,
  abandonGraceMs: 1000,
  orderLeaseMs: 15_000,
  compensationTimeoutMs: 2000,
  compensationMaxAttempts: 8,
  compensationRetryBaseMs: 500,
  compensationRetryMaxMs: 60_000,
};

/** defaultConfig is what {@link loadConfig} returns when no variable is set. */
export const defaultConfig: Config = {
  ...defaultServiceSettings,
  host: '127.0.0.1',
  port: 8080,
  courierPoolSize: 5,
  benchFloorRoute: false,
  logLevel: 'info',
  metricsEnabled: true,
  dashboardEnabled: true,
  tracesExporter: 'none',
  drainTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5000,
  maxHeaderSizeBytes: 16 * 1024,
  orderStore: 'sqlite',
  dataDir: './data',
  storeSync: 'normal',
  databaseUrl: undefined,
  databasePoolSize: 10,
  redisUrl: undefined,
  redisKeyPrefix: 'order-pipeline:couriers',
  courierLeaseMs: 10_000,
  workers: 1,
  adminToken: undefined,
  pipeline: undefined,
};

/** ConfigError says which variable is wrong and what was expected. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * loadConfig reads the configuration from `env`. Unset or empty variables take their
 * defaults; a set variable that is not valid throws a {@link ConfigError} naming it.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const store = orderStoreConfig(env);
  return {
    host: stringVar(env, 'HOST', defaultConfig.host),
    port: intVar(env, 'PORT', defaultConfig.port, 0, 65535),
    courierPoolSize: intVar(env, 'COURIER_POOL_SIZE', defaultConfig.courierPoolSize, 1, 100_000),
    requestTimeoutMs: intVar(env, 'REQUEST_TIMEOUT_MS', defaultConfig.requestTimeoutMs, 1, 600_000),
    benchFloorRoute: boolVar(env, 'BENCH_FLOOR_ROUTE', defaultConfig.benchFloorRoute),
    logLevel: oneOfVar(env, 'LOG_LEVEL', logLevels, defaultConfig.logLevel),
    ...observabilityConfig(env),
    ...reliabilityConfig(env),
    ...store,
    ...scaleOutConfig(env, store),
    adminToken: adminTokenVar(env),
    pipeline: pipelineVar(env),
  };
}

/**
 * pipelineVar reads and validates the pipeline file PIPELINE_FILE names; its error, naming the
 * file, the field and what was expected, becomes a {@link ConfigError}.
 */
function pipelineVar(env: NodeJS.ProcessEnv): PipelinePlan | undefined {
  const path = stringVar(env, 'PIPELINE_FILE', '');
  if (path === '') return undefined;
  try {
    return loadPipelineFile(path, env);
  } catch (error) {
    if (error instanceof PipelineFileError)
      throw new ConfigError(`PIPELINE_FILE: ${error.message}`);
    throw error;
  }
}

type ScaleOutConfig = Pick<Config, 'redisUrl' | 'redisKeyPrefix' | 'courierLeaseMs' | 'workers'>;

/**
 * scaleOutConfig reads the shared courier pool and the worker count. More than one worker
 * needs a pool and a store that the workers share: without REDIS_URL and DATABASE_URL it
 * throws a {@link ConfigError} saying so.
 */
function scaleOutConfig(
  env: NodeJS.ProcessEnv,
  store: Pick<Config, 'orderStore' | 'databaseUrl'>,
): ScaleOutConfig {
  const d = defaultConfig;
  const redisUrl = stringVar(env, 'REDIS_URL', '') || undefined;
  const workers = intVar(env, 'WORKERS', d.workers, 1, 64);
  if (workers > 1 && (redisUrl === undefined || store.orderStore !== 'postgres')) {
    throw new ConfigError(
      `WORKERS=${workers} needs a courier pool and an order store shared by the workers: ` +
        'set REDIS_URL and DATABASE_URL (with the default or postgres ORDER_STORE)',
    );
  }
  return {
    redisUrl,
    redisKeyPrefix: stringVar(env, 'REDIS_KEY_PREFIX', d.redisKeyPrefix),
    courierLeaseMs: intVar(env, 'COURIER_LEASE_MS', d.courierLeaseMs, 100, 3_600_000),
    workers,
  };
}

/** The shortest operator token accepted: guessing it must be out of reach. */
const minAdminTokenLength = 16;

function adminTokenVar(env: NodeJS.ProcessEnv): string | undefined {
  const token = stringVar(env, 'ADMIN_TOKEN', '');
  if (token === '') return undefined;
  if (token.length < minAdminTokenLength || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError(
      `ADMIN_TOKEN must be at least ${minAdminTokenLength} visible ASCII characters`,
    );
  }
  return token;
}

type OrderStoreConfig = Pick<
  Config,
  | 'orderStore'
  | 'dataDir'
  | 'storeSync'
  | 'databaseUrl'
  | 'databasePoolSize'
  | 'orderLeaseMs'
  | 'compensationTimeoutMs'
  | 'compensationMaxAttempts'
  | 'compensationRetryBaseMs'
  | 'compensationRetryMaxMs'
>;

/**
 * orderStoreConfig reads where orders are recorded and how compensations are retried.
 * `ORDER_STORE=postgres` without `DATABASE_URL`, or an unknown store, throws a
 * {@link ConfigError}.
 */
function orderStoreConfig(env: NodeJS.ProcessEnv): OrderStoreConfig {
  const d = defaultConfig;
  const databaseUrl = stringVar(env, 'DATABASE_URL', '') || undefined;
  const orderStore = oneOfVar(
    env,
    'ORDER_STORE',
    orderStoreKinds,
    databaseUrl === undefined ? d.orderStore : 'postgres',
  );
  if (orderStore === 'postgres' && databaseUrl === undefined) {
    throw new ConfigError('ORDER_STORE=postgres needs DATABASE_URL');
  }
  return {
    orderStore,
    dataDir: stringVar(env, 'DATA_DIR', d.dataDir),
    storeSync: oneOfVar(env, 'STORE_SYNC', storeSyncLevels, d.storeSync),
    databaseUrl,
    databasePoolSize: intVar(env, 'DATABASE_POOL_SIZE', d.databasePoolSize, 1, 1000),
    orderLeaseMs: intVar(env, 'ORDER_LEASE_MS', d.orderLeaseMs, 100, 3_600_000),
    compensationTimeoutMs: intVar(
      env,
      'COMPENSATION_TIMEOUT_MS',
      d.compensationTimeoutMs,
      1,
      600_000,
    ),
    compensationMaxAttempts: intVar(
      env,
      'COMPENSATION_MAX_ATTEMPTS',
      d.compensationMaxAttempts,
      1,
      1000,
    ),
    compensationRetryBaseMs: intVar(
      env,
      'COMPENSATION_RETRY_BASE_MS',
      d.compensationRetryBaseMs,
      1,
      3_600_000,
    ),
    compensationRetryMaxMs: intVar(
      env,
      'COMPENSATION_RETRY_MAX_MS',
      d.compensationRetryMaxMs,
      1,
      86_400_000,
    ),
  };
}

type ReliabilityConfig = Pick<
  Config,
  | 'maxInflightOrders'
  | 'overloadWaitMs'
  | 'overloadWindowMs'
  | 'retryAfterSeconds'
  | 'answerSlackMs'
  | 'abandonGraceMs'
  | 'drainTimeoutMs'
  | 'headersTimeoutMs'
  | 'bodyTimeoutMs'
  | 'keepAliveTimeoutMs'
  | 'maxHeaderSizeBytes'
>;

/**
 * reliabilityConfig reads admission, abandonment, drain and HTTP edge limits. A headers
 * timeout longer than the body timeout throws a {@link ConfigError}: Node refuses it, and the
 * body timeout would then cut the headers first anyway.
 */
function reliabilityConfig(env: NodeJS.ProcessEnv): ReliabilityConfig {
  const d = defaultConfig;
  const config: ReliabilityConfig = {
    maxInflightOrders: intVar(env, 'MAX_INFLIGHT_ORDERS', d.maxInflightOrders, 1, 1_000_000),
    overloadWaitMs: intVar(env, 'OVERLOAD_WAIT_MS', d.overloadWaitMs, 0, 600_000),
    overloadWindowMs: intVar(env, 'OVERLOAD_WINDOW_MS', d.overloadWindowMs, 0, 600_000),
    retryAfterSeconds: intVar(env, 'RETRY_AFTER_SECONDS', d.retryAfterSeconds, 1, 3600),
    answerSlackMs: intVar(env, 'ANSWER_SLACK_MS', d.answerSlackMs, 0, 60_000),
    abandonGraceMs: intVar(env, 'ABANDON_GRACE_MS', d.abandonGraceMs, 0, 600_000),
    drainTimeoutMs: intVar(env, 'DRAIN_TIMEOUT_MS', d.drainTimeoutMs, 0, 600_000),
    headersTimeoutMs: intVar(env, 'HEADERS_TIMEOUT_MS', d.headersTimeoutMs, 1, 600_000),
    bodyTimeoutMs: intVar(env, 'BODY_TIMEOUT_MS', d.bodyTimeoutMs, 1, 600_000),
    keepAliveTimeoutMs: intVar(env, 'KEEP_ALIVE_TIMEOUT_MS', d.keepAliveTimeoutMs, 1, 600_000),
    maxHeaderSizeBytes: intVar(env, 'MAX_HEADER_SIZE_BYTES', d.maxHeaderSizeBytes, 1024, 1 << 20),
  };
  if (config.headersTimeoutMs > config.bodyTimeoutMs) {
    throw new ConfigError(
      `HEADERS_TIMEOUT_MS (${config.headersTimeoutMs}) must not exceed BODY_TIMEOUT_MS (${config.bodyTimeoutMs})`,
    );
  }
  return config;
}

type ObservabilityConfig = Pick<Config, 'metricsEnabled' | 'dashboardEnabled' | 'tracesExporter'>;

/**
 * observabilityConfig reads the metrics and dashboard switches and where traces go. Tracing
 * follows the standard OpenTelemetry variables: off unless `OTEL_TRACES_EXPORTER` is `otlp`
 * or `console`, or (with `OTEL_TRACES_EXPORTER` unset) an OTLP endpoint is set in
 * `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true`
 * or `OTEL_TRACES_EXPORTER=none` turn it off. Any other exporter throws a {@link ConfigError}.
 */
function observabilityConfig(env: NodeJS.ProcessEnv): ObservabilityConfig {
  return {
    metricsEnabled: boolVar(env, 'METRICS_ENABLED', defaultConfig.metricsEnabled),
    dashboardEnabled: boolVar(env, 'DASHBOARD_ENABLED', defaultConfig.dashboardEnabled),
    tracesExporter: tracesExporterVar(env),
  };
}

function tracesExporterVar(env: NodeJS.ProcessEnv): TracesExporter {
  if (boolVar(env, 'OTEL_SDK_DISABLED', false)) return 'none';
  const endpoint =
    stringVar(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '') ||
    stringVar(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', '');
  return oneOfVar(env, 'OTEL_TRACES_EXPORTER', tracesExporters, endpoint === '' ? 'none' : 'otlp');
}

/** boolVar reads `true`/`false` (also `1`/`0`, any case). */
export function boolVar(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const text = raw.trim().toLowerCase();
  if (text === 'true' || text === '1') return true;
  if (text === 'false' || text === '0') return false;
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/** oneOfVar reads one of `choices` (any case), or throws a {@link ConfigError} listing them. */
function oneOfVar<const Choice extends string>(
  env: NodeJS.ProcessEnv,
  name: string,
  choices: readonly Choice[],
  fallback: Choice,
): Choice {
  const text = stringVar(env, name, fallback).toLowerCase();
  const choice = choices.find((candidate) => candidate === text);
  if (choice === undefined) {
    throw new ConfigError(
      `${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(env[name])}`,
    );
  }
  return choice;
}

function stringVar(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? fallback : raw.trim();
}

/** intVar reads a decimal integer in [min, max]. */
export function intVar(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const text = raw.trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}
