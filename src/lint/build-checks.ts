/**
 * BuildKit's build checks the way a build runs them: `strata build --check` (a report and a
 * non-zero exit when anything is found, nothing built) and the warnings every `strata build`
 * prints when it ends. Only the BuildKit rule set runs here, with BuildKit's switches: the
 * `# check=` directive, replaced as a whole by the `BUILDKIT_DOCKERFILE_CHECK` build argument,
 * and `error=true` to stop the build before it runs anything. Output follows buildx's text
 * (docs/lint.md records where it was unclear).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';

import { readIgnoreFile } from '../dockerfile/dockerignore.js';
import { detectDirective } from '../dockerfile/parser.js';
import { loadDockerfile, resolveBuild } from '../dockerfile/stages.js';
import { StrataError, errnoCode } from '../errors.js';
import { hostPlatform, normalizePlatform, parsePlatform } from '../oci/platform.js';
import { evaluateModel } from './evaluate.js';
import { buildLintModel, type LintModel } from './model.js';
import { parseCheckDirective } from './pragmas.js';
import { BUILDKIT_RULES } from './rules/buildkit.js';

/** The build argument that replaces the Dockerfile's `# check=` directive. */
export const CHECK_BUILD_ARG = 'BUILDKIT_DOCKERFILE_CHECK';

export interface BuildCheckOptions {
  /** The name reports use (BuildKit shows the Dockerfile's base name); default `Dockerfile`. */
  file?: string;
  /** `.dockerignore` patterns of the build context (CopyIgnoredFile). */
  dockerignore?: readonly string[];
  /** `--target`; default the last stage. */
  target?: string;
  /**
   * Check every stage, as `docker build --check` does without `--target`. Otherwise the checks
   * BuildKit runs while converting a stage look only at the stages the target needs.
   */
  allStages?: boolean;
  /** `--build-arg`s: `BUILDKIT_DOCKERFILE_CHECK`, and the values FROM lines expand with. */
  buildArgs?: Readonly<Record<string, string>>;
  /** `--platform` of the build (FROM expansion); default the host's. */
  platform?: string;
}

export interface BuildCheckWarning {
  /** BuildKit's check name, e.g. `JSONArgsRecommended`. */
  rule: string;
  /** The check's fixed description. */
  description: string;
  url: string;
  /** What this occurrence is about. */
  detail: string;
  /** The lines the warning points at (1-based): usually the whole instruction. */
  startLine: number;
  endLine: number;
}

export interface BuildCheckError {
  /**
   * `lint`: `check=error=true` and there are warnings; `directive`: the check options cannot be
   * read; `dockerfile`: the Dockerfile itself would fail the build (an invalid instruction, an
   * unknown target…).
   */
  kind: 'lint' | 'directive' | 'dockerfile';
  /** One line: `file:line:column: reason` where the problem has a place. */
  message: string;
}

export interface BuildCheckResult {
  file: string;
  source: string;
  warnings: BuildCheckWarning[];
  /** Why a build stops before running anything, if it does. */
  error?: BuildCheckError;
}

function userError(err: unknown): StrataError | undefined {
  return err instanceof StrataError && err.userFacing ? err : undefined;
}

/** The stages the target needs, or the error converting the Dockerfile stops at. */
function plannedStages(
  source: string,
  options: BuildCheckOptions,
  file: string,
): { stages?: Set<number>; error?: string } {
  try {
    const model = loadDockerfile(source, { file });
    const host = hostPlatform();
    const resolved = resolveBuild(model, {
      ...(options.buildArgs === undefined ? {} : { buildArgs: options.buildArgs }),
      ...(options.target === undefined ? {} : { target: options.target }),
      targetPlatform:
        options.platform === undefined ? host : normalizePlatform(parsePlatform(options.platform)),
      buildPlatform: host,
    });
    // BuildKit parses every stage's FROM --platform while it converts the file; strata's solver
    // reads it only when it reaches the stage, so a check says here what BuildKit would.
    for (const stage of resolved.stages) {
      const written = stage.stage.from.platform;
      if (written === undefined || stage.platform === undefined) continue;
      const where = `${file}:${stage.stage.from.range.start.line}:${stage.stage.from.range.start.column}`;
      if (stage.platform === '')
        return { error: `${where}: empty platform value from expression ${written}` };
      try {
        parsePlatform(stage.platform);
      } catch (err) {
        return { error: `${where}: failed to parse platform ${written}: ${(err as Error).message}` };
      }
    }
    return { stages: new Set(resolved.needed) };
  } catch (err) {
    const known = userError(err);
    if (known === undefined) throw err;
    return { error: known.message };
  }
}

