// The main job, end to end: seed a folder holding a Node script, pass it JSON
// on stdin, stream its logs, and extract the file it writes.
//   npm run example          (needs the local image from scripts/build-test-images.sh)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DockerRunner } from 'light-runner';

const job = fs.mkdtempSync(path.join(os.tmpdir(), 'light-runner-job-'));
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'light-runner-out-'));
fs.writeFileSync(path.join(job, 'main.js'), `
  let raw = '';
  process.stdin.on('data', (c) => (raw += c));
  process.stdin.on('end', () => {
    const { numbers } = JSON.parse(raw);
    const sum = numbers.reduce((a, b) => a + b, 0);
    console.log('summing', numbers.length, 'numbers');
    require('fs').mkdirSync('out', { recursive: true });
    require('fs').writeFileSync('out/result.json', JSON.stringify({ sum }));
  });
`);

const runner = new DockerRunner({ memory: '256m', cpus: '1' });
const execution = runner.run({
  image: process.env.LIGHT_RUNNER_EXAMPLE_IMAGE ?? 'light-runner-node:latest',
  command: 'node main.js',
  dir: job,
  input: { numbers: [1, 2, 3, 4, 5] },
  timeout: 60_000,
  onLog: (line) => console.log(`[container] ${line}`),
  extract: [{ from: 'out', to: out }],
});
console.log('started', execution.id);
try {
  const result = await execution.result;
  console.log(result);
  console.log('result.json:', fs.readFileSync(path.join(out, 'result.json'), 'utf8'));
  process.exitCode = result.success ? 0 : 1;
} finally {
  fs.rmSync(job, { recursive: true, force: true });
  fs.rmSync(out, { recursive: true, force: true });
}
