import { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { withOrderId } from '../../src/observability/order-log.js';
import { testService } from '../helpers.js';

function capture(level: string): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

describe('withOrderId', () => {
  it('binds order_id to each request alone: no line names two orders, the root none', async () => {
    const { logger, lines } = capture('info');
    const app = buildApp({ service: testService(), logger });
    try {
      const ids = ['o-1', 'o-2', 'o-3'];
      const responses = await Promise.all(
        ids.map((id) =>
          app.inject({ method: 'POST', url: '/order', payload: { order_id: id, amount: 5 } }),
        ),
      );
      expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    } finally {
      await app.close();
    }
    logger.info('after');
    const completed = lines.filter((line) => line.includes('"request completed"'));
    expect(completed).toHaveLength(3);
    for (const line of completed) {
      expect(line.match(/"order_id"/g), line).toHaveLength(1);
      expect(line, line).toContain('"reqId"');
    }
    const named = completed.map((line) => (JSON.parse(line) as { order_id: string }).order_id);
    expect(named.sort()).toEqual(['o-1', 'o-2', 'o-3']);
    expect(lines.at(-1)).not.toContain('order_id');
  });

  it('a warn line of a warn-level request logger carries reqId and order_id', () => {
    const { logger, lines } = capture('warn');
    const requestLog = logger.child({ reqId: 'req-1' });
    withOrderId(requestLog, 'o-9').warn('steps ignored the abort');
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ reqId: 'req-1', order_id: 'o-9' });
  });

  it('a logger without setBindings gets a child; a silent one is left as it is', () => {
    const bindings: unknown[] = [];
    const plain = {
      level: 'info',
      child(binding: unknown) {
        bindings.push(binding);
        return plain;
      },
    } as unknown as FastifyBaseLogger;
    withOrderId(plain, 'o-1');
    expect(bindings).toEqual([{ order_id: 'o-1' }]);
    const silent = pino({ level: 'silent' });
    expect(withOrderId(silent, 'o-2')).toBe(silent);
  });
});
