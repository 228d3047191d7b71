// Type-checked by __test__/package.test.mjs (`tsc --noEmit`, strict,
// module nodenext). Uses every export and every type of index.d.ts; the
// expected-error lines at the end prove the types are not `any`.
import {
  DockerRunner,
  Execution,
  LightRunnerError,
  listStates,
  readState,
} from 'light-runner';
import type {
  AttachOptions,
  ExtractResult,
  ExtractSpec,
  LightRunnerErrorCode,
  RunnerOptions,
  RunRequest,
  RunResult,
  RunState,
  Runtime,
  StopOptions,
} from 'light-runner';

const runtime: Runtime = 'runsc';
const options: RunnerOptions = {
  memory: '256m',
  cpus: '0.5',
  runtime,
  gpus: 'all',
  noNewPrivileges: true,
  maxExtractBytes: 1024 * 1024,
  securityProfile: 'restricted',
  user: '1000:1000',
  readOnlyRootfs: true,
  tmpfsSize: '32m',
  ulimits: { nofile: 512, fsize: { soft: 1 << 20, hard: 1 << 20 } },
};
const baselineWithCaps: RunnerOptions = { securityProfile: 'baseline', capAdd: ['NET_ADMIN'] };
void baselineWithCaps;
const spec: ExtractSpec = { from: '/app/out', to: '/tmp/out' };
const controller = new AbortController();
const request: RunRequest = {
  image: 'light-runner-busybox:latest',
  command: 'echo hi',
  entrypoint: 'echo hi',
  dir: '/tmp/job',
  input: { anything: [1, 'two', null] },
  timeout: 60_000,
  network: 'none',
  env: { FOO: 'bar' },
  workdir: '/app',
  signal: controller.signal,
  onLog: (line: string) => { void line.length; },
  extract: [spec],
  detached: false,
  ignore: ['tmp'],
};

export async function useEverything(): Promise<void> {
  const runner = new DockerRunner(options);
  new DockerRunner();
  const warmRunner = new DockerRunner({ warm: 2 });
  await warmRunner.prewarm({ image: 'busybox', networks: ['none'], workdir: '/app' }, 3);
  await warmRunner.prewarm(request);
  await warmRunner.close();
  const execution: Execution = runner.run(request);
  const id: string = execution.id;
  const cancelled: boolean = execution.cancelled;
  const stopOptions: StopOptions = { signal: 'SIGTERM', grace: 1000 };
  await execution.pause();
  await execution.resume();
  await execution.stop(stopOptions);
  await execution.stop();
  const ret: void = execution.cancel();
  void ret;

  try {
    const result: RunResult = await execution.result;
    const success: boolean = result.success;
    const exitCode: number = result.exitCode;
    const duration: number = result.duration;
    const timedOut: boolean = result.timedOut ?? false;
    const wasCancelled: boolean = result.cancelled;
    const extracted: ExtractResult[] | undefined = result.extracted;
    for (const e of extracted ?? []) {
      const status: 'ok' | 'missing' | 'error' = e.status;
      const bytes: number | undefined = e.bytes;
      const error: string | undefined = e.error;
      const from: string = e.from;
      const to: string = e.to;
      void [status, bytes, error, from, to];
    }
    void [success, exitCode, duration, timedOut, wasCancelled, id, cancelled];
  } catch (err) {
    if (err instanceof LightRunnerError) {
      const code: LightRunnerErrorCode = err.code;
      const name: string = err.name;
      const op: string | undefined = err.dockerOp;
      const cid: string | undefined = err.containerId;
      const json = err.toJSON();
      const jsonCode: LightRunnerErrorCode = json.code;
      const message: string = json.message;
      void [code, name, op, cid, jsonCode, message];
    }
  }

  const made = new LightRunnerError({ code: 'DOCKER_UNREACHABLE', message: 'down', dockerOp: 'ping' });
  const asError: Error = made;
  void asError;

  const available: boolean = await DockerRunner.isAvailable();
  const attachOptions: AttachOptions = {};
  const attached: Execution | null = DockerRunner.attach('light-runner-0123456789ab', attachOptions);
  const attachedToo: Execution | null = DockerRunner.attach('light-runner-0123456789ab');
  const states: RunState[] = DockerRunner.list();
  const changed: number = await DockerRunner.cleanupOrphanStates();
  const reaped: { containers: number; volumes: number } = await DockerRunner.reapOrphans();
  const volumes: number = await DockerRunner.cleanupOrphanVolumes();
  const all: RunState[] = listStates();
  const one: RunState | null = readState('light-runner-0123456789ab');
  if (one) {
    const status: 'running' | 'exited' | 'cancelled' | 'failed' = one.status;
    const fields = [one.id, one.container, one.volume, one.image, one.workdir, one.startedAt,
      one.entrypoint, one.command, one.timeout, one.extract, one.exitCode, one.finishedAt,
      one.durationMs, one.cancelled, one.timedOut, one.extracted, one.deadline, one.host?.hostname,
      one.host?.pid, one.phase, one.error];
    void [status, fields];
  }
  void [available, attached, attachedToo, states, changed, reaped.containers, reaped.volumes, volumes, all];

  // The types are real, not `any`:
  // @ts-expect-error image is required
  runner.run({ command: 'echo' });
  // @ts-expect-error image must be a string
  runner.run({ image: 5 });
  // Any runtime the daemon registered is a Runtime (checked per run).
  new DockerRunner({ runtime: 'io.containerd.runsc.v1' });
  // @ts-expect-error a runtime is a string
  new DockerRunner({ runtime: 5 });
  // @ts-expect-error not a profile
  new DockerRunner({ securityProfile: 'strict' });
  // @ts-expect-error ulimits are numbers or { soft, hard }
  new DockerRunner({ ulimits: { nofile: '1024' } });
  // @ts-expect-error result is read-only
  execution.result = Promise.resolve(undefined as unknown as RunResult);
  // @ts-expect-error not an error code
  const badCode: LightRunnerErrorCode = 'NOPE';
  // @ts-expect-error cancel() is synchronous
  await execution.cancel().then(() => {});
  void badCode;
}
