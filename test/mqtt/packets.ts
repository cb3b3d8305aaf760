// MQTT packets for the tests, generated with mqtt-packet (an independent
// implementation), and the fields the filter must report for them.
import mqttPacket from 'mqtt-packet';
import type { MqttPacketRecord } from './replay.ts';

export type Version = 3 | 4 | 5;
// mqtt-packet's own types are narrower than what it accepts; tests build plain objects
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Pkt = Record<string, any> & { cmd: string };

export function gen(p: Pkt, version: Version): Buffer {
  return mqttPacket.generate(p as mqttPacket.Packet, { protocolVersion: version });
}

/** Parses a byte stream with mqtt-packet; throws on its errors. */
export function parseAll(bytes: Uint8Array, version: Version): Pkt[] {
  const parser = mqttPacket.parser({ protocolVersion: version });
  const out: Pkt[] = [];
  let error: Error | undefined;
  parser.on('packet', (p: Pkt) => out.push(p));
  parser.on('error', (e: Error) => (error ??= e));
  parser.parse(Buffer.from(bytes));
  if (error) throw error;
  return out;
}

export function connectPacket(version: Version, clientId: string, extra: Record<string, unknown> = {}): Pkt {
  return {
    cmd: 'connect',
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    clientId,
    clean: true,
    keepalive: 30,
    ...extra,
  };
}

