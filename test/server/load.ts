import { Agent, request } from 'node:http';

/** Sent is one request of a load and what came back, if anything did. */
export interface Sent {
  readonly index: number;
  readonly body: Record<string, unknown>;
  readonly key: string | undefined;
  /** The status, or undefined if no answer came (the connection broke). */
  readonly status: number | undefined;
  /** The raw answer body. */
  readonly text: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Milliseconds from sending the request to its complete answer. */
  readonly ms: number;
}

export interface LoadOptions {
  readonly port: number;
  /** Clients sending one request after another, each on its own keep-alive connection. */
  readonly clients: number;
  /** Requests per client. */
  readonly perClient: number;
  /** The body of request `index`. */
  readonly body: (index: number) => Record<string, unknown>;
  /** The Idempotency-Key of request `index`, if any. */
  readonly key?: (index: number) => string | undefined;
  /** Called with each result as it arrives (e.g. to kill the server after some). */
  readonly onResult?: (sent: Sent) => void;
}

/**
 * runLoad sends `clients × perClient` orders to `POST /order` on 127.0.0.1, each client
 * sending its next request once the previous one is answered, and resolves with every
 * request and what came back. A broken connection ends that client's requests.
 */
export async function runLoad(options: LoadOptions): Promise<Sent[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.clients });
  const results: Sent[] = [];
  try {
    await Promise.all(
      Array.from({ length: options.clients }, async (_, client) => {
        for (let i = 0; i < options.perClient; i++) {
          const index = client * options.perClient + i;
          const sent = await postOnce(agent, options, index);
          results.push(sent);
          options.onResult?.(sent);
          if (sent.status === undefined) return;
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return results;
}

function postOnce(agent: Agent, options: LoadOptions, index: number): Promise<Sent> {
  const body = options.body(index);
  const key = options.key?.(index);
  const payload = JSON.stringify(body);
  const startedAt = performance.now();
  return new Promise((resolve) => {
    const done = (
      status: number | undefined,
      text: string,
      headers: Sent['headers'] = {},
    ): void => {
      resolve({ index, body, key, status, text, headers, ms: performance.now() - startedAt });
    };
    const outgoing = request(
      {
        host: '127.0.0.1',
        port: options.port,
        method: 'POST',
        path: '/order',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...(key === undefined ? {} : { 'idempotency-key': key }),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', () => {
          done(undefined, '');
        });
        response.on('end', () => {
          done(response.statusCode, Buffer.concat(chunks).toString('utf8'), response.headers);
        });
      },
    );
    outgoing.on('error', () => {
      done(undefined, '');
    });
    outgoing.end(payload);
  });
}

/** postJson sends one order and resolves with its status, headers and parsed body. */
export async function postJson(
  port: number,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}/order`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: JSON.parse(text), text };
}

/** getOrder reads `GET /order/:order_id`; undefined on 404. */
export async function getOrder(port: number, orderId: string): Promise<RecordedOrder | undefined> {
  const response = await fetch(`http://127.0.0.1:${port}/order/${encodeURIComponent(orderId)}`);
  if (response.status === 404) return undefined;
  return (await response.json()) as RecordedOrder;
}

/** RecordedOrder is the part of `GET /order/:order_id` the server tests read. */
export interface RecordedOrder {
  readonly order_id: string;
  readonly state: string;
  readonly status: string;
  readonly error?: { readonly kind: string };
  readonly steps: readonly {
    readonly name: string;
    readonly status: string;
    readonly compensation: string;
    readonly needs_operator: boolean;
  }[];
}

/** eventually polls `check` until it returns a value, for at most `ms`. */
export async function eventually<T>(check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const until = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
