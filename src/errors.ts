/**
 * One error hierarchy for the whole project. `StrataError` carries a stable code; the CLI prints
 * user-facing errors as one line and exits non-zero, and keeps the cause chain for internal ones.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'INVALID_REFERENCE'
  | 'INVALID_DIGEST'
  | 'DIGEST_MISMATCH'
  | 'INVALID_MANIFEST'
  | 'INVALID_CONFIG'
  | 'INVALID_ARCHIVE'
  | 'INVALID_DOCKERFILE'
  | 'UNSAFE_PATH'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'LOCKED'
  | 'UNSUPPORTED'
  | 'CORRUPT_STORE'
  /** A check the user asked for failed (`analyze --ci` rules): the result, not a malfunction. */
  | 'CHECK_FAILED'
  /** The user stopped it (Ctrl-C): what ran was cleaned up. */
  | 'CANCELLED'
  | 'INTERNAL';

export class StrataError extends Error {
  readonly code: ErrorCode;
  /** True when the error is the user's to fix (bad input): printed as one line, no stack. */
  readonly userFacing: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; userFacing?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StrataError';
    this.code = code;
    this.userFacing = options.userFacing ?? code !== 'INTERNAL';
  }
}

export function isStrataError(err: unknown, code?: ErrorCode): err is StrataError {
  return err instanceof StrataError && (code === undefined || err.code === code);
}

export function notFound(message: string): StrataError {
  return new StrataError('NOT_FOUND', message);
}

export function invalidArgument(message: string): StrataError {
  return new StrataError('INVALID_ARGUMENT', message);
}

/** The errno code of a Node system error, if any (ENOENT, EEXIST, …). */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}
