// Security profiles (SPEC §15) on the shared daemon: what `restricted` sets
// (docker inspect of a live run) and what the job meets inside (its uid, a
// read-only /, /tmp a tmpfs, no network, init as PID 1, the limits);
// LIGHT_RUNNER_SECURITY_PROFILE; bad values and conflicts reject each run
// naming the option; seeding and extraction under a read-only root, attached
// and detached (the seed twin leaves nothing behind); free-form runtimes
// checked against the daemon's list.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner, LightRunnerError } from 'light-runner';
import {
  BUSYBOX, FIXTURES, LABEL, assertGone, child, containerListedFast, docker, finish, inspectJson, leftoversOf,
  makeBigDir, privateStateDir, runToEnd, scopeOf, startedRun, waitFor,
} from './helpers.mjs';

const restricted = (o = {}) => new DockerRunner({ securityProfile: 'restricted', ...o });

/** Runs `command` under `runner`, returns { result, out } (stdout+stderr lines joined). */
async function job(t, runner, command, request = {}) {
  const { result, lines, id } = await runToEnd(t, runner, { image: BUSYBOX, command, timeout: 60_000, ...request });
  return { result, out: lines.join('\n'), id };
}

/** A rejection of `result` before any Docker resource exists. */
async function assertRejectsNaming(t, runner, name) {
  const ex = runner.run({ image: BUSYBOX, command: 'true' });
  scopeOf(t).track(ex.id);
  const err = await ex.result.then(() => null, (e) => e);
  assert.ok(err instanceof LightRunnerError, `expected a rejection naming ${name}`);
  assert.equal(err.code, 'CONTAINER_START_FAILED');
  assert.match(err.message, new RegExp(name));
  assert.deepEqual(leftoversOf(ex.id), [], 'nothing was created');
  return err;
}

