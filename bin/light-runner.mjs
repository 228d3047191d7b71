#!/usr/bin/env node
// The `light-runner` command: runs on this machine as an operator sees them,
// through the package's public API (same state dir, same daemon:
// LIGHT_RUNNER_STATE_DIR and the daemon the environment names, found as the
// addon finds it). `doctor` also asks the addon what it loaded and resolved.
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { DockerRunner, Execution, listStates, readState } from '../index.mjs';

const require = createRequire(import.meta.url);
const { version } = require('../package.json');

// Exit codes of the command itself (a run's own code is passed through by
// `attach`).
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

class Usage extends Error {}

const HELP = {
  main: `Usage: light-runner <command> [options]

Runs of this machine (state dir: LIGHT_RUNNER_STATE_DIR, else ~/.light-runner/state).

Commands:
  ps                     list runs: id, status, image, started, duration, exit code
  logs [-f] [--since T] <id>
                         print a run's output (stdout to stdout, stderr to stderr)
  attach [--logs] <id>   wait for a run's end, print its result, exit with its exit code
  stop [--grace MS] [--signal SIG] <id>
                         signal a run, SIGKILL it after the grace; waits for its end
  cancel <id>            kill a run now; waits for its end
  pause <id>             freeze a run (cgroup freezer)
  resume <id>            unfreeze a paused run
  gc                     reconcile and remove what runs left behind
  doctor                 what this machine runs with: the addon loaded, the
                         Docker endpoint and how it was found, the daemon's
                         version and runtimes, the state dir (for bug reports)

Every listing takes --json. 'light-runner <command> --help' tells more.`,
  ps: `Usage: light-runner ps [--running] [--json]

Lists every run with a state file, oldest first: ID, STATUS, IMAGE, STARTED
(UTC), DURATION (so far, for a running run), EXIT (its exit code).

  --running   only runs whose status is 'running'
  --json      the state records, as an array (as listStates() returns them)`,
  logs: `Usage: light-runner logs [-f] [--since TIME] [--json] <id>

Prints a run's output from its start: while its container exists, from the
daemon; after, from the copy kept beside its state file. Lines of stdout go
to stdout, lines of stderr to stderr.

  -f, --follow   keep printing until the run's container stops
  --since TIME   only lines written at or after TIME: an ISO time, epoch
                 milliseconds, or an age like 30s, 10m, 2h, 1d
  --json         one JSON object per line on stdout: { stream, line, time }
                 (time in epoch milliseconds)`,
  attach: `Usage: light-runner attach [--logs] [--json] <id>

Waits for the run's end (from any process: if nobody watches it, this
command finalizes it), prints its result and exits with its exit code (1
when it has none, e.g. it never started).

  --logs   print the run's output first (from its start), then follow it
  --json   the result as one line of JSON`,
  stop: `Usage: light-runner stop [--grace MS] [--signal SIG] [--json] <id>

Sends SIG (default SIGTERM), waits up to MS milliseconds (default 10000)
for the exit, then SIGKILL. The run ends cancelled. Waits for its end and
prints its result.`,
  cancel: `Usage: light-runner cancel [--json] <id>

Kills the run now (SIGKILL); it ends cancelled. Waits for its end and
prints its result.`,
  pause: `Usage: light-runner pause <id>

Freezes the run's container (cgroup freezer). Not a cancel: 'resume' goes on.`,
  resume: `Usage: light-runner resume <id>

Unfreezes a paused run.`,
  gc: `Usage: light-runner gc [--json]

Runs, in order, and says what each removed or changed:
  cleanupOrphanStates   running states whose container vanished -> failed;
                        exited runs nobody finalized -> finalized
  reapOrphans           labelled containers and volumes nothing needs
                        (older than LIGHT_RUNNER_REAP_AGE_MS)
  cleanupOldStates      terminal state files (and kept output) past
                        LIGHT_RUNNER_STATE_TTL_MS or LIGHT_RUNNER_MAX_STATES
  cleanupOrphanCache    unused light-runner-cache:* images

  --json   { cleanupOrphanStates, reapOrphans: { containers, volumes },
             cleanupOldStates, cleanupOrphanCache }`,
  doctor: `Usage: light-runner doctor [--json]

Says what light-runner runs with here, for a bug report:
  package     this package's version, Node's, the platform
  addon       the .node file loaded: from which platform package, or from
              the checkout's own build
  watchdog    the native watchdog binary, or node running watchdog.js
  endpoint    the Docker daemon's endpoint and how it was found: DOCKER_HOST,
              DOCKER_CONTEXT, the docker CLI's currentContext, the default
              socket, the rootless or the Docker Desktop socket
  daemon      its version, API version, OS/arch and registered runtimes
              (asked through the Engine API, as runs do)
  state dir   where state files live, and how many there are

Exits 1 when the daemon cannot be reached (the reason is printed).

  --json   all of the above as one JSON object`,
};

