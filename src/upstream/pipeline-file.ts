import { readFileSync } from 'node:fs';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { ErrorKind } from '../order/errors.js';
import { placeholderNames } from './template.js';

/** The kinds a step may fail with: those of the seed's steps, `unavailable` and `internal`. */
export const stepFailureKinds = [
  'payment_declined',
  'vendor_unavailable',
  'no_courier',
  'unavailable',
  'internal',
] as const satisfies readonly ErrorKind[];
export type StepFailureKind = (typeof stepFailureKinds)[number];

const status = Type.Integer({ minimum: 100, maximum: 599 });
const statuses = Type.Array(status, { minItems: 1, maxItems: 100, uniqueItems: true });
const failureKind = Type.Union(stepFailureKinds.map((kind) => Type.Literal(kind)));
const method = Type.Union([
  Type.Literal('GET'),
  Type.Literal('POST'),
  Type.Literal('PUT'),
  Type.Literal('PATCH'),
  Type.Literal('DELETE'),
]);
const headers = Type.Record(
  Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" }),
  Type.String(),
  {
    maxProperties: 64,
  },
);

const UpstreamRequest = Type.Object(
  {
    method: Type.Optional(method),
    /** An http(s) URL; `${VAR}` reads the environment, `{{placeholder}}` the order. */
    url: Type.String({ minLength: 1 }),
    headers: Type.Optional(headers),
    /** A JSON template of the body (see template.ts); absent, no body. */
    body: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);

const RetryPolicy = Type.Object(
  {
    attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    initial_delay_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    factor: Type.Optional(Type.Number({ minimum: 1, maximum: 10 })),
    max_delay_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    jitter: Type.Optional(Type.Boolean()),
    honour_retry_after: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const Breaker = Type.Object(
  {
    consecutive_failures: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    half_open_after_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
  },
  { additionalProperties: false },
);

const Compensation = Type.Object(
  {
    ...UpstreamRequest.properties,
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 })),
    success: Type.Optional(statuses),
    /** Statuses meaning the effect never happened: counted as compensated. */
    nothing_to_undo: Type.Optional(Type.Array(status, { maxItems: 100, uniqueItems: true })),
  },
  { additionalProperties: false },
);

const StepSpec = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z][a-z0-9_]{0,39}$' }),
    /** Names the upstream in metrics and its breaker; the step's name by default. */
    upstream: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,39}$' })),
    request: UpstreamRequest,
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 })),
    retry: Type.Optional(RetryPolicy),
    success: Type.Optional(statuses),
    /** Business refusals: status → kind, never retried. */
    refusals: Type.Optional(
      Type.Record(Type.String({ pattern: '^[1-5][0-9][0-9]$' }), failureKind),
    ),
    transient: Type.Optional(statuses),
    /** The kind once transient failures outlast the retries or the breaker is open. */
    unavailable_kind: Type.Optional(failureKind),
    courier_slot: Type.Optional(Type.Boolean()),
    breaker: Type.Optional(Breaker),
    compensation: Type.Optional(Compensation),
  },
  { additionalProperties: false },
);

/** PipelineFile is the JSON of `PIPELINE_FILE`: the steps of every order, in order. */
export const PipelineFile = Type.Object(
  {
    /** Keep-alive connections per upstream origin at most. */
    connections_per_origin: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    steps: Type.Array(StepSpec, { minItems: 1, maxItems: 32 }),
  },
  { additionalProperties: false },
);
export type PipelineFile = Static<typeof PipelineFile>;

/** UpstreamCall is a request as the steps make it, every default applied. */
export interface UpstreamCall {
  readonly method: Static<typeof method>;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
}

/** StepPlan is one step of a pipeline file, every default applied and `${VAR}` substituted. */
export interface StepPlan {
  readonly name: string;
  readonly upstream: string;
  readonly request: UpstreamCall;
  readonly timeoutMs: number;
  readonly retry: {
    readonly attempts: number;
    readonly initialDelayMs: number;
    readonly factor: number;
    readonly maxDelayMs: number;
    readonly jitter: boolean;
    readonly honourRetryAfter: boolean;
  };
  readonly success: ReadonlySet<number>;
  readonly refusals: ReadonlyMap<number, StepFailureKind>;
  readonly transient: ReadonlySet<number>;
  readonly unavailableKind: StepFailureKind;
  readonly courierSlot: boolean;
  readonly breaker: { readonly consecutiveFailures: number; readonly halfOpenAfterMs: number };
  readonly compensation:
    | (UpstreamCall & {
        readonly timeoutMs: number | undefined;
        readonly success: ReadonlySet<number>;
        readonly nothingToUndo: ReadonlySet<number>;
      })
    | undefined;
}

/** PipelinePlan is a validated pipeline file. */
export interface PipelinePlan {
  readonly file: string;
  readonly connectionsPerOrigin: number;
  readonly steps: readonly StepPlan[];
}

/** PipelineFileError says which file is wrong, where in it, and what was expected. */
export class PipelineFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PipelineFileError';
  }
}

const successDefault = [200, 201, 202, 204];
const transientDefault = [408, 425, 429, 500, 502, 503, 504];

/**
 * The seed's steps as defaults: a step named payment, vendor or courier fails with the kind
 * the simulated one does, and the courier holds a courier slot.
 */
const seedDefaults: Readonly<
  Record<string, { refusals: Record<string, StepFailureKind>; kind: StepFailureKind }>
> = {
  payment: { refusals: { '402': 'payment_declined' }, kind: 'unavailable' },
  vendor: { refusals: {}, kind: 'vendor_unavailable' },
  courier: { refusals: { '409': 'no_courier' }, kind: 'no_courier' },
};

