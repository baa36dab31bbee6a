/** Mailing list managers' notices to senders. */
import type { BounceFormat } from './types.js';

export const LIST_FORMATS: readonly BounceFormat[] = [
  {
    name: 'fml',
    source:
      'fml mailing list server (www.fml.org): its notices to senders and its loop check on duplicated Message-IDs',
    markers: [['x-mlserver', /\bfml\b/i]],
    // fml's own notices, not the list's ordinary posts (which carry X-MLServer too).
    requires: [
      ['from', /-admin@/i],
      ['message-id', /\.FML/i],
    ],
    entries: [/^(?<diag>[^\n<]*<(?<rcpt>[^\s<>@]+@[^\s<>]+)>[^\n]*)$/m],
    notices: [
      {
        text: /duplicated message-id|loop (?:alert|back warning)|detected a loop condition/,
        reason: 'systemerror',
      },
      {
        text: /not (?:a )?member|reject mail from|reject spammers|header may cause mail loop/,
        reason: 'rejected',
      },
      { text: /security alert/, reason: 'securityerror' },
    ],
  },
];
