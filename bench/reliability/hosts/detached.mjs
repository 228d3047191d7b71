// Launches detached runs. argv[2]: JSON { request, count?, awaitResult? }.
// Prints {event:'id', id} per run, then {event:'result', id, ...} per run
// when awaitResult.
import { DockerRunner } from 'light-runner';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const runner = new DockerRunner(cfg.options ?? {});
const exs = [];
for (let i = 0; i < (cfg.count ?? 1); i++) {
  const ex = runner.run({ image: 'light-runner-busybox:latest', ...cfg.request, detached: true });
  exs.push(ex);
  out({ event: 'id', id: ex.id });
}
if (cfg.awaitResult) {
  await Promise.all(exs.map(async (ex) => {
    try {
      out({ event: 'result', id: ex.id, result: await ex.result });
    } catch (e) {
      out({ event: 'result', id: ex.id, code: e.code, message: e.message });
    }
  }));
}
