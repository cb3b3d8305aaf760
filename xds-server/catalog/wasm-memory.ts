// Gives a module's own linear memory a maximum, so that memory.grow past it
// fails inside the module (AssemblyScript aborts: "out of memory") instead
// of growing the process towards 4 GiB. A pure rewrite of the memory section
// (id 5): every other byte is kept.

function readLeb(bytes: Uint8Array, at: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  let next = at;
  for (;;) {
    const byte = bytes[next++];
    if (byte === undefined) throw new Error('truncated LEB128');
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if ((byte & 0x80) === 0) return { value, next };
  }
}

function leb(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  do {
    let byte = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    out.push(byte);
  } while (rest > 0);
  return out;
}

/** The module with each 32-bit memory limited to `maxPages` (64 KiB each); throws when one needs more to start. */
export function capMemory(bytes: Uint8Array, maxPages: number): Uint8Array {
  if (bytes.length < 8) return bytes; // not a module: the loader says so
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at]!;
    const size = readLeb(bytes, at + 1);
    const start = size.next;
    const end = start + size.value;
    if (id !== 5) {
      at = end;
      continue;
    }
    const count = readLeb(bytes, start);
    let p = count.next;
    const body: number[] = [...leb(count.value)];
    for (let i = 0; i < count.value; i++) {
      const flags = bytes[p++]!;
      if (flags > 1) return bytes; // shared or 64-bit memory: left as built
      const min = readLeb(bytes, p);
      p = min.next;
      let max = maxPages;
      if (flags === 1) {
        const declared = readLeb(bytes, p);
        p = declared.next;
        max = Math.min(declared.value, maxPages);
      }
      if (min.value > max) throw new Error(`the module needs ${min.value} pages of memory to start, over the pre-flight limit of ${maxPages}`);
      body.push(1, ...leb(min.value), ...leb(max));
    }
    const section = [5, ...leb(body.length), ...body];
    const out = new Uint8Array(at + section.length + (bytes.length - end));
    out.set(bytes.subarray(0, at), 0);
    out.set(section, at);
    out.set(bytes.subarray(end), at + section.length);
    return out;
  }
  return bytes;
}