/**
 * loadPipelineFile reads and validates the pipeline file at `path`, applies the defaults and
 * substitutes `${VAR}` (or `${VAR:-fallback}`) from `env` in URLs and header values. Throws a
 * {@link PipelineFileError} naming the file, the field's JSON path and what was expected: an
 * unreadable file, invalid JSON, a schema violation, a duplicate step name, an unknown
 * `{{placeholder}}`, an unset variable, a URL that is not http(s). Values of variables never
 * appear in a message.
 */
export function loadPipelineFile(path: string, env: NodeJS.ProcessEnv): PipelinePlan {
  const fail = (where: string, what: string): never => {
    throw new PipelineFileError(`pipeline file ${path}: ${where}: ${what}`);
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return fail('(file)', `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return fail('(file)', `is not valid JSON (${(error as Error).message})`);
  }
  if (!Value.Check(PipelineFile, json)) {
    const [first] = Value.Errors(PipelineFile, json);
    return fail(
      first === undefined || first.path === '' ? '/' : first.path,
      first === undefined ? 'expected a pipeline' : expected(first.schema, first.message),
    );
  }
  const file = json;
  const names = new Set<string>();
  const steps = file.steps.map((step, i): StepPlan => {
    const at = `/steps/${i}`;
    if (names.has(step.name))
      fail(`${at}/name`, `duplicate step name ${JSON.stringify(step.name)}`);
    names.add(step.name);
    const seed = seedDefaults[step.name];
    const call = (request: Static<typeof UpstreamRequest>, where: string): UpstreamCall => {
      checkPlaceholders(request, where, fail);
      const url = substitute(request.url, env, `${where}/url`, fail);
      if (!/^https?:\/\/[^/]/.test(url))
        fail(`${where}/url`, 'expected an http:// or https:// URL');
      const substituted: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers ?? {})) {
        substituted[name.toLowerCase()] = substitute(value, env, `${where}/headers/${name}`, fail);
      }
      return {
        method: request.method ?? (request.body === undefined ? 'GET' : 'POST'),
        url,
        headers: substituted,
        body: request.body,
      };
    };
    const retry = step.retry ?? {};
    const { compensation } = step;
    return {
      name: step.name,
      upstream: step.upstream ?? step.name,
      request: call(step.request, `${at}/request`),
      timeoutMs: step.timeout_ms ?? 1000,
      retry: {
        attempts: retry.attempts ?? 3,
        initialDelayMs: retry.initial_delay_ms ?? 50,
        factor: retry.factor ?? 2,
        maxDelayMs: retry.max_delay_ms ?? 1000,
        jitter: retry.jitter ?? true,
        honourRetryAfter: retry.honour_retry_after ?? true,
      },
      success: new Set(step.success ?? successDefault),
      refusals: new Map(
        Object.entries(step.refusals ?? seed?.refusals ?? {}).map(([code, kind]) => [
          Number(code),
          kind,
        ]),
      ),
      transient: new Set(step.transient ?? transientDefault),
      unavailableKind: step.unavailable_kind ?? seed?.kind ?? 'unavailable',
      courierSlot: step.courier_slot ?? step.name === 'courier',
      breaker: {
        consecutiveFailures: step.breaker?.consecutive_failures ?? 5,
        halfOpenAfterMs: step.breaker?.half_open_after_ms ?? 5000,
      },
      compensation:
        compensation === undefined
          ? undefined
          : {
              ...call(compensation, `${at}/compensation`),
              timeoutMs: compensation.timeout_ms,
              success: new Set(compensation.success ?? successDefault),
              nothingToUndo: new Set(compensation.nothing_to_undo ?? [404, 410]),
            },
    };
  });
  return { file: path, connectionsPerOrigin: file.connections_per_origin ?? 64, steps };
}

/** expected says what a schema wanted, in the words of its constraint. */
function expected(schema: TSchema, message: string): string {
  if (schema['anyOf'] !== undefined) {
    const options = (schema['anyOf'] as TSchema[]).map((option) => JSON.stringify(option['const']));
    return `expected one of ${options.join(', ')}`;
  }
  return message.charAt(0).toLowerCase() + message.slice(1);
}

const variable = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** substitute replaces `${VAR}` and `${VAR:-fallback}` with the environment's values. */
function substitute(
  text: string,
  env: NodeJS.ProcessEnv,
  where: string,
  fail: (where: string, what: string) => never,
): string {
  return text.replace(variable, (_match, name: string, fallback: string | undefined) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    return fail(where, `needs the environment variable ${name}, which is not set`);
  });
}

/** checkPlaceholders fails on a `{{name}}` that no order provides. */
function checkPlaceholders(
  request: Static<typeof UpstreamRequest>,
  where: string,
  fail: (where: string, what: string) => never,
): void {
  const visit = (value: unknown, at: string): void => {
    if (typeof value === 'string') {
      for (const name of placeholderNames(value)) {
        if (!isKnownPlaceholder(name)) {
          fail(at, `unknown placeholder {{${name}}}; expected one of ${knownPlaceholders}`);
        }
      }
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        visit(item, `${at}/${i}`);
      });
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) visit(item, `${at}/${key}`);
    }
  };
  visit(request.url, `${where}/url`);
  visit(request.headers ?? {}, `${where}/headers`);
  visit(request.body, `${where}/body`);
}

const knownPlaceholders =
  'order_id, amount, details, details.<path>, idempotency_key, step_key, run_id, step';

function isKnownPlaceholder(name: string): boolean {
  return (
    ['order_id', 'amount', 'details', 'idempotency_key', 'step_key', 'run_id', 'step'].includes(
      name,
    ) || /^details(\.[A-Za-z0-9_-]+)+$/.test(name)
  );
}
