/**
 * Amazon SES event notifications (delivered by SNS as mail): a JSON document instead of a DSN.
 * Only the fields needed for a per-recipient reading are taken; anything unexpected yields null.
 */
import { isAddress } from './dsn.js';

export interface SesRecipient {
  readonly recipient: string;
  readonly status: string | null;
  readonly action: string | null;
  readonly diagnostic: string | null;
}

export type SesNotification =
  | { readonly type: 'bounce' | 'delivery'; readonly recipients: readonly SesRecipient[] }
  | { readonly type: 'complaint'; readonly feedbackType: string; readonly recipients: readonly string[] };

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function parseJson(text: string): Json | null {
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end <= start || end - start > 1024 * 1024) return null;
  // Mail gateways wrap the one-line JSON at 998 octets with "!" + CRLF + space.
  const body = text.slice(start, end + 1).replace(/!\r?\n /g, '');
  try {
    const value: unknown = JSON.parse(body);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

/** Reads an SES notification from a text body; null when the text is not one. */
export function readSesNotification(text: string): SesNotification | null {
  if (!/"notificationType"|"eventType"|\\"notificationType\\"/.test(text)) return null;
  let doc = parseJson(text);
  if (doc && typeof doc['Message'] === 'string') doc = parseJson(doc['Message']);
  if (!doc) return null;
  const type = String(doc['notificationType'] ?? doc['eventType'] ?? '').toLowerCase();
  if (type === 'bounce' && isObject(doc['bounce'])) {
    const bounce = doc['bounce'];
    const transient = String(bounce['bounceType'] ?? '').toLowerCase() === 'transient';
    const recipients = list(bounce['bouncedRecipients'])
      .filter(isObject)
      .flatMap((r) => {
        const recipient = str(r['emailAddress'])?.toLowerCase();
        if (!recipient || !isAddress(recipient)) return [];
        const action = str(r['action']) ?? (transient ? 'delayed' : 'failed');
        const diagnostic = str(r['diagnosticCode'])?.replace(/^smtp;\s*/i, '') ?? null;
        return [{ recipient, status: str(r['status']), action, diagnostic }];
      });
    return { type: 'bounce', recipients };
  }
  if (type === 'complaint' && isObject(doc['complaint'])) {
    const complaint = doc['complaint'];
    const recipients = list(complaint['complainedRecipients'])
      .filter(isObject)
      .flatMap((r) => {
        const address = str(r['emailAddress'])?.toLowerCase();
        return address && isAddress(address) ? [address] : [];
      });
    return {
      type: 'complaint',
      feedbackType: str(complaint['complaintFeedbackType']) ?? 'abuse',
      recipients,
    };
  }
  if (type === 'delivery' && isObject(doc['delivery'])) {
    const delivery = doc['delivery'];
    const diagnostic = str(delivery['smtpResponse']);
    const recipients = list(delivery['recipients']).flatMap((r) => {
      const address = str(r)?.toLowerCase();
      return address && isAddress(address)
        ? [{ recipient: address, status: null, action: 'delivered', diagnostic }]
        : [];
    });
    return { type: 'delivery', recipients };
  }
  return null;
}
