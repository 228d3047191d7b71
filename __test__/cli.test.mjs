// The `light-runner` command, run as real processes on the real daemon:
// ps, logs, attach, stop, cancel, pause, resume, gc, --json, --help.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, deleteState, readState } from 'light-runner';
import { BUSYBOX, ROOT, STATE_DIR, containerExists, docker, rmrf, runNode, tmpdir, waitFor } from './helpers.mjs';

const BIN = path.join(ROOT, 'bin', 'light-runner.mjs');
const cli = (args, env = {}) => runNode([BIN, ...args], { env: { ...process.env, ...env } });
const COMMANDS = ['ps', 'logs', 'attach', 'stop', 'cancel', 'pause', 'resume', 'gc', 'doctor'];

test('cli: registered as the package bin, shipped in files', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.equal(pkg.bin['light-runner'], 'bin/light-runner.mjs');
  assert.ok(pkg.files.includes('bin/light-runner.mjs'));
  assert.match(fs.readFileSync(BIN, 'utf8'), /^#!\/usr\/bin\/env node\n/);
});

test('cli: --help for the command and for each subcommand; usage errors exit 2', async () => {
  const main = await cli(['--help']);
  assert.equal(main.code, 0);
  for (const c of COMMANDS) assert.match(main.stdout, new RegExp(`^  ${c}\\b`, 'm'), `${c} listed`);
  for (const c of COMMANDS) {
    const r = await cli([c, '--help']);
    assert.equal(r.code, 0, `${c} --help`);
    assert.match(r.stdout, new RegExp(`^Usage: light-runner ${c}\\b`), `${c} --help`);
    assert.deepEqual(await cli(['help', c]).then((h) => h.stdout), r.stdout);
  }
  for (const bad of [[], ['frobnicate'], ['logs'], ['logs', 'a', 'b'], ['ps', '--bogus'], ['stop', '--grace', 'soon', 'x'], ['ps', 'extra']]) {
    const r = await cli(bad);
    assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
  }
  const unknown = await cli(['logs', 'light-runner-000000000000']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no such run: light-runner-000000000000/);
});

