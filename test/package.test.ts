import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { libraryExample } from './docs/readme-example.js';

// The package as users get it: packed into a tarball (its prepack builds dist/), installed
// into an empty project as a user installs it (`npm install <tarball>`, install scripts and
// all), and used there: what got installed, the README's library example type-checked under
// the strictest settings (skipLibCheck off, none of the project's dev-only types) and run,
// and each entry point loaded without the optional peers.

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
// From npm's cache when the packages are there (after `npm ci` they are): no network.
const installFlags = ['--no-audit', '--no-fund', '--prefer-offline'];
/** What npm says when it can reach neither its cache nor the registry for a package. */
const offlineErrors = /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT/;
/** The optional peer dependencies: the drivers of the stores and of the shared pool. */
const optionalPeers = ['better-sqlite3', 'pg', 'ioredis'];

let workDir = '';
let tarball = '';
let appDir = '';
/** Why the package could not be installed, when npm was offline (outside CI only). */
let offline: string | undefined;

/** run runs a command and returns what it printed; on failure, throws with all it printed. */
function run(command: string, args: string[], cwd: string): string {
  try {
    return execFileSync(command, args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed:\n${stdout}${stderr}`, { cause: error });
  }
}

/** runModule runs `code` as an ES module in `cwd` and returns what it printed. */
function runModule(code: string, cwd: string): string {
  return run(process.execPath, ['--input-type=module', '-e', code], cwd).trim();
}

/** installed skips the test when the package could not be installed for want of a network. */
function installed(ctx: TestContext): void {
  if (offline !== undefined) ctx.skip(`npm is offline: ${offline}`);
}

/** installedPackages lists the packages npm installed in `dir`, with their lock entries. */
function installedPackages(dir: string): Map<string, { hasInstallScript?: boolean }> {
  const lock = JSON.parse(
    readFileSync(join(dir, 'node_modules', '.package-lock.json'), 'utf8'),
  ) as { packages: Record<string, { hasInstallScript?: boolean }> };
  return new Map(
    Object.entries(lock.packages)
      .filter(([path]) => path.startsWith('node_modules/'))
      .map(([path, entry]) => [path.slice('node_modules/'.length), entry]),
  );
}

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'order-pipeline-package-'));
  tarball = join(
    workDir,
    run(npm, ['pack', '--silent', '--pack-destination', workDir], repoRoot).trim(),
  );
  appDir = join(workDir, 'app');
  mkdirSync(appDir);
  writeFileSync(
    join(appDir, 'package.json'),
    JSON.stringify({ name: 'app', private: true, type: 'module' }),
  );
  try {
    run(npm, ['install', ...installFlags, tarball], appDir);
    // The user's own type definitions of Node, as any TypeScript project on Node has them.
    const { devDependencies } = JSON.parse(
      readFileSync(join(repoRoot, 'package.json'), 'utf8'),
    ) as { devDependencies: Record<string, string> };
    run(
      npm,
      ['install', ...installFlags, '--save-dev', `@types/node@${devDependencies['@types/node']}`],
      appDir,
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (process.env['CI'] === 'true' || !offlineErrors.test(message)) throw error;
    offline = offlineErrors.exec(message)?.[0];
  }
}, 120_000);

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships the build and the dashboard, not the tests, benchmarks or CI', () => {
    const listed = run('tar', ['-tzf', tarball], workDir);
    expect(listed).toContain('package/dist/src/index.js');
    expect(listed).toContain('package/dist/src/core/index.js');
    expect(listed).toContain('package/src/http/dashboard/static/index.html');
    expect(listed).not.toMatch(/package\/(test|bench|\.ci)\//);
  });

  it('installs no optional peer and builds nothing: no install script, no native module', (ctx) => {
    installed(ctx);
    const packages = installedPackages(appDir);
    expect(packages.has('order-pipeline')).toBe(true);
    for (const peer of optionalPeers) {
      expect(packages.has(peer), peer).toBe(false);
      expect(existsSync(join(appDir, 'node_modules', peer)), peer).toBe(false);
    }
    const withScripts = [...packages].filter(([, entry]) => entry.hasInstallScript === true);
    expect(withScripts.map(([name]) => name)).toStrictEqual([]);
    expect(run('find', ['node_modules', '-name', '*.node'], appDir)).toBe('');
  });

  it('type-checks the README example and every entry point, skipLibCheck off', (ctx) => {
    installed(ctx);
    writeFileSync(join(appDir, 'example.ts'), libraryExample());
    writeFileSync(
      join(appDir, 'entry-points.ts'),
      [
        "import * as library from 'order-pipeline';",
        "import * as core from 'order-pipeline/core';",
        "import * as stores from 'order-pipeline/stores';",
        "import * as server from 'order-pipeline/server';",
        'export const entryPoints = [library, core, stores, server];',
      ].join('\n'),
    );
    writeFileSync(
      join(appDir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          lib: ['ES2023'],
          types: ['node'],
          strict: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: false,
          noEmit: true,
        },
        files: ['example.ts', 'entry-points.ts'],
      }),
    );
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    // Throws with tsc's report if anything fails to type-check.
    expect(run(process.execPath, [tsc, '-p', 'tsconfig.json'], appDir)).toBe('');
    // Nothing came from the project's own dev-only types.
    expect(existsSync(join(appDir, 'node_modules', '@types', 'pg'))).toBe(false);
    expect(existsSync(join(appDir, 'node_modules', '@types', 'better-sqlite3'))).toBe(false);
  }, 60_000);

  it('runs the README example with the memory store, nothing left running', (ctx) => {
    installed(ctx);
    const js = ts.transpileModule(libraryExample(), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    writeFileSync(
      join(appDir, 'example.mjs'),
      // The payment provider of the example, stubbed: it accepts the charge.
      `globalThis.fetch = async () => new Response('{}');\n${js}\n` +
        'console.log(JSON.stringify({ status: answer.outcome?.status, ' +
        'steps: answer.outcome?.steps.map((s) => s.status), error: answer.error ?? null, ' +
        'active: service.tracker.active }));\n',
    );
    // The example closes its service: the process exits by itself once it has answered.
    const printed = JSON.parse(run(process.execPath, ['example.mjs'], appDir)) as unknown;
    expect(printed).toStrictEqual({
      status: 'ok',
      steps: ['ok', 'ok', 'ok'],
      error: null,
      active: 0,
    });
  });

  it('order-pipeline/core gives the primitives alone', (ctx) => {
    installed(ctx);
    const names = runModule(
      "const core = await import('order-pipeline/core'); console.log(Object.keys(core).sort().join(','));",
      appDir,
    );
    expect(names).toBe('CancelSource,PoolDecorator,Semaphore,TaskGroup,Tracker,link,sleep');
  });

  it('loads ., core and stores with no other package but typebox, the stores failing to open', (ctx) => {
    installed(ctx);
    // A project that has the package and TypeBox (the stores' record codec) and nothing else:
    // no driver, no Fastify, no pino, no OpenTelemetry.
    const bareDir = join(workDir, 'bare');
    for (const name of ['order-pipeline', '@sinclair/typebox']) {
      cpSync(join(appDir, 'node_modules', name), join(bareDir, 'node_modules', name), {
        recursive: true,
        dereference: true,
      });
    }
    const dataDir = join(workDir, 'data');
    const printed = runModule(
      `
      const library = await import('order-pipeline');
      await import('order-pipeline/core');
      const stores = await import('order-pipeline/stores');
      const store = new library.MemoryOrderStore();
      await store.close();
      const failures = [];
      for (const open of [
        () => stores.openSqliteOrderStore({ dataDir: ${JSON.stringify(dataDir)}, sync: 'normal' }),
        () => stores.openPostgresOrderStore({ connectionString: 'postgres://127.0.0.1:1/none', poolSize: 1 }),
      ]) {
        await open().then(() => failures.push('opened'), (error) => failures.push(error.message));
      }
      console.log(JSON.stringify(failures));
      `,
      bareDir,
    );
    expect(JSON.parse(printed)).toStrictEqual([
      'the SQLite order store needs the package better-sqlite3, which is not installed: npm install better-sqlite3',
      'the PostgreSQL order store needs the package pg, which is not installed: npm install pg',
    ]);
    // The SQLite store failed before touching its directory.
    expect(existsSync(dataDir)).toBe(false);
  });

  it('loads order-pipeline/server without the optional peers', (ctx) => {
    installed(ctx);
    const names = runModule(
      "const server = await import('order-pipeline/server'); console.log(typeof server.startServer);",
      appDir,
    );
    expect(names).toBe('function');
  });
});
