// kafka: Kafka network filter (docs/kafka.md). Glue only: the SDK's
// framed-stream layer runs one KafkaCodec (codec.ts) per connection; this
// file reads the settings (config.ts) and makes the stats (stats.ts).
export * from "../sdk/exports";
import { RootContext, logInfo, registerRootContext } from "../sdk";
import { Settings } from "../sdk/settings";
import { Codec, FramedRoot } from "../sdk/stream";
import { KafkaCodec } from "./codec";
import { Config, readConfig } from "./config";
import { KafkaCounters, Stats } from "./stats";

class KafkaRoot extends FramedRoot {
  config: Config = new Config();
  stats: Stats = new Stats("kafka", []);

  configure(s: Settings): bool {
    const config = readConfig(s);
    if (config == null) return false;
    this.config = config;
    this.statPrefix = config.statPrefix;
    this.routes = config.routes;
    this.stats = new Stats(config.statPrefix, config.topicMetricNames);
    this.stats.defineAll();
    // the layer flushes its counters once per callback: the filter's own go with them
    this.counters = new KafkaCounters(this.stats);
    logInfo("kafka: " + (config.listenerBrokerId >= 0 ? "broker " + config.listenerBrokerId.toString() + " listener" : "bootstrap listener") +
      ", " + config.brokers.length.toString() + " broker(s) rewritten to " + (config.advertise.length > 0 ? config.advertise : "-") +
      ", " + (config.produceRules.length + config.fetchRules.length).toString() + " ACL rule(s), default " + (config.aclDefaultAllow ? "allow" : "deny") +
      ", " + config.topicMetrics.length.toString() + " topic metric prefix(es)");
    return true;
  }

  newCodec(): Codec {
    return new KafkaCodec(this.config, this.stats);
  }
}

registerRootContext((id: u32): RootContext => new KafkaRoot(id, "kafka"));
