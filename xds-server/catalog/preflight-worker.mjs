// Starts the pre-flight worker (preflight-worker.ts): a worker thread does not
// get the main thread's TypeScript loader, so it registers tsx itself.
import { register } from 'tsx/esm/api';

register();
await import('./preflight-worker.ts');
