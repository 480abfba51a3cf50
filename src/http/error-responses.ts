import { STATUS_CODES } from 'node:http';
import { statusOf, type HttpErrorKind } from './error-catalogue.js';
import { OrderResponse } from './schemas.js';

/** What each error kind means to a client, for the OpenAPI document. */
const kindDescriptions: Readonly<Record<HttpErrorKind, string>> = {
  bad_request: 'the body, a header or a path parameter is not valid; the message says which',
  payment_declined: 'the payment step was declined',
  unauthorized: 'no valid operator token was given, or operator actions are disabled',
  not_found: 'there is no such resource',
  method_not_allowed: 'the path does not take this method; `Allow` names the one it takes',
  canceled: 'the order was canceled before it finished (its client went away)',
  request_timeout: 'the request was not received in time; the connection is closed',
  order_in_progress: 'an earlier request with this `Idempotency-Key` is still running',
  payload_too_large: 'the body is larger than the limit (64 KiB)',
  unsupported_media_type: 'the body is not `application/json`',
  idempotency_conflict: 'this `Idempotency-Key` was already used with a different body',
  headers_too_large: 'the request headers are too large; the connection is closed',
  internal: 'an unexpected error; nothing internal is shown',
  interrupted: 'the order was interrupted by a server restart',
  vendor_unavailable: 'the vendor step failed: the vendor is unavailable',
  no_courier: 'no courier slot was free in time',
  overloaded: 'the service refused the order to stay within its capacity',
  shutting_down: 'the service is draining and takes no new work',
  unavailable: 'a service the request needs (the order store, the courier pool) is unavailable',
  timeout: 'the order did not complete before its deadline',
};

/** DocumentedHeader is a response header that comes with some error kinds. */
export interface DocumentedHeader {
  readonly description: string;
  /** The kinds whose answers carry the header. */
  readonly kinds: readonly HttpErrorKind[];
}

/** ErrorResponse is the schema of one error status of a route: the shared error body, described. */
export type ErrorResponse = typeof OrderResponse & {
  description: string;
  headers?: Record<string, { type: 'string'; description: string }>;
};

/**
 * errorResponses is the response schemas of a route's error answers: one entry per status
 * that `kinds` map to in {@link statusOf}, each the shared error body ({@link OrderResponse})
 * with a description naming its kinds and the `headers` that come with them. Every entry
 * serializes exactly as `OrderResponse`; the descriptions and headers are for the OpenAPI
 * document. Throws if `kinds` is empty or names a kind twice.
 */
export function errorResponses(
  kinds: readonly HttpErrorKind[],
  headers: Readonly<Record<string, DocumentedHeader>> = {},
): Record<number, ErrorResponse> {
  if (kinds.length === 0 || new Set(kinds).size !== kinds.length) {
    throw new TypeError(`expected distinct error kinds, got [${kinds.join(', ')}]`);
  }
  const kindsByStatus = new Map<number, HttpErrorKind[]>();
  for (const kind of kinds) {
    const status = statusOf[kind];
    kindsByStatus.set(status, [...(kindsByStatus.get(status) ?? []), kind]);
  }
  const responses: Record<number, ErrorResponse> = {};
  for (const [status, ofStatus] of kindsByStatus) {
    const described = ofStatus.map((kind) => `\`${kind}\`: ${kindDescriptions[kind]}`);
    const statusHeaders: NonNullable<ErrorResponse['headers']> = {};
    for (const [name, header] of Object.entries(headers)) {
      const carrying = ofStatus.filter((kind) => header.kinds.includes(kind));
      if (carrying.length === 0) continue;
      const which = carrying.length === ofStatus.length ? '' : ` With ${backticked(carrying)}.`;
      statusHeaders[name] = { type: 'string', description: `${header.description}${which}` };
    }
    responses[status] = {
      ...OrderResponse,
      description: `${STATUS_CODES[status] ?? 'Error'}. Error kinds: ${described.join('; ')}.`,
      ...(Object.keys(statusHeaders).length === 0 ? {} : { headers: statusHeaders }),
    };
  }
  return responses;
}

function backticked(kinds: readonly HttpErrorKind[]): string {
  return kinds.map((kind) => `\`${kind}\``).join(', ');
}

/** retryAfter is the `Retry-After` header of the answers of `kinds`, which ask to come back. */
export function retryAfter(...kinds: HttpErrorKind[]): DocumentedHeader {
  return { description: 'Seconds to wait before retrying.', kinds };
}

/** otherErrors is the response schema of any status a route does not list: the error body. */
export const otherErrors: ErrorResponse = {
  ...OrderResponse,
  description: 'Any other error, with the same body.',
};
