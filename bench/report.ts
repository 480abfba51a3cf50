/** Row is one figure of the suite, printed beside its same-run baseline and its target. */
export interface Row {
  section: string;
  scenario: string;
  /** The figure, formatted with its unit. */
  figure: string;
  value: number;
  unit: string;
  /** The baseline measured in the same run, formatted; empty when the row has none. */
  baseline: string;
  /** Other figures of the same run to compare with (naive implementation, p-limit). */
  compare: string;
  target: string;
  /** undefined when the row has no target. */
  met: boolean | undefined;
}

export type RowInput = Partial<Row> & Pick<Row, 'section' | 'scenario' | 'value' | 'unit'>;

/** row fills the optional columns of a row and formats its figure. */
export function row(input: RowInput): Row {
  return {
    figure: input.figure ?? formatValue(input.value, input.unit),
    baseline: '',
    compare: '',
    target: '',
    met: undefined,
    ...input,
  };
}

export function formatValue(value: number, unit: string): string {
  if (!Number.isFinite(value)) return 'n/a';
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })} ${unit}`;
}

/** table renders rows as a Markdown table, the same text the README shows. */
export function table(rows: readonly Row[]): string {
  const header = [
    'section',
    'scenario',
    'figure',
    'baseline (same run)',
    'compare',
    'target',
    'met',
  ];
  const lines = rows.map((r) => [
    r.section,
    r.scenario,
    r.figure,
    r.baseline,
    r.compare,
    r.target,
    r.met === undefined ? '' : r.met ? 'met' : 'NOT MET',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const render = (cells: string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [
    render(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...lines.map(render),
  ].join('\n');
}

/** percentile of sorted-ascending `values`, nearest rank; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}
