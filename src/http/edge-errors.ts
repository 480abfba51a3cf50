import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, sendError, statusOf, type HttpErrorKind } from './error-catalogue.js';
import { BadBodyError } from './json-body.js';
import { controlCharacters, maxOrderIdLength } from './schemas.js';
import { ServiceUnavailable } from '../service/order-service.js';

/** The largest request body accepted, in bytes. */
export const bodyLimitBytes = 64 * 1024;

/** EdgeError is an error met before any order ran, as a client may see it. */
interface EdgeError {
  readonly kind: HttpErrorKind;
  readonly message: string;
}

/**
 * answerRequestError answers an error raised by the framework before an order ran (a body
 * that is not valid JSON, too large, of another type, failing its schema), or by a route (the
 * service's store unavailable: 503 with `Retry-After`), in the service's error shape.
 * Anything unknown is `internal`, with a fixed message, and logged. `answered`, if given, is
 * told the kind of the answer.
 */
export function answerRequestError(
  error: FastifyError | ServiceUnavailable,
  request: FastifyRequest,
  reply: FastifyReply,
  answered?: (kind: HttpErrorKind) => void,
): FastifyReply {
  if (error instanceof ServiceUnavailable) {
    answered?.(error.kind);
    // The service logged the store's error; the client learns only when to retry.
    return sendError(reply, error.kind, error.message, {
      retryAfterSeconds: error.retryAfterSeconds,
    });
  }
  const { kind, message } = classifyRequestError(error);
  answered?.(kind);
  if (statusOf[kind] >= 500) request.log.error({ err: error }, 'request failed');
  return sendError(reply, kind, message, { orderId: readableOrderId(request.body) });
}

/**
 * readableOrderId is the `order_id` of a parsed body that failed validation, when it is one
 * the service would accept: a string of 1 to {@link maxOrderIdLength} characters without
 * control characters. Anything else is not echoed back.
 */
function readableOrderId(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || !('order_id' in body)) return undefined;
  const orderId = body.order_id;
  if (typeof orderId !== 'string' || orderId.length === 0) return undefined;
  if (orderId.length > maxOrderIdLength || controlCharacters.test(orderId)) return undefined;
  return orderId;
}

/**
 * answerFrameworkError answers what the router refuses before any route runs (a URL that
 * cannot be decoded, a path parameter over the router's limit) in the service's error shape,
 * without echoing the URL back.
 */
export function answerFrameworkError(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  if ((error.statusCode ?? 500) < 500) void sendError(reply, 'bad_request', 'the URL is not valid');
  else void sendError(reply, 'internal', 'internal error');
}

/**
 * answerClientError answers what Node's HTTP parser refuses before any route sees it (headers
 * not complete in time, a head too large, a malformed request) in the service's error shape,
 * written to the socket as HTTP/1.1 since no reply exists yet, then closes the connection, as
 * Fastify's default handler does. A connection already reset or destroyed gets nothing.
 */
export function answerClientError(error: ConnectionError, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const { kind, message } = clientErrorOf(error);
  if (socket.writable) {
    const status = statusOf[kind];
    const body = JSON.stringify(errorBody(kind, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

function clientErrorOf(error: ConnectionError): EdgeError {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { kind: 'request_timeout', message: 'the request was not received in time' };
    case 'HPE_HEADER_OVERFLOW':
      return { kind: 'headers_too_large', message: 'request headers are too large' };
    default:
      return { kind: 'bad_request', message: 'malformed request' };
  }
}

/**
 * classifyRequestError maps an error raised by the framework before an order ran to a
 * kind and a message safe to show. Anything unknown is `internal`, with a fixed message.
 */
function classifyRequestError(error: FastifyError): EdgeError {
  if (error.validation !== undefined) return { kind: 'bad_request', message: error.message };
  if (error instanceof BadBodyError) return { kind: 'bad_request', message: error.message };
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { kind: 'unsupported_media_type', message: 'content type must be application/json' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        kind: 'payload_too_large',
        message: `body must not be larger than ${bodyLimitBytes} bytes`,
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { kind: 'bad_request', message: 'body must not be empty' };
    default:
      break;
  }
  if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return { kind: 'bad_request', message: 'body is not valid JSON' };
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return { kind: 'bad_request', message: 'bad request' };
  }
  return { kind: 'internal', message: 'internal error' };
}
