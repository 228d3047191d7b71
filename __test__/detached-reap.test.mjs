// Detached runs: cleanupOrphanStates() reconciles state files with the
// daemon; reapOrphans() sweeps labelled leftovers, honours
// LIGHT_RUNNER_REAP_AGE_MS, never touches unlabelled resources and never
// destroys an unfinalized detached run.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, readState } from '../index.mjs';
import {
  BUSYBOX, LABEL, assertGone, child, containerExists, containerListedFast, containerState,
  countContainerEvents, docker, dockerTry, fakeId, makeBigDir, orphanRun, privateStateDir, readStateFile,
  scopeOf, sleep, volumeExists, waitExited, writeStateFile,
} from './helpers.mjs';

test('cleanupOrphanStates(): vanished → failed, unfinalized exit → finalized, others untouched; returns the count', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  const src = sd.tmp('lr-det-big-');
  let seeder;
  // An exited run nobody finalized (its launcher was SIGKILLed).
  const exitedId = (await orphanRun(sd, {
    command: 'sleep 1; mkdir -p /app/o; echo fin > /app/o/r.txt',
    extract: [{ from: '/app/o', to }],
  })).id;
  await waitExited(exitedId);
  // A run still running (no deadline) whose launcher died.
  const runningId = sd.leaveRunning((await orphanRun(sd, { command: 'sleep 60', timeout: 0 })).id);
  // A running state whose container vanished (reference format, no host).
  const ghost = fakeId();
  writeStateFile(sd.dir, {
    id: ghost, container: ghost, volume: ghost, image: BUSYBOX, workdir: '/app',
    command: 'sleep 100', timeout: 0, extract: [],
    startedAt: new Date(Date.now() - 60_000).toISOString(), status: 'running',
  });
  // A terminal state.
  const done = fakeId();
  const doneState = {
    id: done, container: done, volume: done, image: BUSYBOX, workdir: '/app',
    command: 'true', timeout: 0, extract: [], startedAt: '2026-01-01T00:00:00.000Z',
    status: 'exited', exitCode: 0, finishedAt: '2026-01-01T00:00:01.000Z', durationMs: 1000,
  };
  writeStateFile(sd.dir, doneState);
  // A run whose launcher is still seeding a big dir: not a ghost.
  const big = makeBigDir(src);
  seeder = child('detached-launch', { request: { dir: big, command: 'test -d /app/d0' }, awaitResult: true });
  const { id: seedId } = await seeder.event('id');
  sd.track(seedId);

  // The seeding run is looked at as the cleanup starts: the cleanup itself
  // may take seconds (a run that never started is watched for a late create
  // for 5 s), long enough for the seed to finish and the run to end.
  const cleaning = DockerRunner.cleanupOrphanStates();
  const seedContainer = await containerListedFast(seedId);
  const n = await cleaning;
  const seedState = readState(seedId);

  assert.equal(readState(ghost).status, 'failed', JSON.stringify(readState(ghost)));
  assert.equal(typeof readState(ghost).finishedAt, 'string');

  const fin = readState(exitedId);
  assert.equal(fin.status, 'exited', JSON.stringify(fin));
  assert.equal(fin.exitCode, 0);
  assert.equal(fin.extracted?.[0]?.status, 'ok');
  assert.equal(fin.extracted[0].to, to);
  assert.equal(fs.readFileSync(path.join(to, 'r.txt'), 'utf8'), 'fin\n');
  assertGone(exitedId);

  assert.equal(readState(runningId).status, 'running');
  assert.equal(containerState(runningId)?.Running, true);
  assert.deepEqual(readStateFile(sd.dir, done), doneState, 'terminal state untouched');

  assert.ok(['running', 'exited'].includes(seedState.status), `a run being seeded is not declared failed: ${JSON.stringify(seedState)}`);
  assert.ok(seedContainer === null || seedContainer === 'created',
    `the seeding run had not started at cleanup time (${seedContainer})`);
  assert.equal(n, 2, 'two states changed');

  const r = (await seeder.event('result', 90_000)).result;
  assert.equal(r.success, true, JSON.stringify(r));
  assert.equal(readState(seedId).status, 'exited');

  // The finalized run reports its result to a later attach.
  const later = await DockerRunner.attach(exitedId).result;
  assert.equal(later.success, true);
  assert.deepEqual(later.extracted, fin.extracted);
  assert.equal((await DockerRunner.attach(ghost).result).success, false);
  assert.equal(await DockerRunner.cleanupOrphanStates(), 0, 'nothing left to change');
});

