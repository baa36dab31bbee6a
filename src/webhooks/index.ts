export {
  createWebhookDispatcher,
  type WebhookDeps,
  type WebhookDispatcher,
  type WebhookTarget,
} from './dispatcher.js';
export { loadWebhookTargets } from './targets.js';
export {
  WEBHOOK_EVENT_TYPES,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  signBody,
  verifySignature,
  toWebhookEvent,
  urlKey,
  type WebhookEvent,
  type WebhookEventType,
  type WebhookBatch,
} from './payload.js';
