// Just enough protobuf encoding for the arguments of Envoy's foreign functions.

export class ProtoWriter {
  private bytes: u8[] = [];

  varint(value: u64): this {
    let v = value;
    while (v >= 0x80) {
      this.bytes.push(<u8>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    this.bytes.push(<u8>v);
    return this;
  }

  private key(field: u32, wireType: u32): void {
    this.varint((<u64>field << 3) | wireType);
  }

  /** Length-delimited field (wire type 2). Empty values are skipped, as proto3 does. */
  bytesField(field: u32, value: ArrayBuffer): this {
    if (value.byteLength == 0) return this;
    this.key(field, 2);
    this.varint(<u64>value.byteLength);
    const view = Uint8Array.wrap(value);
    for (let i = 0; i < view.length; i++) this.bytes.push(view[i]);
    return this;
  }

  stringField(field: u32, value: string): this {
    return this.bytesField(field, String.UTF8.encode(value));
  }

  /** Varint field (wire type 0); zero is the proto3 default and is skipped. */
  uintField(field: u32, value: u64): this {
    if (value == 0) return this;
    this.key(field, 0);
    return this.varint(value);
  }

  finish(): ArrayBuffer {
    const out = new ArrayBuffer(this.bytes.length);
    const view = Uint8Array.wrap(out);
    for (let i = 0; i < this.bytes.length; i++) view[i] = this.bytes[i];
    return out;
  }
}
