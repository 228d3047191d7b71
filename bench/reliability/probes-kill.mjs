// Hosts killed at random moments: attached runs (the watchdog removes
// everything), detached launchers (another process collects), and two
// "machines" (own PID and UTS namespaces) sharing one state directory.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import {
  LABEL, dockerTry, fmtTally, forceRemove, host, leaksOf, makeSeed, pool, readStateFile, rmrf, settleLeaks,
  sleep, stateIds, tally, tmp, until,
} from './lib.mjs';

/** `docker events` of labelled containers: name → actions seen. */
export class ContainerEvents {
  constructor(env = process.env) {
    this.seen = new Map();
    this.proc = spawn('docker', ['events', '--filter', 'type=container', '--filter', `label=${LABEL}`,
      '--format', '{{.Action}} {{.Actor.Attributes.name}}'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
    let buf = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const [action, name] = buf.slice(0, i).split(' ');
        buf = buf.slice(i + 1);
        if (!this.seen.has(name)) this.seen.set(name, []);
        this.seen.get(name).push(action.split(':')[0]);
      }
    });
  }

  count(name, action) {
    return (this.seen.get(name) ?? []).filter((a) => a === action).length;
  }

  stop() {
    this.proc.kill();
  }
}

const pct = (xs, p) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const JOB = 'echo started; sleep 1; mkdir -p /app/out; cp /app/f1.txt /app/out/; echo ok > /app/out/done';

/** How long a whole attached or detached host lives, to spread the kills over. */
async function calibrate(name, cfg, env) {
  const t0 = Date.now();
  const h = host(name, cfg, { env });
  await h.exited;
  const took = Date.now() - t0;
  for (const id of stateIds(env.LIGHT_RUNNER_STATE_DIR)) forceRemove([id]);
  return took;
}

export async function hostKillAttached({ n, width, random, work }) {
  const seed = makeSeed(path.join(work, 'seed'), 20, 1 << 20);
  const cal = await calibrate('attached', { request: { dir: seed, command: JOB, extract: [{ from: 'out', to: path.join(work, 'cal-out') }] } },
    { LIGHT_RUNNER_STATE_DIR: path.join(work, 'cal-state') });
  const span = Math.round(cal * 1.1);
  const rows = await pool(Array.from({ length: n }, (_, i) => i), width, async (i) => {
    const stateDir = path.join(work, `s${i}`);
    const to = path.join(work, `o${i}`);
    const delay = Math.floor(random() * span);
    const h = host('attached', { request: { dir: seed, command: JOB, extract: [{ from: 'out', to }] } },
      { env: { LIGHT_RUNNER_STATE_DIR: stateDir } });
    await Promise.race([sleep(delay), h.exited]);
    const killedAt = Date.now();
    h.kill('SIGKILL');
    await h.exited;
    const phase = h.has('result') || h.has('rejected') ? 'after its result'
      : h.has('started') ? 'while running' : h.has('id') ? 'during setup' : 'before run() returned';
    const ids = stateIds(stateDir);
    const left = await settleLeaks(ids, 30_000);
    const goneMs = Date.now() - killedAt;
    const what = left.map((id) => `${id} (killed ${phase}: container ${dockerTry('ps', '-a', '--filter', `name=^${id}$`, '--format', '{{.Status}}') || 'none'}, volume ${dockerTry('volume', 'inspect', '-f', '{{.CreatedAt}}', id) ? 'left' : 'none'})`);
    forceRemove(left);
    // A run that reached its result cleaned up by itself.
    const ok = h.has('result') ? h.has('result').result.success : true;
    rmrf(stateDir);
    rmrf(to);
    return { phase, leaks: left.length, goneMs: ids.length ? goneMs : null, ok, ids, what };
  });
  const leaks = rows.reduce((a, r) => a + r.leaks, 0);
  const gone = rows.map((r) => r.goneMs).filter((x) => x !== null);
  return {
    probe: 'host SIGKILL at random moments of attached runs (seed + extract)',
    n,
    outcomes: `killed ${fmtTally(tally(rows.map((r) => r.phase)))}`,
    leaks,
    host: 'killed on purpose',
    figures: `kill moments uniform over 0–${span} ms (one whole run ${cal} ms); all gone after the kill: p50 ${pct(gone, 50)} ms, max ${Math.max(0, ...gone)} ms (polled every 500 ms)`,
    expect: [
      { what: '0 containers or volumes left 30 s after the kill', ok: leaks === 0, detail: rows.flatMap((r) => r.what).join('; ') },
      { what: 'runs that finished before the kill succeeded', ok: rows.every((r) => r.ok) },
    ],
  };
}

