// ESM entry: the same objects as the CommonJS entry.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const lr = require('./index.js');

export const {
  DockerRunner, Execution, LightRunnerError, listStates, readState, deleteState,
  createNetwork, deleteNetwork, networkExists, cleanupOrphanNetworks,
} = lr;
export default lr;
