// Image reclaimers (SPEC section 12, issue 7):
// DockerRunner.cleanupOrphanCache() removes light-runner-cache:* images no
// container uses and no run used for LIGHT_RUNNER_CACHE_TTL_MS (read at call
// time); DockerRunner.cleanupDanglingImages() removes untagged images no
// container uses. Both return how many they removed.
//
// Both act on the whole daemon, as their contract says: with a small TTL,
// the cache images of others that nothing used for that long go too.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { DockerRunner, deleteState } from 'light-runner';
import { BUSYBOX, NODE_IMAGE, STATE_DIR, docker, dockerOk, rmrf, sleep } from './helpers.mjs';

const token = () => crypto.randomBytes(6).toString('hex');
const imageExists = (ref) => dockerOk('image', 'inspect', ref);

function cacheTag(image, steps) {
  return `light-runner-cache:${crypto.createHash('sha256').update(JSON.stringify([image, steps])).digest('hex')}`;
}

/** Runs `steps` (a cache hit when built before); resolves with the onLog lines. */
async function runSteps(steps, { fail = false } = {}) {
  const lines = [];
  const ex = new DockerRunner().run({
    image: BUSYBOX, network: 'none', run: steps, command: 'true', onLog: (l) => lines.push(l),
  });
  try {
    await ex.result.then(
      (r) => assert.equal(r.success, true),
      (e) => { if (!fail) throw e; },
    );
  } finally {
    deleteState(ex.id);
  }
  return lines;
}

/**
 * An untagged image no container uses: the layer of the step before a
 * failing one, which the builder leaves. Returns its id.
 */
async function danglingImage() {
  const tok = token();
  const lines = await runSteps([`echo ${tok} > /layer`, 'exit 1'], { fail: true });
  const at = lines.findIndex((l) => l.startsWith('Step 3/'));
  const id = /^ ---> ([0-9a-f]{12})$/.exec(lines[at - 1] ?? '')?.[1];
  assert.ok(id, lines.join('\n'));
  rmrf(path.join(STATE_DIR, '.cache-use', cacheTag(BUSYBOX, [`echo ${tok} > /layer`, 'exit 1']).replace(':', '-')));
  return id;
}

const dangling = () => docker('images', '--filter', 'dangling=true', '--format', '{{.ID}}').split('\n').filter(Boolean);

describe('image reclaimers', () => {
  test('cleanupOrphanCache: unused past the TTL goes; one a container uses and one a run just used stay', async () => {
    const tok = token();
    const unused = [`echo unused-${tok}`];
    const held = [`echo held-${tok}`];
    const reused = [`echo reused-${tok}`];
    const tags = [unused, held, reused].map((s) => cacheTag(BUSYBOX, s));
    const [unusedTag, heldTag, reusedTag] = tags;
    const holder = `lr-cache-holder-${tok}`;
    const saved = process.env.LIGHT_RUNNER_CACHE_TTL_MS;
    try {
      for (const s of [unused, held, reused]) await runSteps(s);
      for (const t of tags) assert.ok(imageExists(t), `${t} built`);
      // A container created (never started) from one of them.
      docker('create', '--name', holder, heldTag, 'true');

      // Default TTL (7 days): all of them are recent.
      delete process.env.LIGHT_RUNNER_CACHE_TTL_MS;
      await DockerRunner.cleanupOrphanCache();
      for (const t of tags) assert.ok(imageExists(t), `${t} kept under the default TTL`);

      await sleep(3000);
      await runSteps(reused); // a cache hit: its use is recorded now
      process.env.LIGHT_RUNNER_CACHE_TTL_MS = '2000';
      const removed = await DockerRunner.cleanupOrphanCache();
      assert.ok(removed >= 1, `removed ${removed}`);
      assert.equal(imageExists(unusedTag), false, 'unused for longer than the TTL: removed');
      assert.ok(imageExists(heldTag), 'used by a container: kept');
      assert.ok(imageExists(reusedTag), 'used by a run within the TTL: kept');
      assert.ok(imageExists(BUSYBOX) && imageExists(NODE_IMAGE), 'other images untouched');

      // Once the container is gone and the TTL passed, both go.
      docker('rm', holder);
      await sleep(2500);
      assert.ok(await DockerRunner.cleanupOrphanCache() >= 2);
      assert.equal(imageExists(heldTag), false);
      assert.equal(imageExists(reusedTag), false);
      assert.ok(imageExists(BUSYBOX));

      // A use record whose image went by other means is forgotten too,
      // once the TTL passed (records live in the state dir).
      const useFile = (t) => path.join(STATE_DIR, '.cache-use', t.replace(':', '-'));
      for (const t of tags) assert.equal(fs.existsSync(useFile(t)), false, `${t}: record removed with the image`);
      const gone = cacheTag(BUSYBOX, [`echo gone-${tok}`]);
      fs.writeFileSync(useFile(gone), '');
      await DockerRunner.cleanupOrphanCache();
      assert.equal(fs.existsSync(useFile(gone)), true, 'recent: kept (a build may be under way)');
      await sleep(2500);
      await DockerRunner.cleanupOrphanCache();
      assert.equal(fs.existsSync(useFile(gone)), false, 'past the TTL without an image: removed');
    } finally {
      if (saved === undefined) delete process.env.LIGHT_RUNNER_CACHE_TTL_MS;
      else process.env.LIGHT_RUNNER_CACHE_TTL_MS = saved;
      dockerOk('rm', '-f', holder);
      for (const t of [...tags, cacheTag(BUSYBOX, [`echo gone-${tok}`])]) {
        dockerOk('rmi', t);
        rmrf(path.join(STATE_DIR, '.cache-use', t.replace(':', '-')));
      }
    }
  });

  test('cleanupDanglingImages: untagged and unused goes; one a container uses and tagged images stay', async () => {
    const tok = token();
    const holder = `lr-dangling-holder-${tok}`;
    let free;
    let used;
    try {
      free = await danglingImage();
      used = await danglingImage();
      docker('create', '--name', holder, used, 'true');
      const before = dangling();
      assert.ok(before.includes(free) && before.includes(used), `both dangling: ${before}`);
      const removed = await DockerRunner.cleanupDanglingImages();
      assert.ok(removed >= 1, `removed ${removed}`);
      assert.equal(imageExists(free), false, 'dangling and unused: removed');
      assert.ok(imageExists(used), 'used by a container: kept');
      assert.ok(imageExists(BUSYBOX) && imageExists(NODE_IMAGE), 'tagged images untouched');
    } finally {
      dockerOk('rm', '-f', holder);
      for (const id of [free, used]) if (id) dockerOk('rmi', id);
    }
  });
});
