export {
  classifyMessage,
  classifyTree,
  formatsOf,
  type BounceKind,
  type BounceReading,
  type BounceResult,
} from './classify.js';
export { classifyReply, type ReplyClassification } from './reply.js';
export {
  categoryOf,
  findReason,
  HARD_REASONS,
  parseRules,
  RULES,
  statusReason,
  type BounceCategory,
  type BounceReason,
  type BounceRule,
  type SmtpCommand,
} from './reason.js';
export { RULES_TEXT } from './rules.js';
export {
  parseDsnFields,
  normaliseStatus,
  addressOfField,
  type DsnFields,
  type DsnRecipientFields,
} from './dsn.js';
export { readArf, type ArfReport } from './arf.js';
export {
  FORMATS,
  formatReason,
  noticeReason,
  unwrapReply,
  type BounceFormat,
  type FormatCode,
} from './formats.js';
export { isAutoReply } from './autoreply.js';
export {
  DEFAULT_LIMITS,
  decodeCharset,
  decodeTransfer,
  decodeWords,
  flatten,
  parseContentType,
  parseMime,
  type MimeLimits,
  type MimePart,
} from './mime.js';
export {
  MAX_RETURN_PATHS,
  readReport,
  returnPathCandidates,
  type ReportReading,
  type UnparsedWhy,
} from './report.js';
