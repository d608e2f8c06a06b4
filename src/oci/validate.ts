import * as z from 'zod';
import { StrataError, type ErrorCode } from '../errors.js';
import { digestAlgorithm, digestOf, isDigest, type Digest } from './digest.js';
import { isIndexMediaType, isManifestMediaType } from './mediatypes.js';
import type { ImageConfig, ImageIndex, ImageManifest } from './types.js';

/**
 * Validation of untrusted manifest, index and config JSON. The schemas only check: callers get
 * back the very object `JSON.parse` produced, with unknown fields and key order intact, because
 * these documents are content-addressed and must never be silently rewritten.
 */

/** The distribution spec lets registries refuse manifests above 4 MiB; we refuse to read more. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Configs carry history and labels and can outgrow manifests, but not by orders of magnitude. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export interface DocumentParseOptions {
  /** Names the document in errors, e.g. `manifest sha256:ab…` or a file name. */
  source?: string;
  /** Inputs larger than this many bytes are refused before parsing. */
  maxBytes?: number;
}

export type ManifestOrIndex =
  { kind: 'manifest'; manifest: ImageManifest } | { kind: 'index'; index: ImageIndex };

function quote(value: string): string {
  // Long enough for a sha512 digest, short enough to keep a hostile value from flooding the message.
  return JSON.stringify(value.length > 140 ? `${value.slice(0, 140)}…` : value);
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const type = typeof value;
  return type === 'object' || type === 'undefined' ? `an ${type}` : `a ${type}`;
}

/** The value itself when short and scalar, else just its kind. */
function show(value: unknown): string {
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return kindOf(value);
}

// RFC 6838 restricted names: `type/subtype`, each starting with an alphanumeric.
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function customString<T extends string>(
  accept: (value: string) => boolean,
  describe: (value: string) => string,
) {
  return z.custom<T>((value) => typeof value === 'string' && accept(value), {
    error: (issue) =>
      typeof issue.input === 'string'
        ? describe(issue.input)
        : issue.input === undefined
          ? 'required field is missing'
          : `expected a string, got ${kindOf(issue.input)}`,
  });
}

const digestSchema = customString<Digest>(isDigest, (v) => `invalid digest ${quote(v)}`);

const mediaTypeSchema = customString<string>(
  (v) => MEDIA_TYPE_RE.test(v),
  (v) => `invalid media type ${quote(v)}: expected type/subtype`,
);

const stringMap = z.record(z.string(), z.string());

const platformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
});

const descriptorSchema = z
  .looseObject({
    mediaType: mediaTypeSchema,
    digest: digestSchema,
    size: z.int().min(0),
    urls: z.array(z.string()).optional(),
    annotations: stringMap.optional(),
    platform: platformSchema.optional(),
    artifactType: mediaTypeSchema.optional(),
    data: customString<string>(
      (v) => BASE64_RE.test(v),
      () => 'not valid base64',
    ).optional(),
  })
  .check((ctx) => {
    // Embedded data stands in for the blob, so it must be exactly the blob the descriptor names.
    const { data, size, digest } = ctx.value;
    if (data === undefined) return;
    const bytes = Buffer.from(data, 'base64');
    if (bytes.length !== size) {
      ctx.issues.push({
        code: 'custom',
        message: `embedded data is ${bytes.length} bytes but size says ${size}`,
        input: data,
        path: ['data'],
      });
    } else if (digestOf(bytes, digestAlgorithm(digest)) !== digest) {
      ctx.issues.push({
        code: 'custom',
        message: `embedded data does not match digest ${digest}`,
        input: data,
        path: ['data'],
      });
    }
  });

const manifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: customString<string>(
    isManifestMediaType,
    (v) => `not an image manifest media type: ${quote(v)}`,
  ).optional(),
  artifactType: mediaTypeSchema.optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: stringMap.optional(),
});

const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: customString<string>(
    isIndexMediaType,
    (v) => `not an image index media type: ${quote(v)}`,
  ).optional(),
  artifactType: mediaTypeSchema.optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: stringMap.optional(),
});

// Docker's Go structs marshal empty slices and maps as null, and real images on registries carry
// those nulls (`"Labels": null`, `"OnBuild": null`, …), so null is accepted wherever Go wrote one.
const stringArrayOrNull = z.array(z.string()).nullable().optional();
const setOrNull = z.record(z.string(), z.looseObject({})).nullable().optional();

