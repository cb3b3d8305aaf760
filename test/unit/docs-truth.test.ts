// The docs tell the truth: docker-compose.yml runs what `npm start` runs and
// writes nothing into the checkout (no Docker engine here: the file is parsed
// and checked against the example mesh and the demo upstreams); the README
// lists every package `npm test` installs; package.json's description names
// only protocols that have a filter.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { REPO_ROOT } from '../support/envoy.ts';

interface Service {
  image?: string;
  command?: string[];
  volumes?: string[];
  ports?: string[];
  environment?: Record<string, string>;
}
const read = (file: string) => parse(fs.readFileSync(path.join(REPO_ROOT, file), 'utf8')) as unknown;
const compose = read('docker-compose.yml') as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;

describe('docker-compose.yml', () => {
  it('serves the example mesh, with the demo upstreams as a compose service instead of 127.0.0.1', () => {
    const example = JSON.stringify(read('envoy-configs/mesh.example.yaml'));
    const docker = JSON.stringify(read('envoy-configs/mesh.docker.yaml'));
    assert.equal(docker, example.replaceAll('127.0.0.1:', 'upstreams:'));
    assert.match(services.protoplane!.command!.join(' '), /bin\/protoplane serve --config envoy-configs\/mesh\.docker\.yaml .*--host 0\.0\.0\.0/);
    const upstreams = services.upstreams!;
    assert.match(upstreams.command!.join(' '), /scripts\/demo-upstreams\.ts/);
    assert.equal(upstreams.environment?.DEMO_HOST, '0.0.0.0');
  });

  it('publishes every listener port of the mesh and the admin (status page) port', () => {
    const mesh = read('envoy-configs/mesh.docker.yaml') as { listeners: Array<{ port: number }> };
    const published = (services.envoy!.ports ?? []).map((p) => Number(p.split(':')[0]));
    for (const { port } of mesh.listeners) assert.ok(published.includes(port), `envoy publishes ${port}`);
    assert.ok((services.protoplane!.ports ?? []).includes('18001:18001'));
  });

  it('keeps node_modules and built filters in named volumes, not in the mounted checkout', () => {
    for (const [name, service] of Object.entries(services)) {
      const volumes = service.volumes ?? [];
      if (!volumes.some((v) => /^\.\/?:\/app(:rw)?$/.test(v))) continue;
      assert.ok(volumes.includes('node_modules:/app/node_modules'), `${name}: node_modules in a volume`);
      if (service.command?.join(' ').includes('serve')) assert.ok(volumes.includes('build:/app/build'), `${name}: build/ in a volume`);
    }
    assert.ok(compose.volumes && 'node_modules' in compose.volumes && 'build' in compose.volumes);
  });
});

describe('what the README and package.json say', () => {
  it('the README lists every package npm test installs with apt', () => {
    const scripts = ['test/support/install-peers.sh', 'test/kafka/install-kafka.sh']
      .filter((f) => fs.existsSync(path.join(REPO_ROOT, f)))
      .map((f) => fs.readFileSync(path.join(REPO_ROOT, f), 'utf8'))
      .join('\n');
    const apt = new Set<string>();
    for (const m of scripts.matchAll(/apt_install ([a-z0-9][a-z0-9 .+-]*)/g)) for (const p of m[1]!.trim().split(/\s+/)) apt.add(p);
    for (const m of scripts.matchAll(/missing\+=\(([a-z0-9.+-]+)\)/g)) apt.add(m[1]!);
    assert.ok(apt.has('mosquitto') && apt.has('chromium'), [...apt].join(' '));
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const list = readme.slice(readme.indexOf('`npm test` (`test/run.sh`'), readme.indexOf('With `npm start` running:'));
    for (const pkg of apt) assert.ok(list.includes(`\`${pkg}\``), `README's npm test list names ${pkg}`);
    for (const pip of scripts.matchAll(/pip install [^"]*"([a-z0-9-]+)==/g)) assert.ok(list.includes(`\`${pip[1]}\``), `README names pip ${pip[1]}`);
  });

  it("package.json's description names only protocols with a filter under filters/", () => {
    const { description } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { description: string };
    const named = ['MQTT', 'Kafka', 'CoAP', 'Redis', 'AMQP', 'NATS', 'Postgres', 'MySQL'].filter((p) => description.includes(p));
    assert.ok(named.length > 0);
    for (const protocol of named) {
      assert.ok(fs.existsSync(path.join(REPO_ROOT, 'filters', protocol.toLowerCase(), 'filter.json')), `${protocol}: filters/${protocol.toLowerCase()}/filter.json`);
    }
  });
});
