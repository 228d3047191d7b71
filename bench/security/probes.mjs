// The attempts of the escape and abuse suite. Each probe is a job that
// tries one thing and says whether it worked:
//  - `command` probes run `command` in the job; exit 0 is "succeeds", a
//    failure must print an error matching `blocked` (the errno or message
//    the protection gives), else the probe failed for an unrelated reason
//    and the suite fails;
//  - `control` is the same attempt where the protection is off (runner
//    options, or raw `docker run` flags on the private daemon for what the
//    package never turns off): it must succeed, or the probe proves nothing;
//  - `expect` is the outcome wanted per configuration; an attempt that
//    succeeds under restricted must carry `unpreventable` (the reason it
//    cannot be stopped at this layer, and what would stop it);
//  - `run` probes (resource abuse) drive their own checks and return the
//    outcome.
// Every job has a time cap (`timeout`), and the suite checks after each one
// that the host is alive, the result was recorded, and nothing is left.

export const SUID_IMAGE = 'light-runner-probe-suid:latest';

const ok = (s) => ({ outcome: 'succeeds', detail: s });

/** The attempts; `P` holds the sizes of this run (short or full). */
export function probes(P) {
  return [
    {
      key: 'suid-made-in-job',
      attempt: 'gain root: a setuid-root binary made inside the job, run after dropping to nobody',
      image: SUID_IMAGE,
      command: `cp /usr/bin/node /app/n && chown 0:0 /app/n && chmod 4755 /app/n && su nobody -s /bin/sh -c "/app/n -e 'process.exit(process.geteuid() === 0 ? 0 : (console.log(\\"euid \\" + process.geteuid() + \\" NoNewPrivs\\"), 3))'"`,
      blocked: /euid 65534 NoNewPrivs|Operation not permitted/,
      control: { options: { noNewPrivileges: false } },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'blocked' },
      why: 'no-new-privileges (baseline, restricted): exec ignores the setuid bit; restricted also refuses the chown to root (no CAP_CHOWN, the job is uid 65534)',
    },
    {
      key: 'suid-in-image',
      attempt: 'gain root: a setuid-root binary shipped in the image, run by a non-root job',
      image: SUID_IMAGE,
      command: `/usr/local/bin/suid-node -e 'process.exit(process.geteuid() === 0 ? 0 : (console.log("euid " + process.geteuid() + " NoNewPrivs"), 3))'`,
      blocked: /euid \d+ NoNewPrivs/,
      control: { options: { user: '65534:65534', noNewPrivileges: false } },
      configs: { baseline: { user: '65534:65534' }, runsc: { user: '65534:65534' } },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'blocked' },
      why: 'no-new-privileges: the setuid bit is ignored at exec (baseline and runsc rows run with user 65534 here)',
    },
    {
      key: 'unshare-user',
      attempt: 'gain root: unshare -U -r (a user namespace where the job is uid 0)',
      command: 'unshare -U -r id -u && [ "$(unshare -U -r id -u)" = 0 ]',
      blocked: /unshare\(0x10000000\): Operation not permitted|can't open '\/proc\/self\/setgroups'/,
      control: { docker: ['--security-opt', 'seccomp=unconfined', '-u', '65534'] },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'any' },
      why: "the daemon's default seccomp profile refuses CLONE_NEWUSER without CAP_SYS_ADMIN",
    },
    {
      key: 'rootfs-write',
      attempt: 'write the root filesystem',
      command: 'echo x > /probe-file && echo x >> /etc/passwd',
      blocked: /Read-only file system/,
      control: { options: {} },
      expect: { baseline: 'succeeds', restricted: 'blocked', runsc: 'succeeds' },
      why: 'read-only root filesystem (restricted); under baseline the job writes its own container layer only',
    },
    {
      key: 'sysrq',
      attempt: 'write /proc/sysrq-trigger',
      command: 'echo h > /proc/sysrq-trigger',
      hostPath: '/proc/sysrq-trigger',
      blocked: /Read-only file system|Permission denied|No such file or directory/,
      control: { docker: ['--security-opt', 'systempaths=unconfined'] },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'blocked' },
      why: "not observable on this kernel (built without SysRq). Where it exists, Docker mounts /proc/sysrq-trigger read-only in every container, restricted's uid 65534 has no write permission either, and gVisor has no such file",
      note: "the control writes 'h' (print the SysRq help to the kernel log, harmless)",
    },
    {
      key: 'proc-sys-write',
      attempt: 'write /proc/sys (kernel.hostname of its own UTS namespace)',
      command: 'echo probe > /proc/sys/kernel/hostname && [ "$(hostname)" = probe ]',
      blocked: /Read-only file system|Permission denied|Operation not permitted|Input\/output error/,
      control: { docker: ['--security-opt', 'systempaths=unconfined', '--cap-add', 'SYS_ADMIN'] },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'any' },
      why: 'Docker mounts /proc/sys read-only; no CAP_SYS_ADMIN either',
    },
    {
      key: 'sys-write',
      attempt: 'write /sys (the KSM switch, its own value written back)',
      command: 'v=$(cat /sys/kernel/mm/ksm/run) && echo "$v" > /sys/kernel/mm/ksm/run',
      blocked: /Read-only file system|Permission denied|No such file or directory/,
      control: { docker: ['-v', '/sys/kernel/mm/ksm:/sys/kernel/mm/ksm'] },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'blocked' },
      why: 'sysfs is mounted read-only in unprivileged containers; gVisor has its own sysfs',
      note: 'the control binds that one sysfs directory writable (this sandbox cannot run --privileged containers) and writes the current value back (no change)',
    },
    {
      key: 'raw-socket',
      attempt: 'open a raw socket (traceroute -I on loopback)',
      command: 'traceroute -I -n -m 1 -q 1 -w 1 127.0.0.1',
      blocked: /socket: Operation not permitted|Network is unreachable|can't|Protocol not supported|Address family not supported/,
      control: { options: { capAdd: ['NET_RAW'] } },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'any' },
      why: 'NET_RAW is dropped (baseline) / every capability is dropped (restricted)',
    },
    {
      key: 'mknod',
      attempt: 'mknod a device node (/dev/mem-like char device)',
      command: 'mknod /app/mem c 1 1',
      blocked: /Operation not permitted/,
      control: { options: { capAdd: ['MKNOD'] } },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'blocked' },
      why: 'MKNOD is dropped; the device cgroup would refuse opening it anyway',
    },
    {
      key: 'mount',
      attempt: 'mount a file system (tmpfs on /mnt)',
      command: 'mkdir -p /app/m && mount -t tmpfs none /app/m',
      blocked: /Operation not permitted|Permission denied|permission denied/,
      control: { options: { capAdd: ['SYS_ADMIN'] } },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'blocked' },
      why: 'no CAP_SYS_ADMIN (and seccomp without it refuses mount)',
    },
    {
      key: 'chown',
      attempt: 'chown a file to another user',
      command: 'echo x > /app/f && chown 1:1 /app/f',
      blocked: /Operation not permitted/,
      control: { options: {} },
      expect: { baseline: 'succeeds', restricted: 'blocked', runsc: 'succeeds' },
      why: 'restricted drops CHOWN (baseline keeps it: the job is root in its own container)',
    },
    {
      key: 'host-listener',
      attempt: 'reach a TCP listener the test runs on the host side of the bridge gateway',
      command: 'nc -w 3 "$GW" "$PORT" </dev/null | grep -q host-listener-hello',
      blocked: /Network is unreachable|can't connect|No route to host|bad address|Connection refused|Connection timed out|timed out/,
      control: { options: {} },
      expect: { baseline: 'succeeds', restricted: 'blocked', runsc: 'blocked' },
      hostListener: true,
      why: 'restricted has no network unless the request names one; runsc here runs with --network=none',
      note: 'baseline reaches host ports on the gateway: the ICC-off bridge isolates containers from each other, not from the host. A host firewall rule (DOCKER-USER chain dropping traffic from the bridge to the host) or an `internal` network closes it',
    },
    {
      key: 'host-listener-named-net',
      attempt: 'the same, restricted with `networks: [\'light-runner-isolated\']` named',
      command: 'nc -w 3 "$GW" "$PORT" </dev/null | grep -q host-listener-hello',
      blocked: /Network is unreachable|can't connect|No route to host|bad address|timed out/,
      control: { options: {} },
      request: { networks: ['light-runner-isolated'] },
      expect: { baseline: 'succeeds', restricted: 'succeeds', runsc: 'blocked' },
      hostListener: true,
      unpreventable: 'a network the operator names is joined as it is; host reachability over it is the network\'s (and the host firewall\'s) business: use an `internal` network, or drop bridge-to-host traffic in DOCKER-USER',
      why: 'the named network is joined',
    },
    {
      key: 'docker-socket',
      attempt: 'reach the Docker socket',
      image: SUID_IMAGE,
      command: `node -e "require('http').get({ socketPath: '/var/run/docker.sock', path: '/_ping' }, (r) => { let b = ''; r.on('data', (d) => b += d); r.on('end', () => process.exit(b === 'OK' ? 0 : 4)); }).on('error', (e) => { console.log(e.message); process.exit(3); })"`,
      blocked: /connect ENOENT \/var\/run\/docker.sock/,
      control: { docker: ['-v', '@SOCK@:/var/run/docker.sock'] },
      expect: { baseline: 'blocked', restricted: 'blocked', runsc: 'blocked' },
      why: 'the socket is never mounted into a run',
      note: 'the control mounts the private daemon\'s socket and gets its /_ping answer',
    },
    {
      key: 'fork-bomb',
      attempt: 'fork bomb',
      run: forkBomb,
      control: { docker: ['--pids-limit', '-1'], command: 'for i in $(seq 150); do sleep 5 & done; sleep 1; [ $(ls -d /proc/[0-9]* | wc -l) -gt 100 ]', label: '150 processes where no pids limit is set (a bounded pile, not a bomb)' },
      expect: { baseline: 'contained', restricted: 'contained', runsc: 'contained' },
      why: 'pids limit 100 (cgroup): forks fail with EAGAIN; the timeout kills the rest. Under runsc (ptrace platform) the limit applies to the whole sandbox, whose own threads count: a job there can start only a few processes',
    },
    {
      key: 'memory-bomb',
      attempt: `memory bomb (one process allocating ${P.memBombMb} MB under memory: '128m')`,
      run: memoryBomb,
      control: { run: (ctx) => memoryBomb(ctx, { memory: '0' }), label: "memory: '0' (no cap): it allocates it all" },
      expect: { baseline: 'contained', restricted: 'contained', runsc: 'contained' },
      why: 'memory cgroup: the job is OOM-killed (exit 137, oomKilled: true); restricted also forbids swap beyond the cap (this host has no swap)',
    },
    {
      key: 'fill-tmp',
      attempt: `fill /tmp (write ${P.fillMb} MB)`,
      command: `dd if=/dev/zero of=/tmp/fill bs=1M count=${P.fillMb} 2>&1 | grep -v records; [ "$(du -m /tmp/fill | cut -f1)" -ge ${P.fillMb} ]`,
      blocked: /No space left on device|File too large/,
      control: { options: {} },
      expect: { baseline: 'succeeds', restricted: 'blocked', runsc: 'succeeds' },
      why: "restricted's /tmp is a 64 MiB tmpfs (counted in the memory cap); under baseline /tmp is the container layer, on the daemon's disk",
    },
    {
      key: 'fill-workdir',
      attempt: `fill the workdir (up to ${P.workdirMb} MB into /app, in 256 MB files)`,
      run: fillWorkdir,
      controlNote: 'not needed: the attempt succeeds in every column',
      expect: { baseline: 'succeeds', restricted: 'succeeds', runsc: 'succeeds' },
      unpreventable: 'the workdir is a `local` volume on the daemon\'s disk, which has no size cap: the job can fill that disk (restricted caps one file at 1 GiB with ulimit fsize, not the sum). What caps it: a volume driver with quotas, a `local` volume of `type: tmpfs` with `o: size=` (RAM, counted in the memory cap), XFS project quotas on the data root, or a daemon data root on a file system of its own (as this suite does); the space comes back when the run is removed',
      why: 'nothing at this layer caps a volume; the private daemon\'s own small file system is what fills here, and it is freed when the run is removed',
    },
    {
      key: 'log-flood',
      attempt: `output past maxLogBytes (${P.floodMb} MB of lines, maxLogBytes 1 MiB)`,
      run: logFlood,
      control: { run: (ctx) => logFlood(ctx, {}), label: 'no maxLogBytes: all of it delivered (16 MB at most)' },
      expect: { baseline: 'contained', restricted: 'contained', runsc: 'contained' },
      why: 'maxLogBytes: past it nothing is delivered or kept, logsTruncated: true; the daemon\'s json-file log is capped by its log-opts (max-size)',
    },
    {
      key: 'long-line',
      attempt: `one ${P.lineMb} MB line`,
      run: longLine,
      control: { run: (ctx) => longLine(ctx, {}), label: 'no maxLogBytes: a 20 MB line delivered (in 1 MiB pieces)' },
      expect: { baseline: 'contained', restricted: 'contained', runsc: 'contained' },
      why: 'lines are cut at the maxLogBytes budget, the host buffers no more than the cap',
    },
    {
      key: 'sparse-1tb',
      attempt: 'a sparse 1 TB file in the extract path',
      run: sparseFile,
      control: { docker: [], command: 'truncate -s 1099511627776 /tmp/huge && [ $(stat -c %s /tmp/huge) = 1099511627776 ]', label: 'docker run without ulimits: the 1 TB file is made' },
      expect: { baseline: 'contained', restricted: 'contained', runsc: 'contained' },
      why: 'restricted: ulimit fsize 1 GiB refuses the file (EFBIG); everywhere: extract streams each entry under maxExtractBytes (1 GiB) and reports `error`, the disk is never filled',
    },
    {
      key: 'extract-links',
      attempt: 'hardlink / symlink tricks in extract (a symlink to /etc/passwd, a symlink to `..`, a hardlink inside the tree, `..` in from; crafted archives with links outside the tree: extract-hardlinks.test.mjs)',
      run: extractLinks,
      control: { docker: [], command: 'mkdir -p /app/out && ln -s /etc/passwd /app/out/l && echo x > /app/out/a && ln /app/out/a /app/out/h && [ -L /app/out/l ] && [ $(stat -c %h /app/out/a) = 2 ]', label: 'the job really makes the symlink and the hardlink' },
      expect: { baseline: 'contained', restricted: 'contained', runsc: 'contained' },
      why: 'extract skips symlinks and devices, writes hardlinks inside the tree as regular files, refuses `..`; nothing lands outside `to` (also covered by extract-hardlinks.test.mjs and extract.test.mjs)',
    },
    {
      key: 'zombies',
      attempt: `a zombie pile (${P.zombies} children never reaped)`,
      run: zombies,
      control: { docker: [], command: "sh -c 'sleep 0.1 & sleep 0.1 & exec sleep 3' & sleep 1; [ $(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l) -ge 2 ]", label: 'a parent that never waits leaves zombies, and the count sees them' },
      expect: { baseline: 'contained', restricted: 'contained', runsc: 'contained' },
      why: 'restricted: Docker\'s init (tini) is PID 1 and reaps orphans; baseline: the job\'s shell as PID 1 happens to reap them here, and the pids limit bounds any pile; the container\'s removal clears it. Under runsc the sandbox\'s threads count against the pids limit, so the pile cannot even be made',
    },
    {
      key: 'sigterm-sleeper',
      attempt: 'sleep through SIGTERM on stop()',
      run: termSleeper,
      control: { run: termControl, label: 'SIGTERM alone (no SIGKILL after the grace): the job is still running 3 s later' },
      expect: { baseline: 'contained', restricted: 'contained', runsc: 'contained' },
      why: 'stop() sends SIGKILL after the grace',
    },
  ];
}