export async function launcherKillDetached({ n, width, random, work }) {
  const seed = makeSeed(path.join(work, 'seed'), 20, 1 << 20);
  const events = new ContainerEvents();
  const cal = await calibrate('detached', { request: { dir: seed, command: JOB, extract: [{ from: 'out', to: path.join(work, 'cal-out') }] }, awaitResult: true },
    { LIGHT_RUNNER_STATE_DIR: path.join(work, 'cal-state') });
  const span = Math.round(cal * 1.1);
  const rows = await pool(Array.from({ length: n }, (_, i) => i), width, async (i) => {
    const stateDir = path.join(work, `s${i}`);
    const env = { LIGHT_RUNNER_STATE_DIR: stateDir };
    const to = path.join(work, `o${i}`);
    const delay = Math.floor(random() * span);
    const h = host('detached', { request: { dir: seed, command: JOB, extract: [{ from: 'out', to }] }, awaitResult: true }, { env });
    await Promise.race([sleep(delay), h.exited]);
    h.kill('SIGKILL');
    await h.exited;
    const ids = stateIds(stateDir);
    const out = [];
    if (ids.length) {
      const c = host('collect', { ids }, { env });
      await c.event('done', 180_000).catch(() => {});
      c.kill();
      await c.exited;
      for (const id of ids) {
        const r = c.events.find((e) => e.event === 'result' && e.id === id);
        const started = events.count(id, 'start') > 0;
        let outcome;
        let ok;
        if (!r) {
          outcome = 'not collected';
          ok = false;
        } else if (started) {
          const done = fs.existsSync(path.join(to, 'done')) && fs.readFileSync(path.join(to, 'done'), 'utf8') === 'ok\n'
            && fs.readFileSync(path.join(to, 'f1.txt'), 'utf8') === 'seed 1\n';
          ok = r.result?.success === true && r.result.exitCode === 0 && r.result.extracted?.[0]?.status === 'ok' && done;
          outcome = ok ? 'started → collected with exit 0 and its files' : `started → WRONG ${JSON.stringify(r.result ?? r.code)}`;
        } else {
          const st = r.state ?? readStateFile(stateDir, id);
          ok = st?.status === 'failed' && typeof st.error === 'string';
          outcome = ok ? `never started → failed: ${st.error}` : `never started → WRONG ${JSON.stringify(st)}`;
        }
        out.push({ outcome, ok, id });
      }
    } else {
      out.push({ outcome: 'killed before run() wrote a state', ok: true });
    }
    const left = await settleLeaks(ids, 15_000);
    const what = left.map((id) => {
      const st = readStateFile(stateDir, id);
      return `${id} (${events.count(id, 'start') ? 'started' : 'never started'}; state ${st?.status} phase ${st?.phase} error ${st?.error}; container ${dockerTry('ps', '-a', '--filter', `name=^${id}$`, '--format', '{{.Status}}') || 'none'}, volume ${dockerTry('volume', 'inspect', '-f', '{{.CreatedAt}}', id) ? 'left' : 'none'}; events ${(events.seen.get(id) ?? []).join(',')})`;
    });
    forceRemove(left);
    rmrf(stateDir);
    rmrf(to);
    return { out, leaks: left.length, ids, what };
  });
  events.stop();
  const all = rows.flatMap((r) => r.out);
  const leaks = rows.reduce((a, r) => a + r.leaks, 0);
  return {
    probe: 'launcher SIGKILL at random moments of detached runs (seed + extract), collected from another process',
    n,
    outcomes: fmtTally(tally(all.map((x) => x.outcome))),
    leaks,
    host: 'killed on purpose; every collector exited normally',
    figures: `kill moments uniform over 0–${span} ms (one launcher's whole life ${cal} ms)`,
    expect: [
      { what: 'every run that started is collected with exit 0 and its files; the rest failed with a reason', ok: all.every((x) => x.ok), detail: all.filter((x) => !x.ok).map((x) => `${x.id}: ${x.outcome}`).join('; ') },
      { what: '0 containers or volumes left after collection', ok: leaks === 0, detail: rows.flatMap((r) => r.what).join('; ') },
    ],
  };
}

/** Runs node under its own PID and UTS namespaces with `hostname`. */
function machine(hostname) {
  return ['unshare', '--uts', '--pid', '--fork', '--kill-child', '--mount-proc',
    'sh', '-c', 'hostname "$0" && exec "$@"', hostname];
}

