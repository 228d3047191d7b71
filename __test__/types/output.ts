// Type-checked with usage.ts (see tsconfig.json): the output API of 0.17
// (onLog's meta, attach options, execution.logs(), maxLogBytes, kept logs).
import { DockerRunner, Execution, readState } from 'light-runner';
import type {
  AttachOptions, KeptLogs, LogEntry, LogMeta, LogsOptions, RunnerOptions, RunResult,
} from 'light-runner';

const options: RunnerOptions = { maxLogBytes: 1 << 20 };
const runner = new DockerRunner(options);
const ex: Execution = runner.run({
  image: 'light-runner-busybox:latest',
  onLog: (line: string, meta: LogMeta) => {
    const s: 'stdout' | 'stderr' = meta.stream;
    const t: number = meta.time;
    void [line, s, t];
  },
});
runner.run({ image: 'x', onLog: (line: string) => { void line; } });

const attachOptions: AttachOptions = {
  onLog: (line, meta) => { void [line.length, meta.stream]; },
  since: new Date(),
  follow: true,
};
const again = DockerRunner.attach(ex.id, attachOptions);
DockerRunner.attach(ex.id, { since: '2026-01-01T00:00:00Z', follow: false });

async function read(): Promise<void> {
  const o: LogsOptions = { since: Date.now(), follow: false };
  for await (const entry of ex.logs(o)) {
    const e: LogEntry = entry;
    const text: string = e.line;
    void text;
  }
  const r: RunResult = await ex.result;
  const cut: boolean | undefined = r.logsTruncated;
  const kept: KeptLogs | undefined = readState(ex.id)?.logs;
  const n: number | undefined = kept?.droppedLines;
  void [cut, n, again];
}
void read;

// @ts-expect-error the stream is one of two names
const bad: LogMeta = { stream: 'stdin', time: 0 };
void bad;
