import { describe, expect, it } from 'vitest';
import {
  hasPlaceholders,
  renderBody,
  renderText,
  type TemplateValues,
} from '../../src/upstream/template.js';

const values: TemplateValues = {
  order: {
    id: 'o/1',
    amount: 1250,
    details: { note: 'ring twice', address: { street: 'Main St 1', floor: 3 } },
  },
  idempotencyKey: 'run-1:payment:undo',
  stepKey: 'run-1:payment',
  runId: 'run-1',
  step: 'payment',
};

describe('renderBody', () => {
  it.each([
    ['"{{amount}}" alone keeps its type', '{{amount}}', 1250],
    ['"{{details}}" is the whole object', '{{details}}', values.order.details],
    ['a nested path', '{{ details.address.floor }}', 3],
    ['a missing path is null', '{{details.address.zip}}', null],
    ['a path through a non-object is null', '{{details.note.length}}', null],
    [
      'a placeholder in a longer string is text',
      'order {{order_id}} of {{amount}}',
      'order o/1 of 1250',
    ],
    [
      'keys',
      '{{step_key}} / {{idempotency_key}} / {{run_id}} / {{step}}',
      'run-1:payment / run-1:payment:undo / run-1 / payment',
    ],
    ['a string without placeholders', 'as is', 'as is'],
  ])('%s', (_, template, want) => {
    expect(renderBody(template, values)).toStrictEqual(want);
  });

  it('renders nested objects and arrays, leaving other values as they are', () => {
    const template = { order: ['{{order_id}}', 1, true, null], money: { cents: '{{amount}}' } };
    expect(renderBody(template, values)).toStrictEqual({
      order: ['o/1', 1, true, null],
      money: { cents: 1250 },
    });
  });

  it('never reads a prototype through a details path', () => {
    expect(renderBody('{{details.__proto__}}', values)).toBeNull();
    expect(renderBody('{{details.constructor}}', values)).toBeNull();
  });
});

describe('renderText', () => {
  it('encodes each value, not the text around it', () => {
    expect(renderText('/charges/{{order_id}}/refund', values, encodeURIComponent)).toBe(
      '/charges/o%2F1/refund',
    );
  });

  it('writes an object as JSON and a missing value as nothing', () => {
    expect(renderText('[{{details.address}}][{{details.none}}]', values, (text) => text)).toBe(
      '[{"street":"Main St 1","floor":3}][]',
    );
  });
});

describe('hasPlaceholders', () => {
  it('finds a placeholder in a text, or in any string of a body', () => {
    expect(hasPlaceholders('http://h/charges/{{ step_key }}/refund')).toBe(true);
    expect(hasPlaceholders({ a: [1, { b: 'x {{amount}}' }] })).toBe(true);
  });

  it('finds none where rendering reads no value', () => {
    expect(hasPlaceholders('http://h/charges')).toBe(false);
    expect(hasPlaceholders('{{ not a placeholder }}')).toBe(false);
    expect(hasPlaceholders({ '{{amount}}': 1, list: [true, null, 'text'] })).toBe(false);
    expect(hasPlaceholders(undefined)).toBe(false);
  });
});
