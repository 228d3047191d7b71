// A counting proxy on a unix socket in front of the Docker daemon: point a
// process at it with DOCKER_HOST=unix://<sock> and every HTTP request it
// makes is recorded (time, method, path). bollard opens a new connection per
// request; an events stream is one long request, counted once.
import net from 'node:net';

export async function startProxy(sock, upstreamPath) {
  const requests = [];
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPath);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('data', (chunk) => {
      const m = /^(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP\/1\.[01]\r\n/.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 4096)));
      if (m) requests.push({ t: Date.now(), method: m[1], path: m[2] });
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (c) => {
      if (!client.write(c)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  // A collector attaching to hundreds of runs opens hundreds of connections
  // at once: a deep accept queue (the kernel caps it at somaxconn).
  await new Promise((r) => server.listen({ path: sock, backlog: 4096 }, r));
  return {
    sock,
    requests,
    /** Requests whose line arrived in [since, until]. */
    between: (since, until) => requests.filter((r) => r.t >= since && r.t <= until),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
