// Collects runs from another process. argv[2]: JSON { ids, cleanup? }.
// cleanup: cleanupOrphanStates() first. Prints {event:'result', id, ...}
// per id (found: false without a state file), then {event:'done'}.
import { DockerRunner, readState } from 'light-runner';
import os from 'node:os';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
out({ event: 'hello', hostname: os.hostname(), pid: process.pid });
if (cfg.cleanup) out({ event: 'cleanup', changed: await DockerRunner.cleanupOrphanStates() });
await Promise.all(cfg.ids.map(async (id) => {
  const ex = DockerRunner.attach(id);
  if (!ex) return out({ event: 'result', id, found: false });
  try {
    const result = await ex.result;
    out({ event: 'result', id, found: true, result, state: readState(id) });
  } catch (e) {
    out({ event: 'result', id, found: true, code: e.code, message: e.message, state: readState(id) });
  }
}));
out({ event: 'done' });
