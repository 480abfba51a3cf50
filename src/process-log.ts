import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import pino from 'pino';

/** How long an exit waits for the lines logged before it to be written. */
export const exitLogGraceMs = 1000;

/**
 * ProcessLog is the server process's logger, writing JSON lines to stdout, and the one way
 * the process exits, so that no log write ever stands between a signal and the exit.
 */
export interface ProcessLog {
  /** Logs at `info` until its `level` is set. */
  readonly logger: pino.Logger;
  /**
   * exit ends the process with `code` once the lines logged so far are written, or after
   * {@link exitLogGraceMs} if stdout does not take them (a pipe nobody reads), or at once if
   * stdout has failed or exit was already called (with the new code then).
   */
  exit(code: number): void;
}

/**
 * openProcessLog opens the process's log on stdout, by pino's destination (sonic-boom). Where
 * stdout is a file or a device that never makes a writer wait for a reader (a regular file,
 * /dev/null), the lines of one turn of the event loop are written together, synchronously, at
 * the end of the turn: no second thread then shares the server's core to write them (on a
 * single core, a thread-pool thread writing each line left some connections waiting over a
 * second under load). Elsewhere — a pipe, a socket, a terminal — its asynchronous destination,
 * whose writes never block the event loop. A write that fails — a closed pipe (EPIPE), a full
 * disk (ENOSPC) — ends logging for the life of the process, silently, and never the process
 * itself: without this, pino re-throws any failure but EPIPE as an uncaught error, and its
 * synchronous flush at exit retries a failing write for ever, so the process never exits.
 */
export function openProcessLog(): ProcessLog {
  const batched = neverWaitsForAReader(1);
  const stdout = pino.destination({ dest: 1, sync: batched });
  let failed = false;
  let exitCode: number | undefined;
  const exitNow = (): void => {
    // Destroyed, its buffer is dropped and pino's flush at exit skips it.
    stdout.destroy();
    process.exit(exitCode);
  };
  stdout.on('error', () => {
    failed = true;
    if (exitCode !== undefined) exitNow();
  });
  const write = (text: string): void => {
    if (failed) return;
    try {
      stdout.write(text);
    } catch {
      // Closed by an exit under way (it throws once closed): the line is too late.
    }
  };
  // The lines of this turn of the event loop, written together by `flush` once it ends.
  let lines: string[] = [];
  let flushScheduled = false;
  const flush = (): void => {
    flushScheduled = false;
    if (lines.length === 0) return;
    const text = lines.join('');
    lines = [];
    write(text);
  };
  // Lines of the turn a crash ends are written as the process exits (synchronously here).
  if (batched) process.once('exit', flush);
  const logger = pino(
    {},
    {
      write: batched
        ? (line: string) => {
            lines.push(line);
            if (flushScheduled) return;
            flushScheduled = true;
            setImmediate(flush);
          }
        : write,
    },
  );
  return {
    logger,
    exit: (code) => {
      flush();
      const exiting = exitCode !== undefined;
      exitCode = code;
      if (exiting || failed) {
        exitNow();
        return;
      }
      stdout.once('close', exitNow);
      setTimeout(exitNow, exitLogGraceMs);
      // Writes what is buffered, then closes (fd 1 itself stays open).
      stdout.end();
    },
  };
}

/**
 * neverWaitsForAReader says whether a write to `fd` completes without waiting for another
 * process: a regular file or a character device other than a terminal (/dev/null, /dev/full).
 */
function neverWaitsForAReader(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFile() || (stat.isCharacterDevice() && !isatty(fd));
  } catch {
    return false;
  }
}