// ---- the resource probes ---------------------------------------------------

async function forkBomb(ctx) {
  const { result, out, id, pidsPeak, pidsMaxHits } = await ctx.job({
    // The bomb runs in a subshell, and the job's own loop ignores failed
    // forks: the job lives until the timeout, whatever the bomb does.
    command: 'echo started; b() { b | b & }; (b); while :; do sleep 1; done',
    timeout: ctx.P.bombMs,
    watchPids: true,
  });
  const contained = result.timedOut || result.exitCode !== 0;
  const peak = pidsPeak ?? -1;
  if (ctx.config === 'runsc' && !result.timedOut && result.exitCode === 2) {
    return { outcome: 'contained', detail: 'the shell failed at once (exit 2): the sandbox\'s own threads count against the pids limit of 100', id };
  }
  return {
    outcome: contained && peak <= 100 && (pidsMaxHits ?? 1) > 0 ? 'contained' : 'succeeds',
    detail: `exit ${result.exitCode}, timedOut ${result.timedOut}, pids peak seen ${peak >= 0 ? peak : 'n/a'}, forks refused at the limit of 100: ${pidsMaxHits ?? 'n/a'} (pids.events)${/Resource temporarily unavailable|can't fork/.test(out) ? ', forks failed: EAGAIN' : ''}`,
    id,
  };
}

