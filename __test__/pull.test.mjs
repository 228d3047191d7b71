// Images missing locally are pulled, an image no registry has rejects with
// CONTAINER_START_FAILED, and a detached run whose launcher is still pulling
// is not declared failed by a host that attaches meanwhile. The registry is
// the local one of scripts/start-registry.sh (run by `npm test`'s pretest);
// there is no other.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DockerRunner, readState } from '../index.mjs';
import {
  assertGone, child, docker, dockerOk, privateStateDir, scopeOf, sleep, waitFor,
} from './helpers.mjs';

const REGISTRY = '127.0.0.1:5000';
const SMALL = `${REGISTRY}/light-runner/busybox:pull-test`;
const BIG = `${REGISTRY}/light-runner/big:pull-test`;

async function registryUp() {
  const res = await fetch(`http://${REGISTRY}/v2/`).catch((e) => ({ ok: false, e }));
  assert.ok(res.ok, `local registry not reachable on ${REGISTRY}: run scripts/start-registry.sh`);
}

function untag(image) {
  dockerOk('rmi', '-f', image);
}

test('an image missing locally is pulled from the registry, then the run proceeds', async (t) => {
  await registryUp();
  untag(SMALL);
  scopeOf(t).defer(() => untag(SMALL));
  assert.equal(dockerOk('image', 'inspect', SMALL), false, 'precondition: image absent locally');
  const lines = [];
  const ex = new DockerRunner().run({
    image: SMALL, command: 'echo pulled-and-ran', network: 'none', onLog: (l) => lines.push(l),
  });
  scopeOf(t).track(ex.id);
  const r = await ex.result;
  assert.equal(r.success, true);
  assert.deepEqual(lines, ['pulled-and-ran']);
  assert.ok(dockerOk('image', 'inspect', SMALL), 'the image is now local');
  assertGone(ex.id);
});

test('attach from another process while the launcher pulls does not mark the run failed', async (t) => {
  await registryUp();
  untag(BIG);
  const sd = privateStateDir(t);
  scopeOf(t).defer(() => untag(BIG));
  const launcher = child('detached-launch', {
    request: { image: BIG, command: 'echo done', network: 'none' },
    awaitResult: true,
  });
  const { id } = await launcher.event('id');
  sd.track(id);
  // The pull of ~300 MB takes seconds; attach while no container exists.
  await sleep(300);
  assert.equal(dockerOk('container', 'inspect', id), false, 'still pulling: no container yet');
  assert.equal(readState(id).phase, 'setup');
  const attacher = child('detached-attach', { id });
  const attached = await attacher.event('attached');
  assert.equal(attached.found, true);
  const [fromLauncher, fromAttacher] = await Promise.all([
    launcher.event('result'), attacher.event('result'),
  ]);
  assert.equal(fromAttacher.result.success, true, JSON.stringify(fromAttacher));
  assert.equal(fromAttacher.result.exitCode, 0);
  assert.deepEqual(fromAttacher.result, fromLauncher.result);
  const st = readState(id);
  assert.equal(st.status, 'exited');
  await waitFor(() => !dockerOk('container', 'inspect', id), { timeout: 10_000, what: 'container removed' });
  assertGone(id);
});

test('an image that no registry has: CONTAINER_START_FAILED, nothing left behind', async (t) => {
  const ex = new DockerRunner().run({ image: `${REGISTRY}/light-runner/absent:nope`, command: 'true' });
  scopeOf(t).track(ex.id);
  await assert.rejects(ex.result, (e) => e.code === 'CONTAINER_START_FAILED' && /pull/.test(e.message));
  assertGone(ex.id);
  assert.equal(docker('ps', '-aq', '--filter', `name=${ex.id}`), '');
});
