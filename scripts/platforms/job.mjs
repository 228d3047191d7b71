// The job `npm run test:platforms` runs on each platform it can run, from a
// consumer project where `light-runner` was installed from the packed
// tarballs: a seeded folder (`dir`), JSON on stdin (`input`), log lines
// (`onLog`) and an extract, on the local busybox image. argv[2]: a scratch
// folder. Prints one JSON line: what ran (Node, arch, libc, the addon file
// this process mapped) and what came back.
import fs from 'node:fs';
import path from 'node:path';

import { DockerRunner } from 'light-runner';

const work = path.resolve(process.argv[2]);
const seed = path.join(work, 'seed');
const results = path.join(work, 'results');
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(path.join(seed, 'data'), { recursive: true });
fs.writeFileSync(path.join(seed, 'data', 'greeting.txt'), 'hello from the seed\n');
fs.writeFileSync(path.join(seed, 'job.sh'), [
  'input=$(cat)',
  'echo "seeded: $(cat data/greeting.txt)"',
  'echo "input: $input"',
  'mkdir -p out',
  'printf "%s" "$input" > out/input.json',
  'cp data/greeting.txt out/greeting.txt',
  'echo "arch: $(uname -m)"',
  'echo done',
  '',
].join('\n'));

const input = { numbers: [1, 2, 3], from: `${process.platform}-${process.arch}` };
const lines = [];
const t0 = Date.now();
const ex = new DockerRunner().run({
  image: 'light-runner-busybox:latest',
  command: 'sh job.sh',
  dir: seed,
  input,
  network: 'none',
  onLog: (line) => lines.push(line),
  extract: [{ from: 'out', to: results }],
});
const result = await ex.result;
const ms = Date.now() - t0;

const read = (f) => { try { return fs.readFileSync(path.join(results, f), 'utf8'); } catch { return null; } };
const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n')
  .map((l) => l.split(/\s+/).slice(5).join(' ')).filter((f) => f.endsWith('.node'));
const glibc = process.report.getReport().header.glibcVersionRuntime;
process.stdout.write(`${JSON.stringify({
  node: process.version,
  arch: process.arch,
  libc: glibc ? `glibc ${glibc}` : 'musl',
  addon: [...new Set(maps)],
  id: ex.id,
  ms,
  expectInput: JSON.stringify(input),
  result: { success: result.success, exitCode: result.exitCode, extracted: result.extracted },
  lines,
  files: { 'input.json': read('input.json'), 'greeting.txt': read('greeting.txt') },
})}\n`);
