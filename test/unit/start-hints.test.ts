// npm start's "Try:" lines come from the config it serves, and it knows which
// brokers an MQTT example routes to.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { mqttBrokers, startHints } from '../../scripts/start-hints.ts';
import { REPO_ROOT } from '../support/envoy.ts';

const example = (name: string) => parse(fs.readFileSync(path.join(REPO_ROOT, 'envoy-configs', name), 'utf8')) as Parameters<typeof startHints>[0];

describe('npm start hints', () => {
  it('the HTTP example: a curl per route, with the header its canary route matches; nc for TCP; s_client with a known SNI', () => {
    const hints = startHints(example('mesh.example.yaml'));
    assert.match(hints[0]!, /^curl -s -H 'x-canary: 1' localhost:10080\/api +# web: api-v2$/);
    assert.match(hints[1]!, /^curl -s localhost:10080\/ +# web: api-v1 \/ api-v2$/);
    assert.ok(hints.some((h) => /nc -q1 localhost 10081 .*# raw: TCP to echo/.test(h)));
    assert.ok(hints.some((h) => /-connect localhost:10443 -servername a\.example\.com/.test(h)));
    assert.ok(!hints.some((h) => /mosquitto/.test(h)));
  });

  it('the MQTT example: subscriber and publisher with client ids its route matches, so they meet on one broker; no curl', () => {
    const hints = startHints(example('mesh.mqtt.yaml'));
    assert.equal(hints.length, 2);
    assert.match(hints[0]!, /^mosquitto_sub -p 11883 -i fleet-a-watch -t '#' -v & +# mqtt: subscribe via broker-a$/);
    assert.match(hints[1]!, /^mosquitto_pub -p 11883 -i fleet-a-1 -t sensors\/t1 -m 21\.5 +# mqtt: publish via broker-a$/);
    assert.deepEqual(mqttBrokers(example('mesh.mqtt.yaml')), ['127.0.0.1:1883', '127.0.0.1:1884']);
    assert.deepEqual(mqttBrokers(example('mesh.example.yaml')), []);
  });
});
