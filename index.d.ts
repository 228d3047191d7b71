/**
 * light-runner: run untrusted jobs in hardened Docker containers.
 *
 * A Rust (napi-rs) drop-in for the TypeScript `light-runner` 0.17.x. All
 * Docker, tar, state-file and timing work happens in Rust on a tokio runtime.
 */

/**
 * OCI runtime for the container: any runtime the daemon registered (`docker
 * info` lists them under Runtimes); `runc` (or `''`) is Docker's default and
 * passes nothing. Checked per run: an unknown one rejects `result` with
 * `CONTAINER_START_FAILED` naming the runtimes the daemon knows.
 */
export type Runtime = 'runc' | 'runsc' | 'kata' | (string & {});

/**
 * How hard a run's container is locked down. `'baseline'` is the original's
 * defaults (six capabilities dropped, `no-new-privileges`, pids 100, the
 * isolated bridge). `'restricted'` is for strangers' code: user
 * 65534:65534, every capability dropped, a read-only root filesystem with
 * the workdir volume writable and `/tmp` a tmpfs, no swap beyond memory,
 * ulimits nofile 1024 / fsize 1 GiB / core 0, Docker's init as PID 1, and
 * no network unless `networks`/`network` names one. See the README's table.
 */
export type SecurityProfile = 'baseline' | 'restricted';

/** A resource limit: one number for soft and hard, or both. */
export type UlimitValue = number | { soft: number; hard: number };

/** Stable codes of {@link LightRunnerError}. */
export type LightRunnerErrorCode =
  /** The daemon did not answer a ping within 5 s (or could not be reached at all). */
  | 'DOCKER_UNREACHABLE'
  /** Creating the run's volume failed. */
  | 'VOLUME_CREATE_FAILED'
  /**
   * The container could not be created or started: image not found or not
   * pullable, a missing network, an invalid `memory`/`cpus`/`gpus` runner
   * option, a start the daemon refused.
   */
  | 'CONTAINER_START_FAILED'
  /** `dir` is missing or not a directory, or copying it into the volume failed. */
  | 'SEED_FAILED'
  /**
   * Reading results out of the container failed as a whole: the daemon could
   * not give the archive at all (unreachable, or failing on its side). A
   * missing or unsafe entry is not this: it is reported in `extracted`.
   */
  | 'EXTRACT_FAILED'
  /** A `run` build step failed. */
  | 'IMAGE_BUILD_FAILED'
  /** `deleteNetwork` of a network with containers attached. */
  | 'NETWORK_IN_USE'
  /** The daemon lost the container while it ran (daemon restart, removal from outside). */
  | 'CONTAINER_LOST';

