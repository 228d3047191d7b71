// light-runner benchmark: each figure for the package and for the raw Engine
// API doing the same work (the floor), in one invocation on one daemon.
// See BENCHMARKS.md for the method. Run: `npm run bench`.
//
// Env: BENCH_SAMPLES (a, b; default 15), BENCH_SAMPLES_C (default 3),
// BENCH_SAMPLES_D (default 3), BENCH_SAMPLES_E (default 9), BENCH_WARMUP
// (default 2), BENCH_ONLY (comma list of figures, e.g. "a,b"), BENCH_CONCURRENCY
// (c; default 50), BENCH_OUT (results file; default bench/results-latest.json).

import { createRequire } from 'node:module';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import {
  api, IMAGE, SOCKET, FLOOR_LABEL, keepAliveAgent, stats, live, floorName, createBody, volumeCreate, volumeRemove,
  containerCreate, containerStart, containerWait, containerRemove, cleanupFloor, tarStream,
  makeDataset, summarize, withRss, rmrf, mkTmp, sleep,
} from './lib.mjs';
import { startProxy } from './proxy.mjs';
import { lineChart } from './svg.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(import.meta.url);

const int = (name, dflt) => {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const N = int('BENCH_SAMPLES', 15);
const NC = int('BENCH_SAMPLES_C', 3);
const ND = int('BENCH_SAMPLES_D', 3);
const NE = int('BENCH_SAMPLES_E', 9);
const WARM = int('BENCH_WARMUP', 2);
const CONC = int('BENCH_CONCURRENCY', 50);
const ONLY = (process.env.BENCH_ONLY || 'a,b,c,d,e,f,g,h,i,w').split(',').map((s) => s.trim());
const FANIN = int('BENCH_FANIN', 500);
const CHARTS = process.env.BENCH_CHARTS || path.join(here, 'charts');
// Floor seed body: 'file' = a tar made by the tar CLI before timing, streamed
// from disk (the strict floor: only the daemon's ingest is timed); 'js' = a
// tar built in JS while walking the dir (the same work the package does).
const FLOOR_TAR = process.env.BENCH_FLOOR_TAR === 'js' ? 'js' : 'file';
const OUT = process.env.BENCH_OUT || path.join(here, 'results-latest.json');
const MB = 1e6;
const MiB = 1 << 20;

const tmpRoot = mkTmp('lr-bench-');
// Every run writes a state file (attached ones too): keep them out of the
// user's ~/.light-runner, and gone with tmpRoot.
process.env.LIGHT_RUNNER_STATE_DIR ||= path.join(tmpRoot, 'state');
let cleaning = null;
async function cleanupAll() {
  cleaning ??= (async () => {
    await cleanupFloor();
    await rmrf(tmpRoot);
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    console.error(`\n${sig}: cleaning up floor containers/volumes and ${tmpRoot} ...`);
    cleanupAll().finally(() => process.exit(130));
  });
}

const log = (...a) => console.error('[bench]', ...a);
const now = () => performance.now();

// ------------------------------------------------------------------ package

// BENCH_PKG: measure another build of the package; default this checkout.
// BENCH_PKG_B: a second build measured in the same run (figures a, b, c):
// its samples are interleaved with the first's and the floor's, so an old
// and a new build are compared under the same load.
const pkg = require(process.env.BENCH_PKG || root);
const runner = new pkg.DockerRunner();
const pkgB = process.env.BENCH_PKG_B ? require(path.resolve(process.env.BENCH_PKG_B)) : null;
const runnerB = pkgB ? new pkgB.DockerRunner() : null;
// d extracts exactly 1 GiB of file data with the default 1 GiB cap (the cap
// counts file content, not tar framing).
const bigRunner = runner;
async function pkgRun(req, r0 = runner) {
  const t0 = now();
  const r = await r0.run({ image: IMAGE, network: 'none', ...req }).result;
  const ms = now() - t0;
  if (!r.success) throw new Error(`package run failed: ${JSON.stringify(r)}`);
  if (req.extract) {
    for (const x of r.extracted || []) if (x.status !== 'ok') throw new Error(`extract not ok: ${JSON.stringify(x)}`);
  }
  return { ms, result: r };
}

// ------------------------------------------------------------------ floor

/** a: create + start + wait + remove (optionally with the run's volume). */
async function floorTrivial({ withVolume = false, networkMode = 'none', agent = keepAliveAgent } = {}) {
  const t0 = now();
  const name = floorName();
  if (withVolume) await volumeCreate(name, agent);
  await containerCreate(name, createBody({ name, command: 'true', volume: withVolume ? name : undefined, networkMode }), agent);
  await containerStart(name, agent);
  const code = await containerWait(name, agent);
  await containerRemove(name, agent);
  if (withVolume) await volumeRemove(name, agent);
  if (code !== 0) throw new Error(`floor container exited ${code}`);
  return { ms: now() - t0 };
}

/** b/d: volume + create + upload + start + wait + download to disk + remove. */
function floorTarBody(dir) {
  if (FLOOR_TAR === 'js') return tarStream(dir);
  return fs.createReadStream(`${dir}.tar`, { highWaterMark: 1 << 20 });
}
function prepareFloorTar(dir) {
  if (FLOOR_TAR === 'file') execFileSync('tar', ['-C', dir, '-cf', `${dir}.tar`, '.']);
}

async function floorSeedExtract({ dir, command, extractTo }) {
  const t0 = now();
  const name = floorName();
  await volumeCreate(name);
  await containerCreate(name, createBody({ name, command, volume: name }));
  let up = 0;
  let down = 0;
  if (dir) {
    const u0 = now();
    await api('PUT', `/containers/${name}/archive?path=/app`, { body: floorTarBody(dir) });
    up = now() - u0;
  }
  await containerStart(name);
  const code = await containerWait(name);
  if (code !== 0) throw new Error(`floor container exited ${code}`);
  let bytes = 0;
  if (extractTo) {
    await fsp.mkdir(extractTo, { recursive: true });
    const d0 = now();
    const file = path.join(extractTo, 'out.tar');
    await api('GET', `/containers/${name}/archive?path=${encodeURIComponent('/app/out')}`, { sink: fs.createWriteStream(file) });
    down = now() - d0;
    bytes = fs.statSync(file).size;
  }
  await containerRemove(name);
  await volumeRemove(name);
  return { ms: now() - t0, upMs: up, downMs: down, bytes };
}

// ------------------------------------------------------------------ helpers

/**
 * Alternates package and floor samples (ABBA...) so drift in load hits both;
 * with `pkgBFn` (BENCH_PKG_B), the second build's samples rotate in too.
 */
async function paired(label, n, pkgFn, floorFn, pkgBFn = null) {
  const p = [];
  const f = [];
  const b = [];
  const fns = [['p', pkgFn], ['f', floorFn], ...(pkgBFn ? [['b', pkgBFn]] : [])];
  for (let i = 0; i < n; i++) {
    const k = i % fns.length;
    const order = [...fns.slice(k), ...fns.slice(0, k)];
    if (i % 2 === 1) order.reverse();
    for (const [key, fn] of order) {
      const s = await fn(i);
      ({ p, f, b })[key].push(s);
    }
    process.stderr.write(`\r[bench] ${label}: ${i + 1}/${n}   `);
  }
  process.stderr.write('\n');
  return { p, f, b };
}

/** What figure() records of the second build, if one was measured. */
function withB(bSamples, pSamples, fSamples) {
  if (!bSamples || bSamples.length === 0) return {};
  const b = summarize(bSamples);
  return {
    packageB: { pkg: process.env.BENCH_PKG_B, ...b, ratio: b.median / summarize(fSamples).median },
    aOverB: summarize(pSamples).median / b.median,
    samplesB: bSamples,
  };
}

function figure(id, title, pSamples, fSamples, target, extra = {}) {
  const p = summarize(pSamples);
  const f = summarize(fSamples);
  const ratio = p.median / f.median;
  const out = { id, title, unit: 'ms', package: p, floor: f, ratio, samples: { package: pSamples, floor: fSamples }, ...extra };
  if (target) {
    out.target = target;
    out.pass = ratio <= target.max;
  }
  return out;
}

async function daemonLoad() {
  try {
    const cs = await api('GET', '/containers/json');
    return cs.data.length;
  } catch {
    return null;
  }
}

function machine() {
  const sh = (cmd, args) => {
    try { return execFileSync(cmd, args, { encoding: 'utf8' }).trim(); } catch { return null; }
  };
  return {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memTotalMiB: Math.round(os.totalmem() / MiB),
    kernel: os.release(),
    node: process.version,
    dockerServer: sh('docker', ['version', '--format', '{{.Server.Version}} (API {{.Server.APIVersion}})']),
    storageDriver: sh('docker', ['info', '--format', '{{.Driver}}']),
    tmpdir: os.tmpdir(),
  };
}

// ------------------------------------------------------------------ figures

const results = {
  startedAt: new Date().toISOString(),
  command: `BENCH_SAMPLES=${N} BENCH_SAMPLES_C=${NC} BENCH_SAMPLES_D=${ND} BENCH_SAMPLES_E=${NE} BENCH_FLOOR_TAR=${FLOOR_TAR} npm run bench`,
  config: { floorTar: FLOOR_TAR, samples: N, samplesC: NC, samplesD: ND, samplesE: NE, warmup: WARM, concurrency: CONC, image: IMAGE },
  floorClient: 'node:http over /var/run/docker.sock, one http.Agent({keepAlive:true, maxSockets:Infinity}); unversioned paths; seed tar: ' + (FLOOR_TAR === 'file' ? 'pre-built by the tar CLI before timing, streamed from disk with 1 MiB reads' : 'built in JS while walking the dir'),
  machine: machine(),
  load: { before: { loadavg: os.loadavg(), runningContainers: await daemonLoad() } },
  figures: [],
};

async function figA() {
  log('warm-up (package: runtime, watchdog, connections; floor: agent sockets)');
  for (let i = 0; i < WARM; i++) {
    await pkgRun({ command: 'true' });
    await floorTrivial();
    await floorTrivial({ withVolume: true });
  }
  if (runnerB) for (let i = 0; i < WARM; i++) await pkgRun({ command: 'true' }, runnerB);
  const { p, f, b } = await paired('a trivial run', N, () => pkgRun({ command: 'true' }), () => floorTrivial(),
    runnerB && (() => pkgRun({ command: 'true' }, runnerB)));
  results.figures.push(figure('a', "trivial run (`true`, network none): create+start+wait+remove",
    p.map((s) => s.ms), f.map((s) => s.ms), { max: 1.15 }, withB(b.map((s) => s.ms), p.map((s) => s.ms), f.map((s) => s.ms))));
  // Informational: the same floor plus the volume every run must have (spec 5).
  const v = await paired('a.vol floor with volume', N, () => pkgRun({ command: 'true' }), () => floorTrivial({ withVolume: true }));
  results.figures.push(figure('a.vol', 'trivial run vs floor + volume create/remove (info)',
    v.p.map((s) => s.ms), v.f.map((s) => s.ms), null));
}

async function figB() {
  const dir = path.join(tmpRoot, 'b-src');
  log('b: generating 500 files / 20 MB (one 5 MB big.bin)');
  await makeDataset(dir, { count: 500, totalBytes: 20 * MB, bigBytes: 5 * MB });
  prepareFloorTar(dir);
  const cmd = 'mkdir -p /app/out && cp /app/big.bin /app/out/';
  let k = 0;
  const pkgFnOf = (r0) => async () => {
    const to = path.join(tmpRoot, `b-pkg-${k++}`);
    const s = await pkgRun({ dir, command: cmd, extract: [{ from: '/app/out', to }] }, r0);
    const got = fs.statSync(path.join(to, 'big.bin')).size;
    if (got !== 5 * MB) throw new Error(`package extract wrote ${got} bytes`);
    await rmrf(to);
    return s;
  };
  const pkgFn = pkgFnOf(runner);
  const floorFn = async () => {
    const to = path.join(tmpRoot, `b-floor-${k++}`);
    const s = await floorSeedExtract({ dir, command: cmd, extractTo: to });
    await rmrf(to);
    return s;
  };
  for (let i = 0; i < WARM; i++) { await pkgFn(); await floorFn(); }
  const { p, f, b } = await paired('b seed+extract', N, pkgFn, floorFn, runnerB && pkgFnOf(runnerB));
  results.figures.push(figure('b', 'seed 500 files/20 MB + cp 5 MB + extract /app/out',
    p.map((s) => s.ms), f.map((s) => s.ms), { max: 1.3 },
    { floorUploadMs: summarize(f.map((s) => s.upMs)), floorDownloadMs: summarize(f.map((s) => s.downMs)),
      ...withB(b.map((s) => s.ms), p.map((s) => s.ms), f.map((s) => s.ms)) }));
  await rmrf(dir);
  await rmrf(`${dir}.tar`);
}

async function figC() {
  const pkgFnOf = (r0) => async () => {
    const t0 = now();
    await Promise.all(Array.from({ length: CONC }, () => pkgRun({ command: 'true' }, r0)));
    return { ms: now() - t0 };
  };
  const pkgFn = pkgFnOf(runner);
  const floorFn = async () => {
    const t0 = now();
    await Promise.all(Array.from({ length: CONC }, () => floorTrivial()));
    return { ms: now() - t0 };
  };
  const { p, f, b } = await paired(`c ${CONC} concurrent`, NC, pkgFn, floorFn, runnerB && pkgFnOf(runnerB));
  results.figures.push(figure('c', `${CONC} trivial runs started at once: wall time until all resolve`,
    p.map((s) => s.ms), f.map((s) => s.ms), { max: 1.25 }, withB(b.map((s) => s.ms), p.map((s) => s.ms), f.map((s) => s.ms))));
}

async function figD() {
  const dir = path.join(tmpRoot, 'd-src');
  log('d: generating 200 MB seed (50 x 4 MB)');
  await makeDataset(dir, { count: 50, totalBytes: 200 * MB });
  prepareFloorTar(dir);
  const seedBytes = 200 * MB;
  const extractBytes = 1024 * MiB;
  const gen = 'mkdir -p /app/out && dd if=/dev/zero of=/app/out/big bs=1M count=1024 2>/dev/null';
  let k = 0;
  // d.seed: 200 MB seed, `true`.
  const seed = await paired('d.seed 200 MB', ND,
    async () => withRss(() => pkgRun({ dir, command: 'true' })),
    async () => withRss(() => floorSeedExtract({ dir, command: 'true' })));
  // d.extract: 1 GiB produced in the container, then extracted.
  const ext = await paired('d.extract 1 GiB', ND,
    async () => {
      const to = path.join(tmpRoot, `d-pkg-${k++}`);
      try {
        const r = await withRss(() => pkgRun({ command: gen, extract: [{ from: '/app/out', to }] }, bigRunner));
        const got = fs.statSync(path.join(to, 'big')).size;
        if (got !== extractBytes) throw new Error(`package extract wrote ${got} bytes`);
        return r;
      } finally { await rmrf(to); }
    },
    async () => {
      const to = path.join(tmpRoot, `d-floor-${k++}`);
      try { return await withRss(() => floorSeedExtract({ command: gen, extractTo: to })); } finally { await rmrf(to); }
    });
  // The same command without transfer, to isolate transfer time of the package:
  // package transfer ~= package total - (floor total - floor transfer).
  const mk = (id, title, pr, fr, bytes, xferKey) => {
    const fig = figure(id, title, pr.map((s) => s.value.ms), fr.map((s) => s.value.ms), null);
    const floorXfer = summarize(fr.map((s) => s.value[xferKey]));
    const floorOther = fig.floor.median - floorXfer.median;
    fig.bytes = bytes;
    fig.throughputMBps = {
      packageEndToEnd: bytes / MB / (fig.package.median / 1000),
      floorEndToEnd: bytes / MB / (fig.floor.median / 1000),
      floorTransferOnly: bytes / MB / (floorXfer.median / 1000),
      packageTransferEstimate: bytes / MB / ((fig.package.median - floorOther) / 1000),
    };
    fig.rssGrowthMiB = {
      package: summarize(pr.map((s) => s.growth / MiB)),
      floor: summarize(fr.map((s) => s.growth / MiB)),
    };
    fig.cpuMs = {
      package: summarize(pr.map((s) => s.cpuMs)),
      floor: summarize(fr.map((s) => s.cpuMs)),
    };
    fig.target = { rssGrowthMiB: 64 };
    fig.pass = fig.rssGrowthMiB.package.max < 64;
    return fig;
  };
  results.figures.push(mk('d.seed', '200 MB seed (50 x 4 MB), `true`', seed.p, seed.f, seedBytes, 'upMs'));
  results.figures.push(mk('d.extract', '1 GiB produced by dd, extracted', ext.p, ext.f, extractBytes, 'downMs'));
  await rmrf(dir);
  await rmrf(`${dir}.tar`);
}

function child(script) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => { out += d; });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`))));
  });
}

async function figE() {
  const pkgPath = JSON.stringify(root);
  const load = `const t0=process.hrtime.bigint();require(${pkgPath});const ms=Number(process.hrtime.bigint()-t0)/1e6;` +
    'setTimeout(()=>process.stdout.write(JSON.stringify({ms,rss:process.memoryUsage.rss()})),300);';
  const bare = 'setTimeout(()=>process.stdout.write(JSON.stringify({rss:process.memoryUsage.rss()})),300);';
  // A fresh process: first run (runtime start, watchdog spawn, client) vs a
  // second one, then idle RSS of the host and of its children (the watchdog).
  const afterRun = `const {DockerRunner}=require(${pkgPath});const fs=require('fs');const r=new DockerRunner();` +
    `const go=async()=>{const t=performance.now();await r.run({image:${JSON.stringify(IMAGE)},command:'true',network:'none'}).result;return performance.now()-t};` +
    '(async()=>{const first=await go();const second=await go();await new Promise(r=>setTimeout(r,300));' +
    'let kids=0;for(const d of fs.readdirSync("/proc")){if(!/^\\d+$/.test(d))continue;try{const st=fs.readFileSync(`/proc/${d}/stat`,"utf8");' +
    'const ppid=Number(st.slice(st.lastIndexOf(")")+2).split(" ")[1]);if(ppid!==process.pid)continue;' +
    'const m=/VmRSS:\\s+(\\d+)/.exec(fs.readFileSync(`/proc/${d}/status`,"utf8"));if(m)kids+=Number(m[1])*1024}catch{}}' +
    'process.stdout.write(JSON.stringify({rss:process.memoryUsage.rss(),kids,first,second}))})();';
  const loads = [];
  const rssAddon = [];
  const rssBare = [];
  const rssAfterRun = [];
  const rssChildren = [];
  const firstRun = [];
  const secondRun = [];
  await child(load); // warm the page cache
  for (let i = 0; i < NE; i++) {
    const l = await child(load);
    loads.push(l.ms);
    rssAddon.push(l.rss / MiB);
    rssBare.push((await child(bare)).rss / MiB);
    process.stderr.write(`\r[bench] e load/rss: ${i + 1}/${NE}   `);
  }
  for (let i = 0; i < Math.min(NE, 3); i++) {
    const a = await child(afterRun);
    rssAfterRun.push(a.rss / MiB);
    rssChildren.push(a.kids / MiB);
    firstRun.push(a.first);
    secondRun.push(a.second);
  }
  process.stderr.write('\n');
  const l = summarize(loads);
  results.figures.push({
    id: 'e', title: 'addon load time (require in a fresh node) and idle RSS',
    unit: 'ms', package: l, floor: null, ratio: null, target: { maxMs: 30 }, pass: l.median < 30,
    samples: { package: loads },
    rssMiB: { bareNode: summarize(rssBare), addonLoaded: summarize(rssAddon), afterOneRun: summarize(rssAfterRun), childProcesses: summarize(rssChildren) },
    freshProcessRunMs: { first: summarize(firstRun), second: summarize(secondRun) },
  });
}

// ------------------------------------------------------------------ fan-in (f)

/** Container start/die times (epoch ms) by name, from the daemon's events stream. */
function observeEvents() {
  const seen = { start: new Map(), die: new Map() };
  const filters = encodeURIComponent(JSON.stringify({ type: ['container'], event: ['start', 'die'] }));
  const req = http.request({ socketPath: SOCKET, path: `/events?filters=${filters}`, method: 'GET' }, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!line) continue;
        try {
          const ev = JSON.parse(line);
          const name = ev.Actor?.Attributes?.name;
          const map = seen[ev.Action];
          if (name && map && !map.has(name)) map.set(name, ev.timeNano / 1e6);
        } catch { /* partial line */ }
      }
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  req.end();
  return { seen, close: () => req.destroy() };
}

/** Starts `node bench/fanin-run.mjs <cfg>`; lines are JSON events. */
function faninChild(cfg, env) {
  const c = spawn(process.execPath, [path.join(here, 'fanin-run.mjs'), JSON.stringify(cfg)], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const events = [];
  const waiters = new Set();
  let buf = '';
  c.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters) w();
  });
  const exited = new Promise((r) => c.on('exit', (code) => { for (const w of waiters) w(); r({ code, t: Date.now() }); }));
  let gone = false;
  exited.then(() => { gone = true; });
  const event = (name) => new Promise((resolve, reject) => {
    const check = () => {
      const e = events.find((x) => x.event === name);
      if (e) { waiters.delete(check); resolve(e); } else if (gone) { waiters.delete(check); reject(new Error(`fan-in child exited before '${name}'`)); }
    };
    waiters.add(check);
    check();
  });
  return { proc: c, events, event, exited };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};

async function inBatches(items, n, fn) {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(fn));
}

async function figF() {
  const obs = observeEvents();
  await sleep(300);
  try {
    // Floor: the raw API starts N sleeping containers at once (volume, create, start).
    log(`f: floor starts ${FANIN} containers at once`);
    const floorNames = Array.from({ length: FANIN }, () => floorName());
    const ft0 = Date.now();
    await Promise.all(floorNames.map(async (name) => {
      await volumeCreate(name);
      await containerCreate(name, createBody({ name, command: 'sleep 3600', volume: name }));
      await containerStart(name);
    }));
    await sleep(500);
    const floorStartMs = Math.max(...floorNames.map((n) => obs.seen.start.get(n) ?? NaN)) - ft0;
    log(`f: floor started ${FANIN} in ${(floorStartMs / 1000).toFixed(1)} s; removing them`);
    await inBatches(floorNames, 25, async (n) => { await containerRemove(n); await volumeRemove(n); });

    // The package: one process starts the detached runs and exits; another
    // hosts attached runs; the collector (through the counting proxy)
    // attaches to all of them and runs attached runs of its own.
    const budget = Number(process.env.BENCH_FANIN_BUDGET) || Math.max(60, (2.5 * floorStartMs) / 1000);
    const windowS = Number(process.env.BENCH_FANIN_WINDOW) || 30;
    const e0 = Math.ceil(Date.now() / 1000 + budget + windowS);
    const ends = Array.from({ length: FANIN }, (_, i) => e0 + Math.floor(i / 10));
    const spread = Math.ceil(FANIN / 10);
    const otherEnds = Array.from({ length: 20 }, (_, i) => e0 + ((i * 7) % spread));
    const ownEnds = Array.from({ length: 10 }, (_, i) => e0 + ((i * 11 + 3) % spread));
    const direct = { DOCKER_HOST: `unix://${SOCKET}` };
    log(`f: package starts ${FANIN} detached runs (one process) + 20 attached (another); exits from +${(e0 - Date.now() / 1000).toFixed(0)} s, 10/s`);
    const launcher = faninChild({ role: 'launch', detached: true, ends, image: IMAGE }, direct);
    const host = faninChild({ role: 'launch', detached: false, ends: otherEnds, image: IMAGE }, direct);
    const { ids, t0: pt0 } = await launcher.event('ids');
    const hostIds = (await host.event('ids')).ids;
    const lexit = await launcher.exited;
    if (lexit.code !== 0) throw new Error(`launcher exited ${lexit.code}`);
    await sleep(500);
    const starts = ids.map((id) => obs.seen.start.get(id));
    const packageStartMs = Math.max(...starts) - pt0;
    log(`f: package started ${FANIN} in ${(packageStartMs / 1000).toFixed(1)} s (launcher exited after ${((lexit.t - pt0) / 1000).toFixed(1)} s)`);

    const proxy = await startProxy(path.join(tmpRoot, 'proxy.sock'), SOCKET);
    const collector = faninChild({ role: 'collect', ids: [...ids, ...hostIds], own: ownEnds, image: IMAGE },
      { DOCKER_HOST: `unix://${proxy.sock}` });
    const attached = await collector.event('attached');
    if (attached.missing) throw new Error(`${attached.missing} runs could not be attached`);
    const wStart = attached.t + 5000;
    const wEnd = e0 * 1000 - 1000;
    const done = await collector.event('done');
    await host.exited;
    await proxy.close();
    await sleep(500);

    const windowS2 = (wEnd - wStart) / 1000;
    const during = proxy.between(wStart, wEnd);
    const resolved = new Map(collector.events.filter((e) => e.event === 'result').map((e) => [e.id, e]));
    const lat = (list) => list.map((id) => (resolved.get(id)?.t ?? NaN) - (obs.seen.die.get(id) ?? NaN)).filter(Number.isFinite);
    const detLat = lat(ids);
    const otherLat = lat(hostIds);
    const ownLat = lat(attached.own);
    const role = (id) => (ids.includes(id) ? 'detached' : hostIds.includes(id) ? 'attached elsewhere' : 'own');
    const failed = [...resolved.values()].filter((r) => r.error || !r.result?.success)
      .map((r) => ({ id: r.id, role: role(r.id), error: r.error, result: r.result, state: pkg.readState(r.id) }));
    const rssIn = done.rss.filter(([t]) => t >= wStart && t <= wEnd).map(([, b]) => b / MiB);
    const rssAll = done.rss.map(([, b]) => b / MiB);

    // Zero leaks: no container, volume or running state of any of these runs.
    const all = [...ids, ...hostIds, ...attached.own];
    const labelled = encodeURIComponent(JSON.stringify({ label: ['light-runner.run-id'] }));
    const cs = new Set((await api('GET', `/containers/json?all=true&filters=${labelled}`)).data.map((c) => c.Names[0].slice(1)));
    const vs = new Set(((await api('GET', `/volumes?filters=${labelled}`)).data.Volumes || []).map((v) => v.Name));
    const leaks = {
      containers: all.filter((id) => cs.has(id)).length,
      volumes: all.filter((id) => vs.has(id)).length,
      nonTerminalStates: all.filter((id) => pkg.readState(id)?.status === 'running').length,
      floorContainers: floorNames.filter((n) => live.containers.has(n)).length,
    };
    for (const id of all) pkg.deleteState(id);

    const perReq = {};
    for (const r of proxy.requests) {
      const k = `${r.method} ${r.path.replace(/light-runner-[0-9a-f]{12}/g, '{id}').replace(/\?.*$/, '')}`;
      perReq[k] = (perReq[k] ?? 0) + 1;
    }
    resultsF({
      runs: { detached: FANIN, attachedOtherProcess: hostIds.length, attachedOwn: attached.own.length },
      start: { packageMs: packageStartMs, floorMs: floorStartMs, ratio: packageStartMs / floorStartMs, launcherExitMs: lexit.t - pt0 },
      steady: { windowS: windowS2, requests: during.length, perSecond: during.length / windowS2, list: during.map((r) => `${r.method} ${r.path.split('?')[0]}`) },
      collectorRequests: { total: proxy.requests.length, byKind: perReq },
      latencyMs: {
        detached: { n: detLat.length, p50: pct(detLat, 50), p99: pct(detLat, 99), max: Math.max(...detLat) },
        attachedOtherProcess: { n: otherLat.length, p50: pct(otherLat, 50), p99: pct(otherLat, 99), max: Math.max(...otherLat) },
        attachedOwn: { n: ownLat.length, p50: pct(ownLat, 50), p99: pct(ownLat, 99), max: Math.max(...ownLat) },
      },
      collectorRssMiB: { steadyMedian: summarize(rssIn).median, max: Math.max(...rssAll) },
      failed: failed.length,
      failures: failed.slice(0, 20),
      leaks,
    });
  } finally {
    obs.close();
  }
}

