/**
 * `strata analyze` as a library: open an image from wherever it is, analyse its layers, judge it
 * with dive's CI rules, and print or serialise the result.
 */
export { analyzeImage, type AnalyzeOptions } from './analyze.js';
export {
  openImageSource,
  storeImageSource,
  type ImageSource,
  type OpenSourceOptions,
  type PullFunction,
} from './source.js';
export { aggregateTree, findNode } from './tree.js';
export {
  diffImages,
  formatImageDiff,
  type ConfigDifference,
  type ImageDiff,
  type PathDifference,
} from './diff.js';
export {
  CI_RULE_NAMES,
  DEFAULT_CI_RULES,
  evaluateCi,
  goFloat,
  loadCiRules,
  parseCiConfig,
  parseCiRule,
  parseHumanBytes,
  type CiConfigFile,
  type CiEvaluation,
  type CiMetrics,
  type CiRule,
  type CiRuleName,
  type CiRuleResult,
  type CiRules,
  type LoadCiRulesOptions,
  type LoadedCiRules,
} from './ci.js';
export {
  ANALYSIS_SCHEMA_VERSION,
  analysisToJson,
  flattenChanges,
  formatAnalysisReport,
  formatCiReport,
  humanizeBytes,
  type FileChange,
  type JsonOptions,
  type ReportOptions,
} from './report.js';
export type * from './model.js';