describe('restricted profile: the create body, as docker inspect shows it', () => {
  test('user, CapDrop ALL, no-new-privileges, read-only root, /tmp tmpfs, no swap, pids, ulimits, init, no network', async (t) => {
    const { ex, started } = startedRun(t, restricted(), { image: BUSYBOX, command: 'echo started; sleep 60' });
    try {
      await started;
      const info = inspectJson(ex.id);
      const hc = info.HostConfig;
      assert.equal(info.Config.User, '65534:65534');
      assert.deepEqual(hc.CapDrop, ['ALL']);
      assert.equal(hc.CapAdd, null);
      assert.deepEqual(hc.SecurityOpt, ['no-new-privileges']);
      assert.equal(hc.Privileged, false);
      assert.equal(hc.ReadonlyRootfs, true);
      assert.deepEqual(hc.Tmpfs, { '/tmp': 'rw,nosuid,nodev,size=67108864,mode=1777' });
      assert.equal(hc.Memory, 512 * 1024 * 1024);
      assert.equal(hc.MemorySwap, hc.Memory, 'no swap beyond memory');
      assert.equal(hc.PidsLimit, 100);
      assert.deepEqual(hc.Ulimits, [
        { Name: 'nofile', Soft: 1024, Hard: 1024 },
        { Name: 'fsize', Soft: 1073741824, Hard: 1073741824 },
        { Name: 'core', Soft: 0, Hard: 0 },
      ]);
      assert.equal(hc.Init, true);
      assert.equal(hc.NetworkMode, 'none');
      assert.deepEqual(Object.keys(info.NetworkSettings.Networks), ['none']);
      assert.ok(info.Mounts.some((m) => m.Destination === '/app' && m.Name === ex.id && m.RW));
      assert.equal(info.Config.Labels[LABEL], ex.id);
      // The seed twin is gone before the job starts.
      assert.equal(docker('ps', '-a', '--filter', `label=${LABEL}=${ex.id}`, '--format', '{{.Names}}'), ex.id);
    } finally {
      await finish(ex);
    }
  });

  test('inside: uid 65534, no capabilities, NNP, seccomp, / read-only, /tmp tmpfs, no network, PID 1 init, limits', async (t) => {
    const { result, out } = await job(t, restricted(), [
      'echo uid=$(id -u) gid=$(id -g)',
      'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status',
      'touch /rootfs-probe 2>&1 || echo root-write-denied',
      'grep " /tmp " /proc/mounts',
      'echo x > /tmp/ok && echo tmp-writable',
      'echo x > /app/ok && echo app-writable',
      'ls /sys/class/net | tr "\\n" " "; echo',
      'echo pid1=$(cat /proc/1/comm)',
      'grep -E "Max (open files|file size|core file size)" /proc/self/limits',
      'mount | grep " / " ',
    ].join('; '));
    assert.equal(result.exitCode, 0, out);
    assert.match(out, /uid=65534 gid=65534/);
    assert.match(out, /CapEff:\s+0000000000000000/);
    assert.match(out, /CapBnd:\s+0000000000000000/);
    assert.match(out, /NoNewPrivs:\s+1/);
    assert.match(out, /Seccomp:\s+2/, 'the daemon default seccomp filter is on');
    assert.match(out, /Read-only file system/);
    assert.match(out, /root-write-denied/);
    assert.match(out, /^tmpfs \/tmp tmpfs rw,nosuid,nodev.*size=65536k/m);
    assert.match(out, /tmp-writable/);
    assert.match(out, /app-writable/);
    assert.match(out, /^lo $/m, 'only the loopback interface');
    assert.match(out, /pid1=(docker-)?init/);
    assert.match(out, /Max file size\s+1073741824\s+1073741824/);
    assert.match(out, /Max core file size\s+0\s+0/);
    assert.match(out, /Max open files\s+1024\s+1024/);
    assert.match(out, /\bro[,\s]/, 'the root mount is read-only');
  });

  test('a named network is joined under restricted; [] and "" are no network', async (t) => {
    const joined = await job(t, restricted(), 'ls /sys/class/net | tr "\\n" " "', { networks: ['light-runner-isolated'] });
    assert.match(joined.out, /eth0/);
    const empty = await job(t, restricted(), 'ls /sys/class/net | tr "\\n" " "', { networks: [], network: '' });
    assert.doesNotMatch(empty.out, /eth0/);
  });

  test('user "uid:gid" replaces 65534; tmpfsSize and ulimits are applied', async (t) => {
    const { out } = await job(t, restricted({ user: '1234:4321', tmpfsSize: '8m', ulimits: { nofile: 64 } }),
      'id -u; id -g; grep " /tmp " /proc/mounts; grep "Max open files" /proc/self/limits; echo x > /app/f && echo wrote');
    assert.match(out, /^1234$/m);
    assert.match(out, /^4321$/m);
    assert.match(out, /size=8192k/);
    assert.match(out, /Max open files\s+64\s+64/);
    assert.match(out, /wrote/);
  });
});

describe('baseline stays the default, and its knobs work alone', () => {
  test('no option, no variable: root, writable root, the bridge, no init', async (t) => {
    const { out } = await job(t, new DockerRunner(),
      'id -u; touch /rootfs-ok && echo root-writable; ls /sys/class/net | tr "\\n" " "; echo; echo pid1=$(cat /proc/1/comm)');
    assert.match(out, /^0$/m);
    assert.match(out, /root-writable/);
    assert.match(out, /eth0/);
    assert.match(out, /^pid1=sh$/m, 'the job is PID 1');
  });

  test('baseline user without dir can write the workdir; readOnlyRootfs with tmpfsSize; capAdd', async (t) => {
    const { out, result } = await job(t, new DockerRunner({ user: '1000', readOnlyRootfs: true, tmpfsSize: '4m', capAdd: ['SYS_PTRACE'] }),
      'id -u; echo x > /app/f && echo app-ok; echo y > /tmp/f && echo tmp-ok; touch /nope 2>&1; grep CapBnd /proc/self/status');
    assert.equal(result.exitCode, 0, out);
    assert.match(out, /^1000$/m);
    assert.match(out, /app-ok/);
    assert.match(out, /tmp-ok/);
    assert.match(out, /Read-only file system/);
    // CAP_SYS_PTRACE is bit 19.
    const bnd = BigInt(`0x${/CapBnd:\s+([0-9a-f]+)/.exec(out)[1]}`);
    assert.equal((bnd >> 19n) & 1n, 1n, 'SYS_PTRACE added');
  });
});

