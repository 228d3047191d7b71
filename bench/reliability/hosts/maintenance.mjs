// cleanupOrphanStates() then reapOrphans() in this process; prints
// {event:'done', changed, reaped}.
import { DockerRunner } from 'light-runner';

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
try {
  const changed = await DockerRunner.cleanupOrphanStates();
  const reaped = await DockerRunner.reapOrphans();
  out({ event: 'done', changed: { states: changed, ...reaped } });
} catch (e) {
  out({ event: 'done', changed: { error: `${e.code} ${e.message}` } });
}
