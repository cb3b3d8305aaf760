// Hand-assembles tiny WebAssembly modules for host tests that must not depend
// on the AssemblyScript toolchain (link errors, start traps, raw filters).

type ValType = 'i32' | 'i64';
const VAL: Record<ValType, number> = { i32: 0x7f, i64: 0x7e };

export interface FuncSig {
  params: ValType[];
  results: ValType[];
}

export interface ImportFunc extends FuncSig {
  module: string;
  name: string;
}

export interface Func extends FuncSig {
  /** Export name (optional). */
  export?: string;
  /** Body instructions, without the trailing `end` (0x0b). */
  body: number[];
  /** Extra i32 locals. */
  locals?: number;
}

export interface ModuleSpec {
  imports?: ImportFunc[];
  funcs: Func[];
  /** Memory pages (exported as "memory"); omit for no memory. */
  memoryPages?: number;
  /** Index (into imports + funcs) of a start-section function. */
  start?: number;
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128, for i32.const immediates. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function str(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

export const op = {
  unreachable: 0x00,
  end: 0x0b,
  call: (i: number) => [0x10, ...uleb(i)],
  drop: 0x1a,
  localGet: (i: number) => [0x20, ...uleb(i)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i64Const: (v: number) => [0x42, ...sleb(v)],
};

export function buildModule(spec: ModuleSpec): Uint8Array {
  const imports = spec.imports ?? [];
  const sigs: string[] = [];
  const typeIndex = (s: FuncSig) => {
    const key = `${s.params.join(',')}->${s.results.join(',')}`;
    let i = sigs.indexOf(key);
    if (i < 0) i = sigs.push(key) - 1;
    return i;
  };
  const importEntries = imports.map((f) => [...str(f.module), ...str(f.name), 0x00, ...uleb(typeIndex(f))]);
  const funcTypes = spec.funcs.map((f) => uleb(typeIndex(f)));
  const types = sigs.map((key) => {
    const [p, r] = key.split('->') as [string, string];
    const params = p ? p.split(',').map((t) => VAL[t as ValType]) : [];
    const results = r ? r.split(',').map((t) => VAL[t as ValType]) : [];
    return [0x60, ...uleb(params.length), ...params, ...uleb(results.length), ...results];
  });
  const exports: number[][] = [];
  spec.funcs.forEach((f, i) => {
    if (f.export) exports.push([...str(f.export), 0x00, ...uleb(imports.length + i)]);
  });
  if (spec.memoryPages !== undefined) exports.push([...str('memory'), 0x02, 0x00]);
  const codes = spec.funcs.map((f) => {
    const locals = f.locals ? [...uleb(1), ...uleb(f.locals), VAL.i32] : uleb(0);
    const body = [...locals, ...f.body, op.end];
    return [...uleb(body.length), ...body];
  });
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...(importEntries.length ? section(2, vec(importEntries)) : []),
    ...section(3, vec(funcTypes)),
    ...(spec.memoryPages !== undefined ? section(5, vec([[0x00, ...uleb(spec.memoryPages)]])) : []),
    ...section(7, vec(exports)),
    ...(spec.start !== undefined ? section(8, uleb(spec.start)) : []),
    ...section(10, vec(codes)),
  ]);
}

/** The exports every proxy-wasm module needs: ABI marker and an allocator (a fixed scratch area). */
export function abiBasics(scratch = 1024): Func[] {
  return [
    { export: 'proxy_abi_version_0_2_1', params: [], results: [], body: [] },
    { export: 'proxy_on_memory_allocate', params: ['i32'], results: ['i32'], body: op.i32Const(scratch) },
  ];
}
