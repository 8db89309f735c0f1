'use strict';
// aware.js: the "hello world" app written for socket activation, as a liveswap worker. It serves on the
// sockets liveswap passes (fds 3, 4, ... as LISTEN_FDS says, the way systemd passes
// them) and drains on SIGTERM as liveswap(8) says a worker should ("DRAINING KEEP-ALIVE
// CONNECTIONS"): it stops accepting, answers the next request on every kept-alive
// connection with Connection: close, closes a connection only once it has sat idle for
// the grace period (--idle-grace MS, default 1000), closes with a lingering close, and
// exits when no connection is left. So an upgrade drops nothing, not even for clients
// that never retry a request (wrk, or anything sending a POST).
//
// Why not server.close(): since Node 19 it also closes every idle keep-alive connection
// at once (closeIdleConnections), and a client sending its next request at that moment
// gets a reset or an empty reply: the HTTP/1.1 keep-alive race. A busy client sends its
// next request well within the grace period and gets Connection: close instead.
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
const net = require('node:net');

const version = process.env.APP_VERSION || 'v1';
const FIRST_FD = 3;
// How long a connection accepted just before the drain, or one whose request has begun
// to arrive, may take to send its request.
const DRAIN_REQUEST_MS = 5000;
// How long a closing connection may take to send its FIN after ours (lingering close).
const LINGER_MS = 2000;
const IDLE_GRACE_DEFAULT_MS = 1000;

function parseArgs(argv) {
  const options = { idleGraceMs: IDLE_GRACE_DEFAULT_MS };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--idle-grace' && i + 1 < argv.length && /^\d+$/.test(argv[i + 1])) {
      options.idleGraceMs = Number.parseInt(argv[++i], 10);
    } else {
      console.error(`aware.js: unknown or incomplete argument: ${argv[i]}\n` +
                    'usage: node aware.js [--idle-grace MS]');
      process.exit(2);
    }
  }
  return options;
}
const options = parseArgs(process.argv.slice(2));

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
  console.error('aware.js: no listening sockets were passed (LISTEN_FDS/LISTEN_PID) and PORT is not set; ' +
                'run me under liveswap (or systemd socket activation)');
  process.exit(1);
}

const servers = [];
let listening = 0;
let draining = false;
const connections = new Map(); // socket -> { served, active, idleTimer, bytesAtIdle }

function exitWhenDone() {
  if (draining && connections.size === 0) {
    process.exit(0);
  }
}

// Closes our side once the response is flushed (FIN), then lets the client's remaining
// bytes be read until its own FIN (net destroys a socket that has ended both ways) or
// LINGER_MS: closing a socket with unread input makes the kernel send a reset, which can
// destroy the response before the client has read it. Installed as the socket's
// destroySoon(), which node:http calls after a response that says Connection: close
// (it would destroy() the socket as soon as the FIN is written).
function lingeringClose() {
  this.end();
  const timer = setTimeout(() => this.destroy(), LINGER_MS);
  this.once('close', () => clearTimeout(timer));
}

// Draining and idle: close only after options.idleGraceMs more of idleness. If a request
// has begun to arrive meanwhile (more bytes read, the head not yet complete), it gets
// DRAIN_REQUEST_MS to complete; a complete one cancels the wait (handle()).
function closeWhenIdle(socket, state) {
  clearTimeout(state.idleTimer);
  state.bytesAtIdle = socket.bytesRead;
  state.idleTimer = setTimeout(() => {
    if (state.active) {
      return;
    }
    if (socket.bytesRead !== state.bytesAtIdle) {
      state.idleTimer = setTimeout(() => socket.destroy(), DRAIN_REQUEST_MS);
      return;
    }
    socket.destroySoon();
  }, options.idleGraceMs);
}

function handle(req, res) {
  const state = connections.get(req.socket);
  if (state) {
    state.active = true;
    clearTimeout(state.idleTimer);
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
    // A response begun before the drain kept the connection alive: it is idle now, and
    // closed once it has stayed so for the grace period (unless a pipelined request is
    // being answered already).
    if (draining && res.getHeader('Connection') !== 'close') {
      setImmediate(() => {
        if (!state.active && !req.socket.destroyed) {
          closeWhenIdle(req.socket, state);
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
  // Stop accepting; the sockets stay open in liveswap for the next workers. net.Server's
  // close, not http.Server's: that one would close idle keep-alive connections at once.
  for (const server of servers) {
    net.Server.prototype.close.call(server);
  }
  // Connections accepted a moment ago, whose first request is still on its way, get a
  // few seconds to send it; idle kept-alive ones the grace period.
  for (const [socket, state] of connections) {
    if (state.active) {
      continue; // answered with Connection: close, then closed
    }
    if (state.served > 0) {
      closeWhenIdle(socket, state);
    } else {
      socket.setTimeout(DRAIN_REQUEST_MS, () => socket.destroy());
    }
  }
  exitWhenDone();
}

for (const address of addresses) {
  const server = http.createServer(handle);
  server.on('connection', (socket) => {
    const state = { served: 0, active: false, idleTimer: null, bytesAtIdle: 0 };
    connections.set(socket, state);
    socket.destroySoon = lingeringClose;
    socket.on('close', () => {
      clearTimeout(state.idleTimer);
      connections.delete(socket);
      exitWhenDone();
    });
  });
  server.on('error', (err) => {
    console.error(`aware.js: ${JSON.stringify(address)}: ${err.message}`);
    process.exit(1);
  });
  // Said once every socket listens: binding a port completes after listen() returns.
  server.on('listening', () => {
    listening += 1;
    if (listening === addresses.length) {
      console.error(`aware.js ${version}: pid ${process.pid} serving on ${addresses.length} socket(s)`);
    }
  });
  server.listen(address);
  servers.push(server);
}

process.on('SIGTERM', drain);
process.on('SIGINT', drain);
