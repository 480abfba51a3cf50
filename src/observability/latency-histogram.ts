/**
 * The latency histogram of the dashboard's series: a fixed set of bins, the same in every
 * process, so that histograms of several windows or several processes add up bin by bin and
 * their percentiles are computed after adding (percentiles themselves do not add).
 *
 * Bin 0 holds latencies under 1 ms; bin `b` from 1 to 64 holds [2^((b−1)/4), 2^(b/4)) ms,
 * so a bin's upper edge is 2^¼ ≈ 1.19 times its lower one; bin 65 holds 65,536 ms and over.
 */

/** Bins per doubling of the latency: the resolution of a percentile is 2^(1/4) ≈ 19 %. */
const binsPerDoubling = 4;
/** Doublings above 1 ms told apart: up to 2^16 ms ≈ 65.5 s, past any deadline. */
const doublings = 16;

/** The number of bins of every latency histogram. */
export const latencyBinCount = 1 + doublings * binsPerDoubling + 1;

/** latencyBin is the bin of a latency of `ms` milliseconds; below 1 ms, or NaN, is bin 0. */
export function latencyBin(ms: number): number {
  if (!(ms >= 1)) return 0;
  const bin = 1 + Math.floor(Math.log2(ms) * binsPerDoubling);
  return bin < latencyBinCount ? bin : latencyBinCount - 1;
}

/** binLowerMs is the lower edge of bin `bin`, in milliseconds. */
export function binLowerMs(bin: number): number {
  return bin === 0 ? 0 : 2 ** ((bin - 1) / binsPerDoubling);
}

/**
 * percentileMs is the latency under which a share `q` (in (0, 1]) of the histogram's orders
 * fell, rounded to 0.1 ms: the bin holding that rank, interpolated linearly by rank within
 * it, as Prometheus' `histogram_quantile` does. The last bin, unbounded, answers its lower
 * edge. An empty histogram answers 0. `counts[i]` is the count of bin `offset + i`.
 */
export function percentileMs(counts: ArrayLike<number>, q: number, offset = 0): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] ?? 0;
  if (total === 0) return 0;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i] ?? 0;
    if (count > 0 && below + count >= rank) {
      const bin = offset + i;
      const lower = binLowerMs(bin);
      if (bin >= latencyBinCount - 1) return round(lower);
      const upper = binLowerMs(bin + 1);
      return round(lower + ((upper - lower) * (rank - below)) / count);
    }
    below += count;
  }
  return round(binLowerMs(offset + counts.length - 1));
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/**
 * LatencyHistogram is a histogram as the dashboard's state carries it: `counts[i]` is the
 * count of bin `offset + i`, with the empty bins at either end left out.
 */
export interface LatencyHistogram {
  offset: number;
  counts: number[];
}

/**
 * trimmed is the histogram of the dense bin counts `bins` (every bin from 0), with the empty
 * bins at either end left out: an empty histogram is `{ offset: 0, counts: [] }`.
 */
export function trimmed(bins: ArrayLike<number>): LatencyHistogram {
  let first = 0;
  while (first < bins.length && (bins[first] ?? 0) === 0) first++;
  if (first === bins.length) return { offset: 0, counts: [] };
  let last = bins.length - 1;
  while ((bins[last] ?? 0) === 0) last--;
  return {
    offset: first,
    counts: Array.from({ length: last - first + 1 }, (_, i) => bins[first + i] ?? 0),
  };
}

/** LatencySummary is what the dashboard shows of a histogram: its p50, its p99 and its bins. */
export interface LatencySummary {
  p50_ms: number;
  p99_ms: number;
  latency: LatencyHistogram;
}

/** latencySummary is the p50, the p99 and the trimmed histogram of the dense bin counts `bins`. */
export function latencySummary(bins: ArrayLike<number>): LatencySummary {
  return {
    p50_ms: percentileMs(bins, 0.5),
    p99_ms: percentileMs(bins, 0.99),
    latency: trimmed(bins),
  };
}

/**
 * addInto adds `histogram` to the dense bin counts `bins`. Throws a RangeError if a bin of
 * `histogram` is not one of the {@link latencyBinCount} bins or a count is not a
 * non-negative integer: input from another process is checked, never trusted.
 */
export function addInto(bins: number[] | Float64Array, histogram: LatencyHistogram): void {
  const { offset, counts } = histogram;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + counts.length > latencyBinCount) {
    throw new RangeError(
      `latency histogram bins ${offset}..${offset + counts.length - 1} are outside 0..${latencyBinCount - 1}`,
    );
  }
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i] ?? 0;
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new RangeError(`latency histogram count must be an integer ≥ 0, got ${count}`);
    }
    bins[offset + i] = (bins[offset + i] ?? 0) + count;
  }
}
