/**
 * ErrorKind classifies every way an order can end other than success. The domain only
 * classifies; the HTTP layer alone maps kinds to statuses.
 */
export const errorKinds = [
  'payment_declined',
  'vendor_unavailable',
  'no_courier',
  'timeout',
  'canceled',
  'internal',
  'bad_request',
  'overloaded',
  'shutting_down',
  'idempotency_conflict',
  'order_in_progress',
  'interrupted',
  'unavailable',
] as const;

export type ErrorKind = (typeof errorKinds)[number];

/**
 * The kinds an order that ran can fail with: its steps failed, or its deadline, its client or
 * a shutdown stopped it (before its steps started, too). An order recovered after its process
 * died is `interrupted` besides.
 */
export const ranKinds = [
  'payment_declined',
  'vendor_unavailable',
  'no_courier',
  'timeout',
  'canceled',
  'internal',
  'shutting_down',
  'unavailable',
] as const satisfies readonly ErrorKind[];

/** OrderErrorOptions are an error's `cause` and what a failed step may have left behind. */
export interface OrderErrorOptions extends ErrorOptions {
  /**
   * The step failed, but its effect may have happened: it sent a request that was never
   * answered (a timeout, a connection lost after the request was written). The saga undoes
   * such a step as it undoes one that completed; see {@link Step}.
   */
  readonly effectUnknown?: boolean | undefined;
}

/**
 * OrderError is a domain error: a kind, and a message that is safe to show a client.
 */
export class OrderError extends Error {
  readonly kind: ErrorKind;
  /** Whether the failed step's effect may have happened (see {@link OrderErrorOptions}). */
  readonly effectUnknown: boolean;

  constructor(kind: ErrorKind, message: string, options?: OrderErrorOptions) {
    super(message, options);
    this.name = 'OrderError';
    this.kind = kind;
    this.effectUnknown = options?.effectUnknown ?? false;
  }
}

/**
 * kindOf classifies any thrown value. An {@link OrderError} keeps its kind; a standard
 * `TimeoutError` (from `AbortSignal.timeout`) is `timeout`; a standard `AbortError` is
 * `canceled`; anything else is `internal`.
 */
export function kindOf(error: unknown): ErrorKind {
  if (error instanceof OrderError) return error.kind;
  if (error instanceof Error || error instanceof DOMException) {
    if (error.name === 'TimeoutError') return 'timeout';
    if (error.name === 'AbortError') return 'canceled';
  }
  return 'internal';
}

/**
 * publicMessage is the message a client may see for `error`: an {@link OrderError}'s own
 * message, and for anything else a fixed text per kind, so an internal message never leaks.
 */
export function publicMessage(error: unknown): string {
  if (error instanceof OrderError) return error.message;
  return kindMessage(kindOf(error));
}

/** kindMessage is the fixed text, safe to show a client, that describes `kind`. */
export function kindMessage(kind: ErrorKind): string {
  return fixedMessages[kind];
}

const fixedMessages: Record<ErrorKind, string> = {
  payment_declined: 'payment was declined',
  vendor_unavailable: 'vendor is unavailable',
  no_courier: 'no courier is available',
  timeout: 'the order did not complete before its deadline',
  canceled: 'the order was canceled',
  internal: 'internal error',
  bad_request: 'bad request',
  overloaded: 'the service is overloaded, retry later',
  shutting_down: 'the service is shutting down, retry elsewhere',
  idempotency_conflict: 'this Idempotency-Key was already used with a different request',
  order_in_progress: 'this order is still in progress, retry later',
  interrupted: 'the order was interrupted by a server restart',
  unavailable: 'a service the order needs is unavailable, retry later',
};
