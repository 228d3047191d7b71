// The hardened container every run gets, as `docker inspect` shows it on a
// live run: dropped capabilities, no-new-privileges, the pids limit, memory
// and cpu caps from the runner options, the label, the isolated network and
// the run's volume at workdir.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DockerRunner } from 'light-runner';
import {
  BUSYBOX, LABEL, assertGone, docker, finish, inspectJson, runToEnd, startedRun,
} from './helpers.mjs';

const NET = 'light-runner-isolated';
const CAPS = ['NET_RAW', 'MKNOD', 'SYS_CHROOT', 'SETPCAP', 'SETFCAP', 'AUDIT_WRITE'];
const norm = (caps) => (caps ?? []).map((c) => c.toUpperCase().replace(/^CAP_/, '')).sort();

/** `docker inspect` of a live run of runner `r` and of its volume; the run is cancelled after. */
async function inspectLive(t, r, request = {}) {
  const { ex, started } = startedRun(t, r, { image: BUSYBOX, command: 'echo started; sleep 60', ...request });
  try {
    await started;
    return { ex, info: inspectJson(ex.id), volume: JSON.parse(docker('volume', 'inspect', ex.id))[0] };
  } finally {
    await finish(ex);
  }
}

describe('security defaults in docker inspect of a live run', () => {
  test('defaults: CapDrop, no-new-privileges, PidsLimit 100, 512m, 1 cpu, label, isolated network, volume at /app', async (t) => {
    const { ex, info, volume } = await inspectLive(t, new DockerRunner());
    const hc = info.HostConfig;
    assert.deepEqual(norm(hc.CapDrop), [...CAPS].sort());
    assert.ok((hc.SecurityOpt ?? []).some((o) => /^no-new-privileges(?:[:=]true)?$/.test(o)), `SecurityOpt ${hc.SecurityOpt}`);
    assert.equal(hc.PidsLimit, 100);
    assert.equal(hc.Memory, 512 * 1024 * 1024);
    assert.equal(hc.NanoCpus, 1e9);
    assert.equal(hc.Privileged, false);
    assert.equal(info.Name, `/${ex.id}`);
    assert.equal(info.Config.Labels[LABEL], ex.id);
    const netId = JSON.parse(docker('network', 'inspect', NET))[0].Id;
    assert.ok([NET, netId].includes(hc.NetworkMode), `NetworkMode ${hc.NetworkMode} is ${NET}`);
    assert.deepEqual(Object.keys(info.NetworkSettings.Networks), [NET]);
    const mount = info.Mounts.find((m) => m.Destination === '/app');
    assert.ok(mount, 'the volume is mounted at /app');
    assert.equal(mount.Type, 'volume');
    assert.equal(mount.Name, ex.id);
    assert.equal(volume.Name, ex.id);
    assert.equal(volume.Labels?.[LABEL], ex.id, 'the volume carries the label');
    assert.equal(hc.Runtime, 'runc', 'runc: no runtime passed, the daemon default');
    assertGone(ex.id);
  });

  test('memory and cpus options become Memory and NanoCpus; custom workdir', async (t) => {
    const { ex, info } = await inspectLive(t, new DockerRunner({ memory: '256m', cpus: '0.5' }), { workdir: '/work/job' });
    assert.equal(info.HostConfig.Memory, 256 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 5e8);
    assert.ok(info.Mounts.some((m) => m.Destination === '/work/job' && m.Name === ex.id));
    assert.equal(info.HostConfig.PidsLimit, 100);
    assert.deepEqual(norm(info.HostConfig.CapDrop), [...CAPS].sort());
  });

  test('memory suffixes g and k, case-insensitive; fractional cpus', async (t) => {
    const { info } = await inspectLive(t, new DockerRunner({ memory: '1G', cpus: '1.5' }));
    assert.equal(info.HostConfig.Memory, 1024 * 1024 * 1024);
    assert.equal(info.HostConfig.NanoCpus, 1.5e9);
    const { info: info2 } = await inspectLive(t, new DockerRunner({ memory: '131072k', cpus: '2' }));
    assert.equal(info2.HostConfig.Memory, 128 * 1024 * 1024);
    assert.equal(info2.HostConfig.NanoCpus, 2e9);
  });

  test('noNewPrivileges: false drops only that option', async (t) => {
    const { info } = await inspectLive(t, new DockerRunner({ noNewPrivileges: false }));
    assert.ok(!(info.HostConfig.SecurityOpt ?? []).some((o) => o.startsWith('no-new-privileges')));
    assert.equal(info.HostConfig.PidsLimit, 100);
    assert.deepEqual(norm(info.HostConfig.CapDrop), [...CAPS].sort());
  });

  test('the dropped capabilities are really gone inside the container', async (t) => {
    const { result, lines } = await runToEnd(t, new DockerRunner(), {
      image: BUSYBOX, command: 'grep CapBnd /proc/self/status; mknod /tmp/x c 1 3 && echo mknod-ok || echo mknod-denied',
    });
    assert.equal(result.success, true);
    const bnd = BigInt(`0x${lines.find((l) => l.startsWith('CapBnd')).split(/\s+/)[1]}`);
    const bits = { MKNOD: 27n, NET_RAW: 13n, SYS_CHROOT: 18n, SETPCAP: 8n, SETFCAP: 31n, AUDIT_WRITE: 29n };
    for (const [cap, bit] of Object.entries(bits)) assert.equal((bnd >> bit) & 1n, 0n, `${cap} still in the bounding set`);
    assert.ok(lines.includes('mknod-denied'));
  });
});
