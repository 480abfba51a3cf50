import {
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type CircuitBreakerPolicy,
} from 'cockatiel';
import { Pool } from 'undici';
import type { Registry } from 'prom-client';
import type { StepPlan } from './pipeline-file.js';
import { UpstreamMetrics, type BreakerState } from './upstream-metrics.js';

/**
 * TransientFailure is an attempt that may succeed if retried: a transient status, no answer,
 * or the attempt's own timeout. It is what the breaker counts.
 */
export class TransientFailure extends Error {
  constructor(
    message: string,
    /** From the answer's `Retry-After`, when it had one. */
    readonly retryAfterMs?: number | undefined,
    /**
     * The request was written and no whole answer came back (a timeout, a connection lost):
     * the upstream may have applied it.
     */
    readonly unanswered = false,
  ) {
    super(message);
    this.name = 'TransientFailure';
  }
}

/**
 * Upstreams owns what the HTTP steps share: one keep-alive undici `Pool` per origin, bounded
 * to `connectionsPerOrigin` connections, and one circuit breaker per upstream name, whose
 * state is a metric once {@link registerMetrics} is called. {@link close} closes the pools.
 */
export class Upstreams {
  readonly #pools = new Map<string, Pool>();
  readonly #breakers = new Map<string, CircuitBreakerPolicy>();
  readonly #connectionsPerOrigin: number;
  #metrics: UpstreamMetrics | undefined;

  constructor(connectionsPerOrigin: number) {
    if (!Number.isSafeInteger(connectionsPerOrigin) || connectionsPerOrigin < 1) {
      throw new RangeError(
        `connectionsPerOrigin must be a positive integer, got ${connectionsPerOrigin}`,
      );
    }
    this.#connectionsPerOrigin = connectionsPerOrigin;
  }

  /** metrics are the per-upstream series, once registered. */
  get metrics(): UpstreamMetrics | undefined {
    return this.#metrics;
  }

  /** registerMetrics adds the per-upstream series to `registry` (`GET /metrics`). */
  registerMetrics(registry: Registry): void {
    this.#metrics = new UpstreamMetrics(registry);
    for (const [upstream, breaker] of this.#breakers) {
      this.#metrics.recordBreakerState(upstream, stateName(breaker.state));
    }
  }

  /** poolFor is the pool of `origin`, made on first use. */
  poolFor(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.#connectionsPerOrigin,
        keepAliveTimeout: 4000,
        // One request per connection at a time: an abort then closes only its own socket.
        pipelining: 1,
      });
      this.#pools.set(origin, pool);
    }
    return pool;
  }

  /**
   * breakerFor is the breaker of `plan`'s upstream, made on first use (the first plan naming an
   * upstream sets its thresholds). It counts {@link TransientFailure}s only: a refusal is an
   * answer, and an order's own abort says nothing of the upstream.
   */
  breakerFor(plan: StepPlan): CircuitBreakerPolicy {
    let breaker = this.#breakers.get(plan.upstream);
    if (breaker === undefined) {
      const created = circuitBreaker(
        handleWhen((error) => error instanceof TransientFailure),
        {
          halfOpenAfter: plan.breaker.halfOpenAfterMs,
          breaker: new ConsecutiveBreaker(plan.breaker.consecutiveFailures),
        },
      );
      created.onStateChange((state) => {
        this.#metrics?.recordBreakerState(plan.upstream, stateName(state));
      });
      this.#breakers.set(plan.upstream, created);
      breaker = created;
    }
    return breaker;
  }

  /** close closes every pool, destroying the connections still open. */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy()));
  }
}

function stateName(state: CircuitState): BreakerState {
  if (state === CircuitState.Closed) return 'closed';
  if (state === CircuitState.HalfOpen) return 'half_open';
  return 'open';
}
