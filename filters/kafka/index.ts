// kafka: Kafka network filter (see docs/kafka.md). Glue only.
export * from "../sdk/exports";
import { Action, RootContext, StreamContext, logError, logInfo, registerRootContext } from "../sdk";
import { Config, lastConfigError, parseConfig } from "./config";

class KafkaRoot extends RootContext {
  config: Config = new Config();

  onConfigure(configuration: ArrayBuffer): bool {
    const config = parseConfig(configuration);
    if (config == null) {
      logError("kafka: rejecting configuration: " + lastConfigError());
      return false;
    }
    this.config = config;
    logInfo("kafka: configured: " + config.brokers.length.toString() + " broker(s)");
    return true;
  }

  newStreamContext(id: u32): StreamContext {
    return new KafkaStream(id, this);
  }
}

class KafkaStream extends StreamContext {
  onNewConnection(): Action {
    return Action.Continue;
  }
}

registerRootContext((id: u32): RootContext => new KafkaRoot(id));