function resultsF(f) {
  for (const x of f.failures) log(`f: run failed: ${JSON.stringify(x).slice(0, 600)}`);
  const pass = f.steady.perSecond <= 2 && f.latencyMs.detached.p99 <= 1000 && f.failed === 0
    && !f.leaks.containers && !f.leaks.volumes && !f.leaks.nonTerminalStates;
  results.figures.push({ id: 'f', title: `${f.runs.detached} detached runs collected by another process`, ...f, pass });
}

// ------------------------------------------------------------------ cost curves (g, h)

async function figG() {
  const levels = [1, 2, 4, 8, 16, 32];
  const perLevel = [];
  for (const c of levels) {
    const total = Math.max(12, 3 * c);
    const drive = async (one) => {
      let next = 0;
      const t0 = now();
      await Promise.all(Array.from({ length: c }, async () => {
        while (next < total) { next++; await one(); }
      }));
      return total / ((now() - t0) / 1000);
    };
    const p = [];
    const f = [];
    for (let k = 0; k < 2; k++) {
      const order = k % 2 === 0 ? ['p', 'f'] : ['f', 'p'];
      for (const side of order) {
        if (side === 'p') p.push(await drive(() => pkgRun({ command: 'true' })));
        else f.push(await drive(() => floorTrivial({ withVolume: true })));
      }
    }
    perLevel.push({ concurrency: c, runs: total, package: summarize(p).median, floor: summarize(f).median, samples: { package: p, floor: f } });
    log(`g: concurrency ${c}: package ${summarize(p).median.toFixed(2)} runs/s, floor ${summarize(f).median.toFixed(2)} runs/s`);
  }
  results.figures.push({ id: 'g', title: 'trivial runs per second by concurrency (floor with volume)', levels: perLevel });
  fs.mkdirSync(CHARTS, { recursive: true });
  fs.writeFileSync(path.join(CHARTS, 'concurrency.svg'), lineChart([
    { name: 'light-runner', points: perLevel.map((l) => [l.concurrency, l.package]) },
    { name: 'raw Engine API (floor)', points: perLevel.map((l) => [l.concurrency, l.floor]) },
  ], { title: 'Trivial runs per second by concurrency', xLabel: 'runs in flight', yLabel: 'runs / s', xLog: true, yFmt: (v) => v.toFixed(1) }));
}

