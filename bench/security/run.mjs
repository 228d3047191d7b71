// The escape and abuse suite: every attempt of probes.mjs under baseline,
// restricted and runsc (gVisor, baseline profile), each with its positive
// control, on a private dockerd of its own (runsc registered; data root on a
// small loop-mounted ext4 file system; json-file logs capped), so a full
// disk or a flood never touches the host's. After every job: the host (this
// process) is alive, the result was recorded in the state file, and the
// private daemon holds no labelled container or volume (checked before any
// cleanup). Exits 1 on any broken expectation.
//
//   npm run security                  full run, writes SECURITY.md's table
//   npm run security -- --short       the CI version (smaller sizes), report on stdout
//   options: --only=key,key  --out=FILE
//
// Needs root (loop mount, a private dockerd), runsc (apt-get install runsc)
// and the images of scripts/build-test-images.sh.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { DockerRunner, deleteState, readState } from '../../index.mjs';
import { BUSYBOX, NODE_IMAGE, rmrf, sleep, tmpdir } from '../../__test__/helpers.mjs';
import { PrivateDockerd, RUNSC, runscInstalled, until } from '../../__test__/private-dockerd.mjs';
import { SUID_IMAGE, probes } from './probes.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
  return m ? [m[1], m[2] ?? true] : [a, true];
}));
const short = Boolean(args.short);
const only = args.only ? new Set(String(args.only).split(',')) : null;
const out = args.out ?? (short ? null : path.join(ROOT, 'SECURITY.md'));

const P = short
  ? { diskMiB: 640, fillMb: 100, workdirMb: 100, memBombMb: 300, floodMb: 8, lineMb: 20, zombies: 30, bombMs: 4000 }
  : { diskMiB: 768, fillMb: 200, workdirMb: 4000, memBombMb: 2000, floodMb: 256, lineMb: 200, zombies: 90, bombMs: 10_000 };

const CONFIGS = {
  baseline: {},
  restricted: { securityProfile: 'restricted' },
  runsc: { runtime: 'runsc' },
};

const PROBE_CAP_MS = 180_000;

const work = tmpdir('lr-sec-');
const pd = new PrivateDockerd({ prefix: 'lr-sec-d-', runtimes: { runsc: RUNSC }, diskMiB: P.diskMiB, logMaxSize: '20m' });
const saved = { DOCKER_HOST: process.env.DOCKER_HOST, LIGHT_RUNNER_STATE_DIR: process.env.LIGHT_RUNNER_STATE_DIR };
const stateDir = path.join(work, 'state');
const failures = [];
const rows = [];
const t0 = Date.now();

function note(s) {
  process.stderr.write(`${s}\n`);
}

async function setUp() {
  if (!runscInstalled()) throw new Error('runsc is not installed (apt-get install runsc)');
  await pd.start({ images: [BUSYBOX, NODE_IMAGE] });
  const dockerfile = [
    `FROM ${NODE_IMAGE}`,
    "RUN echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >> /etc/passwd && echo 'nobody:x:65534:' >> /etc/group"
      + ' && mkdir -p /usr/local/bin && cp /usr/bin/node /usr/local/bin/suid-node && chmod 4755 /usr/local/bin/suid-node',
  ].join('\n');
  execFileSync('docker', ['-H', pd.sock, 'build', '-q', '-t', SUID_IMAGE, '-'], { input: dockerfile, stdio: ['pipe', 'ignore', 'inherit'] });
  process.env.DOCKER_HOST = pd.sock;
  process.env.LIGHT_RUNNER_STATE_DIR = stateDir;
  // The shared bridge exists (its gateway is the host listener's address).
  const r = await new DockerRunner().run({ image: BUSYBOX, command: 'true' }).result;
  if (!r.success) throw new Error('warm-up run failed');
  deleteAllStates();
}

function deleteAllStates() {
  for (const f of fs.readdirSync(stateDir, { withFileTypes: true })) {
    if (f.name.endsWith('.json')) deleteState(f.name.slice(0, -5));
  }
}

/** A TCP listener on the host (all addresses), greeting whoever connects. */
async function hostListener() {
  const server = net.createServer((s) => s.end('host-listener-hello\n'));
  await new Promise((r) => server.listen(0, '0.0.0.0', r));
  const gw = pd.cli('network', 'inspect', 'light-runner-isolated', '-f', '{{(index .IPAM.Config 0).Gateway}}');
  return { server, env: { GW: gw, PORT: String(server.address().port) } };
}

