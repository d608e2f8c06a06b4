/**
 * The distribution spec's error model: a code, the HTTP status that goes with it, a message for
 * people and an optional JSON `detail`. Anything that is not a RegistryError is an internal failure
 * and is answered with a generic 500: its message may hold storage paths or stack details that a
 * client must never see.
 */

export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  // Not in the spec's table, but what distribution answers and what the conformance suite accepts.
  | 'RANGE_INVALID'
  | 'TAG_INVALID'
  | 'UNKNOWN';

export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  readonly status: number;
  readonly detail: unknown;

  constructor(code: RegistryErrorCode, status: number, message: string, detail?: unknown) {
    super(message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = status;
    this.detail = detail;
  }

  /** The `{"errors":[…]}` body. */
  toJSON(): { errors: { code: string; message: string; detail?: unknown }[] } {
    return {
      errors: [
        {
          code: this.code,
          message: this.message,
          ...(this.detail !== undefined ? { detail: this.detail } : {}),
        },
      ],
    };
  }
}

/**
 * A chunk that does not start where the upload stands (or a Content-Range that cannot be read):
 * answered with 416 and the session's real state, which stays usable.
 */
export class UploadRangeError extends RegistryError {
  /** Bytes the session holds: the next chunk must start here. */
  readonly offset: number;

  constructor(offset: number, message: string) {
    super('RANGE_INVALID', 416, message);
    this.offset = offset;
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}

/** Passes RegistryErrors through; everything else becomes the generic 500 (log the original). */
export function asRegistryError(err: unknown): RegistryError {
  return isRegistryError(err) ? err : new RegistryError('UNKNOWN', 500, 'internal server error');
}

export function blobUnknown(digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', 404, 'blob unknown to registry', { digest });
}

export function uploadUnknown(): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', 404, 'blob upload unknown to registry');
}

export function manifestUnknown(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 404, 'manifest unknown to registry', { reference });
}

export function manifestInvalid(message: string, status = 400): RegistryError {
  return new RegistryError('MANIFEST_INVALID', status, `manifest invalid: ${message}`);
}

export function digestInvalid(message: string): RegistryError {
  return new RegistryError('DIGEST_INVALID', 400, message);
}

export function nameInvalid(): RegistryError {
  return new RegistryError('NAME_INVALID', 400, 'invalid repository name');
}

export function nameUnknown(name: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', 404, 'repository name not known to registry', { name });
}

export function unsupported(message: string, status = 405): RegistryError {
  return new RegistryError('UNSUPPORTED', status, message);
}