describe('LIGHT_RUNNER_SECURITY_PROFILE, bad values and conflicts', () => {
  test('the variable sets the default at call time; the option wins', async (t) => {
    const scope = scopeOf(t);
    scope.saveEnv('LIGHT_RUNNER_SECURITY_PROFILE');
    const runner = new DockerRunner(); // built before the variable is set
    process.env.LIGHT_RUNNER_SECURITY_PROFILE = 'restricted';
    const { out } = await job(t, runner, 'id -u');
    assert.match(out, /^65534$/m);
    const { out: base } = await job(t, new DockerRunner({ securityProfile: 'baseline' }), 'id -u');
    assert.match(base, /^0$/m);
    process.env.LIGHT_RUNNER_SECURITY_PROFILE = 'paranoid';
    const err = await assertRejectsNaming(t, runner, 'LIGHT_RUNNER_SECURITY_PROFILE');
    assert.match(err.message, /paranoid/);
  });

  test('invalid values and conflicts reject each run naming the option; wrong types throw', async (t) => {
    const cases = [
      [{ securityProfile: 'strict' }, 'securityProfile'],
      [{ securityProfile: 'restricted', noNewPrivileges: false }, 'noNewPrivileges'],
      [{ securityProfile: 'restricted', user: '0' }, 'user'],
      [{ securityProfile: 'restricted', user: '1000:0' }, 'user'],
      [{ securityProfile: 'restricted', capAdd: ['NET_ADMIN'] }, 'capAdd'],
      [{ securityProfile: 'restricted', readOnlyRootfs: false }, 'readOnlyRootfs'],
      [{ user: 'x y' }, 'user'],
      [{ tmpfsSize: '0' }, 'tmpfsSize'],
      [{ ulimits: { nofiles: 1 } }, 'ulimits'],
      [{ capAdd: ['NET_FLY'] }, 'capAdd'],
      [{ runtime: '--privileged' }, 'runtime'],
    ];
    for (const [options, name] of cases) {
      const runner = new DockerRunner(options); // never throws for a value of the right type
      await assertRejectsNaming(t, runner, name);
      // Each run, not only the first.
      await assertRejectsNaming(t, runner, name);
    }
    for (const [options, name] of [
      [{ securityProfile: 1 }, 'securityProfile'], [{ user: 1000 }, 'user'], [{ readOnlyRootfs: 'yes' }, 'readOnlyRootfs'],
      [{ tmpfsSize: true }, 'tmpfsSize'], [{ ulimits: 5 }, 'ulimits'], [{ capAdd: 'NET_ADMIN' }, 'capAdd'],
      [{ runtime: 5 }, 'runtime'],
    ]) {
      assert.throws(() => new DockerRunner(options), new RegExp(name));
    }
  });

  test('an unregistered runtime rejects naming the runtimes the daemon knows', async (t) => {
    const err = await assertRejectsNaming(t, new DockerRunner({ runtime: 'nosuchruntime' }), 'runtime');
    assert.match(err.message, /nosuchruntime/);
    assert.match(err.message, /runc/, 'names the known ones');
    // 'runc' and '' pass nothing: the daemon default.
    const { result } = await job(t, new DockerRunner({ runtime: 'runc' }), 'true');
    assert.equal(result.success, true);
  });
});

