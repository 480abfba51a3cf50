import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// The process log, in a process of its own (the built module), with stdout a regular file:
// the lines of a turn of the event loop are written together at its end, and a crash does not
// lose the lines its turn logged.

const processLog = fileURLToPath(new URL('../../dist/src/process-log.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'order-pipeline-process-log-'));

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** run runs `body` after `log` is opened, with stdout to a file; answers its exit and lines. */
function run(name: string, body: string): { status: number | null; lines: string[] } {
  const file = join(dir, `${name}.log`);
  const out = openSync(file, 'w');
  const script = `import { openProcessLog } from ${JSON.stringify(processLog)};\nconst log = openProcessLog();\n${body}`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', out, 'pipe'],
    env: { ...process.env, LOG_FILE: file },
  });
  closeSync(out);
  const text = readFileSync(file, 'utf8');
  return {
    status: result.status,
    lines: text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => String((JSON.parse(line) as { msg?: unknown }).msg)),
  };
}

describe('the process log to a file', () => {
  it('writes every line of a turn, in order, by the exit', () => {
    const { status, lines } = run(
      'turn',
      `for (let i = 0; i < 100; i++) log.logger.info('line ' + i);\nlog.exit(0);`,
    );
    expect(status).toBe(0);
    expect(lines).toStrictEqual(Array.from({ length: 100 }, (_, i) => `line ${i}`));
  });

  it('writes a turn’s lines when the turn ends, before the next turn runs', () => {
    const { status, lines } = run(
      'turns',
      [
        `import { readFileSync } from 'node:fs';`,
        `log.logger.info('first');`,
        `setTimeout(() => {`,
        `  const written = readFileSync(process.env.LOG_FILE, 'utf8').includes('"first"');`,
        `  log.logger.info(written ? 'first was written' : 'first was not written');`,
        `  log.exit(0);`,
        `}, 5);`,
      ].join('\n'),
    );
    expect(status).toBe(0);
    expect(lines).toStrictEqual(['first', 'first was written']);
  });

  it('keeps the lines logged in the turn a crash ends', () => {
    const { status, lines } = run(
      'crash',
      `log.logger.error('about to crash');\nthrow new Error('boom');`,
    );
    expect(status).toBe(1);
    expect(lines).toStrictEqual(['about to crash']);
  });
});
