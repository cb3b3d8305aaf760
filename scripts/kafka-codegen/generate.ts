// Generates the Kafka filter's protocol tables and body walkers
// (filters/kafka/gen/*.ts) from Kafka's own message definitions: the JSON
// files under common/message/ inside the kafka-clients sources jars. The
// output covers the UNION of the versions given (e.g. 4.2.0 and 3.9.1), so
// the filter frames what brokers of both lines speak.
//
//   node --import tsx scripts/kafka-codegen/generate.ts [--out DIR] [--check] DIR_NEWEST DIR_OLDER...
//
// Each DIR holds the JSON files (scripts/kafka-codegen/sources.sh extracts
// them from the jars into .cache/). --check compares instead of writing and
// exits 1 on any difference (the codec-generated test runs it).
//
// Why walkers, not decoders: a proxy needs a few fields of a few bodies
// (topics, partitions, record spans, broker addresses, group ids, error
// codes) and must never allocate per field. Each walker steps over every
// field of one message at one version — so it validates the whole body —
// and reports only the fields listed in INTERESTS below to a sink as
// (event, position, length, value), positions relative to the frame.
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

// ------------------------------------------------------------------ input

interface Field {
  name: string;
  type: string;
  versions?: string;
  nullableVersions?: string;
  taggedVersions?: string;
  tag?: number;
  flexibleVersions?: string;
  fields?: Field[];
}

interface Message {
  name: string;
  type: 'request' | 'response' | 'header' | 'data';
  apiKey?: number;
  validVersions: string;
  flexibleVersions: string;
  fields: Field[];
  commonStructs?: { name: string; versions?: string; fields: Field[] }[];
}

/** Kafka's files are JSON with // comments; strips comments outside strings. */
export function stripComments(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') { out += text[++i] ?? ''; continue; }
      if (c === '"') inString = false;
      continue;
    }
    if (c === '"') { inString = true; out += c; continue; }
    if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
      continue;
    }
    out += c;
  }
  return out;
}

function readMessages(dir: string): Map<string, Message> {
  const out = new Map<string, Message>();
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.json')) continue;
    const m = JSON.parse(stripComments(readFileSync(path.join(dir, file), 'utf8'))) as Message;
    out.set(m.name, m);
  }
  if (out.size === 0) throw new Error(`no message JSON files in ${dir}`);
  return out;
}

// ------------------------------------------------------------------ versions

interface Range { lo: number; hi: number } // hi = Infinity for "N+"; lo > hi for "none"

function parseRange(text: string | undefined): Range {
  if (text === undefined || text === 'none' || text === '') return { lo: 1, hi: 0 };
  const plus = /^(\d+)\+$/.exec(text);
  if (plus) return { lo: Number(plus[1]), hi: Infinity };
  const span = /^(\d+)-(\d+)$/.exec(text);
  if (span) return { lo: Number(span[1]), hi: Number(span[2]) };
  const one = /^(\d+)$/.exec(text);
  if (one) return { lo: Number(one[1]), hi: Number(one[1]) };
  throw new Error(`bad version range "${text}"`);
}

const inRange = (r: Range, v: number): boolean => v >= r.lo && v <= r.hi;

// ------------------------------------------------------------------ what the filter wants to hear about

/**
 * Per message: field path (dots between struct names) → event name. A path
 * naming a struct array reports each element as EV_<NAME>_BEGIN/_END. Every
 * field named ErrorCode in a walked response reports EV_ERROR_CODE.
 */
