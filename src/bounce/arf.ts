/** RFC 5965 Abuse Reporting Format (feedback-loop complaints). */
import { addressOfField } from './dsn.js';
import { decodeWords, flatten, header, partText, type MimePart } from './mime.js';

/** What a complaint says: its type and the complained-about recipients (empty when redacted). */
export interface ArfReport {
  readonly feedbackType: string;
  readonly recipients: readonly string[];
}

/** The first embedded original message (message/rfc822 or text/rfc822-headers child), if any. */
export function embeddedOriginal(root: MimePart): MimePart | null {
  for (const p of flatten(root)) {
    if (p === root) continue;
    if (['message/rfc822', 'message/global', 'text/rfc822-headers', 'text/global-headers'].includes(p.type)) {
      return p.children[0] ?? null;
    }
  }
  return null;
}

/** Addresses in an address-list header; display names and group syntax are ignored. */
export function addressesIn(value: string | undefined): string[] {
  if (!value) return [];
  const out: string[] = [];
  for (const m of decodeWords(value.slice(0, 4096)).matchAll(
    /[^\s<>"',;:()[\]@]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,10}/g,
  )) {
    const a = m[0].toLowerCase();
    if (!out.includes(a)) out.push(a);
  }
  return out;
}

const COMPLAINT_SUBJECT =
  /^(?:fw(?:d)?:\s*)?(?:complaint about message from|abuse report|spam report|feedback[- ]loop report)/i;

/**
 * Reads a complaint: a multipart/report with report-type=feedback-report, or any message carrying a
 * message/feedback-report part, or a Hotmail-style "complaint about message from" forward.
 * Returns null when the message is not a complaint.
 */
export function readArf(root: MimePart): ArfReport | null {
  const parts = flatten(root);
  const report = parts.find((p) => p.type === 'message/feedback-report');
  const isReportType =
    root.type === 'multipart/report' && /feedback-report/i.test(root.params.get('report-type') ?? '');
  const subject = decodeWords(header(root, 'subject') ?? '');
  if (!report && !isReportType && !COMPLAINT_SUBJECT.test(subject.trim())) return null;
  const original = embeddedOriginal(root);
  if (!report && !isReportType && !original) return null;
  let feedbackType = 'abuse';
  const recipients: string[] = [];
  if (report) {
    const text = partText(report);
    const type = /^feedback-type\s*:\s*([\w-]+)/im.exec(text);
    if (type) feedbackType = type[1]!.toLowerCase();
    for (const m of text.matchAll(/^(?:original-rcpt-to|removal-recipient)\s*:\s*(.+)$/gim)) {
      const a = addressOfField(m[1]);
      if (a && !recipients.includes(a)) recipients.push(a);
    }
  }
  if (recipients.length === 0 && original) {
    const to = addressesIn(header(original, 'to'));
    if (to.length === 1) recipients.push(to[0]!);
  }
  return { feedbackType, recipients };
}
