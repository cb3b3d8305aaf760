// How long reading a mesh file takes: the quick YAML read (js-yaml, what a
// valid plain config goes through), the full YAML parse with positions
// (`yaml`, what a config with aliases, merge keys or a problem goes through),
// and the whole mesh parser (YAML, schema, references, normalising) as
// `validate`, `apply` and a reload run it. Prints numbers; asserts nothing.
//
//   node --import tsx test/bench/config-parse.ts [--clusters 100,1000,5000] [--runs 40]
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { createMeshParser } from '../../xds-server/config/index.ts';
import { quickYaml } from '../../xds-server/config/quick-yaml.ts';
import { DEFAULT_YAML_LIMITS } from '../../xds-server/config/source.ts';
import { benchMesh } from './xds-fanout/servers.ts';

const { values } = parseArgs({ options: { clusters: { type: 'string', default: '100,1000,5000' }, runs: { type: 'string', default: '40' } } });
const runs = Number(values.runs);

/** Median ms per call over `runs` calls, after as many untimed ones (the code compiled, as in a long-lived process). */
function median(fn: () => unknown): number {
  for (let i = 0; i < runs; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const parse = createMeshParser();
console.log('clusters  KB     quick YAML read  full YAML parse  mesh parser (whole)');
for (const clusters of values.clusters!.split(',').map(Number)) {
  const text = benchMesh(clusters, true);
  const first = parse(text, 'mesh.yaml');
  if (!first.ok) throw new Error(`the bench mesh does not parse: ${JSON.stringify(first.errors[0])}`);
  const quick = median(() => quickYaml(text, DEFAULT_YAML_LIMITS));
  const full = median(() => parseDocument(text, { uniqueKeys: true, merge: true }).toJS());
  const whole = median(() => parse(text, 'mesh.yaml'));
  const cols = [
    String(clusters).padStart(8),
    (text.length / 1024).toFixed(0).padStart(5),
    `${quick.toFixed(1)} ms`.padStart(16),
    `${full.toFixed(1)} ms`.padStart(16),
    `${whole.toFixed(1)} ms`.padStart(20),
  ];
  console.log(cols.join(' '));
}
