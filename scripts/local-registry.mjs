// A throwaway npm registry on 127.0.0.1 serving the tarballs of
// `npm run pack` (dist-pkg/pack.json), so npm and pnpm install
// `light-runner` exactly as from the public registry: the root package, then
// the platform package its `optionalDependencies` name for this machine
// (resolved by version, filtered by os/cpu/libc). Unknown names get a 404,
// as unpublished packages would. Used by __test__/install.test.mjs and
// bench/install.mjs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

/** Starts the registry for the packages of `<packDir>/pack.json`. */
export async function startRegistry(packDir) {
  const { packages } = JSON.parse(fs.readFileSync(path.join(packDir, 'pack.json'), 'utf8'));
  const requests = [];
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/`;

  const tarballs = new Map();
  const packuments = new Map();
  for (const p of packages) {
    const data = fs.readFileSync(p.file);
    const tarball = `-/tarballs/${path.basename(p.file)}`;
    tarballs.set(tarball, data);
    const { version } = p.manifest;
    packuments.set(p.manifest.name, {
      name: p.manifest.name,
      'dist-tags': { latest: version },
      versions: {
        [version]: {
          ...p.manifest,
          _id: `${p.manifest.name}@${version}`,
          dist: {
            tarball: url + tarball,
            integrity: `sha512-${crypto.createHash('sha512').update(data).digest('base64')}`,
            shasum: crypto.createHash('sha1').update(data).digest('hex'),
          },
        },
      },
    });
  }

  server.on('request', (req, res) => {
    const name = decodeURIComponent(req.url.split('?')[0].slice(1));
    requests.push(name);
    const body = tarballs.get(name);
    if (body) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
      return;
    }
    const doc = packuments.get(name);
    res.writeHead(doc ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc ?? { error: 'Not found' }));
  });
  return {
    url,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
