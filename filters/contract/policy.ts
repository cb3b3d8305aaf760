// The contract filter's logic, free of ABI calls so it reads (and can be
// tested) on its own. index.ts maps the proxy-wasm callbacks onto it.
import { JsonObject, jsonError, parseJsonObject } from "../sdk/json";

export const NEWLINE: u8 = 0x0a;
export const POISON: u8 = 0x00;

export class Config {
  routePrefix: Uint8Array = new Uint8Array(0);
  routeCluster: string = "";
  /** Cluster for connections whose first line does not match; "" keeps tcp_proxy's own. */
  defaultCluster: string = "";
  /** Tick period in milliseconds (0 = no ticks). */
  tickMs: u32 = 0;
}

let configError: string = "";

export function lastConfigError(): string {
  return configError;
}

/** {"route_prefix":"A:","route_cluster":"a","default_cluster":"b","tick_ms":0}; null when invalid. */
export function parseConfig(bytes: ArrayBuffer): Config | null {
  const obj: JsonObject | null = parseJsonObject(bytes);
  if (obj == null) {
    configError = "configuration is not a JSON object: " + jsonError();
    return null;
  }
  const config = new Config();
  const prefix = obj.getString("route_prefix");
  const cluster = obj.getString("route_cluster");
  if (prefix == null || prefix.length == 0) {
    configError = "route_prefix must be a non-empty string";
    return null;
  }
  if (cluster == null || cluster.length == 0) {
    configError = "route_cluster must be a non-empty string";
    return null;
  }
  config.routePrefix = Uint8Array.wrap(String.UTF8.encode(prefix));
  config.routeCluster = cluster;
  const fallback = obj.getString("default_cluster");
  if (obj.has("default_cluster") && fallback == null) {
    configError = "default_cluster must be a string";
    return null;
  }
  config.defaultCluster = fallback == null ? "" : fallback;
  const tick = obj.getNumber("tick_ms", 0);
  if (tick < 0 || tick > 3600000 || tick != Math.floor(tick)) {
    configError = "tick_ms must be an integer between 0 and 3600000";
    return null;
  }
  config.tickMs = <u32>tick;
  return config;
}

// "MARK" and "mark" as little-endian u32 words.
const MARK_UPPER: u32 = 0x4b52414d;
const MARK_LOWER: u32 = 0x6b72616d;

/** Rewrites every "MARK" to "mark" in place; returns how many it rewrote. */
export function rewriteMarks(data: Uint8Array): i32 {
  const base = data.dataStart;
  const n = data.length;
  let count = 0;
  let i = 0;
  while (i + 3 < n) {
    const p = base + <usize>i;
    if (load<u8>(p) == 0x4d && load<u32>(p) == MARK_UPPER) {
      store<u32>(p, MARK_LOWER);
      count++;
      i += 4;
    } else {
      i++;
    }
  }
  return count;
}

/**
 * Whether the data ends with a proper prefix of "MARK" ("M", "MA", "MAR"):
 * the rest of the marker may still arrive, so the bytes must not be released yet.
 */
export function endsWithPartialMark(data: Uint8Array): bool {
  const n = data.length;
  const end = data.dataStart + <usize>n;
  if (n >= 3 && load<u8>(end - 3) == 0x4d && load<u8>(end - 2) == 0x41 && load<u8>(end - 1) == 0x52) return true;
  if (n >= 2 && load<u8>(end - 2) == 0x4d && load<u8>(end - 1) == 0x41) return true;
  return n >= 1 && load<u8>(end - 1) == 0x4d;
}
