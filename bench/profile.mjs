// Where the package's time goes: every Engine API request it makes, timed by
// a recording unix-socket proxy (DOCKER_HOST points the package at it), next
// to a raw replay of the same request sequence over node:http, with a fresh
// connection per request (what bollard does) and with keep-alive.
//
//   node bench/profile.mjs            # PROFILE_SAMPLES=9 by default
//
// Prints per-request medians and the gaps the client adds between requests.

import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  api, IMAGE, SOCKET, keepAliveAgent, freshAgent, floorName, createBody, volumeCreate, volumeRemove,
  containerCreate, containerStart, containerWait, containerRemove, cleanupFloor, summarize, makeDataset,
  mkTmp, rmrf,
} from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const N = Number.parseInt(process.env.PROFILE_SAMPLES || '9', 10);
const now = () => performance.now();
const tmp = mkTmp('lr-bench-prof-');

// ---------------------------------------------------------------- proxy

const proxyPath = path.join(tmp, 'docker.sock');
let records = [];
let connections = 0;
const server = net.createServer((client) => {
  connections++;
  const upstream = net.connect(SOCKET);
  let current = null;
  client.on('data', (chunk) => {
    const m = /^(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP\/1\.[01]\r\n/.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 2048)));
    if (m) {
      current = { method: m[1], path: m[2].replace(/light-runner-[0-9a-f]{12}/g, '{id}').replace(/\?.*$/, (q) => q), t0: now(), tHead: null, tEnd: null, up: 0, down: 0, conn: connections };
      records.push(current);
    }
    if (current) current.up += chunk.length;
    if (!upstream.write(chunk)) client.pause();
  });
  upstream.on('drain', () => client.resume());
  client.on('drain', () => upstream.resume());
  upstream.on('data', (chunk) => {
    if (current) {
      const t = now();
      current.tHead ??= t;
      current.tEnd = t;
      current.down += chunk.length;
      if (current.status === undefined) current.status = Number(chunk.toString('latin1', 9, 12));
    }
    if (!client.write(chunk)) upstream.pause();
  });
  client.on('end', () => upstream.end());
  upstream.on('end', () => client.end());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
await new Promise((r) => server.listen(proxyPath, r));

const pkg = require(path.resolve(here, '..'));
const runner = new pkg.DockerRunner();
const bigRunner = new pkg.DockerRunner();

async function profiledRun(req, r = runner) {
  records = [];
  const c0 = connections;
  const t0 = now();
  const res = await r.run({ image: IMAGE, network: 'none', ...req }).result;
  const t1 = now();
  if (!res.success) throw new Error(JSON.stringify(res));
  return { total: t1 - t0, t0, t1, reqs: records.map((x) => ({ ...x })), conns: connections - c0 };
}

// An upgraded (101) attach stream stays open until the container's output
// ends: count it until its response head, like the client experiences it.
const endOf = (x) => (x.status === 101 ? x.tHead : x.tEnd) ?? x.t0;

function describe(runs, label) {
  // Align runs by request index (same sequence each time).
  const keyOf = (r) => `${r.method} ${r.path.replace(/\?.*/, '')}`;
  const seq = runs[0].reqs.map(keyOf);
  const rows = seq.map((k, i) => {
    const durs = runs.map((r) => r.reqs[i] && keyOf(r.reqs[i]) === k ? endOf(r.reqs[i]) - r.reqs[i].t0 : NaN);
    const gaps = runs.map((r) => {
      if (!r.reqs[i] || keyOf(r.reqs[i]) !== k) return NaN;
      const prevEnd = i === 0 ? r.t0 : endOf(r.reqs[i - 1]);
      return r.reqs[i].t0 - prevEnd;
    });
    return { req: k, daemonMs: summarize(durs).median, gapBeforeMs: summarize(gaps).median, status: runs[0].reqs[i].status };
  });
  const tail = summarize(runs.map((r) => r.t1 - endOf(r.reqs.at(-1)))).median;
  const total = summarize(runs.map((r) => r.total)).median;
  const sumDaemon = rows.reduce((a, r) => a + (Number.isFinite(r.daemonMs) ? r.daemonMs : 0), 0);
  const sumGaps = rows.reduce((a, r) => a + (Number.isFinite(r.gapBeforeMs) ? r.gapBeforeMs : 0), 0) + tail;
  const sequences = new Set(runs.map((r) => r.reqs.map(keyOf).join(' | ')));
  console.log(`\n## ${label}: ${runs.length} runs, median total ${total.toFixed(1)} ms, ${summarize(runs.map((r) => r.reqs.length)).median} requests on ${summarize(runs.map((r) => r.conns)).median} connections per run`);
  if (sequences.size > 1) console.log(`(request sequence varied between runs: ${sequences.size} variants; aligned on the first)`);
  console.log('| # | request | status | daemon ms (median) | client gap before (median) |');
  console.log('|---|---|---|---|---|');
  rows.forEach((r, i) => console.log(`| ${i + 1} | ${r.req} | ${r.status} | ${r.daemonMs.toFixed(1)} | ${r.gapBeforeMs.toFixed(2)} |`));
  console.log(`| | resolve after last response | | | ${tail.toFixed(2)} |`);
  console.log(`sum of request times ${sumDaemon.toFixed(1)} ms, sum of client gaps ${sumGaps.toFixed(1)} ms`);
  return { label, total, rows, tail, sumDaemon, sumGaps, variants: [...sequences] };
}

