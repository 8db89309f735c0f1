'use strict';
// slow-start.js: runs the Node example (APP_SCRIPT) after START_DELAY_MS of simulated
// start-up work, the way a real service first loads its code and warms its caches. Until
// then it listens on nothing, so a supervisor that waits for readiness has to wait.
const delay = Number.parseInt(process.env.START_DELAY_MS || '0', 10);
setTimeout(() => require(process.env.APP_SCRIPT), delay > 0 ? delay : 0);
