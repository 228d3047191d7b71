// Shared helpers of the benchmark: a raw Docker Engine API client over the
// unix socket (node:http only), a streaming tar writer, dataset generators,
// statistics and resource bookkeeping for cleanup.

import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const SOCKET = process.env.BENCH_DOCKER_SOCKET || '/var/run/docker.sock';
export const IMAGE = process.env.BENCH_IMAGE || 'light-runner-busybox:latest';
export const FLOOR_LABEL = 'light-runner-bench.floor';

// Keep-alive agent: the floor reuses connections (the fairest, cheapest way a
// client can talk to the daemon). maxSockets unbounded so 50 concurrent
// long-polling waits do not queue behind each other.
export const keepAliveAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });
// A fresh connection per request (what bollard 0.21 does).
export const freshAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

export const stats = { requests: 0, reused: 0 };

/**
 * One Engine API request. `body`: object (JSON), Buffer, or a Readable
 * (streamed, chunked). `sink`: a Writable the response body is piped into
 * (otherwise it is buffered and parsed as JSON when possible).
 */
export function api(method, p, { body, sink, agent = keepAliveAgent, headers = {}, okStatus } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let payload;
    if (body && typeof body.pipe === 'function') {
      h['Content-Type'] ??= 'application/x-tar';
    } else if (Buffer.isBuffer(body)) {
      payload = body;
      h['Content-Length'] = body.length;
    } else if (body !== undefined) {
      payload = Buffer.from(JSON.stringify(body));
      h['Content-Type'] = 'application/json';
      h['Content-Length'] = payload.length;
    }
    const req = http.request({ socketPath: SOCKET, method, path: p, headers: h, agent }, (res) => {
      stats.requests++;
      if (req.reusedSocket) stats.reused++;
      const good = okStatus ? okStatus.includes(res.statusCode) : res.statusCode < 300;
      if (sink && good) {
        pipeline(res, sink).then(() => resolve({ status: res.statusCode }), reject);
        return;
      }
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        let data = raw.toString('utf8');
        try { data = data ? JSON.parse(data) : null; } catch { /* keep text */ }
        if (!good) {
          const err = new Error(`${method} ${p} -> ${res.statusCode}: ${typeof data === 'string' ? data : JSON.stringify(data)}`);
          err.status = res.statusCode;
          reject(err);
        } else resolve({ status: res.statusCode, data });
      });
    });
    req.on('error', reject);
    if (body && typeof body.pipe === 'function') {
      pipeline(body, req).catch(reject);
    } else {
      req.end(payload);
    }
  });
}

// ---------------------------------------------------------------- floor ops

/** Resources the floor created and has not removed yet (for cleanup). */
export const live = { containers: new Set(), volumes: new Set() };

export function floorName() {
  return `lr-bench-${crypto.randomBytes(6).toString('hex')}`;
}

/** The same create body the package sends (src/container.rs), network none. */
export function createBody({ name, command, volume, networkMode = 'none', workdir = '/app' }) {
  return {
    Image: IMAGE,
    Entrypoint: ['sh'],
    Cmd: ['-c', command],
    Env: [],
    WorkingDir: workdir,
    Labels: { [FLOOR_LABEL]: name },
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    OpenStdin: false,
    StdinOnce: false,
    Tty: false,
    HostConfig: {
      Binds: volume ? [`${volume}:${workdir}`] : undefined,
      Memory: 512 * 1024 * 1024,
      NanoCpus: 1e9,
      PidsLimit: 100,
      CapDrop: ['NET_RAW', 'MKNOD', 'SYS_CHROOT', 'SETPCAP', 'SETFCAP', 'AUDIT_WRITE'],
      SecurityOpt: ['no-new-privileges'],
      NetworkMode: networkMode,
      AutoRemove: false,
    },
  };
}

export async function volumeCreate(name, agent) {
  live.volumes.add(name);
  await api('POST', '/volumes/create', { body: { Name: name, Labels: { [FLOOR_LABEL]: name } }, agent });
}
export async function volumeRemove(name, agent) {
  await api('DELETE', `/volumes/${name}?force=true`, { agent, okStatus: [204, 404] });
  live.volumes.delete(name);
}
export async function containerCreate(name, body, agent) {
  live.containers.add(name);
  await api('POST', `/containers/create?name=${name}`, { body, agent });
}
export async function containerStart(name, agent) {
  await api('POST', `/containers/${name}/start`, { agent, okStatus: [204, 304] });
}
export async function containerWait(name, agent) {
  const r = await api('POST', `/containers/${name}/wait?condition=not-running`, { agent });
  return r.data.StatusCode;
}
export async function containerRemove(name, agent) {
  await api('DELETE', `/containers/${name}?force=true&v=true`, { agent, okStatus: [204, 404] });
  live.containers.delete(name);
}

