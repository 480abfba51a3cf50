import { writeFileSync } from 'node:fs';
import type net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { defaultConfig } from '../src/config.js';
import { metricsPrefix } from '../src/observability/metrics.js';
import { percentile, row, type Row } from './report.js';
import { connect, LoadConnection, type Answer } from './load-connection.js';
import { metrics, startServer, type BenchServer } from './server-process.js';

/**
 * Sustained overload: about 10× the courier pool's capacity, offered at a steady rate (open
 * loop: a request is sent when it is due, whatever the server answers) against the server
 * with its default admission limits. Reports the admitted orders' latency against the bound
 * the courier queue sets, the refusals' latency, the count of each status, and the server's
 * RSS at the start, middle and end of the run; the courier queue and the event-loop delay of
 * the server and of the load generator, read each second, say what the tails come from.
 */

const poolSize = 5;
const courierDelayMs = 10;
const capacity = poolSize * (1000 / courierDelayMs);
const offeredRate = 10 * capacity;
/**
 * Enough connections that a due request always finds one free: at the onset, before the
 * queue counts as standing, admitted orders may wait for a courier up to their 2 s deadline,
 * so at 500 admitted orders/s some 1,000 are open waiting; refusals answer at once.
 */
const connections = 1024;
const orderBody = { amount: 100, delay_ms: { payment: 1, vendor: 1, courier: courierDelayMs } };

let sequence = 0;

