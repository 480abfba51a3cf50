// The entry of a worker thread started from the TypeScript sources (tests, development): it
// registers tsx's loader in this thread through tsx's API, then imports the module whose URL
// is the thread's first argument (`argv` of the Worker). On Node 20 a worker thread takes no
// loader hooks from `--import` in its execArgv, so the thread registers them itself.
import { argv } from 'node:process';
import { register } from 'tsx/esm/api';

register();
await import(argv[2]);
