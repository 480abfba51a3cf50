import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The package as users get it: packed into a tarball (its prepack builds dist/), installed
// into an empty project, and the README's library example run against the installed copy.

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let workDir = '';
let appDir = '';

function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'order-pipeline-package-'));
  run(npm, ['pack', '--silent', '--pack-destination', workDir], repoRoot);
  const tarball = readdirSync(workDir).find((name) => name.endsWith('.tgz'));
  if (tarball === undefined) throw new Error('npm pack made no tarball');
  appDir = join(workDir, 'app');
  run('mkdir', ['-p', appDir], workDir);
  writeFileSync(
    join(appDir, 'package.json'),
    JSON.stringify({ name: 'app', private: true, type: 'module' }),
  );
  // The library's entry points load no native module: install without building one.
  run(
    npm,
    [
      'install',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      join(workDir, tarball),
    ],
    appDir,
  );
}, 180_000);

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships the build and the dashboard, not the tests, benchmarks or CI', () => {
    const listed = run(
      'tar',
      ['-tzf', readdirSync(workDir).find((n) => n.endsWith('.tgz')) ?? ''],
      workDir,
    );
    expect(listed).toContain('package/dist/src/index.js');
    expect(listed).toContain('package/dist/src/core/index.js');
    expect(listed).toContain('package/src/http/dashboard/static/index.html');
    expect(listed).not.toMatch(/package\/(test|bench|\.ci)\//);
  });

  it('runs the README library example, installed', () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Using the library'));
    const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const js = ts.transpileModule(example, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    writeFileSync(
      join(appDir, 'example.mjs'),
      // The payment provider of the example, stubbed: it accepts the charge.
      `globalThis.fetch = async () => new Response('{}');\n${js}\n` +
        `console.log(JSON.stringify({ status: outcome.status, steps: outcome.steps.map((s) => s.status), active: tracker.active }));\n`,
    );
    const printed = JSON.parse(run(process.execPath, ['example.mjs'], appDir)) as unknown;
    expect(printed).toStrictEqual({ status: 'ok', steps: ['ok', 'ok', 'ok'], active: 0 });
  });

  it('order-pipeline/core gives the primitives alone', () => {
    const names = run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const core = await import('order-pipeline/core'); console.log(Object.keys(core).sort().join(','));",
      ],
      appDir,
    ).trim();
    expect(names).toBe('CancelSource,PoolDecorator,Semaphore,TaskGroup,Tracker,link,sleep');
  });
});
