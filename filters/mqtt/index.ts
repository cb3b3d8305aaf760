// mqtt: MQTT 3.1 / 3.1.1 / 5.0 network filter (see docs/mqtt.md), a codec on
// the SDK's framed-stream layer (docs/filters.md). This file reads the
// settings and makes a codec per connection; codec.ts frames and judges the
// packets (parser.ts), acl.ts is the topic policy, encode.ts the packets the
// proxy writes, packet-log.ts the replay log, fastpath.ts the PUBLISH scan.
export * from "../sdk/exports";
import { RootContext, Settings, logInfo, registerRootContext } from "../sdk";
import { Codec, FramedRoot } from "../sdk/stream";
import { MqttCodec } from "./codec";
import { Config, readConfig } from "./config";
import { StatLayout, buildLayout } from "./stats";

class MqttRoot extends FramedRoot {
  config: Config = new Config();
  layout: StatLayout = new StatLayout();

  configure(s: Settings): bool {
    const config = readConfig(s);
    if (!s.ok()) return false;
    this.config = config;
    this.statPrefix = config.statPrefix;
    this.routes = config.routes;
    this.layout = buildLayout(config, this.counters);
    this.useDeadlines(config.connectTimeoutMs);
    logInfo("mqtt: " + (config.hasAcl ? (config.publishRules.length + config.subscribeRules.length).toString() + " ACL rule(s), default " + (config.aclDefaultAllow ? "allow" : "deny") : "no ACL") +
      ", " + config.topicMetrics.length.toString() + " topic metric prefix(es)");
    return true;
  }

  newCodec(): Codec {
    return new MqttCodec(this.config, this.layout);
  }
}

registerRootContext((id: u32): RootContext => new MqttRoot(id, "mqtt"));