describe('seeding and extraction under a read-only root (the seed twin)', () => {
  const cases = [['attached', false], ['detached', true]];
  for (const [mode, detached] of cases) {
    test(`${mode}: a job as 65534 without dir writes /app/out/x, extracted`, async (t) => {
      if (detached) privateStateDir(t);
      const to = scopeOf(t).tmp('lr-sec-out-');
      const { result, id } = await job(t, restricted(), 'id -u > /app/uid && mkdir -p /app/out && echo hello > /app/out/x', {
        extract: [{ from: '/app/out', to }], detached,
      });
      assert.equal(result.success, true, JSON.stringify(result));
      assert.equal(result.extracted[0].status, 'ok');
      assert.equal(fs.readFileSync(path.join(to, 'x'), 'utf8'), 'hello\n');
      assertGone(id);
    });

    test(`${mode}: a job with dir appends to seeded files (custom workdir)`, async (t) => {
      if (detached) privateStateDir(t);
      const scope = scopeOf(t);
      const dir = scope.tmp('lr-sec-dir-');
      fs.mkdirSync(path.join(dir, 'sub'));
      fs.writeFileSync(path.join(dir, 'sub', 'log.txt'), 'seeded\n');
      fs.writeFileSync(path.join(dir, 'top.txt'), 'top\n', { mode: 0o600 });
      const to = scope.tmp('lr-sec-out-');
      const { result, id } = await job(t, restricted(),
        'echo appended >> sub/log.txt && echo more >> top.txt && echo new > sub/new.txt && mkdir made && id -u > made/uid', {
          dir, workdir: '/work/job', extract: [{ from: '.', to }], detached,
        });
      assert.equal(result.success, true, JSON.stringify(result));
      assert.equal(fs.readFileSync(path.join(to, 'sub', 'log.txt'), 'utf8'), 'seeded\nappended\n');
      assert.equal(fs.readFileSync(path.join(to, 'top.txt'), 'utf8'), 'top\nmore\n');
      assert.equal(fs.readFileSync(path.join(to, 'sub', 'new.txt'), 'utf8'), 'new\n');
      assert.equal(fs.readFileSync(path.join(to, 'made', 'uid'), 'utf8'), '65534\n');
      assertGone(id);
    });
  }

  test('a cancel during setup and a failed seed leave no twin behind', async (t) => {
    const missing = restricted().run({ image: BUSYBOX, command: 'true', dir: '/nonexistent-dir-xyz' });
    scopeOf(t).track(missing.id);
    await assert.rejects(missing.result, /dir path not found/);
    const ex = restricted().run({ image: BUSYBOX, command: 'sleep 30' });
    scopeOf(t).track(ex.id);
    setTimeout(() => ex.cancel(), 50);
    const r = await ex.result.catch((e) => e);
    assert.ok(r.cancelled === true || r instanceof Error, JSON.stringify(r));
  });

  test('a host SIGKILLed while its seed twin takes the upload: the watchdog removes twin, container and volume', { timeout: 90_000 }, async (t) => {
    const scope = scopeOf(t);
    const dir = makeBigDir(scope.tmp('lr-sec-big-'), 1500);
    const host = spawn(process.execPath, [path.join(FIXTURES, 'restricted-seed-host.mjs'), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    scope.defer(() => host.kill('SIGKILL'));
    const exited = new Promise((r) => host.on('exit', r));
    const id = await new Promise((resolve, reject) => {
      let out = '';
      host.stdout.on('data', (d) => {
        out += d;
        const m = /(light-runner-[0-9a-f]{12})\n/.exec(out);
        if (m) resolve(m[1]);
      });
      exited.then(() => reject(new Error(`host exited early: ${out}`)));
    });
    scope.track(id);
    const twin = `${id}-seed`;
    await waitFor(async () => (await containerListedFast(twin)) !== null,
      { timeout: 30_000, every: 20, what: 'the seed twin exists' });
    assert.equal(docker('ps', '-a', '--filter', `name=^/${twin}$`, '--format', `{{.Label "${LABEL}"}}`), id, 'the twin carries the run id');
    host.kill('SIGKILL');
    await exited;
    await waitFor(() => leftoversOf(id).length === 0, { timeout: 20_000, every: 250, what: `twin, container and volume of ${id} removed` });
  });

  test('a detached launcher SIGKILLed while the twin takes the upload: attach() finalizes and nothing is left', { timeout: 90_000 }, async (t) => {
    const sd = privateStateDir(t);
    const dir = makeBigDir(sd.tmp('lr-sec-big-'), 1500);
    const launcher = child('detached-launch', { options: { securityProfile: 'restricted' }, request: { command: 'sleep 30', dir }, hold: true });
    const { id } = await launcher.event('id');
    sd.track(id);
    const twin = `${id}-seed`;
    await waitFor(async () => (await containerListedFast(twin)) !== null,
      { timeout: 30_000, every: 20, what: 'the seed twin exists' });
    launcher.kill('SIGKILL');
    await launcher.exited;
    const settled = await DockerRunner.attach(id).result.then((r) => r, (e) => e);
    assert.ok(settled instanceof Error || settled.success === false, JSON.stringify(settled));
    await waitFor(() => leftoversOf(id).length === 0, { timeout: 20_000, every: 250, what: `twin, container and volume of ${id} removed` });
  });
});
