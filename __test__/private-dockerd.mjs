// A dockerd of a test's own: its socket, data root, exec root, pidfile,
// bridge and config file under one directory, never the shared daemon's.
// Options: registered `runtimes` (gVisor's runsc, a runtime that hangs),
// a data root on a small loop-mounted ext4 file system (`diskMiB`: a full
// disk there never touches the host's), and a json-file log size cap.
// Not a test file (its name matches none of node:test's patterns).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { BUSYBOX, rmrf, sleep, tmpdir } from './helpers.mjs';

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what, fn, ms = 60_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

/** The runsc registration of shared/FACTS.md (ptrace: no KVM here; gVisor's own network off). */
export const RUNSC = { path: '/usr/bin/runsc', runtimeArgs: ['--platform=ptrace', '--network=none'] };

export function runscInstalled() {
  return fs.existsSync(RUNSC.path);
}

export class PrivateDockerd {
  constructor({ prefix = 'lr-pd-', runtimes = {}, diskMiB = 0, logMaxSize = null } = {}) {
    this.dir = tmpdir(prefix);
    this.sock = `unix://${this.dir}/d.sock`;
    this.runtimes = runtimes;
    this.diskMiB = diskMiB;
    this.logMaxSize = logMaxSize;
    this.bridge = `lrpd${process.pid.toString(16).slice(-5)}${Math.floor(Math.random() * 256).toString(16)}`.slice(0, 15);
    this.proc = null;
    this.dataRoot = path.join(this.dir, 'root');
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

  /** Labelled containers and volumes left in this daemon. */
  leftovers() {
    const c = this.cli('ps', '-a', '--filter', 'label=light-runner.run-id', '--format', '{{.Names}}').split('\n').filter(Boolean);
    const v = this.cli('volume', 'ls', '-q', '--filter', 'label=light-runner.run-id').split('\n').filter(Boolean);
    return [...c.map((n) => `container ${n}`), ...v.map((n) => `volume ${n}`)];
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
    this.gateway = `${net}.1`;
    this.bridgeMade = true;
  }

  async start({ images = [BUSYBOX] } = {}) {
    if (!this.bridgeMade) this.makeBridge();
    fs.mkdirSync(this.dataRoot, { recursive: true });
    if (this.diskMiB && !this.mounted) {
      const img = path.join(this.dir, 'disk.img');
      execFileSync('truncate', ['-s', `${this.diskMiB}M`, img]);
      execFileSync('mkfs.ext4', ['-q', '-F', img]);
      execFileSync('mount', ['-o', 'loop', img, this.dataRoot]);
      this.mounted = true;
    }
    const config = { runtimes: this.runtimes };
    if (this.logMaxSize) {
      config['log-driver'] = 'json-file';
      config['log-opts'] = { 'max-size': this.logMaxSize, 'max-file': '1' };
    }
    const cfgFile = path.join(this.dir, 'daemon.json');
    fs.writeFileSync(cfgFile, JSON.stringify(config, null, 2));
    rmrf(path.join(this.dir, 'd.pid'));
    const log = fs.openSync(path.join(this.dir, 'dockerd.log'), 'a');
    const args = ['--config-file', cfgFile, '--data-root', this.dataRoot, '--exec-root', path.join(this.dir, 'exec'),
      '--pidfile', path.join(this.dir, 'd.pid'), '-H', this.sock, `--bridge=${this.bridge}`, '--iptables=false'];
    this.proc = spawn('dockerd', args, { detached: true, stdio: ['ignore', log, log] });
    this.proc.unref();
    fs.closeSync(log);
    await until('private dockerd up', () => this.ok('info'), 60_000);
    for (const image of images) {
      if (!this.ok('image', 'inspect', image)) {
        execFileSync('sh', ['-c', `docker save ${image} | docker -H ${this.sock} load`], { stdio: 'ignore' });
      }
    }
    return this;
  }

  /** Runtimes the daemon registered. */
  runtimeNames() {
    return Object.keys(JSON.parse(this.cli('info', '--format', '{{json .Runtimes}}')));
  }

  async stop() {
    const p = this.proc;
    this.proc = null;
    if (!p) return;
    let containerd = 0;
    try {
      containerd = Number(fs.readFileSync(path.join(this.dir, 'exec', 'containerd', 'containerd.pid'), 'utf8'));
    } catch {}
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {}
    await until('private dockerd gone', () => !alive(p.pid) || p.exitCode !== null || p.signalCode !== null, 90_000);
    if (containerd > 0) await until('private containerd gone', () => !alive(containerd), 60_000);
  }

  /** Removes what it holds, stops it, unmounts, deletes its files and bridge. */
  async destroy() {
    if (this.proc) {
      for (const c of this.cli('ps', '-aq').split('\n').filter(Boolean)) this.ok('rm', '-f', '-v', c);
      for (const v of this.cli('volume', 'ls', '-q').split('\n').filter(Boolean)) this.ok('volume', 'rm', '-f', v);
      for (const n of this.cli('network', 'ls', '--filter', 'label=light-runner.managed', '-q').split('\n').filter(Boolean)) this.ok('network', 'rm', n);
      this.ok('network', 'rm', 'light-runner-isolated');
      await this.stop();
    }
    const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n')
      .map((l) => l.split(' ')[1]).filter((m) => m && m.startsWith(this.dir));
    for (const m of mounts.sort().reverse()) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
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

/**
 * A runtime that never returns from `create` until `released()`: a script
 * standing in for runc that records its pid and sleeps. Returns { path,
 * pids(), release() } where release() lets later calls through to runc and
 * kills the sleepers (processes this test's daemon started for it).
 */
export function hangingRuntime(dir) {
  const script = path.join(dir, 'hang-runtime');
  const pidFile = path.join(dir, 'hung.pids');
  const released = path.join(dir, 'released');
  fs.writeFileSync(script, `#!/bin/sh
# A container runtime that hangs in 'create' (a stand-in for a runtime that never returns).
for a in "$@"; do [ "$a" = create ] && hang=1; done
if [ -n "$hang" ] && [ ! -e '${released}' ]; then echo $$ >> '${pidFile}'; exec sleep 100000; fi
exec runc "$@"
`, { mode: 0o755 });
  const pids = () => {
    try {
      return fs.readFileSync(pidFile, 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  return {
    path: script,
    pids,
    release() {
      fs.writeFileSync(released, '');
      for (const pid of pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    },
  };
}

export { until };