async function figH() {
  const sizes = [
    { label: '1 MB', bytes: 1 * MB, count: 10, n: 5 },
    { label: '10 MB', bytes: 10 * MB, count: 10, n: 5 },
    { label: '100 MB', bytes: 100 * MB, count: 25, n: 3 },
    { label: '1 GB', bytes: 1000 * MB, count: 64, n: 2 },
  ];
  const rows = [];
  for (const s of sizes) {
    const dir = path.join(tmpRoot, `h-${s.bytes}`);
    await makeDataset(dir, { count: s.count, totalBytes: s.bytes });
    prepareFloorTar(dir);
    let k = 0;
    const pkgFn = async () => {
      const to = path.join(tmpRoot, `h-pkg-${k++}`);
      try {
        const r = await pkgRun({ dir, command: 'true', extract: [{ from: '/app', to }] });
        return r.ms;
      } finally { await rmrf(to); }
    };
    const floorFn = async () => {
      const name = floorName();
      const to = path.join(tmpRoot, `h-floor-${k++}`);
      const t0 = now();
      try {
        await volumeCreate(name);
        await containerCreate(name, createBody({ name, command: 'true', volume: name }));
        await api('PUT', `/containers/${name}/archive?path=/app`, { body: floorTarBody(dir) });
        await containerStart(name);
        if ((await containerWait(name)) !== 0) throw new Error('floor container failed');
        await fsp.mkdir(to, { recursive: true });
        await api('GET', `/containers/${name}/archive?path=/app`, { sink: fs.createWriteStream(path.join(to, 'out.tar')) });
        await containerRemove(name);
        await volumeRemove(name);
        return now() - t0;
      } finally { await rmrf(to); }
    };
    const { p, f } = await paired(`h seed+extract ${s.label}`, s.n, pkgFn, floorFn);
    rows.push({ label: s.label, bytes: s.bytes, package: summarize(p), floor: summarize(f), ratio: summarize(p).median / summarize(f).median, samples: { package: p, floor: f } });
    await rmrf(dir);
    await rmrf(`${dir}.tar`);
  }
  results.figures.push({ id: 'h', title: 'seed a dir + extract it back (`true`), by size', sizes: rows });
  fs.mkdirSync(CHARTS, { recursive: true });
  fs.writeFileSync(path.join(CHARTS, 'transfer.svg'), lineChart([
    { name: 'light-runner', points: rows.map((r) => [r.bytes, r.package.median / 1000]) },
    { name: 'raw Engine API (floor)', points: rows.map((r) => [r.bytes, r.floor.median / 1000]) },
  ], { title: 'Seed + extract time by size', xLabel: 'bytes seeded, then extracted', yLabel: 'seconds (median)', xLog: true, yLog: true,
    xFmt: (b) => sizes.find((s) => s.bytes === b)?.label ?? String(b), yFmt: (v) => (v < 1 ? v.toFixed(2) : v.toFixed(1)) }));
}