/** Settings applied to every run of one {@link DockerRunner}. */
export interface RunnerOptions {
  /**
   * Memory hard cap: digits with an optional k/m/g suffix; `'0'` = no limit.
   * Default `'512m'`. An invalid value rejects each run's `result`.
   */
  memory?: string;
  /**
   * CPUs as a positive number (`'1.5'`, `'.5'`, `2`; becomes NanoCpus), read
   * as `parseFloat` reads it, like the original. Default `'1'`. An invalid
   * value rejects each run's `result`.
   */
  cpus?: string | number;
  /**
   * OCI runtime, passed as HostConfig.Runtime (`'runsc'` is gVisor): any
   * runtime the daemon registered. Default runc (nothing passed).
   */
  runtime?: Runtime;
  /**
   * nvidia GPUs: `''`/undefined = none, `'all'` = every GPU, otherwise device
   * ids: `0`, `'1'`, `'0,1'`, `'device=0,1'`, `'"device=0"'` (a number is a
   * device id, not a count). Becomes an nvidia DeviceRequest. A value with
   * characters outside `[A-Za-z0-9,=.:"-_ ]`, or starting with `-`, rejects
   * each run's `result`.
   */
  gpus?: 'all' | number | string;
  /** Set the `no-new-privileges` security option. Default `true`. */
  noNewPrivileges?: boolean;
  /** Cap on the archive bytes of each extract entry. Default 1 GiB. */
  maxExtractBytes?: number;
  /**
   * Cap on a run's output, in bytes (each line counts its bytes plus one for
   * its newline, stdout and stderr together). Past it, lines are no longer
   * delivered to `onLog` or kept; the container keeps running; the result
   * and the state say `logsTruncated: true`. Default: no cap.
   */
  maxLogBytes?: number;
  /**
   * Ready containers kept per run shape (image after `run` steps, networks,
   * workdir, these options), so a run skips create and start: it takes one,
   * which serves it alone and is removed after it. Default 0 (none). A run
   * the warm path cannot serve exactly (no `command`, `detached`) or that
   * finds none ready takes the cold path at once.
   */
  warm?: number;
  /**
   * `'baseline'` (default) or `'restricted'`. Unset, the environment variable
   * `LIGHT_RUNNER_SECURITY_PROFILE` (read at each run) decides. An invalid
   * value, or a conflict with `'restricted'` (`noNewPrivileges: false`, a root
   * `user`, `capAdd`, `readOnlyRootfs: false`), rejects each run's `result`
   * with `CONTAINER_START_FAILED` naming the option or the variable.
   */
  securityProfile?: SecurityProfile;
  /**
   * The job's user: numeric `'uid[:gid]'` (a user name the image knows is
   * accepted under baseline only). `'restricted'` defaults to
   * `'65534:65534'` and refuses uid 0 and gid 0. The workdir is made
   * writable for it.
   */
  user?: string;
  /**
   * Read-only root filesystem (the workdir volume stays writable; with
   * `tmpfsSize`, `/tmp` too). Default false; always true under
   * `'restricted'`.
   */
  readOnlyRootfs?: boolean;
  /**
   * Mounts `/tmp` as a tmpfs of this size (`'64m'` or bytes; counted in the
   * memory cap). Default: none under baseline, `'64m'` under `'restricted'`.
   */
  tmpfsSize?: string | number;
  /**
   * Resource limits (`nofile`, `fsize` in bytes, `core`, `nproc`, ... as
   * Docker's `--ulimit`). `'restricted'` sets nofile 1024, fsize 1 GiB and
   * core 0; values given here replace those.
   */
  ulimits?: Record<string, UlimitValue>;
  /** Capabilities added back (`'NET_ADMIN'`, ...). Baseline only. */
  capAdd?: string[];
}

/** The fields of a request that make its shape, for `prewarm`. */
export type WarmShape = Pick<RunRequest, 'image' | 'run' | 'networks' | 'network' | 'workdir'>;

/** Which stream a line of output came from, and when it was written. */
export interface LogMeta {
  stream: 'stdout' | 'stderr';
  /**
   * Epoch milliseconds: the daemon's time of the write when the line is
   * read back, the time the line arrived for `onLog` of an attached run.
   */
  time: number;
}

/** One line of a run's output (no newline). */
export interface LogEntry extends LogMeta {
  line: string;
}

/** Options of {@link Execution.logs}. */
export interface LogsOptions {
  /** Only lines written at or after this time (a Date, an ISO string or epoch ms). */
  since?: Date | string | number;
  /** Keep reading until the run's container stops. Default `true`. */
  follow?: boolean;
}

/** One path to copy out of the container after a successful run. */
export interface ExtractSpec {
  /** Path in the container: absolute, or relative to the workdir. `..` is rejected. */
  from: string;
  /**
   * Host directory, created recursively. A directory `from` has its contents
   * land directly in `to`; a file `from` lands as `to/basename(from)`.
   */
  to: string;
}

/** What happened to one {@link ExtractSpec}. */
export interface ExtractResult {
  /** The spec's `from`, as given. */
  from: string;
  /** The spec's `to` (absolute in a state file's record). */
  to: string;
  /**
   * `ok`: copied; `missing`: no such path in the container; `error`: see
   * `error` (traversal, over the cap, destination is a file, unsafe entry).
   * Never fails the run.
   */
  status: 'ok' | 'missing' | 'error';
  /** Archive bytes streamed (status `ok`). */
  bytes?: number;
  /** Why the entry failed (status `error`). */
  error?: string;
}