test('cli: ps, logs -f, attach (exit code of the run), logs --json --since after the end', { timeout: 120_000 }, async () => {
  const ex = new DockerRunner().run({
    image: BUSYBOX,
    command: 'for i in 1 2 3 4; do echo "out $i"; sleep 0.5; done; echo "problem" >&2; exit 3',
    detached: true,
  });
  try {
    await waitFor(() => readState(ex.id)?.phase === 'started', { timeout: 30_000 });
    const ps = await cli(['ps']);
    assert.equal(ps.code, 0, ps.stderr);
    const [header, ...rows] = ps.stdout.trim().split('\n');
    assert.match(header, /^ID\s+STATUS\s+IMAGE\s+STARTED\s+DURATION\s+EXIT$/);
    const row = rows.find((r) => r.startsWith(ex.id));
    assert.ok(row, ps.stdout);
    assert.match(row, new RegExp(`^${ex.id}\\s+running\\s+${BUSYBOX}\\s+\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\s+\\S+\\s+-$`));
    const json = await cli(['ps', '--json', '--running']);
    const listed = JSON.parse(json.stdout);
    assert.ok(listed.every((s) => s.status === 'running'));
    assert.equal(listed.find((s) => s.id === ex.id).image, BUSYBOX);

    const follow = await cli(['logs', '-f', ex.id]);
    assert.equal(follow.code, 0, follow.stderr);
    assert.equal(follow.stdout, 'out 1\nout 2\nout 3\nout 4\n');
    assert.equal(follow.stderr, 'problem\n');

    const attach = await cli(['attach', ex.id]);
    assert.equal(attach.code, 3, 'the run\'s exit code');
    const result = JSON.parse(attach.stdout);
    assert.equal(result.exitCode, 3);
    assert.equal(result.success, false);
    assert.deepEqual(result, await ex.result);
    await waitFor(() => !containerExists(ex.id), { timeout: 20_000 });

    const after = await cli(['ps']);
    assert.match(after.stdout, new RegExp(`^${ex.id}\\s+exited\\s+.*\\s3$`, 'm'));
    const all = (await cli(['logs', '--json', ex.id])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(all.map((l) => [l.stream, l.line]),
      [['stdout', 'out 1'], ['stdout', 'out 2'], ['stdout', 'out 3'], ['stdout', 'out 4'], ['stderr', 'problem']]);
    const since = await cli(['logs', '--json', '--since', new Date(all[2].time).toISOString(), ex.id]);
    assert.deepEqual(since.stdout.trim().split('\n').map((l) => JSON.parse(l).line), ['out 3', 'out 4', 'problem']);
    const sinceMs = await cli(['logs', '--since', String(all[3].time), ex.id]);
    assert.equal(sinceMs.stdout, 'out 4\n');
    const attachJson = await cli(['attach', '--json', ex.id]);
    assert.equal(attachJson.code, 3);
    assert.deepEqual(JSON.parse(attachJson.stdout), result);
  } finally {
    await ex.result.catch(() => {});
    deleteState(ex.id);
  }
});

test('cli: pause, resume, stop --grace, cancel', { timeout: 120_000 }, async () => {
  const runner = new DockerRunner();
  const a = runner.run({ image: BUSYBOX, command: 'sleep 60', detached: true });
  const b = runner.run({ image: BUSYBOX, command: 'sleep 60', detached: true });
  try {
    await waitFor(() => readState(a.id)?.phase === 'started' && readState(b.id)?.phase === 'started', { timeout: 30_000 });
    const paused = await cli(['pause', a.id]);
    assert.equal(paused.code, 0, paused.stderr);
    assert.equal(docker('inspect', '-f', '{{.State.Paused}}', a.id), 'true');
    const resumed = await cli(['resume', a.id]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(docker('inspect', '-f', '{{.State.Paused}} {{.State.Running}}', a.id), 'false true');

    const t0 = Date.now();
    const stopped = await cli(['stop', '--grace', '500', '--json', a.id]);
    assert.equal(stopped.code, 0, stopped.stderr);
    const r = JSON.parse(stopped.stdout);
    assert.equal(r.cancelled, true);
    assert.ok(Date.now() - t0 < 30_000);
    assert.equal(readState(a.id).status, 'cancelled');

    const cancelled = await cli(['cancel', b.id]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(JSON.parse(cancelled.stdout).cancelled, true);
    assert.equal(readState(b.id).status, 'cancelled');
  } finally {
    for (const ex of [a, b]) {
      ex.cancel();
      await ex.result.catch(() => {});
      deleteState(ex.id);
    }
  }
});

test('cli: gc reports what each reclaimer did', { timeout: 120_000 }, async () => {
  const dir = tmpdir('lr-cli-gc-');
  // Nothing of other runs on this daemon may be reaped by this test.
  const env = { LIGHT_RUNNER_STATE_DIR: dir, LIGHT_RUNNER_REAP_AGE_MS: String(1e12), LIGHT_RUNNER_CACHE_TTL_MS: String(1e12) };
  try {
    const base = (id, extra) => ({
      id, container: id, volume: id, image: BUSYBOX, workdir: '/app',
      startedAt: '2020-01-01T00:00:00.000Z', ...extra,
    });
    const ghost = 'light-runner-0000000c11a1';
    const old = 'light-runner-0000000c11a2';
    fs.writeFileSync(path.join(dir, `${ghost}.json`), JSON.stringify(base(ghost, {
      status: 'running', detached: true, phase: 'started',
    })));
    fs.writeFileSync(path.join(dir, `${old}.json`), JSON.stringify(base(old, {
      status: 'exited', exitCode: 0, finishedAt: '2020-01-01T00:00:01.000Z', durationMs: 1000,
    })));
    fs.writeFileSync(path.join(dir, `${old}.log`), '{"stream":"stdout","n":0,"time":0,"line":"x"}\n');
    const r = await cli(['gc', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(report), ['cleanupOrphanStates', 'reapOrphans', 'cleanupOldStates', 'cleanupOrphanCache']);
    assert.equal(report.cleanupOrphanStates, 1, 'the ghost run failed');
    assert.equal(report.cleanupOldStates, 1, 'the old state');
    assert.deepEqual(Object.keys(report.reapOrphans), ['containers', 'volumes']);
    assert.equal(typeof report.cleanupOrphanCache, 'number');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.json') || f.endsWith('.log')), [`${ghost}.json`],
      'the old state went with its kept output; the ghost is kept, failed');
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, `${ghost}.json`), 'utf8')).status, 'failed');
    const table = await cli(['gc'], env);
    assert.equal(table.code, 0, table.stderr);
    for (const name of Object.keys(report)) assert.match(table.stdout, new RegExp(`^${name}\\s+\\d`, 'm'));
  } finally {
    rmrf(dir);
  }
});

