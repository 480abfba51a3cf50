import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { statusOf } from '../../src/http/error-catalogue.js';

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

  // Variables that must move together with another for a value to be valid on its own.
  const companions: Record<string, Record<string, string>> = {
    BODY_TIMEOUT_MS: { HEADERS_TIMEOUT_MS: '1' },
    HEADERS_TIMEOUT_MS: { BODY_TIMEOUT_MS: '600000' },
    WORKERS: { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://127.0.0.1/db' },
  };

  it.each(rows.filter(([, fallback]) => fallback !== 'unset'))(
    '%s: setting the documented default changes nothing',
    (variable, fallback) => {
      expect(loadConfig({ [variable]: fallback })).toStrictEqual(loadConfig({}));
    },
  );

  it.each(
    rows.flatMap(([variable = '', , meaning = '']) => {
      const range = /\((\d+)–(\d+)/.exec(meaning);
      return range === null ? [] : [[variable, Number(range[1]), Number(range[2])] as const];
    }),
  )('%s accepts exactly %i to %i', (variable, min, max) => {
    const env = (value: number) => ({ ...companions[variable], [variable]: String(value) });
    expect(() => loadConfig(env(min))).not.toThrow();
    expect(() => loadConfig(env(max))).not.toThrow();
    if (min > 0) expect(() => loadConfig(env(min - 1))).toThrow(ConfigError);
    expect(() => loadConfig(env(max + 1))).toThrow(ConfigError);
  });
});