test('reapOrphans(): honours LIGHT_RUNNER_REAP_AGE_MS, labelled leftovers only, never an unfinalized detached run', async (t) => {
  const sd = privateStateDir(t);
  const otherState = privateStateDir(t);
  process.env.LIGHT_RUNNER_STATE_DIR = sd.dir;
  const to = sd.tmp('lr-det-out-');
  scopeOf(t).saveEnv('LIGHT_RUNNER_REAP_AGE_MS');
  const tag = fakeId().slice('light-runner-'.length);
  const L = fakeId(); // labelled exited container
  // Labelled unused volume (named so that other suites' cleanupOrphanVolumes,
  // which goes by the light-runner-* name, leaves it alone).
  const LV = `lr-det-labelled-${tag}`;
  const R = fakeId(); // labelled running container, with its labelled volume
  const U = `lr-det-unlabelled-${tag}`; // unlabelled exited container + volume
  // (No unlabelled volume named light-runner-*: cleanupOrphanVolumes() of
  // concurrently running suites may legitimately remove it.)
  // Made by hand, not runs of the package: the test checks each of them
  // itself; they are removed when it ends.
  scopeOf(t).defer(() => {
    for (const n of [L, LV, R, U]) {
      dockerTry('rm', '-f', n);
      dockerTry('volume', 'rm', '-f', n);
    }
  });
  const t0 = Date.now();
  docker('run', '--network', 'none', '--label', `${LABEL}=${L}`, '--name', L, BUSYBOX, 'true');
  docker('volume', 'create', '--label', `${LABEL}=${LV}`, LV);
  docker('volume', 'create', '--label', `${LABEL}=${R}`, R);
  docker('run', '-d', '--network', 'none', '--label', `${LABEL}=${R}`, '--name', R, '-v', `${R}:/data`, BUSYBOX, 'sleep', '120');
  docker('run', '--network', 'none', '--name', U, BUSYBOX, 'true');
  docker('volume', 'create', U);
  // An exited detached run nobody finalized, state in the current dir.
  const D = (await orphanRun(sd, {
    command: 'mkdir -p /app/o; echo kept > /app/o/r.txt; sleep 1',
    extract: [{ from: '/app/o', to }],
  })).id;
  // Another one whose state lives in a dir this process does not see.
  const D2 = (await orphanRun(otherState, { command: 'sleep 1' }, { LIGHT_RUNNER_STATE_DIR: otherState.dir })).id;
  await waitExited(D);
  await waitExited(D2);
  assert.equal(readState(D).status, 'running');

  const survivors = () => ({
    L: containerExists(L), LV: volumeExists(LV), R: containerExists(R), RV: volumeExists(R),
    U: containerExists(U), UV: volumeExists(U),
    D: containerExists(D), DV: volumeExists(D), D2: containerExists(D2), D2V: volumeExists(D2),
  });
  const all = {
    L: true, LV: true, R: true, RV: true, U: true, UV: true,
    D: true, DV: true, D2: true, D2V: true,
  };

  // Default age (5 min): everything here is too young.
  delete process.env.LIGHT_RUNNER_REAP_AGE_MS;
  const r0 = await DockerRunner.reapOrphans();
  assert.equal(typeof r0.containers, 'number');
  assert.equal(typeof r0.volumes, 'number');
  assert.deepEqual(survivors(), all, 'default age keeps young resources');

  process.env.LIGHT_RUNNER_REAP_AGE_MS = '3600000';
  await DockerRunner.reapOrphans();
  assert.deepEqual(survivors(), all, 'a large age keeps young resources');

  // Make everything older than a 10 s age, then reap with it.
  await sleep(Math.max(0, t0 + 12_000 - Date.now()));
  process.env.LIGHT_RUNNER_REAP_AGE_MS = '10000';
  assert.deepEqual(survivors(), all, 'all still there right before the reap (else another suite removed them)');
  const r1 = await DockerRunner.reapOrphans();
  assert.deepEqual(survivors(), {
    ...all,
    L: false, // labelled, exited, old enough
    LV: false, // labelled, unused, old enough
  }, 'only the labelled leftovers went');
  assert.ok(r1.containers >= 1, `containers count ${JSON.stringify(r1)}`);
  assert.ok(r1.volumes >= 1, `volumes count ${JSON.stringify(r1)}`);
  assert.equal(containerState(R)?.Running, true, 'a running labelled container is never reaped');

  // The detached run kept everything: it is still collected in full.
  const res = await DockerRunner.attach(D).result;
  assert.equal(res.success, true, JSON.stringify(res));
  assert.equal(res.extracted?.[0]?.status, 'ok');
  assert.equal(fs.readFileSync(path.join(to, 'r.txt'), 'utf8'), 'kept\n');
  assertGone(D);
  process.env.LIGHT_RUNNER_STATE_DIR = otherState.dir;
  assert.equal((await DockerRunner.attach(D2).result).exitCode, 0);
  assertGone(D2);
  process.env.LIGHT_RUNNER_STATE_DIR = sd.dir;
});