/** Where a finding points: the instruction starting on `line`, all its lines. */
function lineRange(model: LintModel, line: number): { startLine: number; endLine: number } {
  const instruction = model.instructions.find((candidate) => candidate.line === line);
  return { startLine: line, endLine: Math.max(line, instruction?.node.range.end.line ?? line) };
}

/** Runs BuildKit's checks over a Dockerfile as a build of `options.target` would. */
export function checkDockerfile(source: string, options: BuildCheckOptions = {}): BuildCheckResult {
  const file = options.file ?? 'Dockerfile';
  const result: BuildCheckResult = { file, source, warnings: [] };
  const override = options.buildArgs?.[CHECK_BUILD_ARG];
  const directive = parseCheckDirective(override ?? detectDirective('check', source)?.cmdline);
  const [problem] = directive.problems;
  if (problem !== undefined) {
    const where = override !== undefined ? `--build-arg ${CHECK_BUILD_ARG}` : file;
    result.error = { kind: 'directive', message: `${where}: ${problem}` };
    return result;
  }

  let model: LintModel;
  try {
    model = buildLintModel(source, file);
  } catch (err) {
    const known = userError(err);
    if (known === undefined) throw err;
    result.error = { kind: 'dockerfile', message: known.message };
    return result;
  }
  model.dockerignore = options.dockerignore;
  const planned = plannedStages(source, options, file);
  const descriptions = new Map(BUILDKIT_RULES.map((rule) => [rule.id, rule.message]));
  const findings = evaluateModel(model, BUILDKIT_RULES, {
    ...(override === undefined ? {} : { checkOverride: override }),
    ...(options.allStages || planned.stages === undefined ? {} : { stages: planned.stages }),
  });
  result.warnings = findings
    .map((finding) => ({
      rule: finding.rule,
      description: descriptions.get(finding.rule) ?? finding.message,
      url: finding.url ?? '',
      detail: finding.message,
      ...lineRange(model, finding.line),
    }))
    .sort((a, b) => a.startLine - b.startLine || (a.detail < b.detail ? -1 : a.detail > b.detail ? 1 : 0));

  if (planned.error !== undefined) result.error = { kind: 'dockerfile', message: planned.error };
  else if (directive.error && result.warnings.length > 0) {
    const rules = [...new Set(result.warnings.map((warning) => warning.rule))];
    result.error = { kind: 'lint', message: `${file}: lint violation found for rules: ${rules.join(', ')}` };
  }
  return result;
}

/** A finding the build itself makes (src/build/solver.ts BuildWarning has this shape). */
export interface BuildFinding {
  rule: string;
  detail: string;
  startLine: number;
  endLine: number;
}

/** BuildKit's checks that only a build can make: what they say, and where their docs are. */
const BUILD_TIME_RULES: Readonly<Record<string, { description: string; url: string }>> = {
  InvalidBaseImagePlatform: {
    description: 'Base image platform does not match expected target platform',
    url: 'https://docs.docker.com/go/dockerfile/rule/invalid-base-image-platform/',
  },
};

/**
 * The checks' result with the findings the build made added (as BuildKit reports them beside
 * the others), unless the `# check=` directive or its build argument skips their rule.
 */
export function withBuildFindings(
  result: BuildCheckResult,
  findings: readonly BuildFinding[],
  buildArgs: Readonly<Record<string, string>> = {},
): BuildCheckResult {
  const directive = parseCheckDirective(
    buildArgs[CHECK_BUILD_ARG] ?? detectDirective('check', result.source)?.cmdline,
  );
  const added = findings
    .filter(({ rule }) => !directive.skip.has(rule.toLowerCase()) && !directive.skip.has('all'))
    .map((finding) => ({
      ...finding,
      description: BUILD_TIME_RULES[finding.rule]?.description ?? finding.detail,
      url: BUILD_TIME_RULES[finding.rule]?.url ?? '',
    }));
  if (added.length === 0) return result;
  const warnings = [...result.warnings, ...added].sort((a, b) => a.startLine - b.startLine);
  return { ...result, warnings };
}

// ---------------------------------------------------------------------------------------------
// Reading what a build reads

export interface BuildCheckInput extends Omit<BuildCheckOptions, 'file' | 'dockerignore'> {
  /** The build context directory (its `.dockerignore` feeds CopyIgnoredFile). */
  context: string;
  /** Dockerfile path, relative to the working directory (`-f`); default `<context>/Dockerfile`. */
  dockerfile?: string;
  /** The Dockerfile itself (`-f -`); `dockerfile` is then ignored. */
  dockerfileText?: string | Uint8Array;
}

