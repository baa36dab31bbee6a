/** Every error code Petrel raises; callers branch on `code`, never on message text. */
export const ERROR_CODES = [
  'PETREL_CONFIG_INVALID',
  'PETREL_CONFIG_UNREADABLE',
  'PETREL_TLS_UNREADABLE',
  'PETREL_SPOOL_UNAVAILABLE',
  'PETREL_SPOOL_WRITE',
  'PETREL_SPOOL_FULL',
  'PETREL_SPOOL_LOCKED',
  'PETREL_NODE_IN_USE',
  'PETREL_ACCOUNT_EXISTS',
  'PETREL_ACCOUNT_NOT_FOUND',
  'PETREL_ACCOUNT_INVALID',
  'PETREL_LISTEN_FAILED',
  'PETREL_WORKER_FAILED',
  'PETREL_USAGE',
] as const;

export type PetrelErrorCode = (typeof ERROR_CODES)[number];

/** Base of every error Petrel throws on purpose. `message` is one line fit for an operator. */
export class PetrelError extends Error {
  readonly code: PetrelErrorCode;

  constructor(code: PetrelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class ConfigError extends PetrelError {}
export class SpoolError extends PetrelError {}
export class AccountError extends PetrelError {}

/** Narrowing helper for catch blocks. */
export function isPetrelError(err: unknown): err is PetrelError {
  return err instanceof PetrelError;
}

/** Best one-line description of anything thrown. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
