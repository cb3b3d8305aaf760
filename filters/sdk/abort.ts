// Replacements for the AssemblyScript runtime's env.abort / env.trace /
// env.seed imports, which Envoy does not provide. asconfig.json points the
// compiler at these with --use (abort=filters/sdk/abort/abortHandler, ...).
import * as abi from "./imports";
import { LogLevel } from "./types";

let aborting = false;

function logRaw(level: LogLevel, message: string): void {
  const bytes = String.UTF8.encode(message);
  abi.proxy_log(level, changetype<usize>(bytes), bytes.byteLength);
}

/** Logs the failure at critical level and traps; the host closes the connection. */
export function abortHandler(message: string | null, fileName: string | null, line: u32, column: u32): void {
  if (!aborting) {
    aborting = true; // building the message allocates; never recurse
    let text = "abort: " + (message != null ? message : "(no message)");
    if (fileName != null) text += " at " + fileName + ":" + line.toString() + ":" + column.toString();
    logRaw(LogLevel.Critical, text);
    aborting = false;
  }
  unreachable();
}

/** trace() logs at debug level. */
export function traceHandler(message: string, n: i32 = 0, a0: f64 = 0, a1: f64 = 0, a2: f64 = 0, a3: f64 = 0, a4: f64 = 0): void {
  let text = "trace: " + message;
  if (n > 0) text += " " + a0.toString();
  if (n > 1) text += " " + a1.toString();
  if (n > 2) text += " " + a2.toString();
  if (n > 3) text += " " + a3.toString();
  if (n > 4) text += " " + a4.toString();
  logRaw(LogLevel.Debug, text);
}

const SEED_BUF: usize = memory.data(8, 8);

/** Seeds Math.random from the host's WASI random_get. */
export function seedHandler(): f64 {
  abi.wasi_random_get(SEED_BUF, 8);
  return <f64>(load<u64>(SEED_BUF) >> 11);
}