// ------------------------------------------------------------------ build steps (i)

/** The package's Dockerfile for `steps` (src/image.rs: exec form through /bin/sh -c). */
function dockerfileOf(image, steps) {
  return `FROM ${image}\n${steps.map((s) => `RUN ${JSON.stringify(['/bin/sh', '-c', s])}\n`).join('')}`;
}

function contextTar(dockerfile) {
  const body = Buffer.from(dockerfile);
  const h = Buffer.alloc(512);
  h.write('Dockerfile', 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(body.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, '0') + '\0', 136);
  h.fill(0x20, 148, 156);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const x of h) sum += x;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([h, body, pad, Buffer.alloc(1024)]);
}

async function removeImage(ref) {
  await api('DELETE', `/images/${encodeURIComponent(ref)}?force=true`, { okStatus: [200, 404, 409] }).catch(() => {});
}

async function figI() {
  const cached = [`echo cached-${Date.now()}`];
  // Warm: the first run builds and tags the cache image.
  await pkgRun({ command: 'true', run: cached });
  const plain = () => pkgRun({ command: 'true' });
  const withCache = () => pkgRun({ command: 'true', run: cached });
  const c = await paired('i.cached run steps vs plain run', N, withCache, plain);
  results.figures.push(figure('i.cached', '`run` steps already cached vs a plain run of the base image',
    c.p.map((s) => s.ms), c.f.map((s) => s.ms), { max: 1.05 }));
  // First builds: the package (build + run) vs the raw API building the same
  // Dockerfile, then the same run lifecycle on the built image.
  const tags = [];
  let k = 0;
  const pkgFirst = async () => {
    const steps = [`echo first-${process.pid}-${Date.now()}-${k++}`];
    const r = await pkgRun({ command: 'true', run: steps });
    tags.push(`light-runner-cache:${cacheHex(IMAGE, steps)}`);
    return r;
  };
  const floorFirst = async () => {
    const steps = [`echo first-${process.pid}-${Date.now()}-${k++}`];
    const tag = `lr-bench-build:${floorName().slice(9)}`;
    tags.push(tag);
    const t0 = now();
    const q = new URLSearchParams({ dockerfile: 'Dockerfile', t: tag, rm: '1', forcerm: '1', labels: JSON.stringify({ [FLOOR_LABEL]: tag }) });
    const res = await api('POST', `/build?${q}`, { body: contextTar(dockerfileOf(IMAGE, steps)), headers: { 'Content-Type': 'application/x-tar' } });
    if (typeof res.data === 'string' && res.data.includes('errorDetail')) throw new Error(`floor build failed: ${res.data}`);
    const name = floorName();
    await volumeCreate(name);
    await containerCreate(name, { ...createBody({ name, command: 'true', volume: name }), Image: tag });
    await containerStart(name);
    await containerWait(name);
    await containerRemove(name);
    await volumeRemove(name);
    return { ms: now() - t0 };
  };
  try {
    const b = await paired('i.build first build', Math.max(3, Math.round(N / 3)), pkgFirst, floorFirst);
    results.figures.push(figure('i.build', 'first build of one `run` step + run vs raw API build + run',
      b.p.map((s) => s.ms), b.f.map((s) => s.ms), { max: 1.1 }));
  } finally {
    tags.push(`light-runner-cache:${cacheHex(IMAGE, cached)}`);
    for (const t of tags) await removeImage(t);
  }
}