test('reapOrphans(): labelled leftovers of a finalized detached run are reaped', async (t) => {
  const sd = privateStateDir(t);
  scopeOf(t).saveEnv('LIGHT_RUNNER_REAP_AGE_MS');
  // Its state file makes it a run of this test: checked gone, then removed, at the end.
  const id = fakeId();
  // A finalized state whose container and volume were left behind
  // (e.g. the finalizer crashed after recording the result).
  docker('volume', 'create', '--label', `${LABEL}=${id}`, '--label', 'light-runner.detached=true', id);
  docker('run', '--network', 'none', '--label', `${LABEL}=${id}`, '--label', 'light-runner.detached=true', '--name', id,
    '-v', `${id}:/app`, BUSYBOX, 'true');
  writeStateFile(sd.dir, {
    id, container: id, volume: id, image: BUSYBOX, workdir: '/app', command: 'true', timeout: 0,
    extract: [], startedAt: new Date().toISOString(), status: 'exited', exitCode: 0,
    finishedAt: new Date().toISOString(), durationMs: 5,
  });
  const t0 = Date.now();
  await sleep(Math.max(0, t0 + 3500 - Date.now()));
  process.env.LIGHT_RUNNER_REAP_AGE_MS = '2000';
  const r = await DockerRunner.reapOrphans();
  assert.equal(containerExists(id), false, 'finalized run container reaped');
  assert.equal(volumeExists(id), false, 'its volume too (unused once the container went)');
  assert.ok(r.containers >= 1 && r.volumes >= 1, JSON.stringify(r));
});

test('cleanupOrphanStates() from three processes at once: one finalization, counted once', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  const kids = [];
  const since = Date.now();
  const ids = [];
  for (let i = 0; i < 3; i++) {
    ids.push((await orphanRun(sd, {
      command: `mkdir -p /app/o; echo ${i} > /app/o/r${i}.txt; sleep 1`,
      extract: [{ from: '/app/o', to }],
    })).id);
  }
  for (const id of ids) await waitExited(id);
  for (let i = 0; i < 3; i++) kids.push(child('detached-call', { call: 'cleanupOrphanStates', waitGo: true }));
  for (const k of kids) await k.event('ready');
  for (const k of kids) k.send('go');
  const counts = [];
  for (const k of kids) counts.push((await k.event('done', 60_000)).value);
  for (const [i, id] of ids.entries()) {
    const st = readState(id);
    assert.equal(st.status, 'exited');
    assert.equal(st.extracted?.[0]?.status, 'ok');
    assert.equal(fs.readFileSync(path.join(to, `r${i}.txt`), 'utf8'), `${i}\n`);
    assertGone(id);
    assert.equal(countContainerEvents(id, 'archive-path', since, Date.now()), 1, `${id} extracted once`);
  }
  // Each process counts only the states it changed itself.
  assert.equal(counts.reduce((a, b) => a + b, 0), 3, `three states changed in all, each counted once: ${counts}`);
});
