// A client sending HTTP requests in a loop (bounded in time) while a test
// changes config, recording every answer and every failure.
import http from 'node:http';
import { httpGet } from './upstreams.ts';

export interface RequestLoop {
  /** Bodies of the 200 answers, in order. */
  readonly seen: string[];
  /** Anything that was not a 200, or an error. */
  readonly failures: string[];
  stop(): Promise<void>;
}

export function requestLoop(port: number, path = '/', maxMs = 30_000): RequestLoop {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const seen: string[] = [];
  const failures: string[] = [];
  let stopped = false;
  const done = (async () => {
    const until = Date.now() + maxMs;
    while (!stopped && Date.now() < until) {
      try {
        const r = await httpGet(port, path, {}, { agent });
        if (r.status === 200) seen.push(r.body);
        else failures.push(`${r.status} ${r.body}`);
      } catch (error) {
        failures.push(String(error));
      }
    }
  })();
  return {
    seen,
    failures,
    async stop() {
      stopped = true;
      await done;
      agent.destroy();
    },
  };
}