const healthSchema = z.looseObject({
  Test: stringArrayOrNull,
  Interval: z.number().optional(),
  Timeout: z.number().optional(),
  StartPeriod: z.number().optional(),
  StartInterval: z.number().optional(),
  Retries: z.number().optional(),
});

const containerConfigSchema = z.looseObject({
  User: z.string().optional(),
  ExposedPorts: setOrNull,
  Env: stringArrayOrNull,
  Entrypoint: stringArrayOrNull,
  Cmd: stringArrayOrNull,
  Volumes: setOrNull,
  WorkingDir: z.string().optional(),
  Labels: stringMap.nullable().optional(),
  StopSignal: z.string().optional(),
  ArgsEscaped: z.boolean().optional(),
  Healthcheck: healthSchema.nullable().optional(),
  OnBuild: stringArrayOrNull,
  Shell: stringArrayOrNull,
});

const configSchema = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  config: containerConfigSchema.optional(),
  rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(digestSchema) }),
  history: z
    .array(
      z.looseObject({
        created: z.string().optional(),
        created_by: z.string().optional(),
        author: z.string().optional(),
        comment: z.string().optional(),
        empty_layer: z.boolean().optional(),
      }),
    )
    .optional(),
});

// Compile-time proof that whatever the schemas accept fits the public interfaces, so returning the
// validated input as those types is sound. (The config schema is wider than ImageConfig: see the
// note on nulls above.)
const _manifestFits = (m: z.output<typeof manifestSchema>): ImageManifest => m;
const _indexFits = (i: z.output<typeof indexSchema>): ImageIndex => i;

const IDENTIFIER_RE = /^[A-Za-z_$][\w$]*$/;

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && key.length <= 64 && IDENTIFIER_RE.test(key)) {
      out += out === '' ? key : `.${key}`;
    } else out += `[${quote(String(key))}]`;
  }
  return out;
}

const EXPECTED_NAMES: Readonly<Record<string, string>> = {
  int: 'an integer',
  array: 'an array',
  object: 'an object',
  record: 'an object',
};

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return 'required field is missing';
      if (issue.expected === 'int' && typeof issue.input === 'number') {
        return `expected an integer, got ${issue.input}`;
      }
      const expected = EXPECTED_NAMES[issue.expected] ?? `a ${issue.expected}`;
      return `expected ${expected}, got ${kindOf(issue.input)}`;
    }
    case 'invalid_value':
      if (issue.input === undefined) return 'required field is missing';
      return `expected ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${show(issue.input)}`;
    case 'too_small':
      return `must be at least ${String(issue.minimum)}, got ${show(issue.input)}`;
    case 'too_big':
      return typeof issue.input === 'number' && !Number.isSafeInteger(issue.input)
        ? `${issue.input} is beyond the exactly representable integers`
        : `must be at most ${String(issue.maximum)}, got ${show(issue.input)}`;
    default:
      return issue.message;
  }
}

function fail(code: ErrorCode, source: string, message: string, cause?: unknown): StrataError {
  // One line whatever the input: messages can quote parser output that contains newlines.
  return new StrataError(code, `${source}: ${message.replace(/\s+/g, ' ')}`, { cause });
}