function orderRequest(): string {
  const body = JSON.stringify({ order_id: `overload-${process.pid}-${sequence++}`, ...orderBody });
  return (
    `POST /order HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
    `content-length: ${body.length}\r\n\r\n${body}`
  );
}

interface Run {
  /** When the measured run began (performance.now()). */
  startedAt: number;
  seconds: number;
  sent: number;
  answers: Answer[];
  /** Requests still unanswered when the run ended. */
  unanswered: number;
  rss: { start: number; middle: number; end: number };
  /** Share of the run's wall time the server spent on a CPU. */
  serverBusy: number;
  /** Largest courier queue and event-loop delay seen in the server's metrics, read each second. */
  maxQueue: number;
  maxLoopDelayMs: number;
  /** Largest event-loop delay of the load generator itself: a stall here delays answers too. */
  clientMaxLoopDelayMs: number;
  /** The load generator's 99th percentile event-loop delay (sampled every millisecond). */
  clientP99LoopDelayMs: number;
}

/**
 * offer sends `rate` requests per second for `warmupSeconds` then `seconds`, paced every
 * millisecond, on a pool of keep-alive connections; a request due while every connection is
 * busy waits for the first one free (it is then counted when sent, so the offered rate
 * reported is the rate really sent). Only the requests sent after the warm-up are measured:
 * the load does not stop in between, so what is measured is the overload sustained, its
 * onset (the queue filling up to the deadline limit before the first refusal) being part of
 * the warm-up. Waits up to 5 s for the last answers.
 */
async function offer(
  server: BenchServer,
  rate: number,
  warmupSeconds: number,
  seconds: number,
): Promise<Run> {
  const answers: Answer[] = [];
  // First in, first out: every connection is used in turn, so none sits idle long enough to
  // race the server's keep-alive timeout (a request sent as the server closes the connection).
  const idle: LoadConnection[] = [];
  let due = 0;
  let sent = 0;
  const sendTo = (connection: LoadConnection): void => {
    due--;
    if (measuring) sent++;
    connection.send(orderRequest());
  };
  const onAnswer = (answer: Answer, connection: LoadConnection): void => {
    if (measuring && answer.sentAt >= measuredFrom) answers.push(answer);
    if (due > 0 && !stopped) sendTo(connection);
    else idle.push(connection);
  };
  let measuring = false;
  let measuredFrom = Infinity;
  let stopped = false;
  const sockets: net.Socket[] = [];
  // Opened in batches, so the server's listen backlog is not flooded.
  for (let i = 0; i < connections; i += 500) {
    const batch = Math.min(500, connections - i);
    sockets.push(...(await Promise.all(Array.from({ length: batch }, () => connect(server.port)))));
  }
  const pool = sockets.map((socket) => new LoadConnection(socket, onAnswer));
  idle.push(...pool);

  const rss = { start: Number.NaN, middle: Number.NaN, end: Number.NaN };
  let maxQueue = 0;
  let maxLoopDelayMs = 0;
  // Each read of the metrics resets the event-loop delay histogram, so its max covers a second.
  const sampler = setInterval(() => {
    void metrics(server).then((sample) => {
      if (!measuring) return;
      maxQueue = Math.max(maxQueue, sample(`${metricsPrefix}courier_pool_waiters`));
      maxLoopDelayMs = Math.max(maxLoopDelayMs, sample('nodejs_eventloop_lag_max_seconds') * 1000);
    });
  }, 1000);
  let cpuAtStart = 0;
  const clientDelay = monitorEventLoopDelay({ resolution: 1 });
  clientDelay.enable();
  const started = performance.now();
  let scheduled = 0;
  await new Promise<void>((resolve) => {
    const pacer = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      if (!measuring && elapsed >= warmupSeconds) {
        measuring = true;
        measuredFrom = performance.now();
        rss.start = server.rssBytes();
        cpuAtStart = server.cpuSeconds();
        clientDelay.reset();
      }
      if (Number.isNaN(rss.middle) && elapsed >= warmupSeconds + seconds / 2) {
        rss.middle = server.rssBytes();
      }
      if (elapsed >= warmupSeconds + seconds) {
        clearInterval(pacer);
        clearInterval(sampler);
        clientDelay.disable();
        stopped = true;
        rss.end = server.rssBytes();
        resolve();
        return;
      }
      const target = Math.floor(rate * elapsed);
      due += target - scheduled;
      scheduled = target;
      while (due > 0) {
        const connection = idle.shift();
        if (connection === undefined) break;
        if (connection.closed) continue;
        sendTo(connection);
      }
    }, 1);
  });
  const sendingSeconds = (performance.now() - measuredFrom) / 1000;
  const serverBusy = (server.cpuSeconds() - cpuAtStart) / sendingSeconds;
  const drainUntil = performance.now() + 5000;
  while (pool.some((c) => c.busy && !c.closed) && performance.now() < drainUntil) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  measuring = false;
  const unanswered = pool.filter((c) => c.busy).length;
  for (const connection of pool) connection.destroy();
  const clientMaxLoopDelayMs = clientDelay.max / 1e6;
  const clientP99LoopDelayMs = clientDelay.percentile(99) / 1e6;
  return {
    startedAt: measuredFrom,
    seconds: sendingSeconds,
    sent,
    answers,
    unanswered,
    rss,
    serverBusy,
    maxQueue,
    maxLoopDelayMs,
    clientMaxLoopDelayMs,
    clientP99LoopDelayMs,
  };
}

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`;
const ms = (value: number): string => `${value.toFixed(value < 10 ? 2 : 1)} ms`;

export async function overloadBenchmark(options: { quick: boolean }): Promise<Row[]> {
  const seconds = options.quick ? 4 : 30;
  // Admission refuses an order that could not finish within its deadline, and once the queue
  // has stood for a second while refusing, one that would wait over 50 ms: an admitted order
  // finishes within its deadline.
  const deadline = defaultConfig.requestTimeoutMs;
  const refusalTarget = 5;
  const server = await startServer({ COURIER_POOL_SIZE: String(poolSize) });
  let run: Run;
  try {
    run = await offer(server, offeredRate, options.quick ? 3 : 5, seconds);
    const dump = process.env['BENCH_OVERLOAD_DUMP'];
    if (dump !== undefined) {
      writeFileSync(
        dump,
        run.answers
          .map((a) => `${(a.sentAt - run.startedAt).toFixed(3)}\t${a.status}\t${a.ms.toFixed(3)}`)
          .join('\n'),
      );
    }
  } finally {
    await server.stop();
  }

  const byStatus = new Map<number, number[]>();
  for (const answer of run.answers) {
    const list = byStatus.get(answer.status) ?? [];
    list.push(answer.ms);
    byStatus.set(answer.status, list);
  }
  const admitted = (byStatus.get(200) ?? []).sort((a, b) => a - b);
  // Latency bounded by the queue does not grow with the time spent overloaded.
  const half = run.startedAt + (run.seconds * 1000) / 2;
  const admittedP99 = (inFirstHalf: boolean): number =>
    percentile(
      run.answers
        .filter((a) => a.status === 200 && a.sentAt < half === inFirstHalf)
        .map((a) => a.ms)
        .sort((a, b) => a - b),
      99,
    );
  const refused = (byStatus.get(503) ?? []).sort((a, b) => a - b);
  const others = [...byStatus].filter(([status]) => status !== 200 && status !== 503);
  const otherCount = others.reduce((sum, [, list]) => sum + list.length, 0) + run.unanswered;
  const offered = run.sent / run.seconds;
  const setting = `pool ${poolSize}, courier ${courierDelayMs} ms, default admission: deadline ${deadline} ms, max in flight ${defaultConfig.maxInflightOrders}`;
  const counts =
    `200: ${admitted.length.toLocaleString('en-US')} · 503: ${refused.length.toLocaleString('en-US')} · ` +
    `other: ${others.map(([s, l]) => `${s}×${l.length}`).join(' ') || '0'} · unanswered: ${run.unanswered}`;
  const growth = (run.rss.end - run.rss.middle) / run.rss.middle;

  return [
    row({
      section: 'overload',
      scenario: `offered load, ${seconds} s (${setting})`,
      value: offered,
      unit: 'req/s',
      figure: `${Math.round(offered).toLocaleString('en-US')} req/s offered (${(offered / capacity).toFixed(1)}× capacity)`,
      baseline: `capacity ${capacity} orders/s`,
      compare: `admitted ${Math.round(admitted.length / run.seconds)} orders/s · ${counts} · server CPU ${Math.round(run.serverBusy * 100)}% busy`,
      target: 'only 200 and 503',
      met: otherCount === 0,
    }),
    row({
      section: 'overload',
      scenario: 'admitted orders (200), client-observed latency',
      value: percentile(admitted, 99),
      unit: 'ms',
      figure: `p50 ${ms(percentile(admitted, 50))} · p99 ${ms(percentile(admitted, 99))}`,
      baseline: `deadline ${deadline} ms`,
      compare:
        `max ${ms(admitted.at(-1) ?? Number.NaN)} · p99 first half ${ms(admittedP99(true))}, ` +
        `second half ${ms(admittedP99(false))} · courier queue ≤ ${run.maxQueue} (read each second)`,
      target: `max ≤ deadline (${deadline} ms)`,
      met: admitted.length > 0 && (admitted.at(-1) ?? Infinity) <= deadline,
    }),
    row({
      section: 'overload',
      scenario: 'overloaded answers (503), client-observed latency',
      value: percentile(refused, 99),
      unit: 'ms',
      figure: `p50 ${ms(percentile(refused, 50))} · p99 ${ms(percentile(refused, 99))}`,
      compare: `max ${ms(refused.at(-1) ?? Number.NaN)} · event-loop delay max: server ${ms(run.maxLoopDelayMs)}, load generator ${ms(run.clientMaxLoopDelayMs)} (p99 ${ms(run.clientP99LoopDelayMs)})`,
      target: `p99 ≤ ${refusalTarget} ms`,
      met: refused.length > 0 && percentile(refused, 99) <= refusalTarget,
    }),
    row({
      section: 'overload',
      scenario: 'server RSS at start, middle and end of the run',
      value: growth * 100,
      unit: '%',
      figure: `${mb(run.rss.start)} → ${mb(run.rss.middle)} → ${mb(run.rss.end)}`,
      baseline: `middle ${mb(run.rss.middle)}`,
      compare: `end − middle ${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%`,
      target: 'end ≤ middle + 10%',
      met: growth <= 0.1,
    }),
  ];
}