async function memoryBomb(ctx, options = { memory: '128m' }) {
  const { result, out, id } = await ctx.job({
    image: SUID_IMAGE,
    command: `node -e "const a = []; for (let i = 0; i < ${ctx.P.memBombMb}; i++) a.push(Buffer.alloc(1 << 20, 1)); console.log('survived')"`,
    options,
    timeout: 60_000,
  });
  const contained = result.oomKilled || result.exitCode === 137;
  if (!options.memory || options.memory === '0') {
    return { outcome: /survived/.test(out) && result.exitCode === 0 ? 'succeeds' : 'unexpected', detail: `exit ${result.exitCode}`, id };
  }
  return { outcome: contained ? 'contained' : 'succeeds', detail: `exit ${result.exitCode}, oomKilled ${result.oomKilled}${/survived/.test(out) ? ', allocated it all' : ''}`, id };
}

async function fillWorkdir(ctx) {
  const fs = await import('node:fs');
  const files = Math.max(1, Math.ceil(ctx.P.workdirMb / 256));
  const per = Math.min(256, ctx.P.workdirMb);
  const { out, id } = await ctx.job({
    command: `i=0; while [ $i -lt ${files} ]; do if ! dd if=/dev/zero of=/app/f$i bs=1M count=${per} 2>/app/dd.err; then head -1 /app/dd.err; break; fi; i=$((i+1)); done; echo wrote=$(du -sm /app | cut -f1)`,
    timeout: 180_000,
  });
  const mb = Number(/wrote=(\d+)/.exec(out)?.[1] ?? -1);
  const full = /No space left on device/.test(out);
  const free = (() => {
    try {
      const st = fs.statfsSync(ctx.dataRoot);
      return Math.round((st.bavail * st.bsize) / 1048576);
    } catch {
      return -1;
    }
  })();
  return {
    outcome: mb > 0 ? 'succeeds' : 'unexpected',
    detail: `${mb} MB written${full ? ", the daemon's disk filled (ENOSPC)" : ''}; ${free} MB free on it after the removal`,
    id,
  };
}

