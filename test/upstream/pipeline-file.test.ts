import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PipelineFileError, loadPipelineFile } from '../../src/upstream/pipeline-file.js';

const dir = mkdtempSync(join(tmpdir(), 'pipeline-file-test-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
/** written writes `content` (JSON unless a string) to a file of its own and returns its path. */
function written(content: unknown): string {
  const path = join(dir, `pipeline-${files++}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

const payment = {
  name: 'payment',
  request: { url: 'http://127.0.0.1:7101/charges', body: { amount: '{{amount}}' } },
};

describe('loadPipelineFile', () => {
  it('applies the seed steps’ kinds and statuses as defaults', () => {
    const plan = loadPipelineFile(
      written({
        steps: [
          payment,
          { name: 'vendor', request: { url: 'http://v/n' } },
          { name: 'courier', request: { url: 'http://c/a' } },
          { name: 'invoice', request: { url: 'http://i/i' } },
        ],
      }),
      {},
    );
    const got = plan.steps.map((step) => ({
      name: step.name,
      method: step.request.method,
      refusals: Object.fromEntries(step.refusals),
      unavailableKind: step.unavailableKind,
      courierSlot: step.courierSlot,
    }));
    expect(got).toStrictEqual([
      {
        name: 'payment',
        method: 'POST',
        refusals: { 402: 'payment_declined' },
        unavailableKind: 'unavailable',
        courierSlot: false,
      },
      {
        name: 'vendor',
        method: 'GET',
        refusals: {},
        unavailableKind: 'vendor_unavailable',
        courierSlot: false,
      },
      {
        name: 'courier',
        method: 'GET',
        refusals: { 409: 'no_courier' },
        unavailableKind: 'no_courier',
        courierSlot: true,
      },
      {
        name: 'invoice',
        method: 'GET',
        refusals: {},
        unavailableKind: 'unavailable',
        courierSlot: false,
      },
    ]);
    expect(plan.connectionsPerOrigin).toBe(64);
    expect(plan.steps[0]?.retry).toStrictEqual({
      attempts: 3,
      initialDelayMs: 50,
      factor: 2,
      maxDelayMs: 1000,
      jitter: true,
      honourRetryAfter: true,
    });
  });

  it('substitutes ${VAR} and ${VAR:-fallback} in URLs and headers, and lowercases header names', () => {
    const plan = loadPipelineFile(
      written({
        steps: [
          {
            ...payment,
            request: {
              url: '${PAYMENT_URL:-http://127.0.0.1:7101}/charges',
              headers: { Authorization: 'Bearer ${PAYMENT_TOKEN}' },
            },
          },
        ],
      }),
      { PAYMENT_TOKEN: 's3cret' },
    );
    expect(plan.steps[0]?.request.url).toBe('http://127.0.0.1:7101/charges');
    expect(plan.steps[0]?.request.headers).toStrictEqual({ authorization: 'Bearer s3cret' });
  });

  const invalid: [string, unknown, string][] = [
    ['not JSON', '{"steps": [', '(file): is not valid JSON'],
    ['no steps', { steps: [] }, '/steps: expected array length to be greater or equal to 1'],
    [
      'an unknown field',
      { steps: [{ ...payment, retries: 3 }] },
      '/steps/0/retries: unexpected property',
    ],
    [
      'a wrong type',
      { steps: [{ ...payment, timeout_ms: 'fast' }] },
      '/steps/0/timeout_ms: expected integer',
    ],
    [
      'a kind outside the catalogue',
      { steps: [{ ...payment, refusals: { '402': 'teapot' } }] },
      '/steps/0/refusals/402: expected one of "payment_declined", "vendor_unavailable", "no_courier", "unavailable", "internal"',
    ],
    [
      'a duplicate step name',
      { steps: [payment, payment] },
      '/steps/1/name: duplicate step name "payment"',
    ],
    [
      'an unknown placeholder',
      { steps: [{ ...payment, request: { url: 'http://p/x', body: { a: '{{secret}}' } } }] },
      '/steps/0/request/body/a: unknown placeholder {{secret}}',
    ],
    [
      'a URL that is not http(s)',
      { steps: [{ ...payment, request: { url: 'ftp://p/x' } }] },
      '/steps/0/request/url: expected an http:// or https:// URL',
    ],
  ];

  it.each(invalid)('%s: names the file, the field and what was expected', (_, content, want) => {
    const path = written(content);
    let got: unknown;
    try {
      loadPipelineFile(path, {});
    } catch (error) {
      got = error;
    }
    expect(got).toBeInstanceOf(PipelineFileError);
    const { message } = got as PipelineFileError;
    expect(message.startsWith(`pipeline file ${path}: ${want}`), message).toBe(true);
  });

  it('names an unset variable, never the value of a set one', () => {
    const path = written({
      steps: [
        {
          ...payment,
          request: {
            url: 'http://p/${HOST_PART}',
            headers: { authorization: 'Bearer ${PAYMENT_TOKEN}' },
          },
        },
      ],
    });
    expect(() => loadPipelineFile(path, { HOST_PART: 'visible-value' })).toThrow(
      `pipeline file ${path}: /steps/0/request/headers/authorization: needs the environment variable PAYMENT_TOKEN, which is not set`,
    );
    expect(() => loadPipelineFile(path, { HOST_PART: 'visible-value' })).not.toThrow(
      /visible-value/,
    );
  });
});
