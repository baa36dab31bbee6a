/** How one check came out: ok (nothing to do), warn (works, or cannot tell), fail (mail suffers). */
export type CheckStatus = 'ok' | 'warn' | 'fail';

/** Names of the checks, stable for `--json` consumers. */
export type CheckName =
  'config' | 'spool' | 'redis' | 'listener' | 'dkim' | 'spf' | 'dmarc' | 'reverse-dns' | 'bounce-mx';

/**
 * One line of `petrel doctor`: what was checked (`subject`: a listen address, a domain, an IP),
 * what was found, and for warn and fail the change that fixes it (a DNS record to publish, a
 * config key to set).
 */
export interface CheckResult {
  readonly check: CheckName;
  readonly status: CheckStatus;
  readonly subject: string;
  readonly message: string;
  readonly fix?: string;
}

export function result(
  check: CheckName,
  status: CheckStatus,
  subject: string,
  message: string,
  fix?: string,
): CheckResult {
  return fix === undefined ? { check, status, subject, message } : { check, status, subject, message, fix };
}
