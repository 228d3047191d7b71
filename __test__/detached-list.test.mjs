// Detached runs: list() / listStates() / readState() return every readable
// state (corrupt and temp files skipped), and a state file in the reference
// library's own format is listed and attachable.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, listStates, readState } from '../index.mjs';
import {
  BUSYBOX, LABEL, assertGone, docker, fakeId, privateStateDir, readStateFile, waitRunning, writeStateFile,
} from './helpers.mjs';

function refState(id, extra = {}) {
  // The reference library's format: `command`, none of the new fields.
  return {
    id, container: id, volume: id, image: BUSYBOX, workdir: '/app',
    command: 'sleep 2', timeout: 0, extract: [],
    startedAt: new Date().toISOString(), status: 'running', ...extra,
  };
}

test('list()/listStates()/readState(): every readable state; corrupt and temp files skipped', (t) => {
  const sd = privateStateDir(t);
  assert.deepEqual(listStates(), [], 'no dir yet: empty list');
  assert.deepEqual(DockerRunner.list(), []);
  const a = fakeId();
  const b = fakeId();
  const c = fakeId();
  writeStateFile(sd.dir, refState(a, { startedAt: '2026-01-01T00:00:00.000Z', status: 'exited', exitCode: 0 }));
  writeStateFile(sd.dir, refState(b, { startedAt: '2026-01-02T00:00:00.000Z', status: 'failed' }));
  writeStateFile(sd.dir, {
    ...refState(c, { startedAt: '2026-01-03T00:00:00.000Z', status: 'cancelled', cancelled: true, exitCode: 137 }),
    command: undefined, entrypoint: 'sleep 2', futureField: { kept: true },
  });
  const torn = fakeId();
  fs.writeFileSync(path.join(sd.dir, `${torn}.json`), '{\n  "id": "' + torn + '",\n  "status": "runn');
  const empty = fakeId();
  fs.writeFileSync(path.join(sd.dir, `${empty}.json`), '');
  const notObject = fakeId();
  fs.writeFileSync(path.join(sd.dir, `${notObject}.json`), '[1,2,3]');
  // Temp files of an interrupted write (whatever their name looks like).
  fs.writeFileSync(path.join(sd.dir, `.${a}.json.1234.deadbeef.tmp`), JSON.stringify(refState(fakeId())));
  fs.writeFileSync(path.join(sd.dir, `${fakeId()}.json.tmp`), JSON.stringify(refState(fakeId())));
  fs.writeFileSync(path.join(sd.dir, 'notes.txt'), 'hello');
  fs.mkdirSync(path.join(sd.dir, 'subdir.json'));

  const listed = listStates();
  const ids = listed.map((s) => s.id).sort();
  assert.deepEqual(ids, [a, b, c].sort());
  assert.deepEqual(DockerRunner.list(), listed, 'list() = listStates()');
  const byId = Object.fromEntries(listed.map((s) => [s.id, s]));
  assert.equal(byId[a].status, 'exited');
  assert.equal(byId[a].command, 'sleep 2');
  assert.equal(byId[b].status, 'failed');
  assert.equal(byId[c].status, 'cancelled');
  assert.deepEqual(byId[c].futureField, { kept: true }, 'unknown fields are listed as stored');

  assert.deepEqual(readState(a), readStateFile(sd.dir, a));
  assert.deepEqual(readState(c), readStateFile(sd.dir, c));
  // As the original (JSON.parse): a corrupt file throws; listStates() skips it.
  for (const bad of [torn, empty, notObject]) {
    assert.throws(() => readState(bad), (e) => e instanceof Error && e.message.includes(`${bad}.json`));
  }
  assert.equal(readState(fakeId()), null);
  assert.equal(readState('../' + path.basename(sd.dir) + '/' + a), null, 'no path traversal');
  assert.throws(() => readState(42), TypeError);
  // The corrupt files are left alone (only skipped).
  assert.ok(fs.existsSync(path.join(sd.dir, `${torn}.json`)));
});

