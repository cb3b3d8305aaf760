// `protoplane new-filter NAME [--framed]`: scaffolds a drop-in protocol
// filter — a manifest with its schemas, a pure policy, thin glue, and a
// starter test — that builds, loads, routes and passes its own test as
// generated. `--framed` scaffolds a codec on the SDK's framed-stream layer
// instead (a length-prefixed protocol; docs/filters.md) whose starter test
// feeds every split point.
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
import { loadFilter } from '../../xds-server/catalog/index.ts';

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

// ------------------------------------------------------------------ --framed

const MATCHER_SCHEMA = {
  type: 'object',
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: false,
  properties: { exact: { type: 'string' }, prefix: { type: 'string' }, suffix: { type: 'string' }, regex: { type: 'string' } },
};

function framedManifest(name: string): string {
  return `${JSON.stringify(
    {
      name,
      protocol: name,
      entry: 'index.ts',
      description: `${name}: a length-prefixed protocol (4-byte big-endian length, then the body) on the SDK's framed-stream layer. Routes a connection by its first frame (the key).`,
      settings: {
        type: 'object',
        additionalProperties: false,
        properties: {
          max_frame: { type: 'integer', minimum: 1, maximum: 16777216 },
          log_packets: { type: 'boolean' },
        },
      },
      match: { type: 'object', additionalProperties: false, required: ['key'], properties: { key: MATCHER_SCHEMA } },
      examples: [{}, { max_frame: 1024, log_packets: true }],
      invalid_examples: [{ max_frame: 0 }, { max_frame: 'big' }, { log_packets: 1 }, { other: true }],
    },
    null,
    2,
  )}\n`;
}

function framedCodec(name: string): string {
  return `// ${name}: the codec — how long the next frame is, and what happens to it.
// Wire format: a 4-byte big-endian body length, then the body. The client's
// first frame is its key: the listener's routes match it. See docs/filters.md.
import { MatchInput, jsonQuote } from "../sdk";
import { Codec, Frame, Verdict } from "../sdk/stream";
import { Limits } from "./settings";

const HEAD: i64 = 4;

export class FrameCodec extends Codec {
  keyed: bool = false;
  key: string = "";
  private input: MatchInput = new MatchInput(1);

  constructor(readonly limits: Limits) {
    super();
    this.routes = true; // hold the client's bytes until the first frame picks the cluster
    this.maxHeader = limits.maxFrame + 4;
  }

  measure(frame: Frame): i64 {
    if (frame.avail < 4) return HEAD;
    const body = bswap<u32>(load<u32>(frame.ptr));
    if (body > this.limits.maxFrame) {
      this.conn.counters.add(this.limits.tooLarge, 1);
      return frame.reject(Verdict.close("frame too large (" + body.toString() + " bytes)"));
    }
    frame.length = <u64>body + 4;
    // the body is read only where a verdict needs it: the key, or the packet log
    return this.keyed && !frame.logging ? HEAD : <i64>body + HEAD;
  }

  onFrame(frame: Frame): Verdict {
    const body = frame.ptr + 4;
    const len = <usize>frame.length - 4;
    if (frame.fromClient && !this.keyed) {
      this.keyed = true;
      this.key = String.UTF8.decodeUnsafe(body, len);
      this.input.set(0, body, len);
      const routes = this.limits.routes;
      const i = routes.pick(this.input);
      this.conn.route(i >= 0 ? routes.routes[i].cluster : "");
    }
    if (frame.logging) {
      const rec = frame.record(frame.fromClient ? "request" : "response").int("length", <i64>len);
      if (frame.header == <usize>frame.length) rec.bytes("body", body, len);
      rec.emit();
    }
    return Verdict.forward();
  }

  describe(): string { return "key=" + (this.keyed ? jsonQuote(this.key) : "-"); }
}
`;
}

function framedSettings(name: string): string {
  return `// ${name}: the settings the root reads once per configuration.
import { RouteTable } from "../sdk";

export class Limits {
  maxFrame: u32 = 1048576;
  routes: RouteTable = new RouteTable();
  /** Counter index of ${name}.frame_too_large. */
  tooLarge: i32 = 0;
}
`;
}

function framedGlue(name: string): string {
  return `// ${name}: the root — reads the settings and makes a codec per connection.
export * from "../sdk/exports";
import { RootContext, Settings, registerRootContext } from "../sdk";
import { Codec, FramedRoot } from "../sdk/stream";
import { FrameCodec } from "./codec";
import { Limits } from "./settings";

class Root extends FramedRoot {
  limits: Limits = new Limits();