async function logFlood(ctx, options = { maxLogBytes: 1 << 20 }) {
  const bytes = (options.maxLogBytes ? ctx.P.floodMb : Math.min(ctx.P.floodMb, 16)) << 20;
  const { result, received, id, logPeak } = await ctx.job({
    command: `echo started; yes 0123456789abcdef0123456789abcdef | head -c ${bytes}`,
    options,
    timeout: 120_000,
    watchLog: true,
  });
  if (!options.maxLogBytes) {
    return { outcome: received >= bytes - 64 ? 'succeeds' : 'unexpected', detail: `${received} bytes delivered`, id };
  }
  const capped = logPeak === undefined || logPeak <= 21 << 20;
  const ok2 = result.logsTruncated === true && received <= (1 << 20) + 4096 && capped;
  const log = logPeak === undefined ? 'daemon log size not seen' : `the daemon's json-file log peaked at ${(logPeak / 1048576).toFixed(1)} MiB (max-size 20m)`;
  return { outcome: ok2 ? 'contained' : 'succeeds', detail: `logsTruncated ${result.logsTruncated}, ${received} bytes delivered; ${log}`, id };
}

async function longLine(ctx, options = { maxLogBytes: 1 << 20 }) {
  const rss0 = process.memoryUsage().rss;
  const mb = options.maxLogBytes ? ctx.P.lineMb : Math.min(ctx.P.lineMb, 20);
  const { result, received, id } = await ctx.job({
    command: `head -c ${mb << 20} /dev/zero | tr '\\0' a`,
    options,
    timeout: 120_000,
  });
  if (!options.maxLogBytes) {
    return { outcome: received >= (mb << 20) ? 'succeeds' : 'unexpected', detail: `${received} bytes delivered`, id };
  }
  const grew = Math.max(0, process.memoryUsage().rss - rss0);
  const ok2 = result.logsTruncated === true && received <= (1 << 20) + 4096;
  return {
    outcome: ok2 ? 'contained' : 'succeeds',
    detail: `logsTruncated ${result.logsTruncated}, ${received} bytes delivered, host RSS +${(grew / 1048576).toFixed(0)} MiB`,
    id,
  };
}

