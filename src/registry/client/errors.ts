import { StrataError, errnoCode, type ErrorCode } from '../../errors.js';

/** What the distribution spec puts in an error body: `{"errors":[{"code","message","detail"}]}`. */
export interface RegistryErrorBody {
  code?: string;
  message?: string;
}

/**
 * A registry answered with an HTTP error. The message is one line naming what was asked for, the
 * status, and the registry's own explanation (`errors[0].message`), which is usually the most
 * useful part ("requested access to the resource is denied", "manifest unknown").
 */
export class RegistryError extends StrataError {
  readonly status: number;
  readonly registryCode: string | undefined;
  /** Seconds from a 429's Retry-After header, when it gave one. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    what: string,
    status: number,
    body: RegistryErrorBody | undefined,
    options: { retryAfterSeconds?: number; hint?: string } = {},
  ) {
    const explanation = body?.message ?? body?.code ?? statusText(status);
    const code = body?.code !== undefined && body.code !== '' ? `, ${body.code}` : '';
    const hint = options.hint !== undefined ? `; ${options.hint}` : '';
    // A user can act on every one of these (log in, fix the name, wait), so they stay one line.
    super(codeFor(status), `${what}: ${oneLine(explanation)} (HTTP ${status}${code})${hint}`, {
      userFacing: true,
    });
    this.name = 'RegistryError';
    this.status = status;
    this.registryCode = body?.code;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

function codeFor(status: number): ErrorCode {
  if (status === 404) return 'NOT_FOUND';
  if (status === 401 || status === 403 || status === 400 || status === 405 || status === 416)
    return 'INVALID_ARGUMENT';
  return 'INTERNAL';
}

function statusText(status: number): string {
  const texts: Record<number, string> = {
    400: 'bad request',
    401: 'authentication required',
    403: 'access denied',
    404: 'not found',
    405: 'method not allowed',
    416: 'range not satisfiable',
    429: 'too many requests',
    500: 'internal server error',
    502: 'bad gateway',
    503: 'service unavailable',
    504: 'gateway timeout',
  };
  return texts[status] ?? 'unexpected response';
}

/** Keeps a hostile or chatty body from breaking the one-line format. */
export function oneLine(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** Reads `errors[0]` from a registry error body; tolerant of HTML error pages and empty bodies. */
export function parseErrorBody(text: string): RegistryErrorBody | undefined {
  if (text.trim() === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && 'errors' in parsed && Array.isArray(parsed.errors)) {
      const first: unknown = parsed.errors[0];
      if (typeof first === 'object' && first !== null) {
        const code = 'code' in first && typeof first.code === 'string' ? first.code : undefined;
        const message = 'message' in first && typeof first.message === 'string' ? first.message : undefined;
        return { code, message };
      }
    }
    // Token servers answer `{"details": "..."}` or `{"error": "..."}`.
    if (typeof parsed === 'object' && parsed !== null) {
      for (const key of ['details', 'error', 'message']) {
        const value: unknown = (parsed as Record<string, unknown>)[key];
        if (typeof value === 'string') return { message: value };
      }
    }
  } catch {
    // Not JSON: a proxy's HTML page; its text is rarely helpful but better than nothing.
  }
  return { message: text };
}

const RETRIABLE_ERRNO = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

export const RETRIABLE_STATUS: ReadonlySet<number> = new Set([500, 502, 503, 504]);

/** Whether trying again may help: dropped connections, timeouts and a server's 5xx. */
export function isRetriable(err: unknown): boolean {
  if (err instanceof RegistryError) return RETRIABLE_STATUS.has(err.status);
  for (let at: unknown = err, depth = 0; at !== undefined && depth < 5; depth++) {
    const code = errnoCode(at);
    if (code !== undefined && RETRIABLE_ERRNO.has(code)) return true;
    at = at instanceof Error ? at.cause : undefined;
  }
  return false;
}

/** A connection-level failure as one line: the host, and the most specific reason we have. */
export function networkError(what: string, err: unknown): StrataError {
  const reasons: string[] = [];
  for (let at: unknown = err, depth = 0; at !== undefined && depth < 5; depth++) {
    if (at instanceof Error && at.message !== '') reasons.push(at.message);
    at = at instanceof Error ? at.cause : undefined;
  }
  const reason = reasons.length > 0 ? reasons[reasons.length - 1] : String(err);
  return new StrataError('INTERNAL', `${what}: ${oneLine(reason ?? 'connection failed')}`, {
    cause: err,
    userFacing: true,
  });
}
