import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { statusOf } from './error-catalogue.js';

/** BadBodyError is a body refused before validation; its message is safe to show a client. */
export class BadBodyError extends Error {
  readonly statusCode = statusOf.bad_request;

  constructor(message: string) {
    super(message);
    this.name = 'BadBodyError';
  }
}

/**
 * strictJsonBodies makes `application/json` bodies exact: a body that is not valid UTF-8,
 * or whose strings hold a lone surrogate (`"\ud800"`: no Unicode text), is refused with a
 * {@link BadBodyError} instead of being silently altered (the framework's own parser decodes
 * invalid bytes as U+FFFD, so two different bodies could read as the same order). Parsing
 * itself is the framework's, with its guard against prototype poisoning.
 */
export function strictJsonBodies(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    if (typeof body === 'string' || !isUtf8(body)) {
      done(new BadBodyError('body is not valid UTF-8'), undefined);
      return;
    }
    void parseJson(request, body.toString('utf8'), (error, value: unknown) => {
      if (error !== null) {
        done(error, undefined);
      } else if (!isWellFormed(value)) {
        done(new BadBodyError('body must not contain lone surrogates'), undefined);
      } else {
        done(null, value);
      }
    });
  });
}

/** isWellFormed tells whether every string in `value`, keys included, is well-formed UTF-16. */
function isWellFormed(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed();
  if (typeof value !== 'object' || value === null) return true;
  if (Array.isArray(value)) return value.every(isWellFormed);
  // Keys only (no array of pairs per object): this runs on every body, refusals included.
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!key.isWellFormed() || !isWellFormed(record[key])) return false;
  }
  return true;
}
