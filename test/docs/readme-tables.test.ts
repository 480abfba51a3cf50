import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { statusOf } from '../../src/http/error-catalogue.js';
import { createTracing } from '../../src/observability/tracing.js';

// The README's error and configuration tables, checked against the code they document.

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** tableAfter returns the rows (cells, backticks removed) of the first table after `heading`. */
function tableAfter(heading: string): string[][] {
  const start = readme.indexOf(heading);
  expect(start, `README has ${heading}`).toBeGreaterThanOrEqual(0);
  const lines = readme.slice(start).split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  const table = lines.slice(first);
  const end = table.findIndex((line) => !line.startsWith('|'));
  return table.slice(2, end).map((line) =>
    line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim().replaceAll('`', '')),
  );
}

describe('the README error table', () => {
  const rows = tableAfter('### Errors').filter(([kind]) => kind !== '—');

  it('lists every error kind once with the status the service answers', () => {
    const documented: Record<string, number> = Object.fromEntries(
      rows.map(([kind = '', status]): [string, number] => [kind, Number(status)]),
    );
    expect(rows.length, 'no kind listed twice').toBe(Object.keys(documented).length);
    expect(documented).toStrictEqual({ ...statusOf });
  });
});

describe('the README configuration table', () => {
  const rows = tableAfter('## Configuration');
  const configSource = readFileSync(new URL('../../src/config.ts', import.meta.url), 'utf8');
  const tracingSource = readFileSync(
    new URL('../../src/observability/tracing.ts', import.meta.url),
    'utf8',
  );

  it('lists every variable the service reads', () => {
    const read = new Set(
      [...`${configSource}\n${tracingSource}`.matchAll(/'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)'/g)].map(
        (match) => match[1],
      ),
    );
    const documented = new Set(rows.map(([variable]) => variable));
    expect([...read].filter((variable) => !documented.has(variable))).toStrictEqual([]);
  });

  // Variables that must move together with another for a value to be valid on its own, or
  // to have an effect (the SDK switch matters only when an exporter is chosen).
  const companions: Record<string, Record<string, string>> = {
    BODY_TIMEOUT_MS: { HEADERS_TIMEOUT_MS: '1' },
    HEADERS_TIMEOUT_MS: { BODY_TIMEOUT_MS: '600000' },
    WORKERS: { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://127.0.0.1/db' },
    OTEL_SDK_DISABLED: { OTEL_TRACES_EXPORTER: 'otlp' },
  };

  // Rows that the tracing setup reads through the OpenTelemetry resource, not loadConfig.
  const readByTracing = new Set(['OTEL_SERVICE_NAME']);
  const configRows = rows.filter(([variable = '']) => !readByTracing.has(variable));

  // A valid value other than the default, for the rows whose range or switch gives none.
  const otherValues: Record<string, string> = {
    HOST: '0.0.0.0',
    ORDER_STORE: 'memory',
    DATA_DIR: '/var/lib/order-pipeline',
    STORE_SYNC: 'full',
    DATABASE_URL: 'postgres://127.0.0.1/orders',
    REDIS_URL: 'redis://127.0.0.1:6379',
    REDIS_KEY_PREFIX: 'staging:couriers',
    ADMIN_TOKEN: 'operator-token-0123456789',
    LOG_LEVEL: 'debug',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces',
    OTEL_TRACES_EXPORTER: 'console',
    PIPELINE_FILE: 'examples/pipeline.json',
  };

  /** rangeOf reads the "(min–max)" of a row's meaning. */
  function rangeOf(meaning: string): [number, number] | undefined {
    const range = /\((\d+)–(\d+)/.exec(meaning);
    return range === null ? undefined : [Number(range[1]), Number(range[2])];
  }

  /** otherValue is a valid value other than the default: an end of its range, the other switch value. */
  function otherValue(variable: string, fallback: string, meaning: string): string | undefined {
    const range = rangeOf(meaning);
    if (range !== undefined) return String(range[0] === Number(fallback) ? range[1] : range[0]);
    if (fallback === 'true' || fallback === 'false') return fallback === 'true' ? 'false' : 'true';
    return otherValues[variable];
  }

  it.each(configRows)(
    '%s: loadConfig reads it, and takes the documented default when it is unset',
    (variable, fallback, meaning) => {
      const beside = companions[variable] ?? {};
      const unset = loadConfig(beside);
      if (fallback !== 'unset') {
        expect(loadConfig({ ...beside, [variable]: fallback }), 'set to the default').toStrictEqual(
          unset,
        );
      }
      const other = otherValue(variable, fallback, meaning);
      expect(other, 'a value other than the default, known to this test').toBeDefined();
      expect(loadConfig({ ...beside, [variable]: other }), `set to ${other}`).not.toStrictEqual(
        unset,
      );
    },
  );

  it.each(
    rows.flatMap(([variable = '', , meaning = '']) => {
      const range = rangeOf(meaning);
      return range === undefined ? [] : [[variable, ...range] as const];
    }),
  )('%s accepts exactly %i to %i', (variable, min, max) => {
    const env = (value: number) => ({ ...companions[variable], [variable]: String(value) });
    expect(() => loadConfig(env(min))).not.toThrow();
    expect(() => loadConfig(env(max))).not.toThrow();
    if (min > 0) expect(() => loadConfig(env(min - 1))).toThrow(ConfigError);
    expect(() => loadConfig(env(max + 1))).toThrow(ConfigError);
  });

  describe('OTEL_SERVICE_NAME, read by the tracing setup, not by loadConfig', () => {
    const [, fallback] = rows.find(([variable]) => variable === 'OTEL_SERVICE_NAME') ?? [];

    /** printedSpans records one order with console tracing and returns the spans it printed. */
    async function printedSpans(env: NodeJS.ProcessEnv): Promise<unknown[]> {
      const printed: unknown[] = [];
      const dir = vi.spyOn(console, 'dir').mockImplementation((span: unknown) => {
        printed.push(span);
      });
      try {
        const tracing = createTracing('console', env);
        tracing?.tracer.recordOrder({
          orderId: 'o-1',
          startedAt: 0,
          durationMs: 1,
          outcome: { status: 'ok', steps: [] },
          canceledAtMs: undefined,
          courierWait: undefined,
        });
        await tracing?.shutdown();
      } finally {
        dir.mockRestore();
      }
      return printed;
    }

    it.each([
      ['unset, the documented default', {}, fallback],
      ['set', { OTEL_SERVICE_NAME: 'checkout' }, 'checkout'],
    ])('%s: the traces carry it as their service name', async (_case, env, want) => {
      expect(want, 'the README row').toBeDefined();
      expect(await printedSpans(env)).toStrictEqual([
        expect.objectContaining({
          name: 'order',
          resource: { attributes: expect.objectContaining({ 'service.name': want }) as unknown },
        }),
      ]);
    });

    it('changes nothing in what loadConfig returns', () => {
      expect(loadConfig({ OTEL_SERVICE_NAME: 'checkout' })).toStrictEqual(loadConfig({}));
    });
  });
});
