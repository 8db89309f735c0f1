'use strict';
// server.js: the seed's "hello world" app as a liveswap worker. It serves on the
// sockets liveswap passes (fds 3, 4, ... as LISTEN_FDS says, the way systemd passes
// them) and drains on SIGTERM: it stops accepting, finishes the requests it has, closes
// its idle keep-alive connections and exits, so an upgrade drops nothing.
//
// Without LISTEN_FDS it listens itself on 127.0.0.1:$PORT when PORT is set: that is
// for process managers that share a port through node:cluster instead of passing fds
// (PM2's cluster mode, which the benchmarks in bench/ compare liveswap with).
//
// Node cannot send READY=1 without a library (its dgram module has no unix datagram
// sockets), so run it with `ready = delay`: it counts as ready once it has stayed alive
// for `ready_delay`. It ignores LIVESWAP_CONTROL_FD (reading SOCK_SEQPACKET also needs
// a library); a worker may.

const http = require('node:http');

const version = process.env.APP_VERSION || 'v1';
const FIRST_FD = 3;
// How long a connection accepted just before the drain may take to send its request.
const DRAIN_REQUEST_MS = 5000;

const passed = process.env.LISTEN_PID === String(process.pid)
  ? Number.parseInt(process.env.LISTEN_FDS || '', 10) : 0;
const port = Number.parseInt(process.env.PORT || '', 10);
// What to listen on: the passed fds, else the port.
const addresses = [];
if (passed > 0) {
  for (let fd = FIRST_FD; fd < FIRST_FD + passed; fd++) {
    addresses.push({ fd });
  }
} else if (port > 0 && port < 65536) {
  addresses.push({ port, host: process.env.HOST || '127.0.0.1' });
} else {
  console.error('server.js: no listening sockets were passed (LISTEN_FDS/LISTEN_PID) and PORT is not set; ' +
                'run me under liveswap (or systemd socket activation)');
  process.exit(1);
}

const servers = [];
let listening = 0;
let draining = false;
const connections = new Map(); // socket -> { served, active }

function exitWhenDone() {
  if (draining && connections.size === 0) {
    process.exit(0);
  }
}

function handle(req, res) {
  const state = connections.get(req.socket);
  if (state) {
    state.active = true;
  }
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('X-Version', version);
  res.setHeader('X-Pid', String(process.pid));
  res.setHeader('X-Generation', process.env.LIVESWAP_GENERATION || '');
  if (draining) {
    res.setHeader('Connection', 'close'); // the client reconnects, to a new worker
  }
  res.on('finish', () => {
    if (!state) {
      return;
    }
    state.active = false;
    state.served += 1;
    // A response begun before the drain kept the connection alive: close it now,
    // unless a pipelined request is already being answered.
    if (draining) {
      setImmediate(() => {
        if (!state.active) {
          req.socket.destroy();
        }
      });
    }
  });
  res.end(`${version}\n`);
}

function drain() {
  if (draining) {
    return;
  }
  draining = true;
  // Stop accepting; the sockets stay open in liveswap for the next workers.
  for (const server of servers) {
    server.close();
    if (typeof server.closeIdleConnections === 'function') {
      server.closeIdleConnections(); // Node >= 18.2 (server.close() does it too from 19)
    }
  }
  // The same by hand, for older Node, and for connections accepted a moment ago, whose
  // first request is still on its way: they get a few seconds to send it.
  for (const [socket, state] of connections) {
    if (state.active) {
      continue; // answered with Connection: close, then closed
    }
    if (state.served > 0) {
      socket.destroy(); // an idle keep-alive connection
    } else {
      socket.setTimeout(DRAIN_REQUEST_MS, () => socket.destroy());
    }
  }
  exitWhenDone();
}

for (const address of addresses) {
  const server = http.createServer(handle);
  server.on('connection', (socket) => {
    connections.set(socket, { served: 0, active: false });
    socket.on('close', () => {
      connections.delete(socket);
      exitWhenDone();
    });
  });
  server.on('error', (err) => {
    console.error(`server.js: ${JSON.stringify(address)}: ${err.message}`);
    process.exit(1);
  });
  // Said once every socket listens: binding a port completes after listen() returns.
  server.on('listening', () => {
    listening += 1;
    if (listening === addresses.length) {
      console.error(`server.js ${version}: pid ${process.pid} serving on ${addresses.length} socket(s)`);
    }
  });
  server.listen(address);
  servers.push(server);
}

process.on('SIGTERM', drain);
process.on('SIGINT', drain);
