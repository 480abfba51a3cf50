import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { table, type Row } from './report.js';

/**
 * Entry point of `npm run bench` (`npm run bench -- --quick` for the short run CI does;
 * `--only=http,latency` runs some sections). It compiles the sources and the suite with tsc
 * into dist/ (the layout of npm run build) and runs each section there, in a process of its own, with plain node:
 * code run through tsx's loader gets an extra call per closure to keep function names, which
 * would be measured along with the code under test. Section processes are pinned to every
 * core but the last, where the server under load runs. Prints one table and writes
 * bench/results/latest.json. Exits non-zero only if a section crashes, not on a missed target.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args
  .find((arg) => arg.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const sectionNames = [
  'http',
  'cpu',
  'go',
  'upstreams',
  'chaos',
  'overload',
  'admission',
  'scale-out',
  'in-process',
  'soak',
  'latency',
  'late',
  'memory',
  'recovery',
];

const run = (command: string, commandArgs: string[]): number => {
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  if (result.error !== undefined) throw result.error;
  return result.status ?? 1;
};

if (run('npx', ['tsc', '-p', 'bench/tsconfig.json']) !== 0) {
  console.error('bench: compiling the suite failed');
  process.exit(1);
}

// The machine's CPUs: the suite runs on all but the last, the servers it starts on the last.
const cores = cpus().length;
const pin =
  cores >= 2 && run('sh', ['-c', 'command -v taskset >/dev/null']) === 0
    ? ['taskset', '-c', `0-${cores - 2}`]
    : [];
const scratch = mkdtempSync(join(tmpdir(), 'order-pipeline-bench-'));
const rows: Row[] = [];
let failed = false;
const startedAt = performance.now();
// The machine may be shared: its load before and after the run says how quiet it was.
const loadBefore = loadavg()[0] ?? Number.NaN;
try {
  for (const name of sectionNames) {
    if (only !== undefined && !only.includes(name)) continue;
    const out = join(scratch, `${name}.json`);
    const sectionStart = performance.now();
    console.error(`bench: ${name}${quick ? ' (quick)' : ''}...`);
    const command = [
      ...pin,
      'node',
      '--expose-gc',
      'dist/bench/suite.js',
      name,
      `--out=${out}`,
      ...(quick ? ['--quick'] : []),
    ];
    // The memory section holds thousands of connections open: raise the file limit first.
    const status = run('bash', [
      '-c',
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
      'bench',
      ...command,
    ]);
    if (status !== 0) {
      failed = true;
      console.error(`bench: ${name} failed with status ${status}`);
      continue;
    }
    rows.push(...(JSON.parse(readFileSync(out, 'utf8')) as Row[]));
    console.error(
      `bench: ${name} done in ${((performance.now() - sectionStart) / 1000).toFixed(1)} s`,
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const seconds = (performance.now() - startedAt) / 1000;
const loadAfter = loadavg()[0] ?? Number.NaN;
const targets = rows.filter((r) => r.met !== undefined);
const met = targets.filter((r) => r.met === true).length;
console.log(
  `\norder-pipeline benchmarks, ${quick ? 'quick' : 'full'} run, ${new Date().toISOString()}` +
    `\nnode ${process.version}, ${process.platform}/${process.arch}, ${cores} cores, ${seconds.toFixed(0)} s, ` +
    `load average ${loadBefore.toFixed(2)} before and ${loadAfter.toFixed(2)} after (1 min)\n\n` +
    `${table(rows)}\n\ntargets met: ${met} of ${targets.length}`,
);
const resultsFile = join(root, 'bench', 'results', 'latest.json');
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
const result = {
  quick,
  node: process.version,
  cores,
  date: new Date().toISOString(),
  seconds,
  loadAverage: { before: loadBefore, after: loadAfter },
  rows,
};
writeFileSync(resultsFile, `${JSON.stringify(result, null, 2)}\n`);
console.log(`results written to ${resultsFile}`);
process.exit(failed ? 1 : 0);