async function sparseFile(ctx) {
  const to = ctx.tmp('lr-sec-sparse-');
  const { result, out, id } = await ctx.job({
    command: 'mkdir -p /app/out && echo small > /app/out/small && (truncate -s 1099511627776 /app/out/huge 2>&1 || echo truncate-refused); ls -la /app/out',
    extract: [{ from: 'out', to }],
    timeout: 120_000,
  });
  const entry = result.extracted?.[0];
  const fs = await import('node:fs');
  const huge = (() => {
    try {
      return fs.statSync(`${to}/huge`).size;
    } catch {
      return null;
    }
  })();
  const refused = /File too large|File size limit exceeded|truncate-refused/.test(out);
  // Refused, the file may exist empty (created before the size was refused).
  const contained = (huge === null || huge === 0) && (refused || entry?.status === 'error');
  return {
    outcome: contained ? 'contained' : 'succeeds',
    detail: refused ? `truncate refused (${/File too large|File size limit exceeded/.test(out) ? 'RLIMIT_FSIZE: SIGXFSZ/EFBIG' : out.split('\n')[0].slice(0, 80)}), extract ${entry?.status}, ${huge === null ? 'no file' : `${huge}-byte file`} on the host` : `file made; extract ${entry?.status}${entry?.error ? `: ${entry.error.slice(0, 80)}` : ''}, nothing written to the host`,
    id,
  };
}

