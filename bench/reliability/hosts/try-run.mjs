// Calls run() once and reports whether it threw. argv[2]: JSON { image, detached }.
// Prints {event:'done', threw, message} and then, if it did not throw,
// waits for the result.
import { DockerRunner } from 'light-runner';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
let ex;
try {
  ex = new DockerRunner().run({ image: cfg.image, command: 'true', detached: cfg.detached });
} catch (e) {
  out({ event: 'done', threw: true, message: e.message });
}
if (ex) {
  out({ event: 'done', threw: false, id: ex.id });
  try {
    await ex.result;
  } catch {}
}