const INTERESTS: Record<string, Record<string, string>> = {
  ProduceRequest: {
    TransactionalId: 'TRANSACTIONAL_ID', Acks: 'ACKS', TopicData: 'TOPIC', 'TopicData.Name': 'TOPIC_NAME', 'TopicData.TopicId': 'TOPIC_ID',
    'TopicData.PartitionData': 'PARTITION', 'TopicData.PartitionData.Index': 'PARTITION_INDEX', 'TopicData.PartitionData.Records': 'RECORDS',
  },
  ProduceResponse: {
    Responses: 'TOPIC', 'Responses.Name': 'TOPIC_NAME', 'Responses.TopicId': 'TOPIC_ID',
    NodeEndpoints: 'BROKER', 'NodeEndpoints.NodeId': 'NODE_ID', 'NodeEndpoints.Host': 'HOST', 'NodeEndpoints.Port': 'PORT',
  },
  FetchRequest: {
    Topics: 'TOPIC', 'Topics.Topic': 'TOPIC_NAME', 'Topics.TopicId': 'TOPIC_ID',
    'Topics.Partitions': 'PARTITION', 'Topics.Partitions.Partition': 'PARTITION_INDEX',
  },
  FetchResponse: {
    Responses: 'TOPIC', 'Responses.Topic': 'TOPIC_NAME', 'Responses.TopicId': 'TOPIC_ID', 'Responses.Partitions.Records': 'RECORDS',
    NodeEndpoints: 'BROKER', 'NodeEndpoints.NodeId': 'NODE_ID', 'NodeEndpoints.Host': 'HOST', 'NodeEndpoints.Port': 'PORT',
  },
  ListOffsetsRequest: { Topics: 'TOPIC', 'Topics.Name': 'TOPIC_NAME', 'Topics.Partitions': 'PARTITION', 'Topics.Partitions.PartitionIndex': 'PARTITION_INDEX' },
  ListOffsetsResponse: { Topics: 'TOPIC', 'Topics.Name': 'TOPIC_NAME' },
  MetadataRequest: { 'Topics.Name': 'TOPIC_NAME', 'Topics.TopicId': 'TOPIC_ID' },
  MetadataResponse: {
    Brokers: 'BROKER', 'Brokers.NodeId': 'NODE_ID', 'Brokers.Host': 'HOST', 'Brokers.Port': 'PORT',
    Topics: 'TOPIC', 'Topics.Name': 'TOPIC_NAME', 'Topics.TopicId': 'TOPIC_ID',
  },
  FindCoordinatorRequest: { Key: 'GROUP_ID', KeyType: 'KEY_TYPE', CoordinatorKeys: 'GROUP_ID' },
  FindCoordinatorResponse: {
    NodeId: 'NODE_ID', Host: 'HOST', Port: 'PORT',
    Coordinators: 'BROKER', 'Coordinators.NodeId': 'NODE_ID', 'Coordinators.Host': 'HOST', 'Coordinators.Port': 'PORT',
  },
  DescribeClusterResponse: { Brokers: 'BROKER', 'Brokers.BrokerId': 'NODE_ID', 'Brokers.Host': 'HOST', 'Brokers.Port': 'PORT' },
  OffsetCommitRequest: { GroupId: 'GROUP_ID', 'Topics.Name': 'TOPIC_NAME' },
  OffsetFetchRequest: { GroupId: 'GROUP_ID', 'Groups.GroupId': 'GROUP_ID', 'Topics.Name': 'TOPIC_NAME', 'Groups.Topics.Name': 'TOPIC_NAME' },
  JoinGroupRequest: { GroupId: 'GROUP_ID', ProtocolType: 'PROTOCOL_TYPE' },
  HeartbeatRequest: { GroupId: 'GROUP_ID' },
  LeaveGroupRequest: { GroupId: 'GROUP_ID' },
  SyncGroupRequest: { GroupId: 'GROUP_ID' },
  DescribeGroupsRequest: { Groups: 'GROUP_ID' },
  DeleteGroupsRequest: { GroupsNames: 'GROUP_ID' },
  OffsetDeleteRequest: { GroupId: 'GROUP_ID', 'Topics.Name': 'TOPIC_NAME' },
  TxnOffsetCommitRequest: { GroupId: 'GROUP_ID', TransactionalId: 'TRANSACTIONAL_ID', 'Topics.Name': 'TOPIC_NAME' },
  AddOffsetsToTxnRequest: { GroupId: 'GROUP_ID', TransactionalId: 'TRANSACTIONAL_ID' },
  ConsumerGroupHeartbeatRequest: { GroupId: 'GROUP_ID' },
  ConsumerGroupDescribeRequest: { GroupIds: 'GROUP_ID' },
  ApiVersionsRequest: { ClientSoftwareName: 'SOFTWARE_NAME', ClientSoftwareVersion: 'SOFTWARE_VERSION' },
  ApiVersionsResponse: { ApiKeys: 'API', 'ApiKeys.ApiKey': 'API_KEY', 'ApiKeys.MinVersion': 'MIN_VERSION', 'ApiKeys.MaxVersion': 'MAX_VERSION' },
  SaslHandshakeRequest: { Mechanism: 'MECHANISM' },
  ShareFetchResponse: { NodeEndpoints: 'BROKER', 'NodeEndpoints.NodeId': 'NODE_ID', 'NodeEndpoints.Host': 'HOST', 'NodeEndpoints.Port': 'PORT' },
  ShareAcknowledgeResponse: { NodeEndpoints: 'BROKER', 'NodeEndpoints.NodeId': 'NODE_ID', 'NodeEndpoints.Host': 'HOST', 'NodeEndpoints.Port': 'PORT' },
  SaslHandshakeResponse: {},
  SaslAuthenticateRequest: { AuthBytes: 'AUTH_BYTES' },
  SaslAuthenticateResponse: {},
  OffsetCommitResponse: {}, OffsetFetchResponse: {}, JoinGroupResponse: {}, HeartbeatResponse: {}, LeaveGroupResponse: {},
  SyncGroupResponse: {}, DescribeGroupsResponse: {}, DeleteGroupsResponse: {}, ListGroupsResponse: {},
  ConsumerGroupHeartbeatResponse: {}, ConsumerGroupDescribeResponse: {}, InitProducerIdResponse: {}, OffsetDeleteResponse: {},
  TxnOffsetCommitResponse: {}, AddOffsetsToTxnResponse: {}, CreateTopicsResponse: {}, DeleteTopicsResponse: {},
};

/**
 * Messages the filter walks in windows, one segment at a time, when it does
 * not hold them whole (a Fetch response with megabytes of records, an
 * oversize Produce request it refuses): per message, field path → event.
 * Their walks stop at every records field (the filter steps over the records
 * batch by batch, or skips them) and resume after it; ErrorCode fields of
 * responses report ERROR_CODE; tagged fields are skipped.
 */
const STREAMS: Record<string, Record<string, string>> = {
  ProduceRequest: {
    Acks: 'ACKS', TopicData: 'TOPIC', 'TopicData.Name': 'TOPIC_NAME', 'TopicData.TopicId': 'TOPIC_ID',
    'TopicData.PartitionData.Index': 'PARTITION_INDEX',
  },
  FetchResponse: { Responses: 'TOPIC', 'Responses.Topic': 'TOPIC_NAME', 'Responses.TopicId': 'TOPIC_ID' },
  ShareFetchResponse: { Responses: 'TOPIC', 'Responses.TopicId': 'TOPIC_ID', NodeEndpoints: 'BROKER' },
};
const STREAM_EVENTS = ['TOPIC', 'TOPIC_NAME', 'TOPIC_ID', 'PARTITION_INDEX', 'ERROR_CODE', 'ACKS', 'BROKER'];
/** Stream program opcodes (the interpreter is filters/kafka/stream.ts). */
const OP = { END: 0, FIXED: 1, INT: 2, UUID: 3, STR: 4, BYTES: 5, RECORDS: 6, ARRAY: 7, NSTRUCT: 8, NEXT: 9, TAGS: 10 } as const;

// ------------------------------------------------------------------ merging versions of two releases