/** One job. Only `image` is required. */
export interface RunRequest {
  /** Image reference; pulled when missing locally. */
  image: string;
  /** Shell command run as `sh -c <command>`. Omitted: the image's own entrypoint. */
  command?: string;
  /** Same as `command` (the detached-run docs' name). Both given and different: error. */
  entrypoint?: string;
  /**
   * Host folder copied into the workdir before start. `.git node_modules dist
   * build .next .cache .turbo coverage` (and `ignore`) are skipped at any
   * depth, symlinks are never copied, everything ends up `a+rwX`.
   */
  dir?: string;
  /** Any JSON value, written to stdin as `JSON.stringify(input)`, then EOF. Not with `detached`. */
  input?: unknown;
  /**
   * Milliseconds; default 20 minutes; `0`, negative, `NaN` or `Infinity` =
   * none. On expiry the container is killed (`timedOut: true`). An attached
   * run's timeout starts when its container starts.
   */
  timeout?: number;
  /** Alias of `networks: [network]`. `undefined`/`''`: the isolated bridge `light-runner-isolated`. */
  network?: string;
  /**
   * Networks of the container: the first is the primary network, the others
   * are connected before start. Omitted or `[]`: the isolated bridge
   * `light-runner-isolated`. `['none']`: no network. A missing network
   * rejects `result`, naming it.
   */
  networks?: string[];
  /**
   * Build steps: the image is `FROM image` plus one `RUN` per step, built
   * through the Engine API and cached as `light-runner-cache:<sha256>`.
   * Trusted operator input: the build has the daemon's build network.
   */
  run?: string[];
  /**
   * Environment; names not matching `^[A-Za-z_][A-Za-z0-9_]*$` are dropped,
   * values are converted with `String()` (`undefined` drops the name).
   * Never stored on disk.
   */
  env?: Record<string, unknown>;
  /** Absolute path where the run's volume is mounted. Default `/app`. */
  workdir?: string;
  /** Aborting it cancels the run; an already-aborted signal means the container never starts. */
  signal?: AbortSignal;
  /**
   * Called once per stdout/stderr line (no newline, empty lines skipped),
   * with its stream and time. Not called for detached runs: attach with
   * `onLog` instead, from any process.
   */
  onLog?: (line: string, meta: LogMeta) => void;
  /** Paths copied out after a successful run (exit code 0, not cancelled, not timed out). */
  extract?: ExtractSpec[];
  /** Let the container outlive this process; see the README's detached section. */
  detached?: boolean;
  /** Extra names skipped when seeding `dir`, added to the defaults. */
  ignore?: string[];
}

/** How a run ended. */
export interface RunResult {
  /** `exitCode === 0 && !cancelled && !timedOut`. */
  success: boolean;
  /** The container's exit code; -1 when it never ran. */
  exitCode: number;
  /** Milliseconds, from `run()` to the end of extraction. */
  duration: number;
  /** `cancel()`, `stop()` or the signal ended the run (not a run that had already exited by itself). */
  cancelled: boolean;
  /** The timeout killed the container. Optional in the type, as in 0.10 (always set by this package). */
  timedOut?: boolean;
  /** The memory cap killed the container (Docker's `OOMKilled`). Always set by this package. */
  oomKilled?: boolean;
  /** `maxLogBytes` cut the output (present only when it did). */
  logsTruncated?: boolean;
  /** Present when `extract` was given and the run succeeded. */
  extracted?: ExtractResult[];
}

/** Options of {@link Execution.stop}. */
export interface StopOptions {
  /** Signal sent first. Default `'SIGTERM'`. */
  signal?: string;
  /** Milliseconds to wait for the exit before SIGKILL. Default 10000; 0 kills at once. */
  grace?: number;
}