test('cli: doctor says what runs here, text and --json; exit 1 and the reason when the daemon is unreachable', { timeout: 60_000 }, async () => {
  const dir = tmpdir('lr-cli-doctor-');
  try {
    const base = { LIGHT_RUNNER_STATE_DIR: dir, DOCKER_HOST: '', DOCKER_CONTEXT: '', DOCKER_CONFIG: path.join(dir, 'no-config') };
    const json = await cli(['doctor', '--json'], base);
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.version, JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
    assert.equal(doc.node, process.version);
    assert.match(doc.platform, /^linux-x64-(gnu|musl)$/);
    assert.ok(fs.existsSync(doc.addon.file), doc.addon.file);
    assert.match(path.basename(doc.addon.file), /^light-runner\.linux-x64-(gnu|musl)\.node$/);
    // From a checkout: its own build; from an install: the platform package.
    assert.ok(doc.addon.package === null || doc.addon.package === `light-runner-${doc.platform}`, doc.addon.package);
    assert.equal(typeof doc.watchdog.native, 'boolean');
    assert.ok(fs.existsSync(doc.watchdog.path), doc.watchdog.path);
    assert.equal(doc.endpoint.host, 'unix:///var/run/docker.sock');
    assert.deepEqual(doc.endpoint.source, { kind: 'default-socket' });
    assert.equal(doc.endpoint.described, 'unix:///var/run/docker.sock (from default socket)');
    assert.equal(doc.daemon.version, docker('version', '--format', '{{.Server.Version}}'));
    assert.equal(doc.daemon.apiVersion, docker('version', '--format', '{{.Server.APIVersion}}'));
    assert.deepEqual(doc.daemon.runtimes, Object.keys(JSON.parse(docker('info', '--format', '{{json .Runtimes}}'))).sort());
    assert.equal(doc.daemon.defaultRuntime, docker('info', '--format', '{{.DefaultRuntime}}'));
    assert.equal(doc.stateDir, dir);
    assert.equal(doc.states, 0);

    const text = await cli(['doctor'], base);
    assert.equal(text.code, 0, text.stderr);
    for (const key of ['light-runner', 'addon', 'watchdog', 'endpoint', 'daemon', 'runtimes', 'state dir']) {
      assert.match(text.stdout, new RegExp(`^${key}: +\\S`, 'm'), `${key} in\n${text.stdout}`);
    }
    assert.match(text.stdout, /^endpoint: +unix:\/\/\/var\/run\/docker\.sock \(from default socket\)$/m);
    assert.match(text.stdout, new RegExp(`^daemon: +Docker ${doc.daemon.version.replace(/[.+]/g, '\\$&')} \\(API `, 'm'));

    const down = { ...base, DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
    const bad = await cli(['doctor', '--json'], down);
    assert.equal(bad.code, 1, bad.stderr);
    const badDoc = JSON.parse(bad.stdout);
    assert.equal(badDoc.endpoint.described, 'unix:///nonexistent/docker.sock (from DOCKER_HOST)');
    assert.equal(badDoc.daemon.error.code, 'DOCKER_UNREACHABLE');
    assert.match(badDoc.daemon.error.message, /unix:\/\/\/nonexistent\/docker\.sock \(from DOCKER_HOST\)/);
    const badText = await cli(['doctor'], down);
    assert.equal(badText.code, 1);
    assert.match(badText.stdout, /^daemon: +unreachable: DOCKER_UNREACHABLE: Docker daemon unreachable at unix:\/\/\/nonexistent\/docker\.sock \(from DOCKER_HOST\)/m);
    assert.match(badText.stdout, /^state dir: /m, 'the rest is still said');

    const noContext = await cli(['doctor'], { ...base, DOCKER_CONTEXT: 'no-such-context' });
    assert.equal(noContext.code, 1);
    assert.match(noContext.stdout, /^endpoint: +none: Docker context "no-such-context" \(from DOCKER_CONTEXT=no-such-context\) not found/m);
  } finally {
    rmrf(dir);
  }
});
