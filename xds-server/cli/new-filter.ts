// `protoplane new-filter NAME`: scaffolds a drop-in protocol filter — a
// manifest with its schemas, a pure policy, thin glue, and a starter test —
// that builds, loads, routes and passes its own test as generated.
import fs from 'node:fs';
import path from 'node:path';

export interface ScaffoldResult {
  files: string[];
}

const NAME_RE = /^[a-z][a-z0-9_-]*$/;

function manifest(name: string): string {
  return `${JSON.stringify(
    {
      name,
      protocol: name,
      entry: 'index.ts',
      description: `${name}: a line-based protocol filter. Routes a connection by the prefix of its first line.`,
      settings: {
        type: 'object',
        additionalProperties: false,
        properties: { max_line: { type: 'integer', minimum: 1 } },
      },
      match: {
        type: 'object',
        additionalProperties: false,
        required: ['prefix'],
        properties: { prefix: { type: 'string', minLength: 1 } },
      },
    },
    null,
    2,
  )}\n`;
}

function policy(name: string): string {
  return `// ${name}: pure policy — no ABI calls, so it is easy to read and to test.
import { JsonObject, bytesOf, parseJsonObject, startsWithBytes } from "../sdk";

export class Route {
  constructor(public prefix: Uint8Array | null, public cluster: string) {}
}

export class Config {
  routes: Route[] = [];
  maxLine: i32 = 4096;
}

let problem: string = "";
export function configProblem(): string { return problem; }

/** {"max_line"?: n, "routes": [{"match"?: {"prefix": "..."}, "cluster": "..."}]}; null when invalid. */
export function parseConfig(bytes: ArrayBuffer): Config | null {
  const obj = parseJsonObject(bytes);
  if (obj == null) { problem = "configuration is not a JSON object"; return null; }
  const config = new Config();
  config.maxLine = <i32>obj.getNumber("max_line", 4096);
  const routes = obj.getArray("routes");
  if (routes == null || routes.items.length == 0) { problem = "routes must be a non-empty array"; return null; }
  for (let i = 0; i < routes.items.length; i++) {
    const item = routes.items[i];
    if (!(item instanceof JsonObject)) { problem = "each route must be an object"; return null; }
    const route = <JsonObject>item;
    const cluster = route.getString("cluster");
    if (cluster == null) { problem = "each route needs a cluster"; return null; }
    let prefix: Uint8Array | null = null;
    const match = route.getObject("match");
    if (match != null) {
      const text = match.getString("prefix");
      if (text != null) prefix = bytesOf(text);
    }
    config.routes.push(new Route(prefix, cluster!));
  }
  return config;
}

/** The cluster for a first line: the first route whose prefix matches, else the route without one. */
export function pickCluster(config: Config, line: Uint8Array): string | null {
  for (let i = 0; i < config.routes.length; i++) {
    const route = config.routes[i];
    const prefix = route.prefix;
    if (prefix == null || startsWithBytes(line, prefix)) return route.cluster;
  }
  return null;
}
`;
}

function glue(name: string): string {
  return `// ${name}: glue — maps proxy-wasm callbacks to the policy.
export * from "../sdk/exports";
import { Action, Counter, RootContext, StreamContext, indexOfByte, logError, logWarn, registerRootContext } from "../sdk";
import { Config, configProblem, parseConfig, pickCluster } from "./policy";

const NEWLINE: u8 = 0x0a;

class Root extends RootContext {
  config: Config = new Config();
  connections: Counter = new Counter("${name}.connections");
  routed: Counter = new Counter("${name}.routed");
  tooLong: Counter = new Counter("${name}.line_too_long");

  onConfigure(configuration: ArrayBuffer): bool {
    const config = parseConfig(configuration);
    if (config == null) {
      logError("${name}: rejecting configuration: " + configProblem());
      return false;
    }
    this.config = config;
    this.connections.define(); this.routed.define(); this.tooLong.define();
    return true;
  }

  newStreamContext(id: u32): StreamContext {
    return new Stream(id, this);
  }
}

class Stream extends StreamContext {
  decided: bool = false;

  get app(): Root { return changetype<Root>(this.root); }

  onNewConnection(): Action {
    this.app.connections.increment();
    return Action.Pause; // hold the connection until the first line picks a cluster
  }

  onDownstreamData(size: usize, endOfStream: bool): Action {
    if (this.decided) return Action.Continue;
    const data = Uint8Array.wrap(this.downstreamData(0, <u32>size));
    const eol = indexOfByte(data, NEWLINE);
    if (eol < 0) {
      if (data.length > this.app.config.maxLine) {
        this.app.tooLong.increment();
        logWarn("${name}: first line longer than " + this.app.config.maxLine.toString() + " bytes, closing");
        this.closeDownstream();
        return Action.Pause;
      }
      if (!endOfStream) return Action.Pause;
    }
    this.decided = true;
    const cluster = pickCluster(this.app.config, Uint8Array.wrap(data.buffer, 0, eol < 0 ? data.length : eol));
    if (cluster != null) {
      this.routeToCluster(cluster);
      this.app.routed.increment();
    }
    return Action.Continue;
  }
}

registerRootContext((id: u32): RootContext => new Root(id));
`;
}

function starterTest(name: string): string {
  return `// Starter test for the ${name} filter, generated by \`protoplane new-filter ${name}\`:
// runs the built module in the in-process host, as Envoy would.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadFilter } from '../../xds-server/wasm-host/index.ts';

const configuration = {
  routes: [{ match: { prefix: 'hello' }, cluster: 'greeters' }, { cluster: 'others' }],
};

describe('${name} filter', () => {
  it('routes by the prefix of the first line, split across chunks', async () => {
    const module = await loadFilter('${name}');
    const plugin = await module.instantiate({ name: '${name}', rootId: '${name}', configuration, defaultCluster: 'others' });
    const greeter = plugin.newConnection();
    assert.equal(greeter.downstream(new TextEncoder().encode('hel')).action, 'pause');
    assert.equal(greeter.downstream(new TextEncoder().encode('lo there\\n')).action, 'continue');
    assert.equal(greeter.upstreamCluster, 'greeters');
    const other = plugin.newConnection();
    other.downstream(new TextEncoder().encode('bye\\n'));
    assert.equal(other.upstreamCluster, 'others');
    assert.equal(plugin.metrics()['${name}.routed'], 2);
    plugin.close();
  });

  it('refuses a configuration without routes', async () => {
    const module = await loadFilter('${name}');
    await assert.rejects(module.instantiate({ name: '${name}', configuration: {} }), /routes must be a non-empty array/);
  });
});
`;
}

/** Writes filters/NAME/ and test/filters/NAME.test.ts under `root`; the manifest last, so a build never sees half a filter. */
export function scaffoldFilter(root: string, name: string): ScaffoldResult {
  if (!NAME_RE.test(name)) throw new Error(`filter name "${name}" must match ${NAME_RE.source}`);
  const dir = path.join(root, 'filters', name);
  if (fs.existsSync(dir)) throw new Error(`${path.relative(root, dir)} already exists`);
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(path.join(root, 'test', 'filters'), { recursive: true });
  const files: Array<[string, string]> = [
    [path.join(dir, 'policy.ts'), policy(name)],
    [path.join(dir, 'index.ts'), glue(name)],
    [path.join(root, 'test', 'filters', `${name}.test.ts`), starterTest(name)],
    [path.join(dir, 'filter.json'), manifest(name)],
  ];
  for (const [file, text] of files) fs.writeFileSync(file, text);
  return { files: files.map(([file]) => path.relative(root, file)) };
}
