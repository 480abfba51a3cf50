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
}

export const defaultConfig: Config = {
  host: '127.0.0.1',
  port: 8080,
  courierPoolSize: 5,
  requestTimeoutMs: 2000,
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
  };
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
