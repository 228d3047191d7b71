// DOCKER_HOST=tcp:// with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH uses TLS
// with a client certificate (SPEC section 1). The daemon here only listens on
// its unix socket, so the test puts a mutual-TLS proxy in front of it (Node's
// own tls server, certificates made with the openssl CLI); the package runs
// in child processes so the env change stays there.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';

import { BUSYBOX, FIXTURES, assertGone, rmrf, runNode, scopeOf, tmpdir } from './helpers.mjs';

let dir;
let server;
let port;
let tlsSessions = 0;

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function makeCerts() {
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca-key.pem');
  openssl('req', '-x509', '-new', '-key', 'ca-key.pem', '-subj', '/CN=light-runner-test-ca', '-days', '2', '-out', 'ca.pem');
  const leaf = (name, cn, ext) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}-key.pem`);
    openssl('req', '-new', '-key', `${name}-key.pem`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial',
      '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}-cert.pem`);
  };
  leaf('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'client', 'extendedKeyUsage=clientAuth\n');
  // DOCKER_CERT_PATH layout: ca.pem, cert.pem, key.pem.
  const certs = path.join(dir, 'certs');
  fs.mkdirSync(certs);
  fs.copyFileSync(path.join(dir, 'ca.pem'), path.join(certs, 'ca.pem'));
  fs.copyFileSync(path.join(dir, 'client-cert.pem'), path.join(certs, 'cert.pem'));
  fs.copyFileSync(path.join(dir, 'client-key.pem'), path.join(certs, 'key.pem'));
  return certs;
}

before(async () => {
  dir = tmpdir('lr-tls-');
  makeCerts();
  server = tls.createServer({
    key: fs.readFileSync(path.join(dir, 'server-key.pem')),
    cert: fs.readFileSync(path.join(dir, 'server-cert.pem')),
    ca: fs.readFileSync(path.join(dir, 'ca.pem')),
    requestCert: true,
    rejectUnauthorized: true,
  }, (client) => {
    tlsSessions += 1;
    const daemon = net.connect('/var/run/docker.sock');
    client.pipe(daemon).pipe(client);
    const end = () => { client.destroy(); daemon.destroy(); };
    client.on('error', end);
    daemon.on('error', end);
  });
  server.on('tlsClientError', () => {});
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;
});

after(async () => {
  await new Promise((r) => server.close(r));
  rmrf(dir);
});

function env(extra) {
  const e = { ...process.env, DOCKER_HOST: `tcp://127.0.0.1:${port}`, ...extra };
  for (const k of Object.keys(extra)) if (extra[k] === undefined) delete e[k];
  return e;
}

async function runChild(request, extraEnv) {
  const { stdout, stderr } = await runNode([path.join(FIXTURES, 'run.mjs'), JSON.stringify(request)], { env: env(extraEnv) });
  try {
    return JSON.parse(stdout);
  } catch {
    throw new Error(`child printed no result: ${stdout} ${stderr}`);
  }
}

test('with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, runs go through mutual TLS', async (t) => {
  const certs = path.join(dir, 'certs');
  const before = tlsSessions;
  const avail = await runNode([path.join(FIXTURES, 'available.mjs')],
    { env: env({ DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs }) });
  assert.equal(JSON.parse(avail.stdout).available, true, avail.stderr);
  const out = await runChild({ image: BUSYBOX, command: 'echo tls-ok', network: 'none' },
    { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
  scopeOf(t).track(out.id);
  assert.equal(out.result?.success, true, JSON.stringify(out));
  assert.ok(tlsSessions - before >= 5, `requests went through the TLS proxy (${tlsSessions - before} sessions)`);
  assertGone(out.id);
});

test('without DOCKER_TLS_VERIFY the same tcp:// endpoint is plain HTTP and fails as DOCKER_UNREACHABLE', async (t) => {
  const out = await runChild({ image: BUSYBOX, command: 'true', network: 'none' },
    { DOCKER_TLS_VERIFY: undefined, DOCKER_CERT_PATH: undefined });
  scopeOf(t).track(out.id);
  assert.equal(out.error?.code, 'DOCKER_UNREACHABLE', JSON.stringify(out));
});

test('a client certificate the daemon does not trust fails as DOCKER_UNREACHABLE', async (t) => {
  const rogue = path.join(dir, 'rogue');
  fs.mkdirSync(rogue, { recursive: true });
  const sh = (...args) => execFileSync('openssl', args, { cwd: rogue, stdio: 'ignore' });
  sh('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'key.pem');
  sh('req', '-x509', '-new', '-key', 'key.pem', '-subj', '/CN=rogue', '-days', '2', '-out', 'cert.pem');
  fs.copyFileSync(path.join(dir, 'ca.pem'), path.join(rogue, 'ca.pem'));
  const out = await runChild({ image: BUSYBOX, command: 'true', network: 'none' },
    { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: rogue });
  scopeOf(t).track(out.id);
  assert.equal(out.error?.code, 'DOCKER_UNREACHABLE', JSON.stringify(out));
});

test('a Docker context with TLS material (contexts/tls/<sha256>/docker) uses it, DOCKER_HOST unset; without it the same context is plain HTTP', async (t) => {
  const config = scopeOf(t).tmp('lr-tls-context-');
  const hash = crypto.createHash('sha256').update('tls-remote').digest('hex');
  fs.mkdirSync(path.join(config, 'contexts', 'meta', hash), { recursive: true });
  fs.writeFileSync(path.join(config, 'contexts', 'meta', hash, 'meta.json'), JSON.stringify({
    Name: 'tls-remote', Metadata: {}, Endpoints: { docker: { Host: `tcp://127.0.0.1:${port}`, SkipTLSVerify: false } },
  }));
  fs.writeFileSync(path.join(config, 'config.json'), JSON.stringify({ currentContext: 'tls-remote' }));
  const contextEnv = {
    DOCKER_HOST: undefined, DOCKER_CONTEXT: undefined, DOCKER_TLS_VERIFY: undefined, DOCKER_CERT_PATH: undefined, DOCKER_CONFIG: config,
  };

  const plain = await runChild({ image: BUSYBOX, command: 'true', network: 'none' }, contextEnv);
  scopeOf(t).track(plain.id);
  assert.equal(plain.error?.code, 'DOCKER_UNREACHABLE', JSON.stringify(plain));
  assert.match(plain.error.message, new RegExp(`tcp://127\\.0\\.0\\.1:${port} \\(from currentContext=tls-remote\\)`));

  const tlsDir = path.join(config, 'contexts', 'tls', hash, 'docker');
  fs.mkdirSync(tlsDir, { recursive: true });
  for (const f of ['ca.pem', 'cert.pem', 'key.pem']) fs.copyFileSync(path.join(dir, 'certs', f), path.join(tlsDir, f));
  const before = tlsSessions;
  const out = await runChild({ image: BUSYBOX, command: 'echo tls-context-ok', network: 'none' }, contextEnv);
  scopeOf(t).track(out.id);
  assert.equal(out.result?.success, true, JSON.stringify(out));
  assert.ok(tlsSessions - before >= 5, `requests went through the TLS proxy (${tlsSessions - before} sessions)`);
  assertGone(out.id);
});
