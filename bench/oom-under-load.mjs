// Does a run killed by its memory cap say `oomKilled: true` when the host is
// busy? Under load, dockerd 20.10 can get containerd's OOM event after the
// exit, and then only its `oom` event says so (State.OOMKilled stays false).
//
//   node bench/oom-under-load.mjs [--rounds=4] [--n=40] [--burners=4]
//   OOM_PKG=/path/to/other/checkout node bench/oom-under-load.mjs   (old vs new)
//
// Each round starts N memory-capped runs at once (half detached) that grow
// a shell string until the cap kills them, while `burners` busy loops keep
// the CPUs full. It prints, per round, how many ended 137 with oomKilled
// true ("ok") or false ("missed"); it exits 1 if any was missed.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createRequire } from 'node:module';

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^--([^=]+)=(.*)$/.exec(a);
  return m ? [m[1], m[2]] : [a, true];
}));
const rounds = Number(args.rounds ?? 4);
const n = Number(args.n ?? 40);
const burners = Number(args.burners ?? 4);
const pkg = process.env.OOM_PKG ? path.resolve(process.env.OOM_PKG) : path.resolve(import.meta.dirname, '..');
const { DockerRunner } = createRequire(import.meta.url)(pkg);
const EAT = 'echo started; x=a; while true; do x="$x$x"; done';
const IMAGE = process.env.LIGHT_RUNNER_TEST_IMAGE ?? 'light-runner-busybox';

const loops = Array.from({ length: burners }, () =>
  spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
let missedTotal = 0;
try {
  for (let r = 1; r <= rounds; r++) {
    let ok = 0;
    const missed = [];
    const other = [];
    const t0 = Date.now();
    await Promise.all(Array.from({ length: n }, async (_, i) => {
      const ex = new DockerRunner({ memory: '16m' }).run({ image: IMAGE, command: EAT, detached: i % 2 === 0 });
      try {
        const res = await ex.result;
        if (res.exitCode !== 137) other.push([ex.id, res.exitCode]);
        else if (res.oomKilled) ok++;
        else missed.push(ex.id);
      } catch (e) {
        other.push([ex.id, e.code ?? e.message]);
      }
    }));
    missedTotal += missed.length;
    console.log(JSON.stringify({ round: r, n, ok, missed: missed.length, other, ms: Date.now() - t0, pkg }));
  }
} finally {
  for (const l of loops) l.kill('SIGKILL');
}
process.exitCode = missedTotal ? 1 : 0;