/**
 * Options of {@link DockerRunner.attach}. With `onLog`, the run's output is
 * replayed from its start (or `since`) and then followed until its container
 * stops: the same lines, split by the same rules as an attached run's
 * `onLog`, in order, without a duplicate or a gap; `result` settles once
 * every line was delivered.
 */
export interface AttachOptions extends LogsOptions {
  onLog?: (line: string, meta: LogMeta) => void;
}

/** What was kept of a run's output beside its state file (`<id>.log`). */
export interface KeptLogs {
  /** Size of the kept file. */
  bytes: number;
  /** Lines in it. */
  lines: number;
  /** Lines dropped (the oldest first) to stay under `cap`. */
  droppedLines: number;
  /** `LIGHT_RUNNER_MAX_LOG_BYTES` when the output was kept (default 10 MiB; 0 keeps nothing). */
  cap: number;
  /** Why the output could not be kept entirely. */
  error?: string;
}

/** Options of {@link createNetwork}. */
export interface CreateNetworkOptions {
  /** Only `'bridge'`. */
  driver?: 'bridge';
  /** Let containers on the network talk to each other. Default `false`. */
  iccEnabled?: boolean;
  /** An existing network of that name is an error instead of success. */
  exclusive?: boolean;
  /** Added to the `light-runner.managed=true` label. */
  labels?: Record<string, string>;
  /** Addresses of the network (Docker picks them when omitted). */
  ipam?: { subnet?: string; gateway?: string; ipRange?: string };
}

/** Options of {@link cleanupOrphanNetworks}. */
export interface CleanupNetworkOptions {
  /** Only networks whose name starts with it. Default `'light-runner-'`. */
  prefix?: string;
  /** Only networks older than this. Default 0. */
  maxAgeMs?: number;
}

/**
 * A run (attached or detached) as recorded in `<stateDir>/<id>.json`
 * (`LIGHT_RUNNER_STATE_DIR`, else `~/.light-runner/state`). Files written by
 * the original (its fields only) read the same way.
 */
export interface RunState {
  /** The run id. */
  id: string;
  /** The container's name (= the id). */
  container: string;
  /** The volume's name (= the id). */
  volume: string;
  /** The requested image. */
  image: string;
  /** Where the volume is mounted in the container. */
  workdir: string;
  /** The shell command (this package writes both `entrypoint` and `command`). */
  entrypoint?: string;
  /** The shell command (the original's name for it). */
  command?: string;
  /** The timeout in ms as requested (0 = none; the original may have written a negative or fractional one). */
  timeout?: number;
  /** The requested extracts, with `to` made absolute. */
  extract?: ExtractSpec[];
  /** ISO time of the `run()` call. */
  startedAt: string;
  /** `running`, then `exited` (by itself or timed out), `cancelled` or `failed` (setup error, vanished container, dead host). */
  status: 'running' | 'exited' | 'cancelled' | 'failed';
  /** The container's exit code; -1 when it never ran. */
  exitCode?: number;
  /** ISO time the run ended. */
  finishedAt?: string;
  /** Milliseconds the run took (the result's `duration`). */
  durationMs?: number;
  /** Whether a cancel or stop ended the run. */
  cancelled?: boolean;
  /** The timeout (or the recorded deadline) killed the container. */
  timedOut?: boolean;
  /** The memory cap killed the container. */
  oomKilled?: boolean;
  /** What each extract did (the result's `extracted`). */
  extracted?: ExtractResult[];
  /** `false` for an attached run (absent in files of the original 0.10, which were all detached). */
  detached?: boolean;
  /** The run's build steps. */
  run?: string[];
  /** The cached image the container ran (the build of `run`). */
  builtImage?: string;
  /** ISO time after which any host kills the run. */
  deadline?: string;
  /** The launcher. */
  host?: { hostname: string; pid: number };
  /** `'setup'` while the launcher prepares the container, then `'started'`. */
  phase?: 'setup' | 'started';
  /** Why a run failed. */
  error?: string;
  /** The code of a failure every host reports as an error (`EXTRACT_FAILED`). */
  errorCode?: LightRunnerErrorCode;
  /**
   * The daemon lost the run's container (the run failed with
   * `CONTAINER_LOST`): removed while it ran, stopped by a daemon that
   * stopped without live-restore, or a daemon unreachable for too long.
   */
  lost?: 'removed' | 'daemon-stopped' | 'daemon-unreachable';
  /** When a host cancelled or stopped the run. */
  cancelledAt?: string;
  /** When watchers may SIGKILL a cancelled run (a stop's grace). */
  killAfter?: string;
  /** The host finalizing a detached run: `{ hostname, pid, heartbeat }`. */
  finalizing?: { hostname: string; pid: number; heartbeat: number };
  /** The per-entry extract cap of the runner that launched the run. */
  maxExtractBytes?: number;
  /** The run's `maxLogBytes`. */
  maxLogBytes?: number;
  /** `maxLogBytes` cut the output. */
  logsTruncated?: boolean;
  /** The run took a warm container (`RunnerOptions.warm`). */
  warm?: boolean;
  /** What was kept of the output once the container was removed. */
  logs?: KeptLogs;
  /** Fields of other versions are kept as they are. */
  [key: string]: unknown;
}