interface Api {
  key: number;
  name: string;            // without Request/Response
  request: Message;        // from the newest release that defines the version range's top
  response: Message;
  versions: Range;         // union of valid versions
  requestFlexible: Range;
  responseFlexible: Range;
  /** Older release's definitions, for versions the newest no longer has. */
  oldRequest?: Message;
  oldResponse?: Message;
  newestLow: number;
}

function unionRange(a: Range, b: Range): Range {
  return { lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
}

/** The field layout of a message at one version, as text: equal text = same bytes on the wire. */
function layout(fields: Field[], v: number, flexible: boolean, structs: Map<string, Field[]>): string {
  const parts: string[] = [];
  for (const f of fields) {
    if (!inRange(parseRange(f.versions ?? '0+'), v)) continue;
    const tagged = f.taggedVersions !== undefined && inRange(parseRange(f.taggedVersions), v);
    const sub = f.fields ?? structs.get(f.type.replace(/^\[\]/, ''));
    const inner = sub ? `{${layout(sub, v, flexible, structs)}}` : '';
    parts.push(`${tagged ? `tag${f.tag}:` : ''}${f.type.startsWith('[]') ? '[]' : ''}${sub ? 'struct' : f.type.replace(/^\[\]/, '')}${inner}`);
  }
  return parts.join(',') + (flexible ? ',tags' : '');
}

function structsOf(m: Message): Map<string, Field[]> {
  const out = new Map<string, Field[]>();
  for (const s of m.commonStructs ?? []) out.set(s.name, s.fields);
  return out;
}

function mergeApis(releases: Map<string, Message>[]): Api[] {
  const apis = new Map<number, Api>();
  for (let r = 0; r < releases.length; r++) {
    for (const m of releases[r].values()) {
      if (m.type !== 'request' || m.apiKey === undefined) continue;
      const respName = m.name.replace(/Request$/, 'Response');
      const resp = releases[r].get(respName);
      if (!resp) throw new Error(`${m.name} has no ${respName}`);
      const versions = parseRange(m.validVersions);
      if (versions.lo > versions.hi) continue; // "none": this release removed the API (e.g. ZooKeeper-era calls in 4.x)
      m.fields ??= [];
      resp.fields ??= [];
      const existing = apis.get(m.apiKey);
      if (!existing) {
        apis.set(m.apiKey, {
          key: m.apiKey, name: m.name.replace(/Request$/, ''), request: m, response: resp, versions,
          requestFlexible: parseRange(m.flexibleVersions), responseFlexible: parseRange(resp.flexibleVersions), newestLow: versions.lo,
        });
        continue;
      }
      // an older release: its versions below the newest's range come from its own files
      const merged = unionRange(existing.versions, versions);
      const newFlexReq = parseRange(m.flexibleVersions);
      const newFlexResp = parseRange(resp.flexibleVersions);
      if (newFlexReq.lo !== existing.requestFlexible.lo && newFlexReq.lo <= newFlexReq.hi && existing.requestFlexible.lo <= existing.requestFlexible.hi) {
        throw new Error(`${m.name}: flexible versions differ between releases`);
      }
      void newFlexResp;
      existing.versions = merged;
      if (versions.lo < existing.newestLow) {
        existing.oldRequest = m;
        existing.oldResponse = resp;
      }
    }
  }
  // the newest files describe old versions too unless a field only old versions had was removed: check by layout
  for (const api of apis.values()) {
    if (!api.oldRequest || !api.oldResponse) continue;
    let same = true;
    for (let v = api.versions.lo; v < api.newestLow; v++) {
      for (const [neu, old, flex] of [[api.request, api.oldRequest, api.requestFlexible], [api.response, api.oldResponse, api.responseFlexible]] as const) {
        const f = inRange(flex, v);
        if (layout(neu.fields, v, f, structsOf(neu)) !== layout(old.fields, v, f, structsOf(old))) same = false;
      }
    }
    if (same) { api.oldRequest = undefined; api.oldResponse = undefined; }
  }
  return [...apis.values()].sort((a, b) => a.key - b.key);
}

// ------------------------------------------------------------------ code generation

const LICENSE_NOTE = '// GENERATED by scripts/kafka-codegen/generate.ts from Apache Kafka\'s common/message/*.json — do not edit.\n';

class Emitter {
  lines: string[] = [];
  depth = 1;
  tmp = 0;
  events = new Set<string>();
  line(s: string): void {
    const indent = '  '.repeat(this.depth);
    // runs of fixed-width fields are one skip
    const skip = /^r\.skip\((\d+)\);$/.exec(s);
    const last = this.lines.length > 0 ? this.lines[this.lines.length - 1]! : '';
    const prev = last.startsWith(indent) ? /^r\.skip\((\d+)\);$/.exec(last.slice(indent.length)) : null;
    if (skip && prev && last.length === indent.length + prev[0].length && last[indent.length] === 'r') {
      this.lines[this.lines.length - 1] = `${indent}r.skip(${Number(prev[1]) + Number(skip[1])});`;
      return;
    }
    this.lines.push(indent + s);
  }
}

function fieldCode(e: Emitter, f: Field, prefix: string, interests: Record<string, string>, isResponse: boolean, structs: Map<string, Field[]>, v: number, flexible: boolean): void {
  const fpath = prefix ? `${prefix}.${f.name}` : f.name;
  let ev = interests[fpath];
  if (!ev && isResponse && f.name === 'ErrorCode' && f.type === 'int16') ev = 'ERROR_CODE';
  if (ev) e.events.add(ev);
  const isArray = f.type.startsWith('[]');
  const base = f.type.replace(/^\[\]/, '');
  const sub = f.fields ?? structs.get(base);
  const stringFlex = f.flexibleVersions !== undefined ? inRange(parseRange(f.flexibleVersions), v) : flexible;
  const flexArg = stringFlex ? 'true' : 'false';
  // events only for fields that were read whole (r.ok): a sink never sees a span past the frame
  const scalar = (t: string, evName: string | undefined): void => {
    const int = (width: number, read: string): void => {
      // error codes are mostly 0, which no sink wants: no call for them
      const want = evName === 'ERROR_CODE' ? 'r.ok && v != 0' : 'r.ok';
      if (evName) e.line(`{ const at = r.pos; const v = <i64>r.${read}(); if (${want}) s.on(EV_${evName}, at, ${width}, v); }`);
      else e.line(`r.skip(${width});`);
    };
    switch (t) {
      case 'int8': case 'bool': int(1, 'i8'); break;
      case 'int16': case 'uint16': int(2, 'i16'); break;
      case 'int32': case 'uint32': int(4, 'i32'); break;
      case 'int64': case 'float64':
        e.line('r.skip(8);'); break;
      case 'uuid':
        e.line('r.skip(16);');
        if (evName) e.line(`if (r.ok) s.on(EV_${evName}, r.pos - 16, 16, 0);`);
        break;
      case 'string':
        e.line(`r.str(${flexArg});`);
        if (evName) e.line(`if (r.ok) s.on(EV_${evName}, r.at, r.len, <i64>r.prefixAt);`); break;
      case 'bytes': case 'records':
        e.line(`r.bytes(${flexArg});`);
        if (evName) e.line(`if (r.ok) s.on(EV_${evName}, r.at, r.len, <i64>r.prefixAt);`); break;
      default:
        throw new Error(`unknown type ${t} at ${fpath}`);
    }
  };
  if (!isArray && !sub) { scalar(base, ev); return; }
  if (!isArray && sub) {
    // a single struct (e.g. a tagged CurrentLeader): its fields then its own tags;
    // a nullable one starts with an int8 marker (-1: null)
    if (f.nullableVersions !== undefined && inRange(parseRange(f.nullableVersions), v)) {
      e.line('if (r.i8() >= 0) {');
      e.depth++;
      structCode(e, sub, fpath, interests, isResponse, structs, v, flexible);
      e.depth--;
      e.line('}');
      return;
    }
    structCode(e, sub, fpath, interests, isResponse, structs, v, flexible);
    return;
  }
  const n = `n${e.tmp++}`;
  const i = `i${e.tmp++}`;
  if (ev && sub) {
    // the count's position and width: a rewrite that adds or removes elements rewrites it
    const at = `a${e.tmp++}`;
    e.line(`const ${at} = r.pos;`);
    e.line(`const ${n} = r.count(${flexArg});`);
    e.line(`if (r.ok) s.on(EV_${ev}_COUNT, ${at}, r.pos - ${at}, <i64>${n});`);
    e.events.add(`${ev}_COUNT`);
  } else {
    e.line(`const ${n} = r.count(${flexArg});`);
  }
  // an array of fixed-width scalars nobody listens to: one skip
  const widths: Record<string, number> = { int8: 1, bool: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, int64: 8, float64: 8, uuid: 16 };
  if (!sub && !ev && widths[base] !== undefined) {
    e.line(`r.skipEach(${n}, ${widths[base]});`);
    return;
  }
  e.line(`for (let ${i}: i32 = 0; ${i} < ${n} && r.ok; ${i}++) {`);
  e.depth++;
  if (sub) {
    if (ev) e.line(`s.on(EV_${ev}_BEGIN, r.pos, 0, <i64>${i});`);
    structCode(e, sub, fpath, interests, isResponse, structs, v, flexible);
    if (ev) e.line(`s.on(EV_${ev}_END, r.pos, 0, <i64>${i});`);
    if (ev) { e.events.add(`${ev}_BEGIN`); e.events.add(`${ev}_END`); e.events.delete(ev); }
  } else {
    scalar(base, ev);
  }
  e.depth--;
  e.line('}');
}

function structCode(e: Emitter, fields: Field[], prefix: string, interests: Record<string, string>, isResponse: boolean, structs: Map<string, Field[]>, v: number, flexible: boolean): void {
  const tagged: Field[] = [];
  for (const f of fields) {
    if (!inRange(parseRange(f.versions ?? '0+'), v)) continue;
    if (f.taggedVersions !== undefined && inRange(parseRange(f.taggedVersions), v)) { tagged.push(f); continue; }
    fieldCode(e, f, prefix, interests, isResponse, structs, v, flexible);
  }
  if (!flexible) return;
  // tagged fields: known tags are walked (inside their size), unknown ones skipped
  const interesting = tagged.filter((f) => mentions(f, prefix, interests, isResponse, structs));
  if (interesting.length === 0) { e.line('r.skipTags();'); return; }
  const t = `t${e.tmp++}`;
  const k = `k${e.tmp++}`;
  e.line(`const ${t} = r.uvarint();`);
  e.line(`for (let ${k}: u32 = 0; ${k} < ${t} && r.ok; ${k}++) {`);
  e.depth++;
  e.line('const tag = r.uvarint(); const size = r.uvarint(); const end = r.pos + <i32>size;');
  e.line('if (size > <u32>(r.end - r.pos)) { r.fail(); break; }');
  e.line('s.on(EV_TAGGED_BEGIN, r.pos, <i32>size, <i64>r.sizeAt);');
  e.events.add('TAGGED_BEGIN');
  e.events.add('TAGGED_END');
  let first = true;
  for (const f of interesting) {
    e.line(`${first ? '' : '} else '}if (tag == ${f.tag}) {`);
    first = false;
    e.depth++;
    e.line('const outer = r.end; r.end = end;');
    fieldCode(e, f, prefix, interests, isResponse, structs, v, flexible);
    e.line('if (r.pos != end) r.fail(); r.end = outer;');
    e.depth--;
  }
  e.line('}');
  e.line('r.pos = end;');
  e.line('s.on(EV_TAGGED_END, r.pos, 0, 0);');
  e.depth--;
  e.line('}');
}

/** Whether walking a field could report anything (else it is skipped as an unknown tag would be). */
function mentions(f: Field, prefix: string, interests: Record<string, string>, isResponse: boolean, structs: Map<string, Field[]>): boolean {
  const fpath = prefix ? `${prefix}.${f.name}` : f.name;
  if (interests[fpath]) return true;
  if (isResponse && f.name === 'ErrorCode') return true;
  const sub = f.fields ?? structs.get(f.type.replace(/^\[\]/, ''));
  return sub ? sub.some((g) => mentions(g, fpath, interests, isResponse, structs)) : false;
}

/** One walker per message and distinct layout; a switch on the version picks it. */
function walkerCode(e: Emitter, fn: string, m: Message, old: Message | undefined, oldBelow: number, versions: Range, flexible: Range, isResponse: boolean): string[] {
  const interests = INTERESTS[m.name] ?? {};
  const bodies = new Map<string, { code: string[]; versions: number[] }>();
  for (let v = versions.lo; v <= versions.hi; v++) {
    const src = old && v < oldBelow ? old : m;
    const flex = inRange(flexible, v);
    const sub = new Emitter();
    sub.depth = 1;
    structCode(sub, src.fields, '', interests, isResponse, structsOf(src), v, flex);
    for (const ev of sub.events) e.events.add(ev);
    const key = sub.lines.join('\n');
    const entry = bodies.get(key);
    if (entry) entry.versions.push(v); else bodies.set(key, { code: sub.lines, versions: [v] });
  }
  const out: string[] = [];
  out.push(`/** ${m.name} v${versions.lo}-${versions.hi}. */`);
  out.push(`export function ${fn}(r: Reader, v: i16, s: Sink): bool {`);
  let idx = 0;
  const helpers: string[] = [];
  for (const { code, versions: vs } of bodies.values()) {
    const name = `${fn}_${idx++}`;
    out.push(`  if (${versionTest(vs)}) return ${name}(r, s);`);
    helpers.push(`// ${m.name} v${compact(vs)}`);
    helpers.push(`function ${name}(r: Reader, s: Sink): bool {`);
    helpers.push(...code.map(gateEvents));
    helpers.push('  return r.ok;');
    helpers.push('}');
    helpers.push('');
  }
  out.push('  return false;');
  out.push('}');
  out.push('');
  return [...helpers, ...out];
}

/**
 * Each report asks the sink's mask first (a bit per event): a sink that does
 * not need an event this time (the packet log is off, nothing is rewritten)
 * costs no call for it.
 */
function gateEvents(line: string): string {
  const wants = (ev: string): string => `(s.mask & (<u64>1 << <u64>${ev})) != 0`;
  const guarded = /^(\s*)(.*)if \(([^()]*(?:\([^()]*\)[^()]*)*)\) s\.on\((EV_[A-Z_]+), /.exec(line);
  if (guarded) return line.replace(`if (${guarded[3]}) s.on(${guarded[4]}, `, `if (${guarded[3]} && ${wants(guarded[4]!)}) s.on(${guarded[4]}, `);
  const bare = /^(\s*)s\.on\((EV_[A-Z_]+), (.*)$/.exec(line);
  if (bare) return `${bare[1]}if (${wants(bare[2]!)}) s.on(${bare[2]}, ${bare[3]}`;
  if (line.includes('s.on(')) throw new Error(`ungated event report: ${line}`);
  return line;
}

function compact(vs: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < vs.length;) {
    let j = i;
    while (j + 1 < vs.length && vs[j + 1] === vs[j] + 1) j++;
    parts.push(i === j ? `${vs[i]}` : `${vs[i]}-${vs[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

function versionTest(vs: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < vs.length;) {
    let j = i;
    while (j + 1 < vs.length && vs[j + 1] === vs[j] + 1) j++;
    parts.push(i === j ? `v == ${vs[i]}` : `(v >= ${vs[i]} && v <= ${vs[j]})`);
    i = j + 1;
  }
  return parts.join(' || ');
}

function generate(dirs: string[]): Map<string, string> {
  const releases = dirs.map(readMessages);
  const apis = mergeApis(releases);
  const files = new Map<string, string>();

  // ---- apis.ts: the per-key table
  const maxKey = Math.max(...apis.map((a) => a.key));
  const t: string[] = [LICENSE_NOTE];
  t.push(`// Sources: ${dirs.map((d) => path.basename(path.resolve(d))).join(', ')} (union of their versions).`);
  t.push('//');
  t.push('// Per API key: the valid versions and the first flexible version of the request');
  t.push('// and of the response; the header versions follow from them (headerVersions.ts).');
  t.push('');
  t.push(`export const API_KEY_LIMIT: i32 = ${maxKey + 1};`);
  const arr = (name: string, type: string, f: (a: Api | undefined) => number, doc: string): void => {
    const vals: number[] = [];
    for (let k = 0; k <= maxKey; k++) vals.push(f(apis.find((a) => a.key === k)));
    t.push(`/** ${doc} */`);
    t.push(`export const ${name}: StaticArray<${type}> = [${vals.join(', ')}];`);
  };
  const none = -1;
  const flexLo = (r: Range): number => (r.lo <= r.hi ? r.lo : 0x7fff);
  arr('API_MIN_VERSION', 'i16', (a) => (a ? a.versions.lo : none), 'Lowest valid version (-1: no such key).');
  arr('API_MAX_VERSION', 'i16', (a) => (a ? a.versions.hi : none), 'Highest valid version (-1: no such key).');
  arr('API_REQUEST_FLEXIBLE_FROM', 'i16', (a) => (a ? flexLo(a.requestFlexible) : 0x7fff), 'First version whose request is flexible (0x7fff: none).');
  arr('API_RESPONSE_FLEXIBLE_FROM', 'i16', (a) => (a ? flexLo(a.responseFlexible) : 0x7fff), 'First version whose response is flexible (0x7fff: none).');
  t.push('/** The message name without Request/Response ("" for a key no release defines). */');
  t.push('export const API_NAME: StaticArray<string> = [');
  for (let k = 0; k <= maxKey; k++) {
    const a = apis.find((x) => x.key === k);
    t.push(`  "${a ? a.name : ''}",`);
  }
  t.push('];');
  t.push('');
  for (const a of apis) t.push(`export const API_${snake(a.name)}: i16 = ${a.key};`);
  t.push('');
  files.set('apis.ts', t.join('\n'));

  // ---- walkers.ts
  const e = new Emitter();
  const body: string[] = [];
  const dispatchReq: string[] = [];
  const dispatchResp: string[] = [];
  for (const a of apis) {
    for (const [m, old, flex, isResponse, list] of [
      [a.request, a.oldRequest, a.requestFlexible, false, dispatchReq],
      [a.response, a.oldResponse, a.responseFlexible, true, dispatchResp],
    ] as const) {
      if (!(m.name in INTERESTS)) continue;
      const fn = `walk${m.name}`;
      body.push(...walkerCode(e, fn, m, old, a.newestLow, a.versions, flex, isResponse));
      list.push(`    case ${a.key}: return ${fn}(r, v, s);`);
    }
  }
  const w: string[] = [LICENSE_NOTE];
  w.push('// Body walkers for the messages the filter reads (see INTERESTS in the generator).');
  w.push('// Each steps over every field of its version and reports the interesting ones to');
  w.push('// the sink; false = the body does not parse (the reader failed).');
  w.push('import { Reader, Sink } from "../reader";');
  w.push('');
  const events = [...e.events].sort();
  events.forEach((ev, i) => w.push(`export const EV_${ev}: i32 = ${i};`));
  w.push(`export const EV_COUNT: i32 = ${events.length};`);
  w.push('');
  w.push('/** Whether walkRequest can read this key\'s request bodies. */');
  w.push('export function hasRequestWalker(key: i16): bool {');
  w.push(`  switch (key) { ${dispatchReq.map((l) => l.trim().split(':')[0] + ':').join(' ')} return true; }`);
  w.push('  return false;');
  w.push('}');
  w.push('');
  w.push('/** Whether walkResponse can read this key\'s response bodies. */');
  w.push('export function hasResponseWalker(key: i16): bool {');
  w.push(`  switch (key) { ${dispatchResp.map((l) => l.trim().split(':')[0] + ':').join(' ')} return true; }`);
  w.push('  return false;');
  w.push('}');
  w.push('');
  w.push('/** Walks a request body (the reader starts after the request header). */');
  w.push('export function walkRequest(key: i16, v: i16, r: Reader, s: Sink): bool {');
  w.push('  switch (key) {');
  w.push(...dispatchReq);
  w.push('  }');
  w.push('  return false;');
  w.push('}');
  w.push('');
  w.push('/** Walks a response body (the reader starts after the response header). */');
  w.push('export function walkResponse(key: i16, v: i16, r: Reader, s: Sink): bool {');
  w.push('  switch (key) {');
  w.push(...dispatchResp);
  w.push('  }');
  w.push('  return false;');
  w.push('}');
  w.push('');
  w.push(...body);
  files.set('walkers.ts', w.join('\n'));
  files.set('errors.ts', errorTables(apis));
  files.set('streams.ts', streamPrograms(apis));
  return files;
}

// ------------------------------------------------------------------ stream programs

/** Appends the ops of `fields` at version v (see OP; events by STREAM_EVENTS index + 1, 0 = none). */
/** Ops, and where the last FIXED op is (-1: another op came after it), so runs of fixed fields merge. */
type Program = number[] & { lastFixed: number };

function programOf(fields: Field[], prefix: string, interests: Record<string, string>, isResponse: boolean, structs: Map<string, Field[]>, v: number, flexible: boolean, out: Program): void {
  const fixed = (n: number): void => {
    // consecutive fixed-width fields are one op
    if (out.lastFixed >= 0 && out.lastFixed === out.length - 2) out[out.length - 1] += n;
    else { out.push(OP.FIXED, n); out.lastFixed = out.length - 2; }
  };
  for (const f of fields) {
    if (!inRange(parseRange(f.versions ?? '0+'), v)) continue;
    if (f.taggedVersions !== undefined && inRange(parseRange(f.taggedVersions), v)) continue;
    const fpath = prefix ? `${prefix}.${f.name}` : f.name;
    let evName = interests[fpath];
    if (!evName && isResponse && f.name === 'ErrorCode' && f.type === 'int16') evName = 'ERROR_CODE';
    const ev = evName ? STREAM_EVENTS.indexOf(evName) + 1 : 0;
    if (evName && ev === 0) throw new Error(`unknown stream event ${evName}`);
    const isArray = f.type.startsWith('[]');
    const base = f.type.replace(/^\[\]/, '');
    const sub = f.fields ?? structs.get(base);
    const flex = (f.flexibleVersions !== undefined ? inRange(parseRange(f.flexibleVersions), v) : flexible) ? 1 : 0;
    const scalar = (): void => {
      const width: Record<string, number> = { int8: 1, bool: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, int64: 8, float64: 8, uuid: 16 };
      if (base === 'string') out.push(OP.STR, flex, ev);
      else if (base === 'bytes') out.push(OP.BYTES, flex);
      else if (base === 'records') out.push(OP.RECORDS, flex);
      else if (base === 'uuid' && ev) out.push(OP.UUID, ev);
      else if (width[base] === undefined) throw new Error(`unknown type ${base} at ${fpath}`);
      else if (ev && width[base] <= 4) out.push(OP.INT, width[base], ev);
      else { fixed(width[base]); return; }
      out.lastFixed = -1;
    };
    if (!isArray && !sub) { scalar(); continue; }
    const nullable = f.nullableVersions !== undefined && inRange(parseRange(f.nullableVersions), v);
    if (!isArray && sub && !nullable) { programOf(sub, fpath, interests, isResponse, structs, v, flexible, out); continue; }
    // an array (or a nullable struct: an int8 marker, then the struct once or not at all); its body ends with NEXT
    if (isArray) out.push(OP.ARRAY, flex, sub ? ev : 0, 0); else out.push(OP.NSTRUCT, 0);
    out.lastFixed = -1;
    const lenAt = out.length - 1;
    if (sub) programOf(sub, fpath, interests, isResponse, structs, v, flexible, out); else scalar();
    out.push(OP.NEXT);
    out.lastFixed = -1;
    out[lenAt] = out.length - lenAt - 1;
  }
  if (flexible) { out.push(OP.TAGS); out.lastFixed = -1; }
}

function streamPrograms(apis: Api[]): string {
  const ops: number[] = [];
  const tables: string[] = [];
  const dispatch: string[] = [];
  for (const a of apis) {
    for (const [m, old, flexR, isResponse] of [[a.request, a.oldRequest, a.requestFlexible, false], [a.response, a.oldResponse, a.responseFlexible, true]] as const) {
      const interests = STREAMS[m.name];
      if (!interests) continue;
      const starts: number[] = [];
      const seen = new Map<string, number>();
      for (let v = a.versions.lo; v <= a.versions.hi; v++) {
        const src = old && v < a.newestLow ? old : m;
        const prog: Program = Object.assign([] as number[], { lastFixed: -1 });
        programOf(src.fields, '', interests, isResponse, structsOf(src), v, inRange(flexR, v), prog);
        prog.push(OP.END);
        const key = prog.join(',');
        let at = seen.get(key);
        if (at === undefined) { at = ops.length; ops.push(...prog); seen.set(key, at); }
        starts.push(at);
      }
      tables.push(`/** ${m.name} v${a.versions.lo}-${a.versions.hi}: program start per version. */`);
      tables.push(`const STARTS_${m.name}: StaticArray<i32> = [${starts.join(', ')}];`);
      dispatch.push(`  if (key == ${a.key} && ${isResponse ? 'response' : '!response'}) return version >= ${a.versions.lo} && version <= ${a.versions.hi} ? STARTS_${m.name}[version - ${a.versions.lo}] : -1;`);
    }
  }
  const lines: string[] = [LICENSE_NOTE];
  lines.push('// Stream programs: the fields of the messages the filter walks in windows');
  lines.push('// (STREAMS in the generator), as ops for the interpreter in ../stream.ts.');
  lines.push('');
  Object.entries(OP).forEach(([name, v]) => lines.push(`export const OP_${name}: i32 = ${v};`));
  STREAM_EVENTS.forEach((name, i) => lines.push(`export const SE_${name}: i32 = ${i + 1};`));
  lines.push('');
  lines.push(`export const PROGRAMS: StaticArray<i32> = [${ops.join(', ')}];`);
  lines.push('');
  lines.push(...tables);
  lines.push('');
  lines.push('/** Where the program of this message starts in PROGRAMS, or -1 when it has none. */');
  lines.push('export function streamProgram(key: i16, version: i16, response: bool): i32 {');
  lines.push(...dispatch);
  lines.push('  return -1;');
  lines.push('}');
  lines.push('');
  return lines.join('\n');
}

// ------------------------------------------------------------------ default (error) response bodies

/**
 * The body of a response with every field at its default: integers at the
 * schema's default (0 without one), strings null where nullable else "",
 * arrays empty, no tagged fields. Records where each ErrorCode outside an
 * array sits, so the filter answers a refused request by copying the body
 * and writing its error code there.
 */
function defaultBody(fields: Field[], v: number, flexible: boolean, structs: Map<string, Field[]>, out: number[], codeAt: number[]): void {
  for (const f of fields) {
    if (!inRange(parseRange(f.versions ?? '0+'), v)) continue;
    if (f.taggedVersions !== undefined && inRange(parseRange(f.taggedVersions), v)) continue;
    const nullable = f.nullableVersions !== undefined && inRange(parseRange(f.nullableVersions), v);
    const def = (f as { default?: string | number | boolean }).default;
    const isArray = f.type.startsWith('[]');
    const base = f.type.replace(/^\[\]/, '');
    const sub = f.fields ?? structs.get(base);
    const stringFlex = f.flexibleVersions !== undefined ? inRange(parseRange(f.flexibleVersions), v) : flexible;
    if (isArray) {
      if (flexible) out.push(1); else out.push(0, 0, 0, 0);
      continue;
    }
    if (sub && nullable) { out.push(0xff); continue; }
    if (sub) { defaultBody(sub, v, flexible, structs, out, codeAt); continue; }
    const int = (width: number): void => {
      let n = 0n;
      if (typeof def === 'string' && def !== '' && def !== 'null') n = BigInt(def.startsWith('0x') ? def : def);
      else if (typeof def === 'number') n = BigInt(def);
      if (f.name === 'ErrorCode' && width === 2) codeAt.push(out.length);
      const mask = (1n << BigInt(width * 8)) - 1n;
      const u = n & mask;
      for (let i = width - 1; i >= 0; i--) out.push(Number((u >> BigInt(i * 8)) & 0xffn));
    };
    switch (base) {
      case 'int8': int(1); break;
      case 'bool': out.push(def === true || def === 'true' ? 1 : 0); break;
      case 'int16': case 'uint16': int(2); break;
      case 'int32': case 'uint32': int(4); break;
      case 'int64': int(8); break;
      case 'float64': out.push(0, 0, 0, 0, 0, 0, 0, 0); break;
      case 'uuid': for (let i = 0; i < 16; i++) out.push(0); break;
      case 'string': {
        const text = nullable && (def === undefined || def === 'null') ? null : (typeof def === 'string' && def !== 'null' ? def : '');
        const bytes = text === null ? [] : [...Buffer.from(text, 'utf8')];
        if (stringFlex) out.push(...uvarint(text === null ? 0 : bytes.length + 1));
        else { const n = text === null ? 0xffff : bytes.length; out.push((n >> 8) & 0xff, n & 0xff); }
        out.push(...bytes);
        break;
      }
      case 'bytes': case 'records':
        if (stringFlex) out.push(nullable ? 0 : 1);
        else if (nullable) out.push(0xff, 0xff, 0xff, 0xff); else out.push(0, 0, 0, 0);
        break;
      default: throw new Error(`unknown type ${base}`);
    }
  }
  if (flexible) out.push(0);
}

function uvarint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return out;
}

function errorTables(apis: Api[]): string {
  const maxKey = Math.max(...apis.map((a) => a.key));
  const blob: number[] = [];
  const entries: number[] = []; // per (key, version): body start, body length, error code offset (-1 none)
  const keyBase: number[] = [];
  for (let k = 0; k <= maxKey; k++) {
    const a = apis.find((x) => x.key === k);
    keyBase.push(entries.length / 3);
    if (!a) continue;
    for (let v = a.versions.lo; v <= a.versions.hi; v++) {
      const m = a.oldResponse && v < a.newestLow ? a.oldResponse : a.response;
      const body: number[] = [];
      const codes: number[] = [];
      defaultBody(m.fields, v, inRange(a.responseFlexible, v), structsOf(m), body, codes);
      entries.push(blob.length, body.length, codes.length > 0 ? codes[0] : -1);
      blob.push(...body);
    }
  }
  keyBase.push(entries.length / 3);
  const lines: string[] = [LICENSE_NOTE];
  lines.push('// Default response bodies, one per API key and version: every field at its');
  lines.push('// default, arrays empty. The filter answers a refused request with one of these,');
  lines.push('// its first top-level ErrorCode set (responses without one answer with defaults).');
  lines.push('import { API_KEY_LIMIT, API_MIN_VERSION } from "./apis";');
  lines.push('');
  lines.push(`const KEY_BASE: StaticArray<i32> = [${keyBase.join(', ')}];`);
  lines.push(`const ENTRIES: StaticArray<i32> = [${entries.join(', ')}];`);
  lines.push(`const BODIES: StaticArray<u8> = [${blob.join(', ')}];`);
  lines.push('');
  lines.push('/** Index of the (key, version) entry, or -1. */');
  lines.push('function entryOf(key: i32, version: i32): i32 {');
  lines.push('  if (key < 0 || key >= API_KEY_LIMIT) return -1;');
  lines.push('  const min = <i32>API_MIN_VERSION[key];');
  lines.push('  if (min < 0 || version < min) return -1;');
  lines.push('  const e = KEY_BASE[key] + version - min;');
  lines.push('  return e < KEY_BASE[key + 1] ? e : -1;');
  lines.push('}');
  lines.push('');
  lines.push('/** The default body of this response: (start, length) in BODIES, or length -1. */');
  lines.push('export function defaultResponseLength(key: i32, version: i32): i32 {');
  lines.push('  const e = entryOf(key, version);');
  lines.push('  return e < 0 ? -1 : ENTRIES[e * 3 + 1];');
  lines.push('}');
  lines.push('');
  lines.push('/** Writes the default body to dest (room for defaultResponseLength bytes) with `code` in its top-level ErrorCode; false if none. */');
  lines.push('export function writeDefaultResponse(key: i32, version: i32, code: i16, dest: usize): bool {');
  lines.push('  const e = entryOf(key, version);');
  lines.push('  if (e < 0) return false;');
  lines.push('  const start = ENTRIES[e * 3];');
  lines.push('  const len = ENTRIES[e * 3 + 1];');
  lines.push('  memory.copy(dest, changetype<usize>(BODIES) + <usize>start, <usize>len);');
  lines.push('  const at = ENTRIES[e * 3 + 2];');
  lines.push('  if (at >= 0) store<u16>(dest + <usize>at, bswap<u16>(<u16>code));');
  lines.push('  return true;');
  lines.push('}');
  lines.push('');
  lines.push('/** Whether the default body of this response carries an error code. */');
  lines.push('export function defaultResponseHasErrorCode(key: i32, version: i32): bool {');
  lines.push('  const e = entryOf(key, version);');
  lines.push('  return e >= 0 && ENTRIES[e * 3 + 2] >= 0;');
  lines.push('}');
  lines.push('');
  return lines.join('\n');
}

function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

// ------------------------------------------------------------------ CLI

function main(argv: string[]): void {
  let out = path.join(path.dirname(new URL(import.meta.url).pathname), '../../filters/kafka/gen');
  let check = false;
  const dirs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = argv[++i];
    else if (argv[i] === '--check') check = true;
    else dirs.push(argv[i]);
  }
  if (dirs.length === 0) {
    console.error('usage: generate.ts [--out DIR] [--check] MESSAGES_DIR_NEWEST [MESSAGES_DIR_OLDER...]');
    process.exit(2);
  }
  const files = generate(dirs);
  let differ = 0;
  for (const [name, text] of files) {
    const file = path.join(out, name);
    if (check) {
      let have = '';
      try { have = readFileSync(file, 'utf8'); } catch { /* missing = different */ }
      if (have !== text) { console.error(`kafka-codegen: ${file} differs from what ${dirs.join(' + ')} generate`); differ++; }
    } else {
      mkdirSync(out, { recursive: true });
      writeFileSync(file, text);
      console.log(`kafka-codegen: wrote ${file} (${text.length} bytes)`);
    }
  }
  if (differ > 0) process.exit(1);
  if (check) console.log(`kafka-codegen: ${files.size} generated files match ${dirs.join(' + ')}`);
}

main(process.argv.slice(2));
