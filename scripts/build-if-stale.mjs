#!/usr/bin/env node
// Builds dist/ with tsc unless it is already newer than every source it is built from, so
// `npm start` starts in a second when nothing changed and never runs a stale build.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stamp = join(root, 'dist', '.build-stamp');

function newestMtime(path) {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  let newest = stats.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json'].map((p) =>
  join(root, p),
);
const sources = Math.max(...inputs.filter(existsSync).map(newestMtime));
const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
if (built > sources) process.exit(0);

console.error('building dist/ (sources changed since the last build)');
// A clean build: files of sources since removed must not linger in dist/.
rmSync(join(root, 'dist'), { recursive: true, force: true });
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
writeFileSync(stamp, '');
