import type { Order } from '../order/order.js';

/** TemplateValues are what a `{{placeholder}}` of an upstream request may name. */
export interface TemplateValues {
  readonly order: Order;
  /** The `Idempotency-Key` of this request. */
  readonly idempotencyKey: string;
  /** The key of the step's own request (a compensation names the effect it undoes by it). */
  readonly stepKey: string;
  readonly runId: string;
  readonly step: string;
}

const placeholder = /\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g;
const wholePlaceholder = /^\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}$/;

const anyPlaceholder = new RegExp(placeholder.source);

/**
 * hasPlaceholders says whether `template` (a text, or a body template as {@link renderBody}
 * reads it) names a value: when it does not, it renders the same whatever the values.
 */
export function hasPlaceholders(template: unknown): boolean {
  if (typeof template === 'string') return anyPlaceholder.test(template);
  if (Array.isArray(template)) return template.some(hasPlaceholders);
  if (typeof template === 'object' && template !== null) {
    return Object.values(template).some(hasPlaceholders);
  }
  return false;
}

/** placeholderNames lists the `{{name}}`s of `text`. */
export function placeholderNames(text: string): string[] {
  return [...text.matchAll(placeholder)].map((match) => match[1] ?? '');
}

/**
 * renderBody builds a request body from a JSON template: a string that is one placeholder and
 * nothing else becomes the value itself, with its JSON type (`"{{amount}}"` → `10`,
 * `"{{details}}"` → the object; a missing `details` path → `null`); a placeholder inside a
 * longer string is written as text. Other values are copied as they are.
 */
export function renderBody(template: unknown, values: TemplateValues): unknown {
  if (typeof template === 'string') {
    const whole = wholePlaceholder.exec(template);
    if (whole !== null) return valueOf(whole[1] ?? '', values) ?? null;
    return renderText(template, values, (text) => text);
  }
  if (Array.isArray(template)) return template.map((item) => renderBody(item, values));
  if (typeof template === 'object' && template !== null) {
    const rendered: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(template)) rendered[key] = renderBody(item, values);
    return rendered;
  }
  return template;
}

/**
 * renderText replaces each placeholder of `text` with its value as text, passed through
 * `encode` (`encodeURIComponent` in a URL); a missing value is the empty string.
 */
export function renderText(
  text: string,
  values: TemplateValues,
  encode: (text: string) => string,
): string {
  if (!text.includes('{{')) return text;
  return text.replace(placeholder, (_match, name: string) => {
    const value = valueOf(name, values);
    if (value === undefined || value === null) return '';
    return encode(typeof value === 'string' ? value : JSON.stringify(value));
  });
}

function valueOf(name: string, values: TemplateValues): unknown {
  switch (name) {
    case 'order_id':
      return values.order.id;
    case 'amount':
      return values.order.amount;
    case 'details':
      return values.order.details ?? {};
    case 'idempotency_key':
      return values.idempotencyKey;
    case 'step_key':
      return values.stepKey;
    case 'run_id':
      return values.runId;
    case 'step':
      return values.step;
  }
  if (!name.startsWith('details.')) return undefined;
  let value: unknown = values.order.details;
  for (const key of name.slice('details.'.length).split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    // Own properties only: `details.__proto__` must not reach the prototype.
    const own: unknown = Object.getOwnPropertyDescriptor(value, key)?.value;
    value = own;
  }
  return value;
}
