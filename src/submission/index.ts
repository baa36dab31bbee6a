export {
  createSubmissionService,
  type SubmissionService,
  type SubmissionDeps,
  type BoundListener,
  type ListenerName,
} from './server.js';
export { AccountLimiter, type AccountUsage, type LimitReason } from './account-limits.js';
export type { DirectSubmission, DirectResult, RecipientStatus } from './direct.js';