test('a reference-format state file (command, no new fields) is listed and attachable', async (t) => {
  const sd = privateStateDir(t);
  const id = fakeId();
  sd.track(id);
  // A detached container as the reference library would have made it.
  docker('volume', 'create', '--label', `${LABEL}=${id}`, id);
  docker('run', '-d', '--network', 'none', '--label', `${LABEL}=${id}`, '--name', id, '-v', `${id}:/app`, '-w', '/app',
    BUSYBOX, 'sh', '-c', 'sleep 2; echo ref > /app/ref.txt; exit 3');
  const st = refState(id, { command: 'sleep 2; echo ref > /app/ref.txt; exit 3' });
  writeStateFile(sd.dir, st);
  const text = fs.readFileSync(sd.file(id), 'utf8');
  await waitRunning(id);

  const listed = listStates();
  assert.deepEqual(listed.map((s) => s.id), [id]);
  assert.deepEqual(listed[0], st, 'listed exactly as stored');
  assert.deepEqual(readState(id), st);
  assert.equal(fs.readFileSync(sd.file(id), 'utf8'), text, 'listing never rewrites the file');

  const ex = DockerRunner.attach(id);
  assert.ok(ex, 'attachable');
  assert.equal(ex.id, id);
  const r = await ex.result;
  assert.equal(r.exitCode, 3, JSON.stringify(r));
  assert.equal(r.success, false);
  assert.equal(r.cancelled, false);
  assert.equal(r.timedOut, false);
  const end = readState(id);
  assert.equal(end.status, 'exited');
  assert.equal(end.exitCode, 3);
  assert.equal(end.command, st.command, 'the reference fields are kept');
  assert.equal(typeof end.finishedAt, 'string');
  assert.equal(typeof end.durationMs, 'number');
  assertGone(id);
});

test('a reference-format run that succeeded is finalized with its recorded extract', async (t) => {
  const sd = privateStateDir(t);
  const to = sd.tmp('lr-det-out-');
  const id = fakeId();
  sd.track(id);
  docker('volume', 'create', '--label', `${LABEL}=${id}`, id);
  docker('run', '-d', '--network', 'none', '--label', `${LABEL}=${id}`, '--name', id, '-v', `${id}:/app`, '-w', '/app',
    BUSYBOX, 'sh', '-c', 'sleep 1; echo ref > /app/ref.txt');
  writeStateFile(sd.dir, refState(id, {
    command: 'sleep 1; echo ref > /app/ref.txt',
    extract: [{ from: '/app/ref.txt', to }],
  }));
  const r = await DockerRunner.attach(id).result;
  assert.equal(r.success, true, JSON.stringify(r));
  assert.equal(r.exitCode, 0);
  assert.equal(r.extracted?.[0]?.status, 'ok');
  assert.equal(fs.readFileSync(path.join(to, 'ref.txt'), 'utf8'), 'ref\n');
  assert.deepEqual(readState(id).extracted, r.extracted);
  assertGone(id);
});

test('a state written by this package is readable as the reference format expects', async (t) => {
  const sd = privateStateDir(t);
  const ex = new DockerRunner().run({ image: BUSYBOX, command: 'exit 0', detached: true, timeout: 5000 });
  sd.track(ex.id);
  const st = readStateFile(sd.dir, ex.id);
  for (const [k, t] of Object.entries({
    id: 'string', container: 'string', volume: 'string', image: 'string', workdir: 'string',
    command: 'string', timeout: 'number', startedAt: 'string', status: 'string',
  })) {
    assert.equal(typeof st[k], t, `${k} is a ${t}`);
  }
  assert.ok(Array.isArray(st.extract));
  await ex.result;
  const end = readStateFile(sd.dir, ex.id);
  assert.equal(end.status, 'exited');
  assert.equal(typeof end.exitCode, 'number');
  assert.equal(typeof end.finishedAt, 'string');
  assert.equal(typeof end.durationMs, 'number');
});
