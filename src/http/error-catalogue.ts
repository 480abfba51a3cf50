import type { FastifyReply } from 'fastify';
import { errorKinds, type ErrorKind } from '../order/errors.js';

/** Kinds of errors that exist only at the HTTP edge, before any order runs. */
export const edgeErrorKinds = [
  'not_found',
  'method_not_allowed',
  'request_timeout',
  'payload_too_large',
  'unsupported_media_type',
  'headers_too_large',
  'unauthorized',
] as const;
export type EdgeErrorKind = (typeof edgeErrorKinds)[number];

export type HttpErrorKind = ErrorKind | EdgeErrorKind;

/** Every kind an error body may carry. */
export const httpErrorKinds: readonly HttpErrorKind[] = [...errorKinds, ...edgeErrorKinds];

/** statusOf is the one table that maps an error kind to its HTTP status. */
export const statusOf: Readonly<Record<HttpErrorKind, number>> = {
  bad_request: 400,
  payment_declined: 400,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  canceled: 408,
  request_timeout: 408,
  order_in_progress: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_conflict: 422,
  headers_too_large: 431,
  internal: 500,
  interrupted: 503,
  vendor_unavailable: 503,
  no_courier: 503,
  overloaded: 503,
  shutting_down: 503,
  unavailable: 503,
  timeout: 504,
};

/**
 * ErrorBody is the JSON body of a request that failed before an order ran, with the
 * request's `order_id` when it had a readable one.
 */
export interface ErrorBody {
  status: 'error';
  order_id?: string;
  error: { kind: HttpErrorKind; message: string };
}

/** errorBody builds the {@link ErrorBody} of `kind`; `message` must be safe to show a client. */
export function errorBody(kind: HttpErrorKind, message: string, orderId?: string): ErrorBody {
  return orderId === undefined
    ? { status: 'error', error: { kind, message } }
    : { status: 'error', order_id: orderId, error: { kind, message } };
}

/**
 * sendError answers `reply` with the error body of `kind` and its status from
 * {@link statusOf}, with `Retry-After` when `retryAfterSeconds` is given and `order_id` when
 * `orderId` is: the one way a route answers an error. `message` must be safe to show a client.
 */
export function sendError(
  reply: FastifyReply,
  kind: HttpErrorKind,
  message: string,
  options: { readonly retryAfterSeconds?: number; readonly orderId?: string | undefined } = {},
): FastifyReply {
  const { retryAfterSeconds, orderId } = options;
  if (retryAfterSeconds !== undefined) void reply.header('retry-after', String(retryAfterSeconds));
  return reply.code(statusOf[kind]).send(errorBody(kind, message, orderId));
}
