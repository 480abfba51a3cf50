import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { admissionOracleBenchmark } from './admission-oracle.js';
import { chaosBenchmark } from './chaos.js';
import { cpuBudgetBenchmark } from './cpu-budget.js';
import { httpBenchmarks } from './http-load.js';
import { inProcessBenchmarks } from './in-process.js';
import { lateAnswersBenchmark } from './late-answers.js';
import { latencyBenchmarks } from './latency.js';
import { memoryBenchmarks } from './memory.js';
import { overloadBenchmark } from './overload.js';
import { scaleOutBenchmarks } from './scale-out.js';
import { sideBySideBenchmark } from './side-by-side.js';
import { recoveryBenchmarks } from './recovery.js';
import type { Row } from './report.js';
import { soakBenchmark } from './soak.js';
import { upstreamsBenchmarks } from './upstreams.js';

/**
 * The sections of the benchmark suite. bench/run.ts runs each in a process of its own on the
 * compiled code (`node dist/bench/suite.js <section> [--quick] --out=<file>`), so that
 * no section's garbage or warm-up shows in another's figures.
 */
export const sections: Record<string, (options: { quick: boolean }) => Promise<Row[]>> = {
  'in-process': inProcessBenchmarks,
  soak: soakBenchmark,
  http: httpBenchmarks,
  cpu: cpuBudgetBenchmark,
  go: sideBySideBenchmark,
  upstreams: upstreamsBenchmarks,
  chaos: chaosBenchmark,
  latency: latencyBenchmarks,
  late: lateAnswersBenchmark,
  overload: overloadBenchmark,
  admission: admissionOracleBenchmark,
  memory: memoryBenchmarks,
  'scale-out': scaleOutBenchmarks,
  recovery: recoveryBenchmarks,
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const name = args[0] ?? '';
  const run = sections[name];
  if (run === undefined) throw new Error(`unknown section ${JSON.stringify(name)}`);
  const out = args.find((arg) => arg.startsWith('--out='))?.slice('--out='.length);
  const rows = await run({ quick: args.includes('--quick') });
  if (out === undefined) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else writeFileSync(out, JSON.stringify(rows));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
