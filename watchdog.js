'use strict';
// The watchdog process of attached runs (see src/watchdog.rs): started by
// the addon with a pipe on stdin; when the host process dies, the pipe
// closes and every run still registered is removed from Docker.
const native = require('./native.js');

const parent = Number(process.argv[2]);
native._watchdogMain(Number.isInteger(parent) && parent > 0 ? parent : undefined);
