import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { createOrderService } from '../../src/service/order-service.js';
import { failingOrder } from './observed-app.js';

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  order_id?: string;
  [field: string]: unknown;
}

function capturingLogger(level = 'info') {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text !== '') lines.push(JSON.parse(text) as LogLine);
      }
      callback();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

describe('logs', () => {
  it('an order writes one summary line, and its lines carry the request id and order_id', async () => {
    const { logger, lines } = capturingLogger();
    const app = buildApp({ service: createOrderService(), requestTimeoutMs: 2000, logger });
    try {
      const response = await app.inject({ method: 'POST', url: '/order', payload: failingOrder });
      expect(response.statusCode).toBe(400);
    } finally {
      await app.close();
    }
    const summaries = lines.filter((line) => line.msg === 'order settled');
    expect(summaries).toHaveLength(1);
    const summary = summaries[0]!;
    expect(summary).toMatchObject({
      level: 30,
      order_id: 'o-fail',
      outcome: 'error',
      kind: 'payment_declined',
      steps: {
        payment: { status: 'error', detail: 'payment_declined' },
        vendor: { status: 'canceled' },
        courier: { status: 'canceled' },
      },
    });
    expect(typeof summary.reqId).toBe('string');
    expect(summary['duration_ms']).toBeGreaterThanOrEqual(0);
    // Once the body is parsed, every line of the request names the order, up to the last.
    const completed = lines.find((line) => line.msg === 'request completed');
    expect(completed).toMatchObject({ reqId: summary.reqId, order_id: 'o-fail' });
  });

  it('writes no summary when info is off', async () => {
    const { logger, lines } = capturingLogger('warn');
    const app = buildApp({ service: createOrderService(), requestTimeoutMs: 2000, logger });
    try {
      await app.inject({ method: 'POST', url: '/order', payload: failingOrder });
    } finally {
      await app.close();
    }
    expect(lines.filter((line) => line.msg === 'order settled')).toEqual([]);
  });
});
