import { Agent, request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { killServers, spawnServer } from './server-process.js';

// Admission seen from outside: bursts sent at once to the real server, as `npm start` runs it
// (default store, default 2 s deadline), over connections opened beforehand. The issue: a
// burst was admitted against the empty queue it found (every order of it reaches the pool
// only after its start is recorded), so orders that could not finish answered 504 after 2 s;
// and one refusal capped the queue at 50 ms, refusing orders that would have finished.

afterEach(killServers);

interface Answer {
  readonly status: number;
  readonly kind: string | undefined;
  readonly retryAfter: string | undefined;
  readonly ms: number;
}

/** Client sends orders to one server over up to `connections` keep-alive connections. */
class Client {
  readonly #agent: Agent;
  readonly #port: number;

  constructor(port: number, connections: number) {
    this.#port = port;
    this.#agent = new Agent({ keepAlive: true, maxSockets: connections });
  }

  /** open makes the agent hold `count` open connections, so a burst needs no handshake. */
  async open(count: number): Promise<void> {
    await Promise.all(Array.from({ length: count }, () => this.#send('GET', '/healthz')));
  }

  /** order sends one order whose courier holds its slot `courierMs`. */
  order(id: string, courierMs: number): Promise<Answer> {
    return this.#send(
      'POST',
      '/order',
      JSON.stringify({ order_id: id, amount: 1, delay_ms: { courier: courierMs } }),
    );
  }

  close(): void {
    this.#agent.destroy();
  }

  #send(method: string, path: string, body?: string): Promise<Answer> {
    const startedAt = performance.now();
    return new Promise((resolve, reject) => {
      const outgoing = request(
        {
          host: '127.0.0.1',
          port: this.#port,
          method,
          path,
          agent: this.#agent,
          headers:
            body === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const parsed = JSON.parse(text) as { error?: { kind?: string } };
            const retryAfter = response.headers['retry-after'];
            resolve({
              status: response.statusCode ?? 0,
              kind: parsed.error?.kind,
              retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
              ms: performance.now() - startedAt,
            });
          });
        },
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }
}

/** statusCounts counts the answers by status, e.g. { 200: 13, 503: 27 }. */
function statusCounts(answers: readonly Answer[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const { status } of answers) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

/**
 * bursts runs `runs` times: three warm-up orders one after another, then `size` orders at once
 * (each on its own open connection); resolves with each burst's answers.
 */
async function bursts(
  env: Record<string, string>,
  { runs, size, courierMs }: { runs: number; size: number; courierMs: number },
): Promise<Answer[][]> {
  const server = spawnServer(env);
  const client = new Client(await server.listening(), size);
  try {
    await client.open(size);
    const results: Answer[][] = [];
    for (let run = 0; run < runs; run++) {
      for (let i = 0; i < 3; i++) {
        const warm = await client.order(`warm-${run}-${i}`, courierMs);
        expect(warm.status, `run ${run}: warm-up ${i}`).toBe(200);
      }
      results.push(
        await Promise.all(
          Array.from({ length: size }, (_, i) => client.order(`burst-${run}-${i}`, courierMs)),
        ),
      );
    }
    return results;
  } finally {
    client.close();
  }
}

const runs = 10;

describe('admission under a burst, against the real server', () => {
  it(`pool 1, 40 orders of 150 ms couriers at once (${runs} runs): those that cannot finish are refused at once, none answers 504`, async () => {
    const results = await bursts({ COURIER_POOL_SIZE: '1' }, { runs, size: 40, courierMs: 150 });
    // One courier of 150 ms serves at most 13 orders within the 2 s deadline (the 13th is
    // done at 13 × 150 = 1950 ms, plus recording its start and outcome).
    const served = results.map((answers) => statusCounts(answers)[200] ?? 0);
    // Every run's answers other than refusals, by time: what a failure is read from.
    const timeline = results
      .map((answers, run) => {
        const answered = answers.filter((a) => a.status !== 503).sort((a, b) => a.ms - b.ms);
        return `run ${run}: ${answered.map((a) => `${a.status}@${a.ms.toFixed(0)}`).join(' ')}`;
      })
      .join('\n');
    results.forEach((answers, run) => {
      const counts = statusCounts(answers);
      expect(
        Object.keys(counts).sort(),
        `run ${run}: statuses ${JSON.stringify(counts)}\n${timeline}`,
      ).toEqual(Object.keys(counts).length === 1 ? ['200'] : ['200', '503']);
      for (const answer of answers.filter((a) => a.status === 503)) {
        expect([answer.kind, answer.retryAfter]).toEqual(['overloaded', '1']);
        expect(answer.ms, `run ${run}: a refusal answers at once`).toBeLessThan(500);
      }
    });
    expect(Math.min(...served), `served per run: ${served.join(', ')}`).toBeGreaterThanOrEqual(12);
    expect(Math.max(...served), `served per run: ${served.join(', ')}`).toBeLessThanOrEqual(13);
  }, 90_000);

  it(`pool 5, 50 orders of 100 ms couriers at once (${runs} runs): all served, none refused`, async () => {
    // Ten rounds of five couriers: the last order is done after about 1 s of its 2 s.
    const results = await bursts({}, { runs, size: 50, courierMs: 100 });
    const counts = results.map((answers) => JSON.stringify(statusCounts(answers)));
    expect(counts).toEqual(Array.from({ length: runs }, () => JSON.stringify({ 200: 50 })));
  }, 90_000);
});