/** Removes everything the floor created, including leftovers of a crashed earlier bench. */
export async function cleanupFloor() {
  const filters = encodeURIComponent(JSON.stringify({ label: [FLOOR_LABEL] }));
  try {
    const cs = await api('GET', `/containers/json?all=true&filters=${filters}`);
    for (const c of cs.data || []) live.containers.add(c.Id);
  } catch { /* daemon gone: nothing we can do */ }
  await Promise.allSettled([...live.containers].map((c) => containerRemove(c)));
  try {
    const vs = await api('GET', `/volumes?filters=${filters}`);
    for (const v of (vs.data && vs.data.Volumes) || []) live.volumes.add(v.Name);
  } catch { /* ignore */ }
  for (let attempt = 0; attempt < 5 && live.volumes.size; attempt++) {
    await Promise.allSettled([...live.volumes].map((v) => volumeRemove(v)));
    if (live.volumes.size) await sleep(200);
  }
}

// ---------------------------------------------------------------- tar

function octal(n, width) {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function tarHeader(name, size, mode, type, mtime) {
  const b = Buffer.alloc(512);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long for the bench writer: ${name}`);
  b.write(name, 0, 100, 'utf8');
  b.write(octal(mode, 8), 100);
  b.write(octal(0, 8), 108);
  b.write(octal(0, 8), 116);
  b.write(octal(size, 12), 124);
  b.write(octal(mtime, 12), 136);
  b.fill(0x20, 148, 156);
  b.write(type, 156);
  b.write('ustar\0', 257);
  b.write('00', 263);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return b;
}

/**
 * A tar of `dir`'s contents built while walking it (the same work the
 * package's seeder does: walk, stat, read, frame), as a Readable. Modes as
 * the package sets them: dirs 0777, files 0666 (0777 if executable).
 */
export function tarStream(dir) {
  async function* gen() {
    const now = Math.floor(Date.now() / 1000);
    yield tarHeader('./', 0, 0o777, '5', now);
    async function* walk(rel) {
      const entries = (await fsp.readdir(path.join(dir, rel), { withFileTypes: true }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        const abs = path.join(dir, r);
        if (e.isDirectory()) {
          yield tarHeader(`${r}/`, 0, 0o777, '5', now);
          yield* walk(r);
        } else if (e.isFile()) {
          const fh = await fsp.open(abs, 'r');
          try {
            const st = await fh.stat();
            const mode = st.mode & 0o111 ? 0o777 : 0o666;
            yield tarHeader(r, st.size, mode, '0', Math.floor(st.mtimeMs / 1000));
            let left = st.size;
            while (left > 0) {
              const buf = Buffer.allocUnsafe(Math.min(left, 256 * 1024));
              const { bytesRead } = await fh.read(buf, 0, buf.length, null);
              if (bytesRead === 0) throw new Error(`${abs} shrank`);
              left -= bytesRead;
              yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
            }
            const pad = (512 - (st.size % 512)) % 512;
            if (pad) yield Buffer.alloc(pad);
          } finally {
            await fh.close();
          }
        }
      }
    }
    yield* walk('');
    yield Buffer.alloc(1024);
  }
  return Readable.from(gen(), { objectMode: false });
}

// ---------------------------------------------------------------- datasets

/** `count` files totalling `totalBytes`, one of them `bigBytes` named big.bin, in 10 subdirs. */
export async function makeDataset(dir, { count, totalBytes, bigBytes = 0 }) {
  await fsp.mkdir(dir, { recursive: true });
  const small = count - (bigBytes ? 1 : 0);
  const each = Math.floor((totalBytes - bigBytes) / small);
  const rnd = crypto.randomBytes(Math.max(each, 1 << 20));
  for (let i = 0; i < small; i++) {
    const sub = path.join(dir, `d${i % 10}`);
    if (i < 10) await fsp.mkdir(sub, { recursive: true });
    // Rotate the random block so files differ.
    const off = (i * 4099) % (rnd.length - each + 1);
    await fsp.writeFile(path.join(sub, `f${i}.bin`), rnd.subarray(off, off + each));
  }
  if (bigBytes) {
    const fd = await fsp.open(path.join(dir, 'big.bin'), 'w');
    let left = bigBytes;
    while (left > 0) {
      const n = Math.min(left, rnd.length);
      await fd.write(rnd, 0, n);
      left -= n;
    }
    await fd.close();
  }
}

export async function duBytes(dir) {
  let total = 0;
  for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fsp.stat(path.join(e.parentPath ?? e.path, e.name))).size;
  }
  return total;
}

// ---------------------------------------------------------------- misc

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function summarize(xs) {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return { n: 0, median: NaN, min: NaN, max: NaN };
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { n: s.length, median, min: s[0], max: s[s.length - 1] };
}

/** Samples process RSS every `everyMs` while `fn` runs. */
export async function withRss(fn, everyMs = 20) {
  const baseline = process.memoryUsage.rss();
  const cpu0 = process.cpuUsage();
  let max = baseline;
  const t = setInterval(() => {
    const r = process.memoryUsage.rss();
    if (r > max) max = r;
  }, everyMs);
  try {
    const value = await fn();
    const r = process.memoryUsage.rss();
    if (r > max) max = r;
    const cpu = process.cpuUsage(cpu0);
    // CPU of the whole process (all threads: JS, libuv, the addon's tokio pool).
    return { value, baseline, max, growth: max - baseline, cpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    clearInterval(t);
  }
}

export async function rmrf(p) {
  await fsp.rm(p, { recursive: true, force: true });
}

export function mkTmp(prefix = 'lr-bench-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
