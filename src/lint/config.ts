/**
 * Lint configuration in hadolint's vocabulary, so an existing `.hadolint.yaml` works unchanged:
 * `ignored`, `override` (severity per rule), `trustedRegistries`, `label-schema`,
 * `strict-labels`, `failure-threshold`, `disable-ignore-pragma`, `no-fail`, `format`; and one
 * key of strata's own, `oci-label-schema` (the OCI labels ST1015/ST1016 expect).
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

import { StrataError, errnoCode } from '../errors.js';
import { LABEL_TYPES, isSeverity, type LabelType, type RuleSettings, type Severity } from './types.js';

export interface LintConfig extends RuleSettings {
  ignored: string[];
  /** Rule id → severity that replaces the rule's default. */
  overrides: Record<string, Severity>;
  /** Findings at this severity or worse make the run fail. */
  failureThreshold: Severity;
  disableIgnorePragma: boolean;
  noFail: boolean;
  format?: string;
}

/**
 * strata's default `oci-label-schema`: the pre-defined `org.opencontainers.image.*` annotations
 * an image should describe itself with, typed as the OCI image spec describes their values.
 */
export function defaultOciLabelSchema(): Record<string, LabelType> {
  return {
    'org.opencontainers.image.title': 'text',
    'org.opencontainers.image.description': 'text',
    'org.opencontainers.image.version': 'text',
    'org.opencontainers.image.revision': 'hash',
    'org.opencontainers.image.created': 'rfc3339',
    'org.opencontainers.image.source': 'url',
    'org.opencontainers.image.licenses': 'spdx',
    'org.opencontainers.image.authors': 'text',
  };
}

export function defaultLintConfig(): LintConfig {
  return {
    ignored: [],
    overrides: {},
    trustedRegistries: [],
    labelSchema: {},
    strictLabels: false,
    ociLabelSchema: defaultOciLabelSchema(),
    failureThreshold: 'info',
    disableIgnorePragma: false,
    noFail: false,
  };
}

function invalid(source: string, message: string): StrataError {
  return new StrataError('INVALID_CONFIG', `${source}: ${message}`);
}

function stringList(value: unknown, key: string, source: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw invalid(source, `"${key}" must be a list of strings`);
  }
  return value;
}

/** A `label: type` mapping (`label-schema`, `oci-label-schema`). */
function labelSchemaOf(value: unknown, key: string, source: string): Record<string, LabelType> {
  const schema: Record<string, LabelType> = {};
  if (value === undefined || value === null) return schema;
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(source, `"${key}" must be a mapping`);
  for (const [label, type] of Object.entries(value)) {
    if (typeof type !== 'string' || !(LABEL_TYPES as readonly string[]).includes(type)) {
      throw invalid(
        source,
        `label "${label}" has unknown type "${String(type)}" (${LABEL_TYPES.join(', ')})`,
      );
    }
    schema[label] = type as LabelType;
  }
  return schema;
}

/** Reads a config object (already parsed from YAML or given in code) onto `base`. */
export function applyConfigObject(base: LintConfig, raw: unknown, source = 'config'): LintConfig {
  if (raw === undefined || raw === null) return base;
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw invalid(source, 'expected a mapping at the top level');
  const record = raw as Record<string, unknown>;
  const config: LintConfig = {
    ...base,
    overrides: { ...base.overrides },
    labelSchema: { ...base.labelSchema },
    ociLabelSchema: { ...base.ociLabelSchema },
  };
  config.ignored = [...base.ignored, ...stringList(record.ignored, 'ignored', source)];
  config.trustedRegistries = [
    ...base.trustedRegistries,
    ...stringList(record.trustedRegistries, 'trustedRegistries', source),
  ];
  const override = record.override;
  if (override !== undefined && override !== null) {
    if (typeof override !== 'object' || Array.isArray(override))
      throw invalid(source, '"override" must be a mapping');
    for (const [severity, rules] of Object.entries(override)) {
      if (!isSeverity(severity)) throw invalid(source, `unknown severity "${severity}" in "override"`);
      for (const rule of stringList(rules, `override.${severity}`, source)) config.overrides[rule] = severity;
    }
  }
  Object.assign(config.labelSchema, labelSchemaOf(record['label-schema'], 'label-schema', source));
  // strata's key: replaces the default OCI label schema (`{}` switches ST1015/ST1016 off).
  if (record['oci-label-schema'] !== undefined)
    config.ociLabelSchema = labelSchemaOf(record['oci-label-schema'], 'oci-label-schema', source);
  if (record['strict-labels'] !== undefined) config.strictLabels = record['strict-labels'] === true;
  if (record['disable-ignore-pragma'] !== undefined)
    config.disableIgnorePragma = record['disable-ignore-pragma'] === true;
  if (record['no-fail'] !== undefined) config.noFail = record['no-fail'] === true;
  const threshold = record['failure-threshold'];
  if (threshold !== undefined) {
    if (typeof threshold !== 'string' || (!isSeverity(threshold) && threshold !== 'none')) {
      throw invalid(source, `"failure-threshold" must be one of error, warning, info, style, ignore, none`);
    }
    config.failureThreshold = threshold === 'none' ? 'ignore' : threshold;
  }
  if (typeof record.format === 'string') config.format = record.format;
  return config;
}

export function parseLintConfig(text: string, source = 'config'): LintConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw invalid(source, `not valid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  return applyConfigObject(defaultLintConfig(), raw, source);
}

/** Where hadolint looks for its config, most specific first. */
export function configCandidates(cwd: string): string[] {
  const xdg = process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config');
  return [
    join(cwd, '.hadolint.yaml'),
    join(cwd, '.hadolint.yml'),
    join(xdg, 'hadolint.yaml'),
    join(xdg, 'hadolint.yml'),
    join(homedir(), '.hadolint', 'hadolint.yaml'),
    join(homedir(), '.hadolint.yaml'),
  ];
}

/** Loads `explicit` (must exist) or the first config file found; defaults when there is none. */
export async function loadLintConfig(options: { explicit?: string; cwd?: string } = {}): Promise<LintConfig> {
  const candidates = options.explicit ? [options.explicit] : configCandidates(options.cwd ?? process.cwd());
  for (const path of candidates) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' && options.explicit === undefined) continue;
      throw new StrataError('NOT_FOUND', `cannot read lint config ${path}: ${(err as Error).message}`);
    }
    return parseLintConfig(text, path);
  }
  return defaultLintConfig();
}
