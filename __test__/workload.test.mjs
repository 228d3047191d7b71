// A real workload on a real language runtime: a Node script seeded from
// `dir`, JSON input on stdin, results extracted. The image
// `light-runner-node:latest` (scripts/build-test-images.sh) holds the host's
// node binary and its libraries; no registry is involved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { DockerRunner } from '../index.mjs';
import { NODE_IMAGE, rmrf, runToEnd, tmpdir, treeOf } from './helpers.mjs';

const MAIN_JS = `
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { stats } = require('./lib/stats.js');

let raw = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { raw += c; });
process.stdin.on('end', () => {
  const input = JSON.parse(raw);
  const result = {
    job: input.job,
    stdinBytes: Buffer.byteLength(raw),
    ...stats(input.numbers),
    sortedWords: [...input.words].sort(),
    wordLengths: Object.fromEntries(input.words.map((w) => [w, w.length])),
    node: process.version,
    cwd: process.cwd(),
  };
  fs.mkdirSync('/app/out/details', { recursive: true });
  fs.writeFileSync('/app/out/result.json', JSON.stringify(result, null, 2));
  fs.writeFileSync(path.join('/app/out/details', 'count.txt'), String(input.numbers.length));
  console.log('processed ' + input.numbers.length + ' numbers');
  console.error('done on stderr');
});
`;

const STATS_JS = `
exports.stats = (nums) => ({
  sum: nums.reduce((a, b) => a + b, 0),
  min: Math.min(...nums),
  max: Math.max(...nums),
  sorted: [...nums].sort((a, b) => a - b),
});
`;

test('workload: node main.js from dir reads input on stdin, writes out/result.json, which is extracted', { timeout: 120_000 }, async (t) => {
  const dir = tmpdir('lr-workload-src-');
  const base = tmpdir('lr-workload-out-');
  try {
    fs.writeFileSync(path.join(dir, 'main.js'), MAIN_JS);
    fs.mkdirSync(path.join(dir, 'lib'));
    fs.writeFileSync(path.join(dir, 'lib/stats.js'), STATS_JS);
    // Ignored by default: must not reach the container (main.js never needs it).
    fs.mkdirSync(path.join(dir, 'node_modules/junk'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'node_modules/junk/index.js'), 'throw new Error("seeded")');

    const input = {
      job: 'stats-ü-✓',
      numbers: [42, -7, 3.5, 1000, 0, 19, -250, 8],
      words: ['pear', 'apple', 'fig', 'banana', 'Cherry'],
    };
    const to = path.join(base, 'results/nested');
    const runner = new DockerRunner();
    const { result, lines } = await runToEnd(t, runner, {
      image: NODE_IMAGE,
      network: 'none',
      dir,
      command: 'node main.js',
      input,
      extract: [{ from: 'out', to }],
    });

    assert.equal(result.success, true, `${JSON.stringify(result)}\n${lines.join('\n')}`);
    assert.equal(result.exitCode, 0);
    assert.ok(lines.includes('processed 8 numbers'), lines.join('\n'));
    assert.ok(lines.includes('done on stderr'), lines.join('\n'));
    assert.equal(result.extracted.length, 1);
    assert.equal(result.extracted[0].status, 'ok', JSON.stringify(result.extracted));
    assert.ok(result.extracted[0].bytes > 0);
    assert.deepEqual(treeOf(to), ['details/count.txt:file', 'details:dir', 'result.json:file']);

    const out = JSON.parse(fs.readFileSync(path.join(to, 'result.json'), 'utf8'));
    assert.deepEqual(out, {
      job: 'stats-ü-✓',
      stdinBytes: Buffer.byteLength(JSON.stringify(input)),
      sum: 815.5,
      min: -250,
      max: 1000,
      sorted: [-250, -7, 0, 3.5, 8, 19, 42, 1000],
      sortedWords: ['Cherry', 'apple', 'banana', 'fig', 'pear'],
      wordLengths: { pear: 4, apple: 5, fig: 3, banana: 6, Cherry: 6 },
      node: out.node,
      cwd: '/app',
    });
    assert.match(out.node, /^v\d+\.\d+\.\d+$/);
    assert.equal(fs.readFileSync(path.join(to, 'details/count.txt'), 'utf8'), '8');
  } finally {
    rmrf(dir);
    rmrf(base);
  }
});

test('workload: a script that exits non-zero fails the run with its exit code and extracts nothing', { timeout: 120_000 }, async (t) => {
  const dir = tmpdir('lr-workload-src-');
  const base = tmpdir('lr-workload-out-');
  try {
    fs.writeFileSync(path.join(dir, 'main.js'), `
      let raw = '';
      process.stdin.on('data', (c) => { raw += c; });
      process.stdin.on('end', () => {
        const { numbers } = JSON.parse(raw);
        require('fs').mkdirSync('/app/out', { recursive: true });
        require('fs').writeFileSync('/app/out/partial.txt', 'x');
        if (numbers.some((n) => typeof n !== 'number')) { console.error('bad input'); process.exit(4); }
      });
    `);
    const to = path.join(base, 'to');
    const runner = new DockerRunner();
    const { result, lines } = await runToEnd(t, runner, {
      image: NODE_IMAGE,
      network: 'none',
      dir,
      command: 'node main.js',
      input: { numbers: [1, 'two', 3] },
      extract: [{ from: 'out', to }],
    });
    assert.equal(result.success, false);
    assert.equal(result.exitCode, 4);
    assert.ok(lines.includes('bad input'), lines.join('\n'));
    assert.equal('extracted' in result, false);
    assert.equal(fs.existsSync(to), false);
  } finally {
    rmrf(dir);
    rmrf(base);
  }
});
