import type { ServerResponse } from 'node:http';

/** An RFC 9457 problem: the status, a short title, and what the client can do about it. */
export interface Problem {
  readonly status: number;
  readonly title: string;
  readonly detail?: string;
  /** Extension members (per-recipient results, the field at fault). */
  readonly [extra: string]: unknown;
}

/** Thrown by handlers; the router answers it as application/problem+json. */
export class ProblemError extends Error {
  constructor(
    readonly problem: Problem,
    readonly headers: Record<string, string> = {},
  ) {
    super(problem.detail ?? problem.title);
    this.name = 'ProblemError';
  }
}

export const problem = (
  status: number,
  title: string,
  detail?: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): ProblemError =>
  new ProblemError({ type: 'about:blank', status, title, ...(detail ? { detail } : {}), ...extra }, headers);

export function sendProblem(res: ServerResponse, p: Problem, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ type: 'about:blank', ...p });
  res
    .writeHead(p.status, {
      'content-type': 'application/problem+json',
      'cache-control': 'no-store',
      ...headers,
    })
    .end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res
    .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end(JSON.stringify(value));
}