  configure(s: Settings): bool {
    s.allowKeys(["routes", "max_frame", "log_packets"]);
    const limits = new Limits();
    limits.routes = s.routes("routes", ["key"]);
    limits.maxFrame = <u32>s.int("max_frame", 1, 16777216, 1048576);
    limits.tooLarge = this.counter("frame_too_large");
    this.routes = limits.routes;
    this.limits = limits;
    return true;
  }

  newCodec(): Codec { return new FrameCodec(this.limits); }
}

registerRootContext((id: u32): RootContext => new Root(id, "${name}"));
`;
}

function framedStarterTest(name: string): string {
  return `// Starter test for the ${name} filter, generated by \`protoplane new-filter ${name} --framed\`:
// runs the built module in the in-process host, as Envoy would, and feeds
// the same conversation split at every point.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadFilter } from '../../xds-server/catalog/index.ts';

const configuration = {
  routes: [{ match: { key: { prefix: 'hello' } }, cluster: 'greeters' }, { cluster: 'others' }],
};

/** A frame: 4-byte big-endian body length, then the body. */
function frame(body: string): Buffer {
  const b = Buffer.from(body);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(b.length);
  return Buffer.concat([head, b]);
}

describe('${name} filter', () => {
  it('routes by the first frame and passes every byte, split at every point', async () => {
    const module = await loadFilter('${name}');
    const plugin = await module.instantiate({ name: '${name}', configuration, defaultCluster: 'others' });
    let greeted = 0;
    for (const [key, cluster] of [['hello-1', 'greeters'], ['bye', 'others']]) {
      const stream = Buffer.concat([frame(key), frame('a request'), frame('x'.repeat(300))]);
      for (let cut = 0; cut <= stream.length; cut++) {
        const conn = plugin.newConnection();
        const out: Uint8Array[] = [];
        for (const chunk of [stream.subarray(0, cut), stream.subarray(cut)]) {
          const r = conn.downstream(chunk);
          out.push(r.forwarded);
        }
        assert.deepEqual(Buffer.concat(out), stream, \`cut at \${cut}\`);
        assert.equal(conn.upstreamCluster, cluster);
        if (cluster === 'greeters') greeted++;
        conn.close();
      }
    }
    assert.equal(plugin.metrics()['${name}.route.greeters'], greeted);
    plugin.close();
  });

  it('closes a connection on a frame over max_frame, and refuses bad settings naming the path', async () => {
    const module = await loadFilter('${name}');
    const plugin = await module.instantiate({ name: '${name}', configuration: { ...configuration, max_frame: 8 } });
    const conn = plugin.newConnection();
    conn.downstream(frame('far too long'));
    assert.equal(conn.closed?.reason, 'filter');
    assert.equal(plugin.metrics()['${name}.frame_too_large'], 1);
    plugin.close();
    await assert.rejects(module.instantiate({ name: '${name}', configuration: { max_frame: 0 } }), /max_frame: expected an integer/);
  });
});
`;
}

export interface ScaffoldOptions {
  /** A codec on the SDK's framed-stream layer (length-prefixed) instead of the line-protocol glue. */
  framed?: boolean;
}

/** Writes filters/NAME/ and test/filters/NAME.test.ts under `root`; the manifest last, so a build never sees half a filter. */
export function scaffoldFilter(root: string, name: string, options: ScaffoldOptions = {}): ScaffoldResult {
  if (!NAME_RE.test(name)) throw new Error(`filter name "${name}" must match ${NAME_RE.source}`);
  const dir = path.join(root, 'filters', name);
  if (fs.existsSync(dir)) throw new Error(`${path.relative(root, dir)} already exists`);
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(path.join(root, 'test', 'filters'), { recursive: true });
  const test = path.join(root, 'test', 'filters', `${name}.test.ts`);
  const files: Array<[string, string]> = options.framed
    ? [
        [path.join(dir, 'settings.ts'), framedSettings(name)],
        [path.join(dir, 'codec.ts'), framedCodec(name)],
        [path.join(dir, 'index.ts'), framedGlue(name)],
        [test, framedStarterTest(name)],
        [path.join(dir, 'filter.json'), framedManifest(name)],
      ]
    : [
        [path.join(dir, 'policy.ts'), policy(name)],
        [path.join(dir, 'index.ts'), glue(name)],
        [test, starterTest(name)],
        [path.join(dir, 'filter.json'), manifest(name)],
      ];
  for (const [file, text] of files) fs.writeFileSync(file, text);
  return { files: files.map(([file]) => path.relative(root, file)) };
}
