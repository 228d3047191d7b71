// The ESM side (`module: nodenext`, an .mts file): named imports by package
// name and top-level await type-check.
import { DockerRunner, LightRunnerError, listStates, readState } from 'light-runner';
import type { Execution, RunResult } from 'light-runner';

const runner = new DockerRunner({ memory: '128m' });
const execution: Execution = runner.run({ image: 'light-runner-busybox:latest', command: 'true' });
const result: RunResult = await execution.result;
const fromList = listStates().length + (readState(execution.id) ? 1 : 0);
const e: unknown = new Error('x');
const isLr: boolean = e instanceof LightRunnerError;
export { result, fromList, isLr };