async function extractLinks(ctx) {
  const to = ctx.tmp('lr-sec-links-');
  const { result, id } = await ctx.job({
    command: 'mkdir -p /app/out && ln -s /etc/passwd /app/out/passwd-link && echo inside > /app/out/a && ln /app/out/a /app/out/hard && ln -s .. /app/out/up',
    extract: [{ from: 'out', to }, { from: '../etc', to }],
    timeout: 60_000,
  });
  const fs = await import('node:fs');
  const names = fs.readdirSync(to).sort();
  const noLinks = names.every((n) => !fs.lstatSync(`${to}/${n}`).isSymbolicLink());
  const ok2 = noLinks && !names.includes('passwd-link') && !names.includes('up') && names.includes('hard')
    && fs.readFileSync(`${to}/hard`, 'utf8') === 'inside\n' && result.extracted?.[1]?.status === 'error';
  return { outcome: ok2 ? 'contained' : 'succeeds', detail: `landed: ${names.join(' ')}; '../etc': ${result.extracted?.[1]?.status}`, id };
}

async function zombies(ctx) {
  const n = ctx.P.zombies;
  // Each child forks a grandchild that outlives it: once the child exits,
  // the grandchild is reparented to PID 1, which reaps it or not.
  const { out, result, id } = await ctx.job({
    command: `for i in $(seq ${n}); do sh -c 'sleep 0.2 & exec true'; done; sleep 2; echo zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l) pid1=$(cat /proc/1/comm)`,
    timeout: 60_000,
  });
  const m = /zombies=(\d+) pid1=(\S+)/.exec(out);
  const z = m ? Number(m[1]) : -1;
  if (!m && ctx.config === 'runsc' && result.exitCode === 2) {
    return { outcome: 'contained', detail: 'the job could not start its children (exit 2): under runsc the sandbox\'s own threads count against the pids limit of 100', id };
  }
  return {
    outcome: m && result.exitCode === 0 && (z === 0 || m[2] === 'sh') ? 'contained' : 'succeeds',
    detail: m ? `${z} zombies left after 2 s, PID 1 ${m[2]}` : `no report (exit ${result.exitCode}): ${out.split('\n').slice(-3).join(' | ').slice(0, 120)}`,
    id,
  };
}

async function termSleeper(ctx) {
  const { result, stopMs, id } = await ctx.job({
    command: 'trap "" TERM; echo started; while true; do sleep 1; done',
    stopAfterStart: { signal: 'SIGTERM', grace: 2000 },
    timeout: 60_000,
  });
  const ok2 = result.cancelled === true && stopMs < 2000 + 8000;
  return { outcome: ok2 ? 'contained' : 'succeeds', detail: `exit ${result.exitCode}, stop() took ${stopMs} ms (grace 2000)`, id };
}

/** Control of the SIGTERM sleeper: TERM alone does not end it. */
async function termControl(ctx) {
  const { out } = await ctx.job({
    command: 'trap "" TERM; echo started; while true; do sleep 1; done',
    termOnly: true,
    timeout: 30_000,
  });
  return { outcome: /still-running/.test(out) ? 'succeeds' : 'unexpected', detail: '' };
}

export { ok };
