import type { Registry } from 'prom-client';

/** prom-client's default buckets, in seconds: what its own histograms use unless told. */
export const defaultBuckets: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** One sample of a metric, as a prom-client registry reads it. */
interface Sample {
  readonly value: number;
  readonly metricName: string;
  readonly labels: Readonly<Record<string, string | number>>;
  /** The series' own labels, written after `labels` in the text format. */
  readonly sharedLabels?: Readonly<Record<string, string>>;
}

/** A metric as a prom-client registry reads it (`get`, `getForPromString`). */
interface MetricData {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly values: Sample[];
  readonly aggregator: 'sum';
}

/**
 * HistogramSeries is one series of a {@link BucketHistogram}, its labels bound once: an
 * observation is a scan of the bucket bounds and three additions, with nothing allocated.
 */
export class HistogramSeries {
  /** Observations per bucket, not cumulative; the last counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** observe counts `value` (non-finite values are ignored: a sum must stay a number). */
  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += value;
    this.count++;
  }
}

export interface BucketHistogramOptions<Label extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly Label[];
  /** Upper bounds in seconds, increasing; prom-client's defaults unless given. */
  readonly buckets?: readonly number[];
  readonly registers: readonly Registry[];
}

/**
 * BucketHistogram is a Prometheus histogram for the order path, read by prom-client's
 * registry like its own (the same text and the same JSON, so a cluster's registries sum it),
 * but whose series are bound to their labels once: prom-client's histogram hashes the labels
 * of every observation into a string, which on the order path was four strings an order.
 * A series exists, at zero, from the moment {@link series} first names it.
 */
export class BucketHistogram<Label extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #labelNames: readonly Label[];
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, HistogramSeries>();

  constructor(options: BucketHistogramOptions<Label>) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = options.labelNames;
    this.#bounds = options.buckets ?? defaultBuckets;
    for (let i = 1; i < this.#bounds.length; i++) {
      if ((this.#bounds[i] as number) <= (this.#bounds[i - 1] as number)) {
        throw new RangeError(`${this.name}: bucket bounds must increase`);
      }
    }
    // The registry reads a metric through `name`, `get`, `getForPromString` and `reset` only.
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  /**
   * series is the series of these label values, in the order of the label names; made on
   * first use and kept. Callers on a hot path keep the series it returns.
   */
  series(...values: string[]): HistogramSeries {
    if (values.length !== this.#labelNames.length) {
      throw new RangeError(
        `${this.name}: ${this.#labelNames.length} label values expected, got ${values.length}`,
      );
    }
    const key = values.join('\u0000');
    let series = this.#series.get(key);
    if (series === undefined) {
      const labels: Record<string, string> = {};
      this.#labelNames.forEach((name, i) => {
        labels[name] = values[i] as string;
      });
      series = new HistogramSeries(labels, this.#bounds);
      this.#series.set(key, series);
    }
    return series;
  }

  /** The registry's JSON: every sample with all its labels (what a cluster's registries sum). */
  get(): Promise<MetricData> {
    return Promise.resolve(this.#data(true));
  }

  /** The registry's text: the series' labels after `le`, as prom-client's histograms write them. */
  getForPromString(): Promise<MetricData> {
    return Promise.resolve(this.#data(false));
  }

  /** reset forgets every observation; the series stay, at zero. */
  reset(): void {
    for (const series of this.#series.values()) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }

  #data(splayed: boolean): MetricData {
    const values: Sample[] = [];
    const sample = (
      metricName: string,
      value: number,
      labels: Record<string, string | number>,
      shared: Readonly<Record<string, string>>,
    ): Sample =>
      splayed
        ? { metricName, value, labels: { ...labels, ...shared } }
        : { metricName, value, labels, sharedLabels: shared };
    for (const series of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.counts[i] as number;
        values.push(sample(`${this.name}_bucket`, cumulative, { le: bound }, series.labels));
      });
      values.push(
        sample(`${this.name}_bucket`, series.count, { le: '+Inf' }, series.labels),
        sample(`${this.name}_sum`, series.sum, {}, series.labels),
        sample(`${this.name}_count`, series.count, {}, series.labels),
      );
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}
