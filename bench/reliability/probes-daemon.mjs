// dockerd stopped (or killed) and restarted with attached and detached runs
// in flight, on a private dockerd: without live-restore every run the
// daemon stopped rejects CONTAINER_LOST (daemon-stopped); with live-restore
// the runs go on and end normally; nothing is left after
// cleanupOrphanStates() and reapOrphans().
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { LABEL, PrivateDockerd, fmtTally, host, makeSeed, rmrf, sleep, stateIds, survived, tally } from './lib.mjs';

export async function daemonRestart({ work, liveRestore, signal, attached, detached }) {
  const d = new PrivateDockerd(path.join(work, 'dd'));
  const stateDir = path.join(work, 'state');
  const extractTo = path.join(work, 'out');
  const setupDir = makeSeed(path.join(work, 'setup-seed'), 10, 200 << 20);
  const env = { DOCKER_HOST: d.sock, LIGHT_RUNNER_STATE_DIR: stateDir, LIGHT_RUNNER_REAP_AGE_MS: '0' };
  const rows = [];
  let hostExit = null;
  let stopMs = 0;
  let downMs = 0;
  let settleAfterUp = [];
  try {
    await d.start({ liveRestore });
    const h = host('inflight', {
      attached,
      detached,
      command: 'echo started; sleep 25; echo done',
      detachedCommand: 'sleep 25; echo ok > /app/r.txt',
      extractTo,
      setupDir,
    }, { env });
    await h.event('running', 120_000);
    await sleep(1000);
    h.send({ setup: true });
    await h.event('setup-started');
    await sleep(300);
    const t0 = Date.now();
    await d.stop(signal);
    stopMs = Date.now() - t0;
    await sleep(2000);
    await d.start({ liveRestore });
    downMs = Date.now() - t0;
    const up = Date.now();
    await h.event('done', 300_000).catch(() => {});
    hostExit = await Promise.race([h.exited, sleep(10_000).then(() => null)]);
    h.kill();
    settleAfterUp = h.events.filter((e) => e.event === 'result').map((e) => e.at - up);
    for (const e of h.events.filter((x) => x.event === 'result')) {
      const running = e.kind === 'attached' || e.kind === 'detached';
      let outcome;
      let ok;
      if (!running) {
        outcome = e.code ? `in setup → rejected ${e.code}` : `in setup → resolved exit ${e.result.exitCode}`;
        ok = e.code ? e.state?.status === 'failed' : e.state?.status === 'exited';
      } else if (liveRestore) {
        ok = e.result?.success === true && (e.kind === 'attached' || e.result.extracted?.[0]?.status === 'ok');
        outcome = ok ? `${e.kind} → exit 0${e.kind === 'detached' ? ', extracted' : ''}` : `${e.kind} → WRONG ${JSON.stringify(e.result ?? e.code)}`;
      } else {
        ok = e.code === 'CONTAINER_LOST' && e.state?.lost === 'daemon-stopped';
        outcome = ok ? `${e.kind} → CONTAINER_LOST daemon-stopped` : `${e.kind} → WRONG ${e.code ?? JSON.stringify(e.result)} ${e.state?.lost}`;
      }
      rows.push({ kind: e.kind, outcome, ok });
    }
    const ids = new Set(h.events.filter((e) => e.event === 'id').map((e) => e.id));
    const settled = rows.length === ids.size;
    // Reconcile and reap on the private daemon, then count what is left.
    const maint = host('maintenance', {}, { env });
    const m = await maint.event('done', 120_000).catch((e) => ({ error: e.message }));
    await maint.exited;
    const list = (...a) => execFileSync('docker', ['-H', d.sock, ...a], { encoding: 'utf8' }).split('\n').filter(Boolean);
    const left = [...list('ps', '-a', '--filter', `label=${LABEL}`, '--format', '{{.Names}}'),
      ...list('volume', 'ls', '-q', '--filter', `label=${LABEL}`)];
    const nonTerminal = stateIds(stateDir).filter((id) => {
      try {
        return JSON.parse(fs.readFileSync(path.join(stateDir, `${id}.json`), 'utf8')).status === 'running';
      } catch {
        return true;
      }
    });
    return {
      probe: `dockerd ${signal === 'SIGKILL' ? 'SIGKILLed' : 'stopped'} and restarted ${liveRestore ? 'with live-restore' : 'as it starts by default (no live-restore)'}, runs in flight`,
      n: ids.size,
      outcomes: fmtTally(tally(rows.map((r) => r.outcome))),
      leaks: left.length,
      host: survived(hostExit) ? 'survived' : `DIED ${JSON.stringify(hostExit)}`,
      figures: `daemon stop took ${stopMs} ms, down ${downMs} ms; results settled ${settleAfterUp.length ? `${Math.min(...settleAfterUp)}…${Math.max(...settleAfterUp)}` : '-'} ms after it answered again (negative: before); maintenance: ${JSON.stringify(m.changed ?? m)}`,
      expect: [
        { what: 'every result settles', ok: settled, detail: `${rows.length} of ${ids.size}` },
        { what: liveRestore ? 'running runs end normally (detached: extracted)' : 'running runs reject CONTAINER_LOST daemon-stopped (attached and detached)', ok: rows.filter((r) => r.kind === 'attached' || r.kind === 'detached').every((r) => r.ok) },
        { what: 'runs caught in setup fail cleanly (state failed) or complete', ok: rows.filter((r) => r.kind.endsWith('setup')).every((r) => r.ok) },
        { what: 'the host survives', ok: survived(hostExit) },
        { what: '0 labelled containers or volumes after cleanupOrphanStates() + reapOrphans()', ok: left.length === 0, detail: left.join(' ') },
        { what: 'no state left running', ok: nonTerminal.length === 0, detail: nonTerminal.join(' ') },
      ],
    };
  } finally {
    await d.destroy();
    rmrf(stateDir);
    rmrf(extractTo);
    rmrf(setupDir);
  }
}
