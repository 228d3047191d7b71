// `npm run test:platforms`: an attached run of a long sleep; once it runs,
// prints one JSON line (this process's pid, the run id, the command lines of
// this process's children, the watchdog among them), then waits to be
// SIGKILLed. The watchdog must then remove the run.
import fs from 'node:fs';

import { DockerRunner } from 'light-runner';

function children() {
  const out = [];
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

const ex = new DockerRunner().run({
  image: 'light-runner-busybox:latest',
  command: 'echo started; sleep 300',
  network: 'none',
  onLog: (line) => {
    if (line === 'started') process.stdout.write(`${JSON.stringify({ pid: process.pid, id: ex.id, children: children() })}\n`);
  },
});
setInterval(() => {}, 1000);
