import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** DataDirInUseError says that a live process other than this one holds a data directory. */
export class DataDirInUseError extends Error {
  readonly dir: string;
  /** The pid of the process that holds it. */
  readonly holder: number;

  constructor(dir: string, holder: number) {
    super(`DATA_DIR ${dir} is in use by process ${holder}`);
    this.name = 'DataDirInUseError';
    this.dir = dir;
    this.holder = holder;
  }
}

/**
 * lockDataDir claims `dir` for this process with a pid file (`server.pid`), and resolves with
 * the function that releases it (removes the file). A pid file left by a process that is no
 * longer alive (a crash) is taken over; one of a live process makes it reject with a
 * {@link DataDirInUseError}, leaving the file as it was: two processes must never recover
 * each other's orders. Rejects with the file system's error if the file cannot be written.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'server.pid');
  const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
  if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
    throw new DataDirInUseError(dir, holder);
  }
  const file = await open(path, 'w');
  await file.writeFile(`${process.pid}\n`);
  await file.close();
  return () => rm(path, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return error instanceof Error && 'code' in error && error.code === 'EPERM';
  }
}
