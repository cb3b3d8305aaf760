// Parsers for the scalar value formats of the mesh file: durations,
// host:port endpoints, listener bind addresses, server names and resource
// names. Each parser returns either the parsed value or a human reason; the
// schema formats (schema.ts) and the error messages (validate.ts) both use
// them, so what is accepted and what the error says cannot drift apart.

import { isIPv4, isIPv6 } from 'node:net';
import type { DurationMs, HostPort } from '../model/types.ts';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export const DURATION_HINT = 'a duration with a unit, like "150ms", "5s", "1.5s", "2m" or "1h"';

/** "150ms" | "5s" | "1.5s" | "2m" | "1h" -> milliseconds (a whole number). */
export function parseDuration(text: string): Parsed<DurationMs> {
  const m = DURATION_RE.exec(text);
  if (!m) {
    if (/^\d+(\.\d+)?$/.test(text)) {
      return { ok: false, reason: `has no unit; write e.g. "${text}s" or "${text}ms"` };
    }
    return { ok: false, reason: `must be ${DURATION_HINT}` };
  }
  const ms = Number(m[1]) * (UNIT_MS[m[2]] ?? NaN);
  // 1.5s is 1500ms; sub-millisecond precision is not representable in the model.
  const rounded = Math.round(ms * 1e6) / 1e6;
  if (!Number.isInteger(rounded)) {
    return { ok: false, reason: 'must be a whole number of milliseconds' };
  }
  if (!Number.isSafeInteger(rounded)) return { ok: false, reason: 'is too large' };
  return { ok: true, value: rounded };
}

export function parsePositiveDuration(text: string): Parsed<DurationMs> {
  const r = parseDuration(text);
  if (r.ok && r.value === 0) return { ok: false, reason: 'must be greater than 0' };
  return r;
}

// RFC 1123 labels; "_" is tolerated because container DNS (docker compose
// service names) uses it.
const LABEL_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export function isDnsName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.');
  if (!labels.every((l) => LABEL_RE.test(l))) return false;
  // "999.1.1.1" is a broken IPv4 address, not a host name.
  return !/^\d+$/.test(labels[labels.length - 1] ?? '');
}

/** SNI value of a tls route: a DNS name, optionally with a leading "*." wildcard. */
export function parseServerName(text: string): Parsed<string> {
  const name = text.startsWith('*.') ? text.slice(2) : text;
  if (isIPv4(name) || isIPv6(name) || !isDnsName(name)) {
    return { ok: false, reason: 'must be a server name like "a.example.com" or "*.example.com"' };
  }
  return { ok: true, value: text };
}

/** Listener bind address: an IPv4 or IPv6 literal ("[::]" and "::" are both accepted). */
export function parseBindAddress(text: string): Parsed<string> {
  const ip = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIPv4(ip) || isIPv6(ip)) return { ok: true, value: ip };
  return {
    ok: false,
    reason: 'must be an IP address like 0.0.0.0, 127.0.0.1 or :: (a listener binds to an IP, not a host name)',
  };
}

const ENDPOINT_HINT = 'write host:port, e.g. 127.0.0.1:8080, [::1]:8080 or api.internal:8080';

/** "host:port" endpoint: IPv4, [IPv6] or DNS name, port 1..65535. Brackets are stripped. */
export function parseHostPort(text: string): Parsed<HostPort> {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { ok: false, reason: `has an unclosed "[" (${ENDPOINT_HINT})` };
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (!rest.startsWith(':')) return { ok: false, reason: `is missing the port (${ENDPOINT_HINT})` };
    portText = rest.slice(1);
    if (!isIPv6(host)) return { ok: false, reason: `has "${host}" in brackets, which is not an IPv6 address` };
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return { ok: false, reason: `is missing the port (${ENDPOINT_HINT})` };
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) {
      return { ok: false, reason: `needs brackets around an IPv6 address, e.g. [::1]:8080` };
    }
    if (host.length === 0) return { ok: false, reason: `is missing the host (${ENDPOINT_HINT})` };
    if (!isIPv4(host) && !isDnsName(host)) {
      return { ok: false, reason: `has host "${host}", which is not an IP address or DNS name` };
    }
  }
  if (!/^\d{1,5}$/.test(portText)) {
    return { ok: false, reason: `has port "${portText}", which is not a number from 1 to 65535` };
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) return { ok: false, reason: `has port ${port}, which is not in 1..65535` };
  return { ok: true, value: { host, port } };
}

/** Listener and cluster names: become Envoy resource names and stat prefixes. */
const NAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$/;

export function parseName(text: string): Parsed<string> {
  if (NAME_RE.test(text)) return { ok: true, value: text };
  return {
    ok: false,
    reason:
      'must be a name of letters, digits, ".", "_" and "-" (starting and ending with a letter or digit, at most 128 characters)',
  };
}
