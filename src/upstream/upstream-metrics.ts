import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The breaker states as the gauge reports them. */
export const breakerStateValues = { closed: 0, half_open: 1, open: 2 } as const;
export type BreakerState = keyof typeof breakerStateValues;

/**
 * UpstreamMetrics are the per-upstream series: request duration by upstream and status class,
 * retries, aborts (the order's cancellation closing an in-flight request) and the breaker's
 * state. Labels are bounded: upstream names come from the pipeline file.
 */
export class UpstreamMetrics {
  readonly #duration: Histogram<'upstream' | 'status_class'>;
  readonly #retries: Counter<'upstream'>;
  readonly #aborts: Counter<'upstream'>;
  readonly #breakerState: Gauge<'upstream'>;
  /**
   * The series of each upstream, made on first use: recording an attempt looks its series up
   * instead of building and hashing a label object. Durations are indexed by status class:
   * 0 for no answer, 1 to 5 for 1xx to 5xx.
   */
  readonly #durationsOf = new Map<string, Histogram.Internal<'upstream' | 'status_class'>[]>();
  readonly #retriesOf = new Map<string, Counter.Internal>();
  readonly #abortsOf = new Map<string, Counter.Internal>();

  /** The constructor registers the series in `registry`; a name registered twice throws. */
  constructor(registry: Registry) {
    const registers = [registry];
    this.#duration = new Histogram({
      name: 'order_pipeline_upstream_request_duration_seconds',
      help: 'Upstream request attempts, by upstream and status class (2xx…5xx, or error: no answer).',
      labelNames: ['upstream', 'status_class'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.#retries = new Counter({
      name: 'order_pipeline_upstream_retries_total',
      help: 'Upstream attempts retried after a transient failure.',
      labelNames: ['upstream'],
      registers,
    });
    this.#aborts = new Counter({
      name: 'order_pipeline_upstream_aborts_total',
      help: "In-flight upstream requests aborted by their order's cancellation.",
      labelNames: ['upstream'],
      registers,
    });
    this.#breakerState = new Gauge({
      name: 'order_pipeline_upstream_breaker_state',
      help: 'Circuit breaker of each upstream: 0 closed, 1 half-open, 2 open.',
      labelNames: ['upstream'],
      registers,
      // Each worker of WORKERS=N has its own breakers: a scrape of all shows the most open.
      aggregator: 'max',
    });
  }

  recordRequest(upstream: string, status: number | undefined, seconds: number): void {
    const classIndex = status === undefined ? 0 : Math.trunc(status / 100);
    let durations = this.#durationsOf.get(upstream);
    if (durations === undefined) {
      durations = [];
      this.#durationsOf.set(upstream, durations);
    }
    let series = durations[classIndex];
    if (series === undefined) {
      series = this.#duration.labels(upstream, classIndex === 0 ? 'error' : `${classIndex}xx`);
      durations[classIndex] = series;
    }
    series.observe(seconds);
  }

  recordRetry(upstream: string): void {
    seriesOf(this.#retriesOf, this.#retries, upstream).inc();
  }

  recordAbort(upstream: string): void {
    seriesOf(this.#abortsOf, this.#aborts, upstream).inc();
  }

  recordBreakerState(upstream: string, state: BreakerState): void {
    this.#breakerState.set({ upstream }, breakerStateValues[state]);
  }
}

/** seriesOf is the series of `counter` for `upstream`, made once and kept in `made`. */
function seriesOf(
  made: Map<string, Counter.Internal>,
  counter: Counter<'upstream'>,
  upstream: string,
): Counter.Internal {
  let series = made.get(upstream);
  if (series === undefined) {
    series = counter.labels(upstream);
    made.set(upstream, series);
  }
  return series;
}
