// Type-checked by __test__/drop-in-values.test.mjs (`tsc --noEmit`, strict):
// code written against light-runner 0.10 the way its users write test
// doubles and wrappers must compile unchanged against this package.
import { DockerRunner, Execution, LightRunnerError } from 'light-runner';
import type { LightRunnerErrorCode, RunRequest, RunResult } from 'light-runner';

// A test double: a RunResult as 0.10 declared it (no timedOut, no oomKilled).
const fakeResult: RunResult = { success: true, exitCode: 0, duration: 12, cancelled: false };
const withExtract: RunResult = {
  success: true,
  exitCode: 0,
  duration: 1,
  cancelled: false,
  extracted: [{ from: '/app/out', to: '/tmp/out', status: 'ok', bytes: 10 }],
};

// A fake handle built with the public constructor.
export function fakeExecution(result: RunResult = fakeResult): Execution {
  let cancelled = 0;
  return new Execution('light-runner-000000000000', Promise.resolve(result), () => {
    cancelled += 1;
  });
}

// A runner double: subclasses DockerRunner and returns fakes.
export class FakeRunner extends DockerRunner {
  override run(request: RunRequest): Execution {
    void request.image;
    return fakeExecution(withExtract);
  }
}

// A wrapper's own error type: renames itself and keeps the cause.
export class JobFailed extends LightRunnerError {
  readonly job: string;
  constructor(job: string, code: LightRunnerErrorCode, cause: unknown) {
    super({ code, message: `job ${job} failed`, cause });
    this.name = 'JobFailed';
    this.job = job;
  }
}

// A wrapper around run(): timeouts checked the 0.10 way (field may be absent).
export async function runJob(runner: DockerRunner, request: RunRequest): Promise<string> {
  const execution = runner.run(request);
  try {
    const r = await execution.result;
    const timedOut: boolean = r.timedOut ?? false;
    return `${execution.id}: ${r.success ? 'ok' : 'failed'}${timedOut ? ' (timeout)' : ''}`;
  } catch (e) {
    if (e instanceof LightRunnerError) {
      const cause: unknown = e.cause;
      throw new JobFailed(execution.id, e.code, cause);
    }
    throw e;
  }
}

// Options as 0.10 users pass them.
export const runner = new DockerRunner({ memory: '0', cpus: '.5', gpus: 0 });
export const env: RunRequest['env'] = { PORT: '8080' };

// The types are real, not `any`:
// @ts-expect-error exitCode is a number
export const wrong: RunResult = { success: true, exitCode: '0', duration: 1, cancelled: false };
// @ts-expect-error the constructor takes a promise of a RunResult
export const wrongHandle = new Execution('x', Promise.resolve(42), () => {});