/** A Docker failure of a run; `result` rejects with it. */
export declare class LightRunnerError extends Error {
  /** `'LightRunnerError'`; an ordinary writable property (subclasses may rename themselves). */
  name: string;
  readonly code: LightRunnerErrorCode;
  /**
   * The Engine API operation that failed (`ping`, `createVolume`, `pull`,
   * `createContainer`, `start`, `seedVolume`, `extractFromVolume`, ...).
   */
  readonly dockerOp?: string;
  /** The run's container name, when the failure concerns it. */
  readonly containerId?: string;
  /** Builds an error as the package does (wrappers may subclass it). */
  constructor(opts: {
    code: LightRunnerErrorCode;
    message: string;
    dockerOp?: string;
    containerId?: string;
    cause?: unknown;
  });
  /** `{ name, code, message, dockerOp?, containerId? }`; the cause is left out. */
  toJSON(): {
    name: string;
    code: LightRunnerErrorCode;
    message: string;
    dockerOp?: string;
    containerId?: string;
  };
  /** The underlying error: an `Error` with the daemon's message and its HTTP `statusCode` when it has one. */
  readonly cause?: unknown;
}

/** A handle on one run. */
export declare class Execution {
  /**
   * Public, as in 0.10: test doubles and wrappers build handles around any
   * promise. `onCancel` is called once, on the first `cancel()`/`stop()`.
   */
  constructor(id: string, result: Promise<RunResult>, onCancel?: () => void);
  /** `'light-runner-'` + 12 lowercase hex digits; also the container and volume name. */
  readonly id: string;
  /** Resolves when the run ends (the same Promise on every read); rejects with {@link LightRunnerError}. */
  readonly result: Promise<RunResult>;
  /** True once cancelled or stopped; once the run is over, the result's `cancelled`. */
  readonly cancelled: boolean;
  /** Synchronous, fire-and-forget kill; prevents the start if it has not happened. */
  cancel(): void;
  /**
   * Sends `signal`, waits up to `grace` ms, then SIGKILL. Marks cancelled.
   * No-op when finished. On a handle built by hand: `cancel()`.
   */
  stop(options?: StopOptions): Promise<void>;
  /**
   * Freezes the container (cgroup freezer). Not a cancel. Rejects with
   * `docker pause failed: ...` when there is no such container; a no-op on a
   * handle built by hand.
   */
  pause(): Promise<void>;
  /** Unfreezes a paused container (`docker unpause failed: ...`); a no-op on a handle built by hand. */
  resume(): Promise<void>;
  /**
   * The run's output, from its start (or `since`), then (with `follow`,
   * the default) until its container stops: from the daemon while the
   * container exists, from the kept copy after. Any run with a state file,
   * from any process.
   */
  logs(options?: LogsOptions): AsyncIterableIterator<LogEntry>;
}

