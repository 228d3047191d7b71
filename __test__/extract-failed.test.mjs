// EXTRACT_FAILED (SPEC section 8): when the results cannot be read out at
// all (the daemon fails the archive download itself, as opposed to one
// entry being missing or unsafe), the run's result rejects with
// EXTRACT_FAILED, dockerOp 'extractFromVolume'; the job's exit code and
// the failure are recorded, every host reports the same error, and nothing
// is left in Docker. A proxy in front of the daemon answers every archive
// download with a 500.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { DockerRunner, LightRunnerError, readState } from 'light-runner';
import { BUSYBOX, FIXTURES, archiveProxy, leftoversOf, runNode, scopeOf } from './helpers.mjs';

/** A proxy that answers every archive download with a 500. */
async function failingArchives(dir) {
  const proxy = await archiveProxy(dir, (res) => {
    res.writeHead(500, { 'Content-Type': 'application/json' });
    res.end('{"message":"the storage driver failed"}');
  });
  return { ...proxy, failed: proxy.intercepted };
}

for (const detached of [false, true]) {
  test(`${detached ? 'detached' : 'attached'}: an archive the daemon cannot give rejects EXTRACT_FAILED, recorded for every host`, async (t) => {
    const scope = scopeOf(t);
    const dir = scope.tmp('lr-extract-failed-');
    const proxy = await failingArchives(dir);
    scope.defer(() => proxy.close());
    const request = {
      image: BUSYBOX, command: 'mkdir out && echo hi > out/a && exit 0', detached,
      extract: [{ from: 'out', to: path.join(dir, 'to') }],
    };
    const r = await runNode([path.join(FIXTURES, 'run-with-options.mjs'), '{}', JSON.stringify(request)],
      { env: { ...process.env, DOCKER_HOST: `unix://${proxy.socket}` } });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    scope.track(out.id);
    assert.ok(proxy.failed() >= 1, 'the download went through the proxy');
    assert.equal(out.error?.code, 'EXTRACT_FAILED', r.stdout);
    assert.equal(out.error.dockerOp, 'extractFromVolume');
    assert.match(out.error.message, /extractFromVolume failed: .*storage driver failed/);
    const st = readState(out.id);
    assert.equal(st.status, 'failed');
    assert.equal(st.exitCode, 0, 'the job\'s own exit code is kept');
    assert.equal(st.errorCode, 'EXTRACT_FAILED');
    // Every other host reports the same error.
    const again = DockerRunner.attach(out.id);
    const e = await again.result.then(() => null, (err) => err);
    assert.ok(e instanceof LightRunnerError, String(e));
    assert.equal(e.code, 'EXTRACT_FAILED');
    assert.equal(e.message, out.error.message);
    assert.deepEqual(leftoversOf(out.id), [], 'container and volume removed');
  });
}