function decodeJson(input: Uint8Array | string, code: ErrorCode, source: string, maxBytes: number): unknown {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > maxBytes) throw fail(code, source, `too large: ${size} bytes, the limit is ${maxBytes}`);
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      // ignoreBOM keeps a BOM in the text, so it fails as JSON like it does for Go's decoder.
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input);
    } catch (err) {
      throw fail(code, source, 'not valid UTF-8', err);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    // JSON.parse can also fail with RangeError on absurd nesting; either way the input is unusable.
    throw fail(code, source, `not valid JSON: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

function validate(schema: z.ZodType, value: unknown, code: ErrorCode, source: string): void {
  if (typeof value === 'object' && value !== null && 'schemaVersion' in value && value.schemaVersion === 1) {
    throw fail(code, source, 'schemaVersion: Docker image manifest schema 1 is not supported');
  }
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return;
  const [first, ...rest] = result.error.issues;
  if (first === undefined) throw fail(code, source, 'invalid');
  const path = formatPath(first.path);
  const more = rest.length === 0 ? '' : ` (and ${rest.length} more problem${rest.length === 1 ? '' : 's'})`;
  throw fail(code, source, `${path === '' ? '' : `${path}: `}${describeIssue(first)}${more}`);
}

function limit(options: DocumentParseOptions | undefined, fallback: number): number {
  return options?.maxBytes ?? fallback;
}

/** Parse and validate an image manifest (OCI or Docker v2 schema 2). */
export function parseImageManifest(
  bytes: Uint8Array | string,
  source?: string,
  options?: Omit<DocumentParseOptions, 'source'>,
): ImageManifest {
  const name = source ?? 'manifest';
  const value = decodeJson(bytes, 'INVALID_MANIFEST', name, limit(options, MAX_MANIFEST_BYTES));
  validate(manifestSchema, value, 'INVALID_MANIFEST', name);
  return value as ImageManifest;
}

/** Parse and validate an image index (OCI index or Docker manifest list). */
export function parseImageIndex(
  bytes: Uint8Array | string,
  source?: string,
  options?: Omit<DocumentParseOptions, 'source'>,
): ImageIndex {
  const name = source ?? 'index';
  const value = decodeJson(bytes, 'INVALID_MANIFEST', name, limit(options, MAX_MANIFEST_BYTES));
  validate(indexSchema, value, 'INVALID_MANIFEST', name);
  return value as ImageIndex;
}

/**
 * Parse and validate an image configuration. Fields that Docker wrote as `null` (Env, Labels,
 * Volumes, ExposedPorts, Shell, OnBuild, Cmd, Entrypoint) stay null: read them with `?? default`.
 */
export function parseImageConfig(
  bytes: Uint8Array | string,
  source?: string,
  options?: Omit<DocumentParseOptions, 'source'>,
): ImageConfig {
  const name = source ?? 'image config';
  const value = decodeJson(bytes, 'INVALID_CONFIG', name, limit(options, MAX_CONFIG_BYTES));
  validate(configSchema, value, 'INVALID_CONFIG', name);
  return value as ImageConfig;
}

function bareMediaType(value: string): string {
  return value.split(';', 1)[0]?.trim().toLowerCase() ?? '';
}

/**
 * Parse a document that may be a manifest or an index, e.g. a registry response. The document's
 * own `mediaType` decides; without one, the hint (a Content-Type, parameters allowed); without a
 * usable hint, the shape (`manifests` for an index, `config`/`layers` for a manifest).
 */
export function parseManifestOrIndex(
  bytes: Uint8Array | string,
  mediaTypeHint?: string,
  options?: DocumentParseOptions,
): ManifestOrIndex {
  const name = options?.source ?? 'manifest';
  const value = decodeJson(bytes, 'INVALID_MANIFEST', name, limit(options, MAX_MANIFEST_BYTES));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw fail('INVALID_MANIFEST', name, `expected an object, got ${kindOf(value)}`);
  }

  let kind: 'manifest' | 'index' | undefined;
  const own = 'mediaType' in value ? value.mediaType : undefined;
  if (typeof own === 'string') {
    if (isManifestMediaType(own)) kind = 'manifest';
    else if (isIndexMediaType(own)) kind = 'index';
    else if (!('schemaVersion' in value && value.schemaVersion === 1)) {
      throw fail(
        'INVALID_MANIFEST',
        name,
        `mediaType: not an image manifest or index media type: ${quote(own)}`,
      );
    }
  }
  if (kind === undefined && mediaTypeHint !== undefined) {
    const hint = bareMediaType(mediaTypeHint);
    if (isManifestMediaType(hint)) kind = 'manifest';
    else if (isIndexMediaType(hint)) kind = 'index';
  }
  if (kind === undefined) {
    if ('manifests' in value) kind = 'index';
    else if ('config' in value || 'layers' in value) kind = 'manifest';
    else if ('schemaVersion' in value && value.schemaVersion === 1) kind = 'manifest';
    else {
      throw fail(
        'INVALID_MANIFEST',
        name,
        'neither an image manifest nor an index: no mediaType, "manifests", "config" or "layers" field',
      );
    }
  }

  if (kind === 'index') {
    validate(indexSchema, value, 'INVALID_MANIFEST', name);
    return { kind, index: value as ImageIndex };
  }
  validate(manifestSchema, value, 'INVALID_MANIFEST', name);
  return { kind, manifest: value as ImageManifest };
}
