import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BucketHistogram } from '../../src/observability/bucket-histogram.js';

/** The same observations, as seconds: on bounds, between them, past the last, and zero. */
const observations: readonly (readonly [string, string, number])[] = [
  ['payment', 'ok', 0.001],
  ['payment', 'ok', 0.005],
  ['payment', 'ok', 0.0051],
  ['payment', 'error', 0.3],
  ['vendor', 'ok', 12],
  ['vendor', 'ok', 0],
  ['payment', 'ok', 2.5],
];

function both(buckets?: number[]): { ours: Registry; theirs: Registry } {
  const ours = new Registry();
  const theirs = new Registry();
  const options = {
    name: 'h_seconds',
    help: 'A histogram.',
    labelNames: ['step', 'status'],
    ...(buckets === undefined ? {} : { buckets }),
  };
  const histogram = new BucketHistogram({ ...options, registers: [ours] });
  const reference = new Histogram({ ...options, registers: [theirs] });
  for (const [step, status, value] of observations) {
    histogram.series(step, status).observe(value);
    reference.labels(step, status).observe(value);
  }
  return { ours, theirs };
}

describe('BucketHistogram', () => {
  it("writes the same text as prom-client's histogram for the same observations", async () => {
    const { ours, theirs } = both();
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('h_seconds_bucket{le="0.005",step="payment",status="ok"} 2');
    expect(text).toContain('h_seconds_count{step="vendor",status="ok"} 2');
  });

  it('keeps to the buckets it is given', async () => {
    const { ours, theirs } = both([0.001, 0.01, 1]);
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it("gives a cluster's registries the same samples to sum", async () => {
    const first = both();
    const second = both();
    const reference = both();
    const summed = AggregatorRegistry.aggregate([
      await first.ours.getMetricsAsJSON(),
      await second.ours.getMetricsAsJSON(),
    ]);
    const summedReference = AggregatorRegistry.aggregate([
      await reference.theirs.getMetricsAsJSON(),
      await reference.theirs.getMetricsAsJSON(),
    ]);
    const text = await summed.metrics();
    expect(text).toBe(await summedReference.metrics());
    expect(text).toContain('h_seconds_count{step="payment",status="ok"} 8');
  });

  it('shows a series at zero once named, and reset zeroes every series', async () => {
    const registry = new Registry();
    const histogram = new BucketHistogram({
      name: 'w_seconds',
      help: 'Waits.',
      labelNames: ['result'],
      registers: [registry],
    });
    const acquired = histogram.series('acquired');
    expect(await registry.metrics()).toContain('w_seconds_count{result="acquired"} 0');
    acquired.observe(0.2);
    acquired.observe(Number.NaN);
    expect(histogram.series('acquired')).toBe(acquired);
    expect(await registry.metrics()).toContain('w_seconds_count{result="acquired"} 1');
    expect(await registry.metrics()).toContain('w_seconds_sum{result="acquired"} 0.2');
    histogram.reset();
    expect(await registry.metrics()).toContain('w_seconds_count{result="acquired"} 0');
  });

  it('refuses bounds that do not increase and label values of the wrong count', () => {
    const registers: Registry[] = [];
    expect(
      () =>
        new BucketHistogram({ name: 'x', help: 'x', labelNames: [], buckets: [1, 1], registers }),
    ).toThrow(RangeError);
    const histogram = new BucketHistogram({ name: 'y', help: 'y', labelNames: ['a'], registers });
    expect(() => histogram.series()).toThrow(RangeError);
  });
});
