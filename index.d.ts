/**
 * light-runner: run untrusted jobs in hardened Docker containers.
 *
 * A Rust (napi-rs) drop-in for the TypeScript `light-runner` 0.17.x. All
 * Docker, tar, state-file and timing work happens in Rust on a tokio runtime.
 */

/** OCI runtime for the container. `runc` is Docker's default. */
export type Runtime = 'runc' | 'runsc' | 'kata';

/** Stable codes of {@link LightRunnerError}. */
export type LightRunnerErrorCode =
  | 'DOCKER_UNREACHABLE'
  | 'VOLUME_CREATE_FAILED'
  | 'CONTAINER_START_FAILED'
  | 'SEED_FAILED'
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
  /** CPUs as a positive decimal (`'1.5'`, `'.5'`; becomes NanoCpus). Default `'1'`. */
  cpus?: string | number;
  /** `'runsc'` (gVisor) or `'kata'` is passed as HostConfig.Runtime. Default runc. */
  runtime?: Runtime;
  /**
   * nvidia GPUs: `''`/undefined = none, `'all'` = every GPU, otherwise device
   * ids: `0`, `'1'`, `'0,1'`, `'device=0,1'`, `'"device=0"'` (a number is a
   * device id, not a count).
   */
  gpus?: 'all' | number | string;
  /** Set the `no-new-privileges` security option. Default `true`. */
  noNewPrivileges?: boolean;
  /** Cap on the archive bytes of each extract entry. Default 1 GiB. */
  maxExtractBytes?: number;
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
  from: string;
  to: string;
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
  /** Milliseconds; default 20 minutes; `0` or negative = none. On expiry the container is killed. */
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
  /** Called once per stdout/stderr line (no newline, empty lines skipped). Not called for detached runs. */
  onLog?: (line: string) => void;
  /** Paths copied out after a successful run. */
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
  /** The container's exit code; -1 when it never ran or vanished. */
  exitCode: number;
  /** Milliseconds. */
  duration: number;
  cancelled: boolean;
  /** The timeout killed the container. Optional in the type, as in 0.10 (always set by this package). */
  timedOut?: boolean;
  /** The memory cap killed the container (Docker's `OOMKilled`). Always set by this package. */
  oomKilled?: boolean;
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

/** Options of {@link DockerRunner.attach} (reserved for log streaming). */
export interface AttachOptions {}

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
  ipam?: { subnet?: string; gateway?: string; ipRange?: string };
}

/** Options of {@link cleanupOrphanNetworks}. */
export interface CleanupNetworkOptions {
  /** Only networks whose name starts with it. Default `'light-runner-'`. */
  prefix?: string;
  /** Only networks older than this. Default 0. */
  maxAgeMs?: number;
}

/** A run (attached or detached) as recorded in `<stateDir>/<id>.json`. */
export interface RunState {
  id: string;
  container: string;
  volume: string;
  image: string;
  workdir: string;
  /** The shell command (this package writes both `entrypoint` and `command`). */
  entrypoint?: string;
  command?: string;
  timeout?: number;
  /** The requested extracts, with `to` made absolute. */
  extract?: ExtractSpec[];
  /** ISO time. */
  startedAt: string;
  status: 'running' | 'exited' | 'cancelled' | 'failed';
  exitCode?: number;
  finishedAt?: string;
  durationMs?: number;
  cancelled?: boolean;
  timedOut?: boolean;
  oomKilled?: boolean;
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
  /** When a host cancelled or stopped the run. */
  cancelledAt?: string;
  /** When watchers may SIGKILL a cancelled run (a stop's grace). */
  killAfter?: string;
  /** The extract cap of the run's runner (bytes). */
  maxExtractBytes?: number;
  /** The host finalizing the run right now, and its last heartbeat (epoch ms). */
  finalizing?: { hostname: string; pid: number; heartbeat: number };
  [key: string]: unknown;
}

/** A Docker failure of a run; `result` rejects with it. */
export declare class LightRunnerError extends Error {
  /** `'LightRunnerError'`; an ordinary writable property (subclasses may rename themselves). */
  name: string;
  readonly code: LightRunnerErrorCode;
  /** The Engine API operation that failed. */
  readonly dockerOp?: string;
  readonly containerId?: string;
  constructor(opts: {
    code: LightRunnerErrorCode;
    message: string;
    dockerOp?: string;
    containerId?: string;
    cause?: unknown;
  });
  toJSON(): {
    name: string;
    code: LightRunnerErrorCode;
    message: string;
    dockerOp?: string;
    containerId?: string;
  };
  /** The underlying error (the daemon's answer, with `statusCode` when it has one). */
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
  readonly cancelled: boolean;
  /** Synchronous, fire-and-forget kill; prevents the start if it has not happened. */
  cancel(): void;
  /** Sends `signal`, waits up to `grace` ms, then SIGKILL. Marks cancelled. No-op when finished. */
  stop(options?: StopOptions): Promise<void>;
  /** Freezes the container (cgroup freezer). Not a cancel. */
  pause(): Promise<void>;
  /** Unfreezes a paused container. */
  resume(): Promise<void>;
}

/** Runs jobs in hardened containers. */
export declare class DockerRunner {
  /** Throws synchronously on an invalid option, naming the field. */
  constructor(options?: RunnerOptions);
  /** Starts a run. Synchronous; bad input throws, Docker failures reject `result`. */
  run(request: RunRequest): Execution;
  /** True when the Docker daemon answers a ping within 5 s. */
  static isAvailable(): Promise<boolean>;
  /** Reconnects to a detached run; `null` when no state file exists for `id`. */
  static attach(id: string, options?: AttachOptions): Execution | null;
  /** Every readable state file. */
  static list(): RunState[];
  /** Reconciles running states with the daemon; returns how many changed. */
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

/** Every readable state file (corrupt and temp files skipped). */
export declare function listStates(): RunState[];
/** The state file of `id`, or `null`; a corrupt file throws. */
export declare function readState(id: string): RunState | null;
/** Removes the state file of `id` (absent is fine). */
export declare function deleteState(id: string): void;
/**
 * Creates a bridge network labelled `light-runner.managed=true`; resolves
 * `true` once it exists (created now or already there, unless `exclusive`).
 */
export declare function createNetwork(name: string, options?: CreateNetworkOptions): Promise<boolean>;
/** Removes a network; absent is fine; with containers attached rejects with `NETWORK_IN_USE`. */
export declare function deleteNetwork(name: string): Promise<void>;
export declare function networkExists(name: string): Promise<boolean>;
/**
 * Removes networks named `prefix*` with no container attached and older than
 * `maxAgeMs`; never `light-runner-isolated`. Returns the count.
 */
export declare function cleanupOrphanNetworks(options?: CleanupNetworkOptions): Promise<number>;
