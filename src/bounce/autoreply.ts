/** RFC 3834 automatic responses (vacation notices): recognised so they are not counted as bounces. */
import { addressesIn } from './arf.js';
import { decodeWords, header, type MimePart } from './mime.js';

const VACATION_SUBJECT =
  /^(?:auto(?:matic)?[- ]?(?:reply|response|antwort|r[ée]ponse)|out of (?:the )?office|away from (?:the |my )?office|on vacation|vacation|abwesenheitsnotiz|r[ée]ponse automatique|respuesta autom[aá]tica|risposta automatica|(?:i am|i'm) (?:currently )?(?:away|out)|away until|absence)\b/i;

/**
 * Whether a message is an automatic reply rather than a bounce: RFC 3834 `Auto-Submitted:
 * auto-replied` (not `auto-generated`, which DSNs use), the X-Autoreply / X-Autorespond family, or
 * a vacation-style subject. Callers check for DSN and ARF content first, because some MTAs mark
 * their bounces auto-replied too.
 */
export function isAutoReply(root: MimePart): boolean {
  const autoSubmitted = (header(root, 'auto-submitted') ?? '').toLowerCase();
  if (autoSubmitted.startsWith('auto-replied')) return true;
  if (header(root, 'x-autoreply') || header(root, 'x-autorespond') || header(root, 'x-autoresponder'))
    return true;
  if (/auto[_-]?reply/i.test(header(root, 'x-mail-autoreply') ?? '')) return true;
  const precedence = (header(root, 'precedence') ?? '').toLowerCase();
  const subject = decodeWords(header(root, 'subject') ?? '').trim();
  if (VACATION_SUBJECT.test(subject)) return true;
  return precedence === 'auto_reply';
}

/** The address that answered automatically (the auto-reply's author). */
export function autoReplyAuthor(root: MimePart): string | null {
  return addressesIn(header(root, 'from'))[0] ?? null;
}
