import type { FastifyServerOptions } from 'fastify';

type SchemaErrorFormatter = NonNullable<FastifyServerOptions['schemaErrorFormatter']>;

/**
 * formatValidationError turns the first schema violation of a request into the message of
 * its 400 `bad_request`: where it is (`body/amount`), and what was expected, in words a
 * client can act on. Unknown fields are named; a malformed `Idempotency-Key` says what a key
 * must be; a pattern violation of the body says which characters are refused.
 */
export const formatValidationError: SchemaErrorFormatter = (errors, dataVar) => {
  const first = errors[0];
  if (first === undefined) return new Error(`${dataVar} is invalid`);
  const where = `${dataVar}${first.instancePath}`;
  const unknownField = first.params['additionalProperty'];
  if (first.keyword === 'additionalProperties' && typeof unknownField === 'string') {
    return new Error(`${where} has an unknown field ${JSON.stringify(unknownField)}`);
  }
  if (first.keyword === 'pattern' && dataVar === 'headers') {
    return new Error(
      'Idempotency-Key must be 1 to 255 visible ASCII characters, bare or in double quotes',
    );
  }
  if (first.keyword === 'pattern') {
    return new Error(`${where} must not contain control characters`);
  }
  return new Error(`${where} ${first.message ?? 'is invalid'}`);
};