/** Runs jobs in hardened containers. */
export declare class DockerRunner {
  /**
   * Throws synchronously on an option of the wrong type (a function, a
   * cycle, ...), naming the field. An invalid `memory`, `cpus` or `gpus`
   * string does not throw: each run's `result` rejects, naming it.
   */
  constructor(options?: RunnerOptions);
  /**
   * Starts a run and writes its state file. Synchronous; bad input throws
   * naming the field (unknown fields are ignored), Docker failures reject
   * `result`.
   */
  run(request: RunRequest): Execution;
  /**
   * Makes `count` (default `warm`) containers of this request's shape
   * (`image`, `run`, `networks`/`network`, `workdir`) ready; resolves once
   * they are. Needs `warm > 0`.
   */
  prewarm(request: WarmShape, count?: number): Promise<void>;
  /** Removes the warm containers (those being made too); resolves once they are gone. */
  close(): Promise<void>;
  /** True when the Docker daemon answers a ping within 5 s. */
  static isAvailable(): Promise<boolean>;
  /**
   * Reconnects to a run by id (detached, or attached and driven by another
   * live process); `null` when no state file exists for `id`. Resolves at
   * once for a finished run, else when it ends. With `onLog`, its output is
   * replayed and followed.
   */
  static attach(id: string, options?: AttachOptions): Execution | null;
  /** Every readable state file (= {@link listStates}). */
  static list(): RunState[];
  /**
   * Reconciles running states with the daemon: vanished containers and
   * attached runs of dead hosts → `failed`; exited detached runs nobody
   * finalized → finalized; runs past their deadline → killed. Returns how
   * many states changed.
   */
  static cleanupOrphanStates(): Promise<number>;
  /** Removes idle labelled containers older than `LIGHT_RUNNER_REAP_AGE_MS` and unused labelled volumes. */
  static reapOrphans(): Promise<{ containers: number; volumes: number }>;
  /** Removes unused volumes named `light-runner-*`; returns the count. */
  static cleanupOrphanVolumes(): Promise<number>;
  /**
   * Removes terminal state files older than `LIGHT_RUNNER_STATE_TTL_MS`
   * (default 7 days) and, past `LIGHT_RUNNER_MAX_STATES` (default 1000)
   * terminal files, the oldest. Never a running one. Returns the count.
   */
  static cleanupOldStates(): number;
  /**
   * Removes `light-runner-cache:*` images no container uses and no run used
   * for `LIGHT_RUNNER_CACHE_TTL_MS` (default 7 days). Returns the count.
   */
  static cleanupOrphanCache(): Promise<number>;
  /** Removes dangling (untagged, unused) images. Returns the count. */
  static cleanupDanglingImages(): Promise<number>;
}

/** Every readable state file, oldest first (corrupt and temp files skipped). */
export declare function listStates(): RunState[];
/** The state file of `id`, or `null`; a corrupt file throws. */
export declare function readState(id: string): RunState | null;
/** Removes the state file of `id` and its kept output (absent is fine). */
export declare function deleteState(id: string): void;
/**
 * Creates a bridge network labelled `light-runner.managed=true`; resolves
 * `true` once it exists (created now or already there, unless `exclusive`).
 */
export declare function createNetwork(name: string, options?: CreateNetworkOptions): Promise<boolean>;
/** Removes a network; absent is fine; with containers attached rejects with `NETWORK_IN_USE`. */
export declare function deleteNetwork(name: string): Promise<void>;
/** True when a network of that name exists. */
export declare function networkExists(name: string): Promise<boolean>;
/**
 * Removes networks named `prefix*` with no container attached and older than
 * `maxAgeMs`; never `light-runner-isolated`. Returns the count.
 */
export declare function cleanupOrphanNetworks(options?: CleanupNetworkOptions): Promise<number>;
