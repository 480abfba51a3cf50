import { hash as digest } from 'node:crypto';

/**
 * fingerprint is the SHA-256 (hex) of the request's canonical JSON (object keys sorted), so
 * the same body with its fields in another order is the same request. Durable stores keep
 * it beside an idempotency key: its definition must not change, or requests recorded before
 * would no longer match their repeats.
 */
export function fingerprint(request: unknown): string {
  return digest('sha256', canonicalJson(request), 'hex');
}

/**
 * canonicalJson is `JSON.stringify` of `value` with every object's keys in code-unit order
 * and undefined members left out.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    let json = '[';
    for (let i = 0; i < value.length; i++) {
      // An undefined item joins as nothing, as Array.prototype.join makes it.
      json += (i === 0 ? '' : ',') + ((canonicalJson(value[i]) as string | undefined) ?? '');
    }
    return json + ']';
  }
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    // The default sort compares UTF-16 code units.
    const keys = Object.keys(record).sort();
    let json = '{';
    for (const key of keys) {
      const item = record[key];
      if (item === undefined) continue;
      json += (json.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + canonicalJson(item);
    }
    return json + '}';
  }
  return JSON.stringify(value);
}
