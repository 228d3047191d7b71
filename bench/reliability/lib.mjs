// Shared by the reliability probes: the docker CLI (for observation only),
// child hosts that talk JSON lines, leak accounting by run id, process
// sampling (RSS, open fds), a private dockerd, and machine load.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '..', '..');
export const HOSTS = path.join(HERE, 'hosts');
export const BUSYBOX = 'light-runner-busybox:latest';
export const LABEL = 'light-runner.run-id';
export const MiB = 1 << 20;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function docker(...args) {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * MiB }).trim();
}

export function dockerTry(...args) {
  try {
    return docker(...args);
  } catch {
    return null;
  }
}

export async function until(what, fn, ms = 30_000, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(every);
  }
}

export function tmp(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function rmrf(p) {
  if (p) fs.rmSync(p, { recursive: true, force: true });
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every labelled container and volume name on the daemon `env` points at. */
export function labelled(env = process.env) {
  const run = (...a) => execFileSync('docker', a, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] })
    .split('\n').filter(Boolean);
  return {
    containers: new Set(run('ps', '-a', '--filter', `label=${LABEL}`, '--format', '{{.Names}}')),
    volumes: new Set(run('volume', 'ls', '-q', '--filter', `label=${LABEL}`)),
  };
}

/** The ids among `ids` that still have a container or a volume. */
export function leaksOf(ids, env = process.env) {
  const l = labelled(env);
  return [...ids].filter((id) => l.containers.has(id) || l.volumes.has(id));
}

/** Waits (up to `ms`) for `ids` to have nothing left; returns what is left. */
export async function settleLeaks(ids, ms = 20_000, env = process.env) {
  const end = Date.now() + ms;
  for (;;) {
    const left = leaksOf(ids, env);
    if (left.length === 0 || Date.now() > end) return left;
    await sleep(500);
  }
}

/** Run ids that have a state file in `dir`. */
export function stateIds(dir) {
  try {
    return fs.readdirSync(dir).map((f) => /^(light-runner-[0-9a-f]{12})\.json$/.exec(f)?.[1]).filter(Boolean);
  } catch {
    return [];
  }
}

export function readStateFile(dir, id) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, `${id}.json`), 'utf8'));
  } catch {
    return null;
  }
}

/** Force-removes what `ids` left (after the leak count was taken). */
export function forceRemove(ids, env = process.env) {
  for (const id of ids) {
    try {
      execFileSync('docker', ['rm', '-f', '-v', id], { env, stdio: 'ignore' });
    } catch {}
    try {
      execFileSync('docker', ['volume', 'rm', '-f', id], { env, stdio: 'ignore' });
    } catch {}
  }
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {}
  }
});

/**
 * Starts `node hosts/<name>.mjs <json cfg>` in its own process group. The
 * child prints one JSON object per line with an `event` field. `wrap`: a
 * command prefix (e.g. unshare) to run node under.
 */
export function host(name, cfg = {}, { env = {}, wrap = [] } = {}) {
  const argv = [...wrap, process.execPath, path.join(HOSTS, `${name}.mjs`), JSON.stringify(cfg)];
  const proc = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, ...env },
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  children.add(proc);
  const events = [];
  const waiters = new Set();
  let stderr = '';
  let buf = '';
  let exit = null;
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        events.push({ ...JSON.parse(line), at: Date.now() });
      } catch {
        events.push({ event: 'text', text: line, at: Date.now() });
      }
    }
    wake();
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  const exited = new Promise((resolve) => {
    proc.on('close', (code, signal) => {
      children.delete(proc);
      exit = { code, signal, at: Date.now() };
      resolve(exit);
      wake();
    });
  });
  return {
    proc,
    pid: proc.pid,
    events,
    exited,
    get exit() {
      return exit;
    },
    get stderr() {
      return stderr;
    },
    has(ev) {
      return events.find((e) => e.event === ev);
    },
    /** Resolves with the first `ev` line; rejects if the child exits first. */
    event(ev, ms = 120_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${name}: no '${ev}' within ${ms} ms; stderr: ${stderr.slice(-2000)}`));
        }, ms);
        const check = () => {
          const hit = events.find((e) => e.event === ev);
          if (hit || exit) {
            clearTimeout(timer);
            waiters.delete(check);
            if (hit) resolve(hit);
            else reject(new Error(`${name}: exited (${JSON.stringify(exit)}) before '${ev}'; stderr: ${stderr.slice(-2000)}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    send(obj) {
      proc.stdin.write(`${JSON.stringify(obj)}\n`);
    },
    /** SIGKILL to the whole process group (the host and anything it forked but its watchdog). */
    kill(sig = 'SIGKILL') {
      try {
        process.kill(proc.pid, sig);
      } catch {}
    },
  };
}

