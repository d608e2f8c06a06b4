/**
 * Lint output formats: `tty` for people, and `json`, `sarif`, `checkstyle` and `gitlab`
 * (Code Quality) for tools. Every formatter takes all files' results at once, because the
 * machine formats are one document per run.
 */
import { createHash } from 'node:crypto';

import { ALL_RULES } from './rules/index.js';
import type { Finding, LintResult, Severity } from './types.js';

export const LINT_FORMATS = ['tty', 'json', 'sarif', 'checkstyle', 'gitlab'] as const;
export type LintFormat = (typeof LINT_FORMATS)[number];

export function isLintFormat(value: string): value is LintFormat {
  return (LINT_FORMATS as readonly string[]).includes(value);
}

const COLOURS: Record<Severity, string> = {
  error: '\u001b[31m',
  warning: '\u001b[33m',
  info: '\u001b[36m',
  style: '\u001b[35m',
  ignore: '\u001b[90m',
};
const RESET = '\u001b[0m';
const DIM = '\u001b[2m';

export function formatTty(
  results: readonly LintResult[],
  options: { colour?: boolean; hints?: boolean } = {},
): string {
  const colour = options.colour ?? false;
  const paint = (code: string, text: string): string => (colour ? `${code}${text}${RESET}` : text);
  const lines: string[] = [];
  for (const result of results) {
    for (const finding of result.findings) {
      lines.push(
        `${finding.file}:${finding.line}:${finding.column} ${paint(COLOURS[finding.severity], finding.severity)} ${paint(
          DIM,
          finding.rule,
        )} ${finding.message}`,
      );
      if (options.hints !== false && finding.hint !== undefined)
        lines.push(`    ${paint(DIM, `hint: ${finding.hint}`)}`);
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

export function formatJson(results: readonly LintResult[]): string {
  const findings = results.flatMap((result) =>
    result.findings.map((finding) => ({
      file: finding.file,
      line: finding.line,
      column: finding.column,
      rule: finding.rule,
      severity: finding.severity,
      message: finding.message,
      ...(finding.hint === undefined ? {} : { hint: finding.hint }),
      ...(finding.url === undefined ? {} : { url: finding.url }),
    })),
  );
  return `${JSON.stringify(findings, null, 2)}\n`;
}

const SARIF_LEVEL: Record<Severity, 'error' | 'warning' | 'note' | 'none'> = {
  error: 'error',
  warning: 'warning',
  info: 'note',
  style: 'note',
  ignore: 'none',
};

export function formatSarif(results: readonly LintResult[]): string {
  const findings = results.flatMap((result) => result.findings);
  const usedRules = new Set(findings.map((finding) => finding.rule));
  const rules = ALL_RULES.filter((rule) => usedRules.has(rule.id)).map((rule) => ({
    id: rule.id,
    shortDescription: { text: rule.message },
    ...(rule.hint === undefined ? {} : { help: { text: rule.hint } }),
    ...(rule.url === undefined ? {} : { helpUri: rule.url }),
    defaultConfiguration: { level: SARIF_LEVEL[rule.severity] },
  }));
  const sarif = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'strata-lint', informationUri: 'https://github.com/strata', rules } },
        results: findings.map((finding) => ({
          ruleId: finding.rule,
          level: SARIF_LEVEL[finding.severity],
          message: { text: finding.message },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: finding.file },
                region: { startLine: finding.line, startColumn: finding.column },
              },
            },
          ],
        })),
      },
    ],
  };
  return `${JSON.stringify(sarif, null, 2)}\n`;
}

function xmlEscape(text: string): string {
  return text.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

export function formatCheckstyle(results: readonly LintResult[]): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<checkstyle version="4.3">'];
  for (const result of results) {
    lines.push(`  <file name="${xmlEscape(result.file)}">`);
    for (const finding of result.findings) {
      lines.push(
        `    <error line="${finding.line}" column="${finding.column}" severity="${finding.severity}" message="${xmlEscape(
          finding.message,
        )}" source="${xmlEscape(finding.rule)}"/>`,
      );
    }
    lines.push('  </file>');
  }
  lines.push('</checkstyle>');
  return `${lines.join('\n')}\n`;
}

const GITLAB_SEVERITY: Record<Severity, string> = {
  error: 'blocker',
  warning: 'major',
  info: 'info',
  style: 'minor',
  ignore: 'info',
};

/** GitLab Code Quality: a fingerprint must be stable across runs for the same problem. */
function fingerprint(finding: Finding): string {
  return createHash('md5')
    .update(`${finding.file}:${finding.line}:${finding.column}:${finding.rule}:${finding.message}`)
    .digest('hex');
}

export function formatGitlab(results: readonly LintResult[]): string {
  const issues = results.flatMap((result) =>
    result.findings.map((finding) => ({
      description: `${finding.rule}: ${finding.message}`,
      check_name: finding.rule,
      fingerprint: fingerprint(finding),
      severity: GITLAB_SEVERITY[finding.severity],
      location: { path: finding.file, lines: { begin: finding.line } },
    })),
  );
  return `${JSON.stringify(issues, null, 2)}\n`;
}

export function formatResults(
  results: readonly LintResult[],
  format: LintFormat,
  options: { colour?: boolean } = {},
): string {
  switch (format) {
    case 'tty':
      return formatTty(results, options);
    case 'json':
      return formatJson(results);
    case 'sarif':
      return formatSarif(results);
    case 'checkstyle':
      return formatCheckstyle(results);
    case 'gitlab':
      return formatGitlab(results);
  }
}