/** The pids cgroup of a container, as the host sees it (cgroup v1 and v2). */
function pidsFile(fullId) {
  for (const p of [`/sys/fs/cgroup/pids/docker/${fullId}/pids.current`, `/sys/fs/cgroup/docker/${fullId}/pids.current`]) {
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** How many forks the pids cgroup refused (`max` of pids.events). */
function pidsMax(file) {
  try {
    return Number(/max (\d+)/.exec(fs.readFileSync(file.replace('pids.current', 'pids.events'), 'utf8'))?.[1] ?? NaN);
  } catch {
    return undefined;
  }
}

/** Checks what every job must leave: host alive (we are), result recorded, nothing in the daemon. */
async function afterJob(id, what) {
  const problems = [];
  const st = readState(id);
  if (!st || st.status === 'running') problems.push(`state of ${id}: ${st ? st.status : 'missing'}`);
  let left = [];
  try {
    await until('nothing left', () => {
      left = pd.leftovers();
      return left.length === 0;
    }, 15_000);
  } catch {
    problems.push(`left in the daemon: ${left.join(', ')}`);
    for (const l of left) {
      const [kind, name] = l.split(' ');
      pd.ok(...(kind === 'container' ? ['rm', '-f', name] : ['volume', 'rm', '-f', name]));
    }
  }
  try {
    deleteState(id);
  } catch {}
  for (const p of problems) failures.push(`${what}: ${p}`);
  return problems;
}

/** One job of a probe under runner options `options`. */
async function job(spec, options, what) {
  const runner = new DockerRunner({ ...options, ...spec.options });
  let received = 0;
  const lines = [];
  let started;
  const startedP = new Promise((r) => { started = r; });
  const ex = runner.run({
    image: spec.image ?? BUSYBOX,
    command: spec.command,
    timeout: spec.timeout ?? 30_000,
    env: spec.env,
    extract: spec.extract,
    ...spec.request,
    onLog: (l) => {
      received += Buffer.byteLength(l) + 1;
      if (lines.length < 400) lines.push(l.length > 300 ? `${l.slice(0, 300)}...` : l);
      if (l === 'started') started();
    },
  });
  let pidsPeak;
  let pidsMaxHits;
  let stopMs;
  let watching = true;
  let logPeak;
  const logWatcher = (async () => {
    if (!spec.watchLog) return;
    await Promise.race([startedP, sleep(3000)]);
    let file = null;
    for (let i = 0; i < 50 && watching && !file; i++) {
      try {
        file = pd.cli('inspect', '-f', '{{.LogPath}}', ex.id) || null;
      } catch {}
      if (!file) await sleep(100);
    }
    if (!file) return;
    logPeak = 0;
    while (watching) {
      try {
        logPeak = Math.max(logPeak, fs.statSync(file).size);
      } catch {}
      await sleep(50);
    }
  })();
  const watcher = (async () => {
    if (!spec.watchPids) return;
    await Promise.race([startedP, sleep(3000)]);
    let file = null;
    for (let i = 0; i < 50 && watching && !file; i++) {
      try {
        file = pidsFile(pd.cli('inspect', '-f', '{{.Id}}', ex.id));
      } catch {}
      if (!file) await sleep(100);
    }
    if (!file) return;
    pidsPeak = 0;
    while (watching) {
      try {
        pidsPeak = Math.max(pidsPeak, Number(fs.readFileSync(file, 'utf8')));
        const hits = pidsMax(file);
        if (hits !== undefined && !Number.isNaN(hits)) pidsMaxHits = hits;
      } catch {
        break;
      }
      await sleep(20);
    }
  })();
  if (spec.termOnly) {
    await Promise.race([startedP, sleep(30_000)]);
    pd.ok('kill', '-s', 'TERM', ex.id);
    await sleep(3000);
    const running = pd.cli('inspect', '-f', '{{.State.Running}}', ex.id) === 'true';
    if (running) lines.push('still-running');
    ex.cancel();
  }
  if (spec.stopAfterStart) {
    await Promise.race([startedP, sleep(30_000)]);
    const s = Date.now();
    await ex.stop(spec.stopAfterStart);
    stopMs = Date.now() - s;
  }
  let result;
  try {
    result = await Promise.race([
      ex.result,
      sleep(PROBE_CAP_MS).then(() => { throw new Error(`no result within ${PROBE_CAP_MS} ms`); }),
    ]);
  } catch (e) {
    ex.cancel();
    result = { error: e.message, exitCode: -1 };
  }
  watching = false;
  await watcher;
  await logWatcher;
  await afterJob(ex.id, what);
  return { result, out: lines.join('\n'), received, id: ex.id, pidsPeak, pidsMaxHits, stopMs, logPeak };
}

const wrap = (cmd) => `{ ${cmd} ; } 2>&1 && echo PROBE-OK || echo PROBE-FAILED`;

/** Outcome of a command probe from its output. */
function outcomeOf(probe, res) {
  if (res.result.error) return { outcome: 'unexpected', detail: res.result.error };
  if (/^PROBE-OK$/m.test(res.out)) return { outcome: 'succeeds', detail: '' };
  const hit = res.out.split('\n').find((l) => probe.blocked.test(l));
  if (/^PROBE-FAILED$/m.test(res.out) && hit) {
    return { outcome: 'blocked', detail: hit.replace(/\s+/g, ' ').trim().slice(0, 90) };
  }
  return { outcome: 'unexpected', detail: res.out.split('\n').slice(-4).join(' | ').slice(0, 200) || `exit ${res.result.exitCode}` };
}

async function control(probe, env, ctx) {
  const c = probe.control;
  if (c.run) {
    return c.run({ ...ctx, config: 'control', job: (spec) => job({ ...spec, env: { ...env, ...spec.env } }, {}, `${probe.key} control`) });
  }
  if (c.options) {
    const res = await job({ ...probe, command: wrap(probe.command), env }, c.options, `${probe.key} control`);
    return outcomeOf(probe, res);
  }
  const dockerArgs = c.docker.map((a) => a.replace('@SOCK@', pd.sock.replace('unix://', '')));
  const envArgs = Object.entries(env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  let text;
  try {
    text = execFileSync('docker', ['-H', pd.sock, 'run', '--rm', '--network', 'light-runner-isolated', ...envArgs, ...dockerArgs,
      probe.image ?? BUSYBOX, 'sh', '-c', wrap(c.command ?? probe.command)], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    text = `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
  return outcomeOf({ blocked: probe.blocked ?? /$^/ }, { result: {}, out: text });
}

function cell(o, unpreventable) {
  const text = o.outcome === 'blocked' ? `blocked: ${o.detail}` : o.detail ? `${o.outcome}: ${o.detail}` : o.outcome;
  return unpreventable && o.outcome === 'succeeds' ? `${text} (not preventable here, see notes)` : text;
}

async function runProbe(probe) {
  const row = { key: probe.key, attempt: probe.attempt, cells: {}, control: null, ok: true, problems: [] };
  let listener;
  const env = {};
  if (probe.hostListener) {
    listener = await hostListener();
    Object.assign(env, listener.env);
  }
  if (probe.hostPath && !fs.existsSync(probe.hostPath)) {
    for (const name of Object.keys(CONFIGS)) row.cells[name] = { outcome: 'n/a', detail: `this kernel has no ${probe.hostPath}` };
    row.control = { outcome: 'n/a', detail: `this kernel has no ${probe.hostPath}` };
    listener?.server.close();
    return row;
  }
  try {
    const ctx = { P, dataRoot: pd.dataRoot, tmp: (p) => fs.mkdtempSync(path.join(work, p)) };
    if (probe.control) {
      row.control = await control(probe, env, ctx);
      if (row.control.outcome !== 'succeeds') {
        row.ok = false;
        row.problems.push(`positive control did not succeed: ${row.control.outcome} ${row.control.detail}`);
      }
    }
    for (const [name, options] of Object.entries(CONFIGS)) {
      const opts = { ...options, ...probe.configs?.[name] };
      let o;
      if (probe.run) {
        o = await probe.run({ ...ctx, config: name, job: (spec) => job({ ...spec, env: { ...env, ...spec.env } }, opts, `${probe.key} ${name}`) });
      } else {
        o = outcomeOf(probe, await job({ ...probe, command: wrap(probe.command), env }, opts, `${probe.key} ${name}`));
      }
      row.cells[name] = o;
      const want = probe.expect[name];
      const fine = o.outcome !== 'unexpected' && (want === 'any' || o.outcome === want);
      if (!fine) {
        row.ok = false;
        row.problems.push(`${name}: expected ${want}, got ${o.outcome} ${o.detail}`);
      }
      if (name === 'restricted' && o.outcome === 'succeeds' && !probe.unpreventable) {
        row.ok = false;
        row.problems.push('succeeds under restricted: a defect');
      }
    }
  } finally {
    listener?.server.close();
  }
  for (const p of row.problems) failures.push(`${probe.key}: ${p}`);
  return row;
}

function table(rows) {
  const lines = [
    '| attempt | baseline | restricted | runsc (baseline profile) | positive control |',
    '|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const p = probes(P).find((x) => x.key === r.key);
    const c = r.control ? (r.control.outcome === 'succeeds' ? `succeeds (${describeControl(p.control)})`
      : r.control.outcome === 'n/a' ? `n/a: ${r.control.detail}` : `FAILED: ${r.control.outcome} ${r.control.detail}`) : (p.controlNote ?? 'none');
    lines.push(`| ${r.attempt} | ${cell(r.cells.baseline ?? { outcome: '-' })} | ${cell(r.cells.restricted ?? { outcome: '-' }, p.unpreventable)} | ${cell(r.cells.runsc ?? { outcome: '-' })} | ${r.ok ? c : `${c}; BROKEN: ${r.problems.join('; ')}`} |`);
  }
  return lines.join('\n');
}

function describeControl(c) {
  if (c.label) return c.label;
  if (c.options) return Object.keys(c.options).length ? `options ${JSON.stringify(c.options)}` : 'baseline';
  return `docker run ${c.docker.join(' ').replace('@SOCK@', '<daemon socket>')}`;
}

function notes(list) {
  const out2 = [];
  for (const p of list) {
    out2.push(`- **${p.attempt}**: ${p.why}.${p.note ? ` ${p.note[0].toUpperCase()}${p.note.slice(1)}.` : ''}${p.unpreventable ? ` **Not preventable at this layer under restricted**: ${p.unpreventable}.` : ''}`);
  }
  return out2.join('\n');
}

let exitCode = 0;
try {
  await setUp();
  const list = probes(P).filter((p) => !only || only.has(p.key));
  for (const probe of list) {
    const s = Date.now();
    note(`== ${probe.key} ...`);
    let row;
    try {
      row = await runProbe(probe);
    } catch (e) {
      row = { key: probe.key, attempt: probe.attempt, cells: {}, control: null, ok: false, problems: [`probe failed: ${e.stack ?? e}`] };
      failures.push(`${probe.key}: probe failed: ${e.message}`);
    }
    rows.push(row);
    note(`   ${row.ok ? 'ok' : 'FAILED'} in ${((Date.now() - s) / 1000).toFixed(1)} s${row.ok ? '' : `: ${row.problems.join(' | ')}`}`);
  }
  const report = table(rows);
  const minutes = ((Date.now() - t0) / 60000).toFixed(1);
  console.log(report);
  console.log(`\n${rows.length} probes x ${Object.keys(CONFIGS).length} configurations + controls in ${minutes} min; ${failures.length} broken expectations`);
  if (out) {
    const tpl = fs.readFileSync(path.join(ROOT, 'bench', 'security', 'SECURITY.template.md'), 'utf8');
    fs.writeFileSync(out, tpl
      .replace('@TABLE@', report)
      .replace('@NOTES@', notes(probes(P).filter((p) => !only || only.has(p.key))))
      .replace('@WHEN@', `${new Date().toISOString().slice(0, 10)}, ${minutes} min, ${short ? 'short' : 'full'} sizes (${JSON.stringify(P)})`)
      .replace('@FAILURES@', failures.length ? failures.map((f) => `- ${f}`).join('\n') : 'None.'));
    note(`wrote ${out}`);
  }
} catch (e) {
  failures.push(`suite: ${e.stack ?? e}`);
} finally {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await pd.destroy().catch((e) => failures.push(`destroy: ${e.message}`));
  rmrf(work);
}
if (failures.length) {
  console.error(`BROKEN:\n${failures.map((f) => `  ${f}`).join('\n')}`);
  exitCode = 1;
}
process.exit(exitCode);
