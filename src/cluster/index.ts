export { WorkerStartError, createSupervisor, type Supervisor, type SupervisorDeps } from './primary.js';
export { linkToPrimary, type PrimaryLink } from './worker.js';
export { HOLDER_ENV, INDEX_ENV } from './messages.js';
export { connectRedisShaping, type RedisShaping, type RedisShapingOptions } from './redis-shaping.js';
export { probeRedis, type RedisProbe } from './redis-probe.js';
