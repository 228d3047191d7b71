// One attached run. argv[2]: JSON { request, options?, inputBytes? }. Prints JSON lines:
// {event:'id'}, {event:'started'} at the job's `started` line, then
// {event:'result'} or {event:'rejected'}.
import { DockerRunner } from 'light-runner';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const runner = new DockerRunner(cfg.options ?? {});
// A large input is made here: argv cannot carry it.
if (cfg.inputBytes) cfg.request.input = { blob: 'x'.repeat(cfg.inputBytes) };
const ex = runner.run({
  image: 'light-runner-busybox:latest',
  ...cfg.request,
  onLog: (l) => {
    if (l === 'started') out({ event: 'started' });
  },
});
out({ event: 'id', id: ex.id });
try {
  out({ event: 'result', result: await ex.result });
} catch (e) {
  out({ event: 'rejected', code: e.code, message: e.message });
}
