export {
  blockingEntry,
  createSuppressionPolicy,
  unsubscribe,
  type InboundReport,
  type PolicyDecision,
  type PolicyStores,
  type SoftBounceSettings,
  type Stream,
  type SuppressionPolicy,
  type SuppressionPolicyDeps,
} from './policy.js';