/** The package's cache key (src/image.rs cache_tag): sha256 of JSON [image, steps]. */
function cacheHex(image, steps) {
  return crypto.createHash('sha256').update(JSON.stringify([image, steps])).digest('hex');
}

// ------------------------------------------------------------------ report

const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const mmm = (s, d = 0) => (s && s.n ? `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})` : '-');

function table() {
  const rows = [['fig', 'what', 'package ms med (min–max)', 'floor ms med (min–max)', 'ratio', 'target', 'verdict']];
  for (const f of results.figures) {
    if (f.id === 'f') {
      rows.push(['f', `${f.runs.detached} detached (+${f.runs.attachedOtherProcess} attached elsewhere, +${f.runs.attachedOwn} own): start all`, fmt(f.start.packageMs), fmt(f.start.floorMs), `${fmt(f.start.ratio, 2)}×`, 'info', '']);
      rows.push(['f.wait', `collector daemon requests/s while waiting (${fmt(f.steady.windowS)} s window)`, fmt(f.steady.perSecond, 3), '-', '-', '≤ 2/s', f.steady.perSecond <= 2 ? 'PASS' : 'MISS']);
      const l = f.latencyMs;
      rows.push(['f.lat', 'exit → result ms p50 / p99 (detached; attached elsewhere; own)', `${fmt(l.detached.p50)} / ${fmt(l.detached.p99)}; ${fmt(l.attachedOtherProcess.p50)} / ${fmt(l.attachedOtherProcess.p99)}; ${fmt(l.attachedOwn.p50)} / ${fmt(l.attachedOwn.p99)}`, '-', '-', 'p99 ≤ 1000', l.detached.p99 <= 1000 ? 'PASS' : 'MISS']);
      rows.push(['f.rss', 'collector RSS MiB steady / max', `${fmt(f.collectorRssMiB.steadyMedian, 1)} / ${fmt(f.collectorRssMiB.max, 1)}`, '-', '-', 'info', '']);
      rows.push(['f.leaks', 'containers / volumes / running states left; failed runs', `${f.leaks.containers} / ${f.leaks.volumes} / ${f.leaks.nonTerminalStates}; ${f.failed}`, '-', '-', '0', f.pass ? 'PASS' : 'MISS']);
      continue;
    }
    if (f.id === 'g') {
      for (const l of f.levels) rows.push([`g.${l.concurrency}`, `trivial runs/s at concurrency ${l.concurrency} (${l.runs} runs)`, fmt(l.package, 2), fmt(l.floor, 2), `${fmt(l.floor / l.package, 2)}× time`, 'info', '']);
      continue;
    }
    if (f.id === 'h') {
      for (const r of f.sizes) rows.push([`h.${r.label.replace(' ', '')}`, `seed + extract ${r.label}`, mmm(r.package), mmm(r.floor), `${fmt(r.ratio, 2)}×`, 'info', '']);
      continue;
    }
    if (f.id === 'w.idle') {
      rows.push(['w.idle', 'idle pool of 8: requests/s, RSS MiB', fmt(f.idle.requestsPerSecond, 2), fmt(f.idle.rssMiB, 1), '-', 'info', '']);
      continue;
    }
    if (f.id === 'w') {
      rows.push(['w', 'warm trivial run p50 (p99)', `${fmt(f.package.median)} (${fmt(f.p99.warm)})`, `${fmt(f.floor.median)} (${fmt(f.p99.floor)})`, `${fmt(f.ratio, 2)}×`, '≤ 0.4×', f.pass ? 'PASS' : 'MISS']);
      rows.push(['', '  cold path, same run p50 (p99)', `${fmt(f.cold.median)} (${fmt(f.p99.cold)})`, fmt(f.floor.median), `${fmt(f.coldRatio, 2)}×`, '', '']);
      continue;
    }
    if (f.id === 'e') {
      rows.push([f.id, 'require() in fresh node', mmm(f.package, 1), '-', '-', '< 30 ms', f.pass ? 'PASS' : 'MISS']);
      rows.push(['e.rss', 'idle RSS MiB: bare / +addon / after runs', '-', `${fmt(f.rssMiB.bareNode.median, 1)} / ${fmt(f.rssMiB.addonLoaded.median, 1)} / ${fmt(f.rssMiB.afterOneRun.median, 1)}`, '-', 'info', '']);
      rows.push(['e.kids', 'RSS MiB of child processes (watchdog)', '-', fmt(f.rssMiB.childProcesses.median, 1), '-', 'info', '']);
      rows.push(['e.first', 'fresh process: 1st run ms / 2nd run ms', '-', `${fmt(f.freshProcessRunMs.first.median)} / ${fmt(f.freshProcessRunMs.second.median)}`, '-', 'info', '']);
      continue;
    }
    let target = '';
    let verdict = '';
    if (f.target?.max) { target = `≤ ${f.target.max}×`; verdict = f.pass ? 'PASS' : 'MISS'; }
    if (f.target?.rssGrowthMiB) { target = 'RSS < 64 MB'; verdict = f.pass ? 'PASS' : 'MISS'; }
    rows.push([f.id, f.title.slice(0, 44), mmm(f.package), mmm(f.floor), `${fmt(f.ratio, 2)}×`, target, verdict]);
    if (f.packageB) {
      rows.push(['', `  B = ${path.basename(f.packageB.pkg)}; A/B medians ${fmt(f.aOverB, 2)}×`, mmm(f.packageB), mmm(f.floor), `${fmt(f.packageB.ratio, 2)}×`, '', '']);
    }
    if (f.throughputMBps) {
      const t = f.throughputMBps;
      rows.push(['', `  MB/s end-to-end pkg/floor; xfer est/floor`, `${fmt(t.packageEndToEnd)} / ${fmt(t.packageTransferEstimate)} (xfer est)`,
        `${fmt(t.floorEndToEnd)} / ${fmt(t.floorTransferOnly)} (xfer)`, '', '', '']);
      rows.push(['', '  RSS growth MiB max-baseline', mmm(f.rssGrowthMiB.package, 1), mmm(f.rssGrowthMiB.floor, 1), '', '< 64 MB', '']);
      rows.push(['', '  CPU ms of the Node process (all threads)', mmm(f.cpuMs.package), mmm(f.cpuMs.floor), `${fmt(f.cpuMs.package.median / f.cpuMs.floor.median, 2)}×`, '', '']);
    }
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(w[i])).join(' | ')} |`;
  return [line(rows[0]), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

/**
 * w: warm containers (RunnerOptions.warm). Trivial runs on a warm runner
 * against the floor of figure a (create+start+wait+remove) and against
 * the cold path, interleaved; seed + extract of a small folder; 50
 * concurrent runs with warm: 8; and what an idle pool costs (containers,
 * this process's RSS, daemon requests per second through a counting proxy).
 */
async function figW() {
  const NW = int('BENCH_SAMPLES_W', 40);
  const warmRunner = new pkg.DockerRunner({ warm: 4 });
  const base = { image: IMAGE, networks: ['none'] };
  await warmRunner.prewarm(base, 4);
  const warmRun = async (req = {}) => {
    const t0 = now();
    const r = await warmRunner.run({ ...base, command: 'true', ...req }).result;
    if (!r.success) throw new Error(`warm run failed: ${JSON.stringify(r)}`);
    return { ms: now() - t0 };
  };
  const coldRun = () => pkgRun({ command: 'true' });
  for (let i = 0; i < WARM; i++) { await warmRun(); await coldRun(); await floorTrivial(); }
  // Each warm run waits for the pool to have one ready again, as a steady
  // stream of requests would (a burst past the pool is the cold path).
  const readyAgain = () => warmRunner.prewarm(base, 1);
  const w = [];
  const f = [];
  const c = [];
  for (let i = 0; i < NW; i++) {
    await readyAgain();
    const order = [['w', () => warmRun()], ['f', () => floorTrivial()], ['c', coldRun]];
    const k = i % 3;
    for (const [key, fn] of [...order.slice(k), ...order.slice(0, k)]) {
      if (key === 'w') await readyAgain();
      const s = await fn();
      ({ w, f, c })[key].push(s.ms);
    }
    process.stderr.write(`\r[bench] w warm trivial: ${i + 1}/${NW}   `);
  }
  process.stderr.write('\n');
  const fig = figure('w', 'warm trivial run (`true`) vs the floor of figure a', w, f, { max: 0.4 });
  fig.p99 = { warm: pct(w, 99), floor: pct(f, 99), cold: pct(c, 99) };
  fig.cold = summarize(c);
  fig.coldRatio = fig.cold.median / fig.floor.median;
  results.figures.push(fig);

  // Seed + extract, small.
  const dir = path.join(tmpRoot, 'w-src');
  await makeDataset(dir, { count: 20, totalBytes: 200_000, bigBytes: 50_000 });
  const cmd = 'mkdir -p /app/out && cp /app/big.bin /app/out/';
  let k = 0;
  const seedWarm = async () => {
    await readyAgain();
    const to = path.join(tmpRoot, `w-x-${k++}`);
    const t0 = now();
    const r = await warmRunner.run({ ...base, dir, command: cmd, extract: [{ from: '/app/out', to }] }).result;
    const ms = now() - t0;
    if (!r.success || r.extracted[0].status !== 'ok') throw new Error(JSON.stringify(r));
    await rmrf(to);
    return { ms };
  };
  const seedFloor = async () => {
    const to = path.join(tmpRoot, `w-f-${k++}`);
    prepareFloorTar(dir);
    const s = await floorSeedExtract({ dir, command: cmd, extractTo: to });
    await rmrf(to);
    return s;
  };
  const ws = [];
  const fs2 = [];
  for (let i = 0; i < Math.max(5, Math.floor(NW / 4)); i++) {
    ws.push((await seedWarm()).ms);
    fs2.push((await seedFloor()).ms);
  }
  results.figures.push(figure('w.seed', 'warm: seed 20 files/200 kB + extract', ws, fs2, null));
  await rmrf(dir);

  // 50 concurrent with warm: 8.
  const burstRunner = new pkg.DockerRunner({ warm: 8 });
  await burstRunner.prewarm(base, 8);
  const bw = [];
  const bf = [];
  for (let i = 0; i < NC; i++) {
    await burstRunner.prewarm(base, 8);
    let t0 = now();
    const rs = await Promise.all(Array.from({ length: CONC }, () => burstRunner.run({ ...base, command: 'true' }).result));
    bw.push(now() - t0);
    if (!rs.every((r) => r.success)) throw new Error('a burst run failed');
    t0 = now();
    await Promise.all(Array.from({ length: CONC }, () => floorTrivial()));
    bf.push(now() - t0);
  }
  results.figures.push(figure('w.burst', `${CONC} concurrent runs, warm: 8`, bw, bf, null));
  await burstRunner.close();

  // The idle cost of a pool of 8: containers, RSS, daemon requests/s.
  const prevHost = process.env.DOCKER_HOST;
  const proxy = await startProxy(path.join(tmpRoot, 'w-proxy.sock'), SOCKET);
  process.env.DOCKER_HOST = `unix://${proxy.sock}`;
  const idleRunner = new pkg.DockerRunner({ warm: 8 });
  try {
    await idleRunner.prewarm(base, 8);
    await sleep(2000);
    const rss0 = process.memoryUsage().rss;
    const i0 = Date.now();
    await sleep(int('BENCH_IDLE_MS', 10_000));
    const i1 = Date.now();
    const reqs = proxy.between(i0, i1).length;
    results.figures.push({
      id: 'w.idle', title: 'an idle pool of 8 (info)',
      idle: { containers: 8, requestsPerSecond: reqs / ((i1 - i0) / 1000), rssMiB: rss0 / MiB, windowMs: i1 - i0 },
    });
  } finally {
    await idleRunner.close();
    if (prevHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = prevHost;
    await proxy.close();
  }
  await warmRunner.close();
}

