import type { OrderStoreKind } from './store/store-kinds.js';
import { DataDirInUseError } from './store/data-dir-lock.js';
import { messageOf } from './core/message-of.js';

/**
 * StartupError is why the server could not start, in one line that names the setting to
 * check and what to check, e.g. `DATABASE_URL: cannot connect to 127.0.0.1:1 (ECONNREFUSED):
 * is PostgreSQL running and the URL right?`. The message never carries a stack trace nor a
 * URL's password; `cause` is the error it describes.
 */
export class StartupError extends Error {
  /** The environment variable to check. */
  readonly variable: string;

  constructor(variable: string, problem: string, cause: unknown) {
    super(`${variable}: ${problem}`, { cause });
    this.name = 'StartupError';
    this.variable = variable;
  }
}

/** Codes of a connection that could not be made or was cut while being made. */
const connectionCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** Codes of a directory or file that cannot be made, read or written. */
const fileSystemCodes = new Set([
  'EACCES',
  'EPERM',
  'EROFS',
  'ENOTDIR',
  'EISDIR',
  'ENOENT',
  'EEXIST',
  'ENOSPC',
  'SQLITE_CANTOPEN',
  'SQLITE_READONLY',
]);

/** The setting that says where the order store is, by kind: `memory` cannot fail to open. */
export interface StoreLocation {
  readonly orderStore: OrderStoreKind;
  readonly dataDir: string;
  readonly databaseUrl?: string | undefined;
}

/** storeStartupError describes why the order store `location` names could not be used. */
export function storeStartupError(location: StoreLocation, error: unknown): StartupError {
  if (location.orderStore === 'postgres') {
    return new StartupError('DATABASE_URL', postgresProblem(location.databaseUrl, error), error);
  }
  if (error instanceof DataDirInUseError) {
    return new StartupError(
      'DATA_DIR',
      `${error.dir} is in use by process ${error.holder}: stop that server, or give this one ` +
        'a DATA_DIR of its own',
      error,
    );
  }
  const code = codeOf(error);
  const problem =
    code !== undefined && fileSystemCodes.has(code)
      ? `cannot use ${location.dataDir} for the order store (${code}): is it a directory this ` +
        'user can create and write?'
      : `cannot open the order store in ${location.dataDir}: ${messageOf(error)}`;
  return new StartupError('DATA_DIR', problem, error);
}

/** redisStartupError describes why the Redis at `url` (REDIS_URL) could not be used. */
export function redisStartupError(url: string, error: unknown): StartupError {
  const code = codeOf(error);
  const endpoint = endpointOf(error, url, 6379);
  let problem: string;
  if (code !== undefined && connectionCodes.has(code)) {
    problem = `cannot connect to ${endpoint} (${code}): is Redis running and the URL right?`;
  } else if (error instanceof Error && error.name === 'ReplyError') {
    problem = `Redis at ${endpoint} answered: ${error.message}: check the URL's user, password and database`;
  } else {
    problem = `cannot use Redis at ${endpoint}: ${messageOf(error)}`;
  }
  return new StartupError('REDIS_URL', problem, error);
}

/** listenStartupError describes why the server could not listen on `host`:`port`. */
export function listenStartupError(host: string, port: number, error: unknown): StartupError {
  const code = codeOf(error) ?? 'unknown error';
  const at = `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return new StartupError(
        'PORT',
        `${at} is already in use (EADDRINUSE): stop what listens there, or choose another PORT`,
        error,
      );
    case 'EACCES':
      return new StartupError(
        'PORT',
        `not allowed to listen on ${at} (EACCES): choose a PORT above 1023`,
        error,
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(
        'HOST',
        `cannot listen on ${host} (${code}): is it an address of this machine?`,
        error,
      );
    default:
      return new StartupError(
        'PORT',
        `cannot listen on ${at} (${code}): ${messageOf(error)}`,
        error,
      );
  }
}

/** postgresProblem says what went wrong with the PostgreSQL at `url`, and what to check. */
function postgresProblem(url: string | undefined, error: unknown): string {
  const code = codeOf(error);
  const endpoint = endpointOf(error, url, 5432);
  if (code !== undefined && connectionCodes.has(code)) {
    return `cannot connect to ${endpoint} (${code}): is PostgreSQL running and the URL right?`;
  }
  if (!isDatabaseError(error)) {
    // The driver's own timeout has no code.
    if (/timeout/i.test(messageOf(error))) {
      return `cannot connect to ${endpoint} (timed out): is PostgreSQL running and reachable?`;
    }
    return `cannot use PostgreSQL at ${endpoint}: ${messageOf(error)}`;
  }
  const reason = `${messageOf(error)} (${code ?? 'no code'})`;
  switch (code) {
    case '3D000':
      return `${reason}: create it, or name an existing database in the URL`;
    case '28P01':
    case '28000':
      return `${reason}: check the user and password in the URL`;
    default:
      return `PostgreSQL at ${endpoint} answered: ${reason}: check the URL and the database`;
  }
}

/** isDatabaseError tells an error PostgreSQL answered (it has a severity) from the driver's. */
function isDatabaseError(error: unknown): boolean {
  return error instanceof Error && 'severity' in error && typeof error.severity === 'string';
}

function codeOf(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

/**
 * endpointOf is `host:port` of the connection that failed: from the error when it says
 * (Node's connection errors do), else from `url`, never with its user or password.
 */
function endpointOf(error: unknown, url: string | undefined, defaultPort: number): string {
  if (
    error instanceof Error &&
    'address' in error &&
    typeof error.address === 'string' &&
    'port' in error &&
    typeof error.port === 'number'
  ) {
    return `${error.address}:${error.port}`;
  }
  try {
    const parsed = new URL(url ?? '');
    if (parsed.hostname === '') return 'the server';
    return `${parsed.hostname}:${parsed.port === '' ? defaultPort : parsed.port}`;
  } catch {
    return 'the server';
  }
}
