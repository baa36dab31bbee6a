/** The shape of a bounce format's data; the tables themselves are in the files beside this one. */
import type { BounceReason } from '../reason.js';

/**
 * Where a marker looks: a lowercased header of the bounce itself, `body` (the human-readable
 * report), or `dsn` (the message/delivery-status parts, Remote-MTA and Diagnostic-Code included).
 */
export type MarkerSource = 'body' | 'dsn' | (string & {});
export type Marker = readonly [MarkerSource, RegExp];

/** One entry of a format's code table. Every condition given must hold. */
export interface FormatCode {
  /** An enhanced status (`5.4.312`), a class and subject (`5.7.`), or a range of details (`5.7.606-649`). */
  readonly status?: string;
  /** A phrase of the diagnostic, matched case-insensitively with whitespace collapsed. */
  readonly text?: RegExp;
  readonly reason: BounceReason;
}

export interface BounceFormat {
  readonly name: string;
  /** Where the format and its codes are documented. */
  readonly source: string;
  /** The format is recognised when any marker matches… */
  readonly markers: readonly Marker[];
  /** …and every one of these does. */
  readonly requires?: readonly Marker[];
  /**
   * Per-recipient statements in the report text: each match names the recipient in group `rcpt`
   * and, optionally, the remote server's words about it in group `diag`.
   */
  readonly entries?: readonly RegExp[];
  /**
   * Per-recipient replies (groups `rcpt` and `diag`) that do not list every failed recipient, such
   * as a transcript showing only the RCPT TO refusals: they give diagnostics, never the recipients.
   */
  readonly replies?: readonly RegExp[];
  /** The remote server's words that concern every recipient (group `diag`), e.g. a refusal after DATA. */
  readonly diagnostic?: readonly RegExp[];
  /** Removed from every diagnostic the format yields (transcript prefixes, wrapping). */
  readonly strip?: RegExp;
  /**
   * What the provider's replies mean, tried in order against the status and the diagnostic before
   * the general rules: the words are the provider's own, so its documentation decides.
   */
  readonly codes?: readonly FormatCode[];
  /**
   * The MTA's own notices about what it did (gave up, found no host). They are the outcome, not the
   * cause: consulted only when the remote server's reply quoted beside them tells the rules nothing.
   */
  readonly notices?: readonly FormatCode[];
  /** A per-recipient DSN extension field carrying the MTA's own classification, and its values. */
  readonly categoryField?: {
    readonly name: string;
    readonly values: Readonly<Record<string, BounceReason>>;
  };
}
