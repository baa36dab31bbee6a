export { createScheduler, type Scheduler, type SchedulerDeps } from './scheduler.js';
export { resolveShaping, nextAttempt, parseRate, splitPoolKey, type Shaping } from './shaping.js';
export { warmupCap, warmupsOf, type Warmup, type WarmupCap } from './egress.js';
export { buildDsn, type DsnInput, type FailedRecipient } from './dsn.js';
export type { Transport, Outcome, OutboundSession, OpenResult, RouteResult, RouteHost } from './ports.js';
export { createThrottleTable, localThrottle, type Throttle, type ThrottleTable } from './throttle.js';
export {
  compileRules,
  createAdaptive,
  decisionState,
  shapedBy,
  type Adaptive,
  type CompiledRule,
} from './adaptive.js';
