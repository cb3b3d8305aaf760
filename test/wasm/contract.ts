// What the contract filter (filters/contract) must do to a byte stream, as a
// reference model the host and Envoy tests compare against.

export const CONTRACT_CONFIG = { route_prefix: 'A:', route_cluster: 'a', default_cluster: 'b' };

export interface ContractExpectation {
  /** Bytes that reach the upstream (MARK -> mark over the whole stream). */
  forwarded: Buffer;
  cluster: string;
  frames: number;
}

export function rewriteMarks(data: Buffer): Buffer {
  return Buffer.from(data.toString('latin1').replaceAll('MARK', 'mark'), 'latin1');
}

/** The reference result for a stream without NUL bytes. */
export function expectContract(stream: Buffer, config = CONTRACT_CONFIG): ContractExpectation {
  const eol = stream.indexOf(0x0a);
  const firstLine = stream.subarray(0, eol < 0 ? stream.length : eol).toString('latin1');
  return {
    forwarded: rewriteMarks(stream),
    cluster: firstLine.startsWith(config.route_prefix) ? config.route_cluster : config.default_cluster,
    frames: [...stream].filter((b) => b === 0x0a).length,
  };
}

export { splitAt } from '../support/bytes.ts';
