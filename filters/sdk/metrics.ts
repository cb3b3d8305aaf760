// Counters, gauges and histograms backed by the host's stats.
//
// Metrics are defined with the host lazily, on first use, so they can be
// created anywhere (even as module globals, where Envoy does not allow host
// calls yet). Create them in RootContext.onConfigure to have them show up in
// Envoy's stats before the first connection.
import * as abi from "./imports";
import { OUT_PTR, utf8 } from "./memory";
import { MetricType, WasmResult } from "./types";

export class Metric {
  private id: u32 = 0;
  private defined: bool = false;

  constructor(public readonly name: string, public readonly type: MetricType) {}

  /** Defines the metric with the host now (idempotent); false if the host refused. */
  define(): bool {
    if (this.defined) return true;
    const name = utf8(this.name);
    store<u32>(OUT_PTR, 0);
    const result = abi.proxy_define_metric(this.type, changetype<usize>(name), name.byteLength, OUT_PTR);
    if (result != WasmResult.Ok) return false;
    this.id = load<u32>(OUT_PTR);
    this.defined = true;
    return true;
  }

  protected metricId(): i64 {
    return this.define() ? <i64>this.id : -1;
  }

  /** Current value as the host sees it (counters and gauges), 0 when unknown. */
  get(): u64 {
    const id = this.metricId();
    if (id < 0) return 0;
    store<u64>(OUT_PTR, 0);
    if (abi.proxy_get_metric(<u32>id, OUT_PTR) != WasmResult.Ok) return 0;
    return load<u64>(OUT_PTR);
  }
}

export class Counter extends Metric {
  constructor(name: string) {
    super(name, MetricType.Counter);
  }

  /** Adds `delta` (> 0; Envoy rejects zero and negative increments). */
  increment(delta: i64 = 1): void {
    if (delta <= 0) return;
    const id = this.metricId();
    if (id >= 0) abi.proxy_increment_metric(<u32>id, delta);
  }
}

export class Gauge extends Metric {
  constructor(name: string) {
    super(name, MetricType.Gauge);
  }

  set(value: u64): void {
    const id = this.metricId();
    if (id >= 0) abi.proxy_record_metric(<u32>id, value);
  }

  /** Adds a signed delta. */
  add(delta: i64): void {
    if (delta == 0) return;
    const id = this.metricId();
    if (id >= 0) abi.proxy_increment_metric(<u32>id, delta);
  }
}

export class Histogram extends Metric {
  constructor(name: string) {
    super(name, MetricType.Histogram);
  }

  record(value: u64): void {
    const id = this.metricId();
    if (id >= 0) abi.proxy_record_metric(<u32>id, value);
  }
}