/** VmRSS of a process in bytes (0 when gone). */
export function rssOf(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Open file descriptors of a process. */
export function fdsOf(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Processes on the machine whose command line matches `re`. */
export function processCount(re) {
  let n = 0;
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (re.test(fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' '))) n++;
    } catch {}
  }
  return n;
}

/** Samples the machine's load while probes run. */
export class LoadSampler {
  constructor(every = 5000) {
    this.samples = [];
    this.timer = setInterval(() => this.sample(), every);
    this.timer.unref();
    this.sample();
  }

  sample() {
    this.samples.push({
      at: Date.now(),
      load1: os.loadavg()[0],
      rustc: processCount(/(^|\/)rustc /),
      node: processCount(/(^|\/)node /),
      containers: Number(dockerTry('info', '--format', '{{.ContainersRunning}}') ?? 0),
    });
  }

  between(from, to) {
    const s = this.samples.filter((x) => x.at >= from && x.at <= to);
    if (s.length === 0) return null;
    const f = (k) => {
      const v = s.map((x) => x[k]);
      return { min: Math.min(...v), avg: v.reduce((a, b) => a + b, 0) / v.length, max: Math.max(...v) };
    };
    return { load1: f('load1'), rustc: f('rustc'), node: f('node'), containers: f('containers') };
  }

  stop() {
    clearInterval(this.timer);
  }
}

/** A seeded folder of `files` small files plus one of `bigBytes`. */
export function makeSeed(dir, files = 20, bigBytes = 0) {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < files; i++) fs.writeFileSync(path.join(dir, `f${i}.txt`), `seed ${i}\n`);
  if (bigBytes > 0) {
    const block = Buffer.alloc(MiB, 7);
    const fd = fs.openSync(path.join(dir, 'big.bin'), 'w');
    for (let n = 0; n < bigBytes; n += MiB) fs.writeSync(fd, block, 0, Math.min(MiB, bigBytes - n));
    fs.closeSync(fd);
  }
  return dir;
}

/** Counts outcomes: `{ name: n }` → "name n, other m". */
export function tally(list) {
  const m = new Map();
  for (const x of list) m.set(x, (m.get(x) ?? 0) + 1);
  return Object.fromEntries([...m.entries()].sort((a, b) => b[1] - a[1]));
}

export function fmtTally(t) {
  return Object.entries(t).map(([k, v]) => `${k} ${v}`).join(', ');
}

export function mib(bytes) {
  return (bytes / MiB).toFixed(1);
}

/** A child that must not crash: its exit as a "survived" verdict. */
export function survived(exit) {
  return exit && exit.code === 0 && exit.signal === null;
}

/**
 * A dockerd of the probe's own (data root, exec root, socket and bridge
 * under `dir`), restartable and reconfigurable without touching the shared
 * one. Never `--bridge=none`: a daemon started so deletes the host's docker0,
 * which the shared daemon uses.
 */
