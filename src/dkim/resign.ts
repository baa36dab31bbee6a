import type { DkimKey, Signer } from './signer.js';

interface Leading {
  readonly domain: string;
  readonly selector: string;
  /** Length of the field in bytes, its CRLF included. */
  readonly length: number;
}

/** The DKIM-Signature field at the start of `text` (latin1), or null when the first field is another. */
function leadingSignature(text: string): Leading | null {
  const m = /^dkim-signature[ \t]*:(.*\r\n(?:[ \t].*\r\n)*)/i.exec(text);
  if (!m) return null;
  const tags = new Map<string, string>();
  for (const tag of m[1]!.replace(/\s+/g, '').split(';')) {
    const eq = tag.indexOf('=');
    if (eq > 0) tags.set(tag.slice(0, eq).toLowerCase(), tag.slice(eq + 1));
  }
  return { domain: (tags.get('d') ?? '').toLowerCase(), selector: tags.get('s') ?? '', length: m[0].length };
}

/**
 * Signs `message` again after a change to its bytes (a 7-bit downgrade). The DKIM-Signature
 * fields at the top whose `d=` is a domain `keysFor` holds keys of are the ones Petrel added
 * at submission: they are removed and replaced by signatures of the same keys (`d=` and `s=`;
 * the domain's current keys when that selector is gone). Signatures below them, or by
 * domains without keys here (an author's own), are left as they are. A message without such
 * signatures is returned unchanged.
 */
export async function resignMessage(
  message: Buffer,
  signer: Signer,
  keysFor: (domain: string) => readonly DkimKey[],
): Promise<Buffer> {
  const text = message.toString('latin1');
  const keys: DkimKey[] = [];
  let offset = 0;
  for (let sig = leadingSignature(text); sig; sig = leadingSignature(text.slice(offset))) {
    const own = keysFor(sig.domain).filter((k) => k.domain.toLowerCase() === sig.domain);
    if (own.length === 0) break;
    const same = own.filter((k) => k.selector === sig.selector);
    for (const key of same.length > 0 ? same : own) {
      if (!keys.some((k) => k.domain === key.domain && k.selector === key.selector)) keys.push(key);
    }
    offset += sig.length;
  }
  if (offset === 0) return message;
  const rest = message.subarray(offset);
  return Buffer.concat([await signer.sign(rest, keys), rest]);
}
