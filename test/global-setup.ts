import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Builds dist/ once before the suite, as `npm start` does (only if it is stale): the tests of
 * the server process run the build, exactly what users run.
 */
export default function setup(): void {
  const script = fileURLToPath(new URL('../scripts/build-if-stale.mjs', import.meta.url));
  execFileSync(process.execPath, [script], { stdio: 'inherit' });
}
