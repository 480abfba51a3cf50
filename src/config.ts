import type { TracesExporter } from './observability/tracing.js';

/**
 * Config is the service's configuration, read from the environment once at start-up.
 */
export interface Config {
  /** Interface to listen on. */
  readonly host: string;
  /** TCP port to listen on; 0 picks a free port. */
  readonly port: number;
  /** Slots of the courier pool: how many courier assignments may run at once. */
  readonly courierPoolSize: number;
  /** Deadline of one order, in milliseconds. */
  readonly requestTimeoutMs: number;
  /** Prometheus metrics at `GET /metrics` (METRICS_ENABLED). */
  readonly metricsEnabled: boolean;
  /** The live dashboard at `GET /` and its timeline of recent orders (DASHBOARD_ENABLED). */
  readonly dashboardEnabled: boolean;
  /** Where traces go, from the standard OTEL_* variables; `none` turns tracing off. */
  readonly tracesExporter: TracesExporter;
}

export const defaultConfig: Config = {
  host: '127.0.0.1',
  port: 8080,
  courierPoolSize: 5,
  requestTimeoutMs: 2000,
  metricsEnabled: true,
  dashboardEnabled: true,
  tracesExporter: 'none',
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
  return {
    host: stringVar(env, 'HOST', defaultConfig.host),
    port: intVar(env, 'PORT', defaultConfig.port, 0, 65535),
    courierPoolSize: intVar(env, 'COURIER_POOL_SIZE', defaultConfig.courierPoolSize, 1, 100_000),
    requestTimeoutMs: intVar(env, 'REQUEST_TIMEOUT_MS', defaultConfig.requestTimeoutMs, 1, 600_000),
    ...observabilityConfig(env),
  };
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
  if (stringVar(env, 'OTEL_SDK_DISABLED', 'false').toLowerCase() === 'true') return 'none';
  const exporter = stringVar(env, 'OTEL_TRACES_EXPORTER', '').toLowerCase();
  if (exporter === '') {
    const endpoint =
      stringVar(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '') ||
      stringVar(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', '');
    return endpoint === '' ? 'none' : 'otlp';
  }
  if (exporter === 'none' || exporter === 'otlp' || exporter === 'console') return exporter;
  throw new ConfigError(
    `OTEL_TRACES_EXPORTER must be otlp, console or none, got ${JSON.stringify(env['OTEL_TRACES_EXPORTER'])}`,
  );
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