/** Reads the Dockerfile and the context's ignore file like `strata build`, then checks. */
export async function checkBuild(input: BuildCheckInput): Promise<BuildCheckResult> {
  try {
    if (!(await stat(input.context)).isDirectory())
      throw new StrataError('INVALID_ARGUMENT', `build context ${input.context} is not a directory`);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT')
      throw new StrataError('NOT_FOUND', `unable to prepare context: path "${input.context}" not found`);
    throw err;
  }
  let source: string;
  let path: string | undefined;
  if (input.dockerfileText !== undefined) {
    source =
      typeof input.dockerfileText === 'string'
        ? input.dockerfileText
        : Buffer.from(input.dockerfileText).toString('utf8');
  } else {
    path = input.dockerfile === undefined ? join(input.context, 'Dockerfile') : resolve(input.dockerfile);
    try {
      source = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT')
        throw new StrataError(
          'NOT_FOUND',
          `failed to read dockerfile: open ${path}: no such file or directory`,
        );
      throw err;
    }
  }
  return checkDockerfile(source, {
    ...(input.target === undefined ? {} : { target: input.target }),
    ...(input.allStages === undefined ? {} : { allStages: input.allStages }),
    ...(input.buildArgs === undefined ? {} : { buildArgs: input.buildArgs }),
    ...(input.platform === undefined ? {} : { platform: input.platform }),
    file: path === undefined ? 'Dockerfile' : basename(path),
    dockerignore: await readIgnoreFile(input.context, path),
  });
}

// ---------------------------------------------------------------------------------------------
// Output

/**
 * The Dockerfile around lines `start`–`end`, marked with `>>>`, as BuildKit prints a source
 * location: a one-line location gets up to two lines of context on each side, a longer one up
 * to one; a side that runs out of lines leaves its share unused.
 */
export function formatSourceSnippet(source: string, file: string, start: number, end: number): string {
  const lines = source.split('\n');
  if (start < 1 || start > lines.length) return '';
  const last = Math.min(Math.max(end, start), lines.length);
  let from = start;
  let to = last;
  // Each round widens both sides by a line where there is one and costs one unit more than the
  // lines it added, so a location at the top of the file still gets its lines below.
  const budget = start === last ? 4 : 2;
  for (let spent = 0; spent < budget; spent++) {
    if (from > 1) {
      from--;
      spent++;
    }
    if (to < lines.length) {
      to++;
      spent++;
    }
  }
  const out = [`${file}:${start}`, '--------------------'];
  for (let line = from; line <= to; line++) {
    const marker = line >= start && line <= last ? '>>>' : '   ';
    out.push(` ${String(line).padStart(3)} | ${marker} ${lines[line - 1] ?? ''}`);
  }
  out.push('--------------------');
  return `${out.join('\n')}\n`;
}

/** What `strata build --check` prints on stdout (buildx's text for the lint result). */
export function formatCheckReport(result: BuildCheckResult): string {
  const count = result.warnings.length;
  if (count === 0) return result.error === undefined ? 'Check complete, no warnings found.\n' : '';
  let out = `Check complete, ${count === 1 ? '1 warning has been found!' : `${count} warnings have been found!`}\n`;
  for (const warning of result.warnings) {
    out += `\nWARNING: ${warning.rule}${warning.url === '' ? '' : ` - ${warning.url}`}\n${warning.detail}\n`;
    out += formatSourceSnippet(result.source, result.file, warning.startLine, warning.endLine);
  }
  // buildx leaves a blank line between the warnings and the error that follows them.
  if (result.error !== undefined) out += '\n';
  return out;
}

/** The one-line form of a warning in a build's summary: `Rule: detail (line N)`. */
export function shortWarning(warning: BuildCheckWarning): string {
  return `${warning.rule}: ${warning.detail} (line ${warning.startLine})`;
}

const YELLOW = '\u001b[33m';
const RESET = '\u001b[0m';

/**
 * The summary a build prints on stderr when it ends (buildx's wording, hint included, so logs
 * read the same as Docker's); `debug` expands each warning with its description, link and source.
 */
export function formatWarningSummary(
  result: BuildCheckResult,
  options: { debug?: boolean; colour?: boolean } = {},
): string {
  const count = result.warnings.length;
  if (count === 0) return '';
  const heading = `${count === 1 ? '1 warning found' : `${count} warnings found`}${
    options.debug ? '' : ' (use docker --debug to expand)'
  }:\n`;
  let out = `\n ${options.colour ? `${YELLOW}${heading}${RESET}` : heading}`;
  for (const warning of result.warnings) {
    out += ` - ${shortWarning(warning)}\n`;
    if (!options.debug) continue;
    out += `${warning.description}\n`;
    if (warning.url !== '') out += `More info: ${warning.url}\n`;
    out += `${formatSourceSnippet(result.source, result.file, warning.startLine, warning.endLine)}\n`;
  }
  return out;
}
