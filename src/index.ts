/**
 * strata's public API: everything the CLI does, as typed functions over a `Store`.
 *
 *   import { openStore, loadImages, findImage, saveImages } from 'strata';
 *   const store = await openStore();
 *   await loadImages(store, { stream: fs.createReadStream('busybox.tar') });
 */
import type { Readable } from 'node:stream';
import { Store } from './store/index.js';
import { resolveStoreRoot } from './store/paths.js';
import { createTarFromDirectory } from './archive/tar-writer.js';
import { decompressStream } from './archive/compression.js';
import { loadArchive, type LoadOptions, type LoadedImage } from './image/load.js';

export { StrataError, isStrataError, type ErrorCode } from './errors.js';
export * from './oci/index.js';
export { Store } from './store/index.js';
export { findImage, listImages, canonicalName, type ResolvedImage } from './image/resolve.js';
export {
  inspectImage,
  imageHistory,
  imageSize,
  repoTags,
  repoDigests,
  type HistoryRow,
} from './image/inspect.js';
export { saveImages, saveLayoutDirectory, type SaveFormat, type SaveRequest } from './image/save.js';
export { importImage, type ImportOptions } from './image/import.js';
export { exportImage } from './image/export.js';
export { tagImage } from './image/tag.js';
export { removeImages, pruneImages, type RemovalReport, type RemovalEvent } from './image/remove.js';
export { diskUsage, pruneSystem, type DiskUsage, type UsageRow } from './image/usage.js';
export { applyChanges } from './image/changes.js';
export { unpackImage, type UnpackedImage } from './image/unpack.js';
export { mountImage, unmountImage } from './image/mount.js';
export type { LoadedImage, LoadOptions } from './image/load.js';

/** Opens (creating if needed) the store at `root`, or at `$STRATA_ROOT` / the default root. */
export function openStore(root?: string): Promise<Store> {
  return Store.open(resolveStoreRoot(root));
}

/**
 * `docker load`: a docker-archive or OCI layout, as a (possibly gzip/zstd-compressed) tar stream
 * or an OCI layout directory.
 */
export function loadImages(
  store: Store,
  source: { stream: Readable } | { directory: string },
  options: LoadOptions = {},
): Promise<LoadedImage[]> {
  const tar = 'stream' in source ? decompressStream(source.stream) : createTarFromDirectory(source.directory);
  return loadArchive(store, tar, options);
}

export {
  parseDockerfile,
  detectSyntax,
  type ParseResult,
  type InstructionNode,
  type Heredoc,
  type SourceRange,
} from './dockerfile/parser.js';
export { dumpAst } from './dockerfile/dump.js';
export { DockerfileError } from './dockerfile/errors.js';
export {
  parseInstruction,
  type Instruction,
  type CommandLine,
  type KeyValue,
} from './dockerfile/instructions.js';
export {
  loadDockerfile,
  resolveBuild,
  StageScope,
  type DockerfileModel,
  type Stage,
  type ResolvedBuild,
  type ResolvedStage,
  type BuildArgOptions,
} from './dockerfile/stages.js';
export { ShellLexer, type ShellEnv } from './dockerfile/shell.js';
export { parseDockerignore, PatternMatcher, readIgnoreFile } from './dockerfile/dockerignore.js';
export { walkContext, type ContextEntry } from './dockerfile/context.js';
export { build, type BuildOptions, type BuildResult, type BuildWarning } from './build/solver.js';
export type { SecretSource } from './build/run-step.js';
export {
  runProcess,
  detectIsolation,
  type RunProcessOptions,
  type RunProcessResult,
  type RuntimeMount,
} from './runtime/index.js';
export {
  createProgress,
  isProgressMode,
  ProgressRecorder,
  type ProgressEvent,
  type ProgressMode,
  type ProgressSink,
} from './build/progress.js';
export { parseOutput, outputStream, outputDirectory, type OutputSpec } from './build/outputs.js';
export {
  pullImage,
  pullAllTags,
  pushImage,
  pushAllTags,
  pushCompressionLevel,
  defaultPushGzipLevel,
  login,
  logout,
  CredentialStore,
  RegistryError,
  type PullOptions,
  type PushOptions,
  type PushResult,
  type LoginOptions,
  type Credentials,
  type TransferEvent,
  type BlobStatus,
  type ProgressListener,
} from './registry/client/index.js';

export {
  lintDockerfile,
  lintFiles,
  failsThreshold,
  loadLintConfig,
  parseLintConfig,
  defaultLintConfig,
  formatResults as formatLintResults,
  ALL_RULES as LINT_RULES,
  type LintOptions,
  type LintConfig,
  type LintFormat,
  type LintRun,
  type LintFilesOptions,
  type Finding as LintFinding,
  type LintResult,
  type Rule as LintRule,
  checkBuild,
  checkDockerfile,
  formatCheckReport,
  formatWarningSummary,
  withBuildFindings,
  type BuildFinding,
  type BuildCheckInput,
  type BuildCheckOptions,
  type BuildCheckResult,
  type BuildCheckWarning,
  type BuildCheckError,
} from './lint/index.js';

export {
  analyzeImage,
  openImageSource,
  storeImageSource,
  aggregateTree,
  findNode,
  diffImages,
  formatImageDiff,
  evaluateCi,
  loadCiRules,
  parseCiConfig,
  parseCiRule,
  parseHumanBytes,
  analysisToJson,
  flattenChanges,
  formatAnalysisReport,
  formatCiReport,
  ANALYSIS_SCHEMA_VERSION,
  CI_RULE_NAMES,
  DEFAULT_CI_RULES,
  type AnalyzeOptions,
  type ImageSource,
  type OpenSourceOptions,
  type PullFunction,
  type ImageAnalysis,
  type AnalyzedImage,
  type ImageSourceKind,
  type LayerAnalysis,
  type FileNode,
  type FileType,
  type ChangeKind,
  type ChangeCounts,
  type ModifiedAspect,
  type DiveMetrics,
  type DiveInefficientFile,
  type StrataMetrics,
  type StrataInefficientFile,
  type FileChange,
  type CiRule,
  type CiRules,
  type CiRuleName,
  type CiRuleResult,
  type CiEvaluation,
  type CiMetrics,
  type LoadedCiRules,
  type LoadCiRulesOptions,
  type JsonOptions,
  type ReportOptions,
  type ImageDiff,
  type PathDifference,
  type ConfigDifference,
} from './analyze/index.js';