export async function twoMachines({ n, work, staleMs }) {
  const stateDir = path.join(work, 'shared-state');
  const env = { LIGHT_RUNNER_STATE_DIR: stateDir, LIGHT_RUNNER_CLAIM_STALE_MS: String(staleMs) };
  const events = new ContainerEvents();
  const results = [];
  // (a) A launcher on machine A is killed while its run runs; machine B collects.
  for (let i = 0; i < n; i++) {
    const to = path.join(work, `a${i}`);
    const a = host('detached', { request: { command: 'sleep 2; mkdir -p /app/out; echo a > /app/out/r', extract: [{ from: 'out', to }] }, awaitResult: true },
      { env, wrap: machine('lr-machine-a') });
    const { id } = await a.event('id');
    await until(`${id} started`, () => events.count(id, 'start') > 0, 300_000);
    await sleep(200 + Math.floor(Math.random() * 1000));
    a.kill();
    await a.exited;
    const st = readStateFile(stateDir, id);
    const b = host('collect', { ids: [id] }, { env, wrap: machine('lr-machine-b') });
    const r = await b.event('result', 120_000).catch((e) => ({ error: e.message }));
    await b.exited;
    const ok = r.result?.success === true && fs.readFileSync(path.join(to, 'r'), 'utf8') === 'a\n'
      && st?.host?.hostname === 'lr-machine-a';
    results.push({ kind: 'launcher on A killed, B collected', ok, id, detail: JSON.stringify(r.result ?? r) });
    rmrf(to);
  }
  // (b) Machine A dies while finalizing (extracting 300 MB); machine B,
  // attached too, takes over once A's heartbeat is stale: finalized once.
  const takeovers = [];
  for (let i = 0; i < n; i++) {
    const to = path.join(work, `b${i}`);
    const a = host('detached', {
      request: { command: 'sleep 2; mkdir -p /app/out; head -c 314572800 /dev/zero > /app/out/big; echo b > /app/out/r', extract: [{ from: 'out', to }] },
      awaitResult: true,
    }, { env, wrap: machine('lr-machine-a') });
    const { id } = await a.event('id');
    // Kill A once it holds the claim and is extracting.
    const claim = await until(`${id} claimed by A`, () => {
      const s = readStateFile(stateDir, id);
      return s?.finalizing?.hostname === 'lr-machine-a' ? s.finalizing : (s && s.status !== 'running' ? { done: s } : null);
    }, 120_000, 5);
    if (claim.done) {
      results.push({ kind: 'A died while finalizing, B took over', ok: false, id, detail: `finalized before A could be killed: ${JSON.stringify(claim.done)}` });
      await a.exited;
      continue;
    }
    await sleep(100);
    a.kill();
    await a.exited;
    const killedAt = Date.now();
    // B attaches now: it must wait for A's claim to go stale, then finalize.
    const b = host('collect', { ids: [id] }, { env, wrap: machine('lr-machine-b') });
    const r = await b.event('result', 300_000).catch((e) => ({ error: e.message }));
    await b.exited;
    const tookOver = Date.now() - killedAt;
    const st = readStateFile(stateDir, id);
    const size = fs.statSync(path.join(to, 'big'), { throwIfNoEntry: false })?.size;
    const destroys = events.count(id, 'destroy');
    const ok = r.result?.success === true && r.result.extracted?.[0]?.status === 'ok' && size === 314572800
      && st?.status === 'exited' && !st.finalizing && destroys === 1 && tookOver >= staleMs - 2 * (staleMs / 6);
    takeovers.push(tookOver);
    results.push({ kind: 'A died while finalizing, B took over', ok, id, detail: `size ${size}, destroy events ${destroys}, took over after ${tookOver} ms, ${JSON.stringify(r.result ?? r)}` });
    rmrf(to);
  }
  events.stop();
  const ids = stateIds(stateDir);
  const left = await settleLeaks(ids, 15_000);
  forceRemove(left);
  rmrf(stateDir);
  return {
    probe: 'two machines sharing one state directory (unshare: own PID + UTS namespaces, same daemon)',
    n: n * 2,
    outcomes: fmtTally(tally(results.map((r) => `${r.kind}: ${r.ok ? 'ok' : 'WRONG'}`))),
    leaks: left.length,
    host: 'A killed on purpose; B exited normally',
    figures: `claim staleness ${staleMs} ms (LIGHT_RUNNER_CLAIM_STALE_MS); B finalized ${takeovers.join(', ')} ms after A died mid-extract`,
    expect: [
      { what: 'B collects a run whose launcher on A was killed', ok: results.filter((r) => r.kind.startsWith('launcher')).every((r) => r.ok) },
      { what: 'A killed while finalizing: B takes over after the staleness, finalizes once (one destroy, 300 MB extracted whole)', ok: results.filter((r) => r.kind.startsWith('A died')).every((r) => r.ok) },
      { what: '0 containers or volumes left', ok: left.length === 0 },
    ],
    details: results.filter((r) => !r.ok).map((r) => `${r.id}: ${r.detail}`),
  };
}

export { leaksOf, tmp };