// ---------------------------------------------------------------- raw replay

async function timed(fn) {
  const t = now();
  await fn();
  return now() - t;
}

async function replay(agent, withPing = true) {
  const name = floorName();
  const t = {};
  if (withPing) t.ping = await timed(() => api('GET', '/_ping', { agent }));
  t.volumeCreate = await timed(() => volumeCreate(name, agent));
  t.containerCreate = await timed(() => containerCreate(name, createBody({ name, command: 'true', volume: name }), agent));
  t.start = await timed(() => containerStart(name, agent));
  t.wait = await timed(() => containerWait(name, agent));
  t.containerRemove = await timed(() => containerRemove(name, agent));
  t.volumeRemove = await timed(() => volumeRemove(name, agent));
  return t;
}

function describeReplay(samples, label) {
  const keys = Object.keys(samples[0]);
  const med = Object.fromEntries(keys.map((k) => [k, summarize(samples.map((s) => s[k])).median]));
  const total = Object.values(med).reduce((a, b) => a + b, 0);
  console.log(`\n## raw replay, ${label}: ${samples.length} runs, sum of medians ${total.toFixed(1)} ms`);
  console.log(keys.map((k) => `${k} ${med[k].toFixed(1)}`).join(' · '));
  return { label, med, total };
}

// ---------------------------------------------------------------- main

const out = { startedAt: new Date().toISOString(), loadavg: os.loadavg() };
try {
  await cleanupFloor();
  process.env.DOCKER_HOST = `unix://${proxyPath}`;
  // Warm: runtime, watchdog, isolated network lookup.
  await profiledRun({ command: 'true' });
  await profiledRun({ command: 'true', network: undefined });

  const trivial = [];
  const fresh = [];
  const ka = [];
  for (let i = 0; i < N; i++) {
    trivial.push(await profiledRun({ command: 'true' }));
    fresh.push(await replay(freshAgent));
    ka.push(await replay(keepAliveAgent));
  }
  out.trivial = describe(trivial, 'package, trivial run, network none');
  out.replayFresh = describeReplay(fresh, 'new connection per request (like bollard)');
  out.replayKeepAlive = describeReplay(ka, 'keep-alive agent');

  const iso = [];
  for (let i = 0; i < Math.min(N, 5); i++) iso.push(await profiledRun({ command: 'true', network: undefined }));
  out.isolated = describe(iso, 'package, trivial run, default isolated network');

  const logs = [];
  for (let i = 0; i < Math.min(N, 5); i++) logs.push(await profiledRun({ command: 'echo hi', onLog: () => {} }));
  out.withOnLog = describe(logs, 'package, `echo hi` with onLog (attach)');

  const dir = path.join(tmp, 'src');
  await makeDataset(dir, { count: 500, totalBytes: 20e6, bigBytes: 5e6 });
  const se = [];
  for (let i = 0; i < Math.min(N, 5); i++) {
    const to = path.join(tmp, `x${i}`);
    se.push(await profiledRun({ dir, command: 'mkdir -p /app/out && cp /app/big.bin /app/out/', extract: [{ from: '/app/out', to }] }));
    await rmrf(to);
  }
  out.seedExtract = describe(se, 'package, figure b (seed 20 MB + extract 5 MB)');

  if (process.env.PROFILE_BIG !== '0') {
    const to = path.join(tmp, 'big');
    const big = [await profiledRun({ command: 'mkdir -p /app/out && dd if=/dev/zero of=/app/out/big bs=1M count=1024 2>/dev/null', extract: [{ from: '/app/out', to }] }, bigRunner)];
    await rmrf(to);
    out.bigExtract = describe(big, 'package, 1 GiB extract');
  }
} finally {
  delete process.env.DOCKER_HOST;
  server.close();
  await cleanupFloor();
  keepAliveAgent.destroy();
  await rmrf(tmp);
}
fs.writeFileSync(path.join(here, 'results-profile.json'), JSON.stringify(out, null, 2));
