'use strict';
// server.js: the seed's "hello world", unmodified for liveswap: it binds its own port
// (PORT, default 3000), has no SIGTERM handler and sends no READY=1. liveswap's preload
// library (adopt, liveswap(8) APPS THAT BIND THEIR OWN PORT) hands it the passed socket
// when it binds, reports it ready when it listens (ready = listen), and drains it on
// SIGTERM. aware.js is the same app written for socket activation.
const http = require('node:http');

const version = process.env.APP_VERSION || 'v1';
http.createServer((req, res) => {
  res.setHeader('X-Version', version);
  res.setHeader('X-Pid', String(process.pid));
  res.setHeader('X-Generation', process.env.LIVESWAP_GENERATION || '');
  res.end(version + '\n');
}).listen(Number(process.env.PORT) || 3000);