const OPTIONS = {
  ps: { running: { type: 'boolean' }, json: { type: 'boolean' } },
  logs: {
    follow: { type: 'boolean', short: 'f' },
    since: { type: 'string' },
    json: { type: 'boolean' },
  },
  attach: { logs: { type: 'boolean' }, json: { type: 'boolean' } },
  stop: { grace: { type: 'string' }, signal: { type: 'string' }, json: { type: 'boolean' } },
  cancel: { json: { type: 'boolean' } },
  pause: {},
  resume: {},
  gc: { json: { type: 'boolean' } },
  doctor: { json: { type: 'boolean' } },
};

const out = (s) => process.stdout.write(`${s}\n`);

/** `--since`: ISO time, epoch ms, or an age (30s, 10m, 2h, 1d). */
function parseSince(text) {
  const age = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (age) {
    const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[age[2]];
    return Date.now() - Number(age[1]) * unit;
  }
  if (/^\d+$/.test(text)) return Number(text);
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new Usage(`--since: not a time: ${text}`);
  return t;
}

function oneId(positionals) {
  if (positionals.length !== 1) throw new Usage('expected one run id');
  return positionals[0];
}

function duration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, '0')}m`;
}

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  for (const r of rows) out(r.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd());
}

function ps({ values }) {
  let states = listStates();
  if (values.running) states = states.filter((s) => s.status === 'running');
  if (values.json) return out(JSON.stringify(states, null, 2));
  const rows = [['ID', 'STATUS', 'IMAGE', 'STARTED', 'DURATION', 'EXIT']];
  for (const s of states) {
    const started = Date.parse(s.startedAt);
    const ms = s.status === 'running' ? Date.now() - started : s.durationMs;
    rows.push([
      s.id,
      s.status,
      s.image,
      Number.isNaN(started) ? s.startedAt : new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
      duration(ms),
      s.status === 'running' || s.exitCode === undefined ? '-' : s.exitCode,
    ]);
  }
  table(rows);
}

async function printLogs(ex, { follow, since, json }) {
  for await (const l of ex.logs({ follow, since })) {
    if (json) out(JSON.stringify(l));
    else (l.stream === 'stderr' ? process.stderr : process.stdout).write(`${l.line}\n`);
  }
}

/** A handle on a known run, or a failure naming the id. */
function attachTo(id) {
  const ex = DockerRunner.attach(id);
  if (!ex) throw new Error(`no such run: ${id} (no state file in this state dir)`);
  return ex;
}

async function logs({ values, positionals }) {
  const id = oneId(positionals);
  if (!readState(id)) throw new Error(`no such run: ${id} (no state file in this state dir)`);
  const since = values.since === undefined ? undefined : parseSince(values.since);
  // A handle that does not watch the run: reading its output changes nothing.
  const ex = new Execution(id, Promise.resolve());
  await printLogs(ex, { follow: values.follow === true, since, json: values.json });
}

function printResult(result, json) {
  out(json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
}

function exitCodeOf(result) {
  const c = result.exitCode;
  return Number.isInteger(c) && c >= 0 && c <= 255 ? c : EXIT_FAILED;
}

async function attach({ values, positionals }) {
  const id = oneId(positionals);
  const ex = attachTo(id);
  if (values.logs) await printLogs(ex, { follow: true, json: false });
  const result = await ex.result;
  printResult(result, values.json);
  return exitCodeOf(result);
}

async function stop({ values, positionals }) {
  const id = oneId(positionals);
  const opts = {};
  if (values.grace !== undefined) {
    const g = Number(values.grace);
    if (!Number.isFinite(g) || g < 0) throw new Usage(`--grace: not a number of milliseconds: ${values.grace}`);
    opts.grace = g;
  }
  if (values.signal !== undefined) opts.signal = values.signal;
  const ex = attachTo(id);
  await ex.stop(opts);
  printResult(await ex.result, values.json);
}

async function cancel({ values, positionals }) {
  const ex = attachTo(oneId(positionals));
  ex.cancel();
  printResult(await ex.result, values.json);
}

async function pause({ positionals }) {
  await attachTo(oneId(positionals)).pause();
}

async function resume({ positionals }) {
  await attachTo(oneId(positionals)).resume();
}

async function gc({ values }) {
  const report = {};
  report.cleanupOrphanStates = await DockerRunner.cleanupOrphanStates();
  report.reapOrphans = await DockerRunner.reapOrphans();
  report.cleanupOldStates = DockerRunner.cleanupOldStates();
  report.cleanupOrphanCache = await DockerRunner.cleanupOrphanCache();
  if (values.json) return out(JSON.stringify(report));
  const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
  table([
    ['cleanupOrphanStates', `${plural(report.cleanupOrphanStates, 'state')} reconciled`],
    ['reapOrphans', `${plural(report.reapOrphans.containers, 'container')}, ${plural(report.reapOrphans.volumes, 'volume')} removed`],
    ['cleanupOldStates', `${plural(report.cleanupOldStates, 'state file')} removed`],
    ['cleanupOrphanCache', `${plural(report.cleanupOrphanCache, 'cache image')} removed`],
  ]);
}

async function doctor({ values }) {
  const native = require('../native.js');
  const info = await native._doctor(new native.Host());
  const loaded = native._loaded ?? {};
  let states = null;
  try {
    states = listStates().length;
  } catch { /* unreadable: said as '-' */ }
  const report = {
    version,
    node: process.version,
    platform: loaded.platform ?? `${process.platform}-${process.arch}`,
    addon: {
      file: loaded.file ?? null,
      package: loaded.package ?? null,
      packageVersion: loaded.version ?? null,
    },
    watchdog: info.watchdog,
    endpoint: info.endpoint,
    daemon: info.daemon,
    stateDir: info.stateDir,
    states,
  };
  const reachable = !info.daemon.error;
  if (values.json) {
    out(JSON.stringify(report, null, 2));
    return reachable ? 0 : EXIT_FAILED;
  }
  const d = info.daemon;
  const rows = [
    ['light-runner', `${version} (node ${process.version}, ${report.platform})`],
    ['addon', report.addon.file
      ? `${report.addon.file} (${report.addon.package ? `package ${report.addon.package}${report.addon.packageVersion ? `@${report.addon.packageVersion}` : ''}` : 'this checkout\'s build'})`
      : '-'],
    ['watchdog', info.watchdog ? `${info.watchdog.path} (${info.watchdog.native ? 'native' : 'node'})` : '-'],
    ['endpoint', info.endpoint.error ? `none: ${info.endpoint.error}` : info.endpoint.described],
  ];
  if (info.endpoint.tls) rows.push(['tls', info.endpoint.tls]);
  if (reachable) {
    const runtimes = d.runtimes.map((r) => (r === d.defaultRuntime ? `${r} (default)` : r)).join(', ');
    rows.push(['daemon', `Docker ${d.version} (API ${d.apiVersion}), ${d.os}/${d.arch}${d.name ? `, ${d.name}` : ''}`]);
    rows.push(['runtimes', runtimes || '-']);
    if (d.rootDir) rows.push(['docker root', `${d.rootDir}${d.storageDriver ? ` (${d.storageDriver})` : ''}${d.liveRestore ? ', live-restore' : ''}`]);
  } else {
    rows.push(['daemon', `unreachable: ${d.error.code ? `${d.error.code}: ` : ''}${d.error.message}`]);
  }
  rows.push(['state dir', `${info.stateDir} (${states === null ? '-' : `${states} run${states === 1 ? '' : 's'}`})`]);
  const width = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) out(`${`${k}:`.padEnd(width + 2)}${v}`);
  return reachable ? 0 : EXIT_FAILED;
}

const COMMANDS = { ps, logs, attach, stop, cancel, pause, resume, gc, doctor };

async function main(argv) {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    const topic = cmd === 'help' && rest[0];
    if (topic && !HELP[topic]) throw new Usage(`unknown command: ${topic}`);
    out(HELP[topic || 'main']);
    return cmd === undefined ? EXIT_USAGE : 0;
  }
  if (cmd === '--version' || cmd === '-v') {
    out(version);
    return 0;
  }
  const run = COMMANDS[cmd];
  if (!run) throw new Usage(`unknown command: ${cmd}`);
  if (rest.includes('--help') || rest.includes('-h')) {
    out(HELP[cmd]);
    return 0;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS[cmd], allowPositionals: true, strict: true });
  } catch (e) {
    throw new Usage(`${cmd}: ${e.message}`);
  }
  if (cmd === 'ps' || cmd === 'gc' || cmd === 'doctor') {
    if (parsed.positionals.length) throw new Usage(`${cmd} takes no argument`);
  }
  const code = await run(parsed);
  return typeof code === 'number' ? code : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof Usage) {
      process.stderr.write(`light-runner: ${e.message}\nTry 'light-runner --help'.\n`);
      process.exit(EXIT_USAGE);
    }
    process.stderr.write(`light-runner: ${e && e.code ? `${e.code}: ` : ''}${e && e.message}\n`);
    process.exit(EXIT_FAILED);
  },
);
