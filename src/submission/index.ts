export {
  createSubmissionService,
  type SubmissionService,
  type SubmissionDeps,
  type BoundListener,
  type ListenerName,
} from './server.js';