export class PrivateDockerd {
  constructor(dir) {
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true });
    this.sock = `unix://${dir}/d.sock`;
    this.bridge = `lrrl${process.pid.toString(16).slice(-4)}${Math.floor(Math.random() * 256).toString(16)}`;
    this.proc = null;
    this.env = { ...process.env, DOCKER_HOST: this.sock };
  }

  cli(...args) {
    return execFileSync('docker', ['-H', this.sock, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  }

  ok(...args) {
    try {
      this.cli(...args);
      return true;
    } catch {
      return false;
    }
  }

  makeBridge() {
    const routes = execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
    let net;
    for (let i = 0; i < 500 && !net; i++) {
      const n = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
      if (!routes.includes(`${n}.`)) net = n;
    }
    execFileSync('ip', ['link', 'add', 'name', this.bridge, 'type', 'bridge']);
    execFileSync('ip', ['addr', 'add', `${net}.1/24`, 'dev', this.bridge]);
    execFileSync('ip', ['link', 'set', this.bridge, 'up']);
  }

  async start({ liveRestore = false, images = [BUSYBOX] } = {}) {
    if (!this.bridgeMade) {
      this.makeBridge();
      this.bridgeMade = true;
    }
    rmrf(path.join(this.dir, 'd.pid'));
    const log = fs.openSync(path.join(this.dir, 'dockerd.log'), 'a');
    const args = ['--data-root', path.join(this.dir, 'root'), '--exec-root', path.join(this.dir, 'exec'),
      '--pidfile', path.join(this.dir, 'd.pid'), '-H', this.sock, `--bridge=${this.bridge}`, '--iptables=false'];
    if (liveRestore) args.push('--live-restore');
    this.proc = spawn('dockerd', args, { detached: true, stdio: ['ignore', log, log] });
    this.proc.unref();
    fs.closeSync(log);
    this.liveRestore = liveRestore;
    await until('private dockerd up', () => this.ok('info'), 60_000, 100);
    assert.equal(this.cli('info', '--format', '{{.LiveRestoreEnabled}}'), String(liveRestore));
    for (const image of images) {
      if (!this.ok('image', 'inspect', image)) {
        execFileSync('sh', ['-c', `docker save ${image} | docker -H ${this.sock} load`], { stdio: 'ignore' });
      }
    }
  }

  /** Stops it with `signal`; waits for dockerd and its containerd to be gone. */
  async stop(signal = 'SIGTERM') {
    const p = this.proc;
    this.proc = null;
    if (!p) return;
    let containerd = 0;
    try {
      containerd = Number(fs.readFileSync(path.join(this.dir, 'exec', 'containerd', 'containerd.pid'), 'utf8'));
    } catch {}
    try {
      process.kill(p.pid, signal);
    } catch {}
    await until('private dockerd gone', () => !alive(p.pid) || p.exitCode !== null || p.signalCode !== null, 90_000, 100);
    if (containerd > 0) await until('private containerd gone', () => !alive(containerd), 60_000, 100);
  }

  /** Removes everything it holds, stops it, unmounts and deletes its files. */
  async destroy() {
    if (!this.proc) await this.start().catch(() => {});
    if (this.proc) {
      for (const c of this.cli('ps', '-aq').split('\n').filter(Boolean)) this.ok('rm', '-f', '-v', c);
      for (const v of this.cli('volume', 'ls', '-q').split('\n').filter(Boolean)) this.ok('volume', 'rm', '-f', v);
      this.ok('network', 'rm', 'light-runner-isolated');
      await this.stop();
    }
    const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n')
      .map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(this.dir));
    for (const m of mounts.sort().reverse()) {
      try {
        execFileSync('umount', [m], { stdio: 'ignore' });
      } catch {}
    }
    rmrf(this.dir);
    if (this.bridgeMade) {
      try {
        execFileSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' });
      } catch {}
    }
  }
}

/** Runs `fn` over `items` with at most `width` at a time. */
export async function pool(items, width, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

/** A deterministic PRNG (mulberry32) so a run's random moments can be replayed. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