/** A client -> broker and broker -> client corpus covering every packet type of a version. */
export function corpus(version: Version): { down: Pkt[]; up: Pkt[] } {
  const v5 = version === 5;
  const down: Pkt[] = [
    connectPacket(version, 'corpus-1', {
      username: 'user', password: Buffer.from('secret'), keepalive: 60, clean: false,
      will: { topic: 'will/topic', payload: Buffer.from('bye'), qos: 1, retain: true, ...(v5 ? { properties: { willDelayInterval: 5 } } : {}) },
      ...(v5 ? { properties: { sessionExpiryInterval: 3600, receiveMaximum: 20, maximumPacketSize: 65536, topicAliasMaximum: 10, userProperties: { a: 'b' } } } : {}),
    }),
    { cmd: 'publish', topic: 'sensors/1/temp', payload: Buffer.from('21.5'), qos: 0, retain: false, dup: false },
    { cmd: 'publish', topic: 'sensors/2/temp', payload: Buffer.alloc(300, 7), qos: 1, messageId: 10, retain: true, dup: false },
    { cmd: 'publish', topic: 'a/ü/π', payload: Buffer.alloc(0), qos: 2, messageId: 11, retain: false, dup: true },
    ...(v5 ? [
      { cmd: 'publish', topic: 'alias/topic', payload: Buffer.from('x'), qos: 1, messageId: 12, properties: { topicAlias: 3, contentType: 'text/plain', userProperties: { k: 'v' } } },
      { cmd: 'publish', topic: '', payload: Buffer.from('y'), qos: 0, properties: { topicAlias: 3 } },
    ] : []),
    { cmd: 'puback', messageId: 20 },
    { cmd: 'pubrec', messageId: 21 },
    { cmd: 'pubrel', messageId: 22 },
    { cmd: 'pubcomp', messageId: 23 },
    { cmd: 'subscribe', messageId: 30, subscriptions: [{ topic: 'sensors/+/temp', qos: 1 }, { topic: 'alerts/#', qos: 2 }, { topic: 'x', qos: 0 }],
      ...(v5 ? { properties: { subscriptionIdentifier: 7 } } : {}) },
    { cmd: 'unsubscribe', messageId: 31, unsubscriptions: ['alerts/#', 'x'] },
    { cmd: 'pingreq' },
    ...(v5 ? [
      { cmd: 'subscribe', messageId: 32, subscriptions: [{ topic: '$share/g1/jobs/#', qos: 1, nl: false, rap: true, rh: 1 }] },
      { cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM' } },
      { cmd: 'disconnect', reasonCode: 0x04, properties: { sessionExpiryInterval: 0 } },
    ] : [{ cmd: 'disconnect' }]),
  ];
  const up: Pkt[] = [
    v5 ? { cmd: 'connack', sessionPresent: true, reasonCode: 0, properties: { topicAliasMaximum: 10, assignedClientIdentifier: 'assigned-1', maximumQoS: 1 } }
      : { cmd: 'connack', sessionPresent: version === 4, returnCode: 0 },
    { cmd: 'publish', topic: 'sensors/9/temp', payload: Buffer.from('from broker'), qos: 1, messageId: 40 },
    { cmd: 'puback', messageId: 10, ...(v5 ? { reasonCode: 0x10 } : {}) },
    { cmd: 'pubrec', messageId: 11 },
    { cmd: 'pubrel', messageId: 41 },
    { cmd: 'pubcomp', messageId: 11 },
    { cmd: 'suback', messageId: 30, granted: v5 ? [1, 2, 0x87] : [1, 2, 0x80] },
    { cmd: 'unsuback', messageId: 31, ...(v5 ? { granted: [0, 0x11] } : {}) },
    { cmd: 'pingresp' },
  ];
  return { down, up };
}

/** The fields the filter must report for a packet, as parsed by mqtt-packet. */
export function expectedFields(p: Pkt, dir: 'downstream' | 'upstream', version: Version): Partial<MqttPacketRecord> {
  const e: Record<string, unknown> = { dir, type: p.cmd, length: p.length };
  const v5 = version === 5;
  switch (p.cmd) {
    case 'connect':
      Object.assign(e, {
        protocol: p.protocolId, level: p.protocolVersion, client_id: p.clientId, clean_start: p.clean, keep_alive: p.keepalive,
        password: p.password !== undefined,
      });
      if (p.username !== undefined) e.username = p.username;
      if (p.will) Object.assign(e, { will_topic: p.will.topic, will_qos: p.will.qos, will_retain: p.will.retain, will_payload_length: p.will.payload.length });
      if (p.properties?.sessionExpiryInterval !== undefined) e.session_expiry = p.properties.sessionExpiryInterval;
      if (p.properties?.maximumPacketSize !== undefined) e.maximum_packet_size = p.properties.maximumPacketSize;
      if (p.properties?.receiveMaximum !== undefined) e.receive_maximum = p.properties.receiveMaximum;
      if (p.properties?.topicAliasMaximum !== undefined) e.topic_alias_maximum = p.properties.topicAliasMaximum;
      break;
    case 'connack':
      Object.assign(e, { session_present: p.sessionPresent, reason: v5 ? p.reasonCode : p.returnCode });
      if (p.properties?.assignedClientIdentifier !== undefined) e.assigned_client_id = p.properties.assignedClientIdentifier;
      break;
    case 'publish':
      Object.assign(e, { topic: p.topic, qos: p.qos, retain: p.retain, dup: p.dup, payload_length: p.payload.length });
      if (p.qos > 0) e.packet_id = p.messageId;
      if (p.properties?.topicAlias !== undefined) e.topic_alias = p.properties.topicAlias;
      break;
    case 'puback': case 'pubrec': case 'pubrel': case 'pubcomp':
      e.packet_id = p.messageId;
      if (v5 && p.reasonCode !== undefined && p.length > 2) e.reason = p.reasonCode;
      break;
    case 'subscribe':
      e.packet_id = p.messageId;
      e.filters = p.subscriptions.map((s: Pkt) => ({
        filter: s.topic, qos: s.qos,
        options: s.qos | (s.nl ? 4 : 0) | (s.rap ? 8 : 0) | ((s.rh ?? 0) << 4),
      }));
      if (p.properties?.subscriptionIdentifier !== undefined) e.subscription_id = p.properties.subscriptionIdentifier;
      break;
    case 'unsubscribe':
      e.packet_id = p.messageId;
      e.filters = p.unsubscriptions.map((t: string) => ({ filter: t }));
      break;
    case 'suback':
      e.packet_id = p.messageId;
      e.codes = p.granted;
      break;
    case 'unsuback':
      e.packet_id = p.messageId;
      if (v5) e.codes = p.granted;
      break;
    case 'disconnect': case 'auth':
      if (v5) e.reason = p.reasonCode ?? 0;
      break;
  }
  return e as Partial<MqttPacketRecord>;
}

/** Checks that `actual` has every field of `expected` with an equal value. */
export function fieldsMismatch(actual: Record<string, unknown>, expected: Record<string, unknown>): string | undefined {
  for (const [k, v] of Object.entries(expected)) {
    if (JSON.stringify(actual[k]) !== JSON.stringify(v)) return `${k}: got ${JSON.stringify(actual[k])}, want ${JSON.stringify(v)}`;
  }
  return undefined;
}
