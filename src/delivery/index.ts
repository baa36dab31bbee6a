export {
  kindOfReply,
  parseReply,
  sanitizeReplyText,
  MAX_REPLY_TEXT,
  type DeliveryOutcome,
  type FailureOutcome,
  type OutcomeKind,
} from './outcome.js';
export {
  createMxResolver,
  createStaticResolver,
  orderMx,
  type DestinationResolver,
  type DnsClient,
  type MxHost,
  type MxResolverOptions,
  type Resolution,
  type StaticRoute,
} from './resolver.js';
export { DEFAULT_TIMEOUTS, type SessionOptions, type SessionTimeouts, type TlsPolicy } from './connect.js';
export {
  openSession,
  type DeliverySession,
  type OpenResult,
  type OutboundMessage,
  type SendOptions,
} from './attempt.js';
export { downgradeTo7Bit } from './downgrade.js';