let failed = false;
const t0 = now();
try {
  await cleanupFloor(); // leftovers of an interrupted earlier bench
  const figs = { a: figA, b: figB, c: figC, d: figD, e: figE, f: figF, g: figG, h: figH, i: figI, w: figW };
  for (const id of ONLY) {
    if (!figs[id]) continue;
    try {
      await figs[id]();
    } catch (e) {
      failed = true;
      log(`figure ${id} failed: ${e.stack || e}`);
      results.figures.push({ id, error: String(e.message || e) });
    }
  }
} finally {
  results.load.after = { loadavg: os.loadavg(), runningContainers: await daemonLoad() };
  results.totalSeconds = (now() - t0) / 1000;
  results.floorRequests = { total: stats.requests, onReusedSocket: stats.reused };
  await cleanupAll();
  keepAliveAgent.destroy();
}
fs.writeFileSync(OUT, JSON.stringify(results, null, 2));
const ok = results.figures.filter((f) => !f.error);
console.log(`\nlight-runner bench — ${results.machine.nproc} cpu, ${results.machine.memTotalMiB} MiB, docker ${results.machine.dockerServer}, kernel ${results.machine.kernel}, node ${results.machine.node}`);
console.log(`load avg before ${results.load.before.loadavg.map((x) => x.toFixed(2)).join(' ')} (${results.load.before.runningContainers} running containers), after ${results.load.after.loadavg.map((x) => x.toFixed(2)).join(' ')} (${results.load.after.runningContainers}); ${results.totalSeconds.toFixed(0)} s; floor: ${results.floorRequests.total} requests, ${results.floorRequests.onReusedSocket} on reused sockets`);
results.figures = ok;
console.log(table());
console.log(`results: ${path.relative(process.cwd(), OUT)}`);
if (live.containers.size || live.volumes.size) console.error('[bench] WARNING: floor resources left:', [...live.containers], [...live.volumes]);
process.exitCode = failed ? 1 : 0;
