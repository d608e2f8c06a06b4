/**
 * The build solver: runs the stages `--target` needs (independent stages concurrently, each
 * stage's steps in order), with a persistent cache keyed as ARCHITECTURE.md describes, and
 * writes the final image into the store. Filesystem steps run on an overlay of the stage's
 * snapshots (rootfs.ts) and commit their upper dir as the layer (layer.ts); a COPY that only
 * adds records its files in a LayerTree instead and streams the layer from their sources.
 */
import { chown, mkdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, posix, relative, resolve } from 'node:path';

import type { Lease, Store } from '../store/index.js';
import { StrataError, errnoCode } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
} from '../oci/platform.js';
import type { Descriptor, ImageConfig, Platform } from '../oci/types.js';
import { parseReference, formatReference } from '../oci/reference.js';
import { DockerfileError, dockerfileError } from '../dockerfile/errors.js';
import { expandInstruction } from '../dockerfile/expand.js';
import type { Instruction } from '../dockerfile/instructions.js';
import { parseInstruction } from '../dockerfile/instructions.js';
import { parseDockerfile } from '../dockerfile/parser.js';
import {
  loadDockerfile,
  resolveBuild,
  stageByRef,
  StageScope,
  type ResolvedBuild,
  type ResolvedStage,
} from '../dockerfile/stages.js';
import { PatternMatcher, readIgnoreFile } from '../dockerfile/dockerignore.js';
import { findImage, type ResolvedImage } from '../image/resolve.js';
import { unpackLayers } from '../image/unpack.js';
import { creationTime, writeImage } from '../image/create.js';
import { setImageNames } from '../image/names.js';
import { cacheKey, chainIds, type BuildCache, type CacheRecord } from '../store/index.js';
import {
  ContextHasher,
  digestFile,
  operandEntriesDigest,
  statFingerprint,
  type RememberedOperand,
} from './context-hash.js';
import {
  applyCopy,
  fetchRemote,
  selectCopySources,
  type SelectOptions,
  type SelectedOperand,
} from './copy.js';
import { resolveInRoot, resolveOwner, type Owner } from './users.js';
import {
  DEFAULT_PATH,
  applyMetadata,
  getEnv,
  historyEntry,
  historyText,
  resolveWorkdir,
  type StageFlags,
} from './image-config.js';
import { commitLayer, commitTreeLayer } from './layer.js';
import { LayerTree, type SeedDirectory } from './layer-tree.js';
import { parseMount } from './mounts.js';
import { prepareMounts, runArguments, runStep, type SecretSource } from './run-step.js';
import { RuncSession, findRunc } from '../runtime/index.js';
import {
  directLayerSeed,
  makeWorkDir,
  mountReadOnlyRoot,
  mountStepRoot,
  type ReadOnlyRoot,
} from './rootfs.js';
import type { ProgressEvent, ProgressSink } from './progress.js';

export interface BuildOptions {
  /** The build context directory. */
  context: string;
  /** Dockerfile path (default `<context>/Dockerfile`); ignored when `dockerfileText` is given. */
  dockerfile?: string;
  /** The Dockerfile itself (`-f -`). */
  dockerfileText?: string | Uint8Array;
  buildArgs?: Readonly<Record<string, string>>;
  target?: string;
  /** Names to give the image (`-t`, repeatable). */
  tags?: readonly string[];
  /** `--label`: set on the final image. */
  labels?: Readonly<Record<string, string>>;
  /** `--platform`: the image's platform (default: the host's). */
  platform?: string;
  noCache?: boolean;
  /** `--no-cache-filter`: stages (by name or index) that must not use the cache. */
  noCacheFilter?: readonly string[];
  progress?: ProgressSink;
  /** `--secret id=…,src=FILE|env=VAR`: what `RUN --mount=type=secret` can read. */
  secrets?: Readonly<Record<string, SecretSource>>;
  /** `--ssh default=SOCKET`: the agent socket `RUN --mount=type=ssh` forwards. */
  sshAgent?: string;
  /** `--allow security.insecure`: permits `RUN --security=insecure`. */
  allowInsecure?: boolean;
  /** How RUN steps are isolated: runc when it works here (default), or unshare + chroot. */
  isolation?: 'auto' | 'runc' | 'chroot';
  /**
   * RUN steps share long-lived runc containers (default: true where strata-exec is built);
   * false starts one `runc run` per step.
   */
  runSession?: boolean;
  /**
   * Cancels the build: a running RUN step is killed, no further step starts, and the build
   * rejects with a CANCELLED error once everything it mounted or started is cleaned up.
   */
  signal?: AbortSignal;
  /**
   * Fetches a base image the store lacks (the registry client, which sits above the build
   * engine, is passed in by the caller; without it a missing base is an error).
   */
  pullImage?: (reference: string, platform: Platform) => Promise<ResolvedImage>;
  /** `--pull`: fetch every base image again even when the store has it. */
  pull?: boolean;
}

export interface BuildResult {
  /** Image ID: the config digest. */
  id: Digest;
  /** The manifest descriptor (what names point at). */
  target: Descriptor;
  names: string[];
  config: ImageConfig;
  layers: Descriptor[];
  /** Steps run and steps taken from the cache. */
  steps: { executed: number; cached: number };
  /** What BuildKit's checks can only tell during the build (InvalidBaseImagePlatform). */
  warnings: BuildWarning[];
}

/** A build check finding made while building, in BuildKit's terms. */
export interface BuildWarning {
  /** BuildKit's check name. */
  rule: string;
  detail: string;
  /** 1-based lines of the instruction. */
  startLine: number;
  endLine: number;
}

/** A step ready to run: its cache key material and how to run it on a root filesystem. */
interface StepPlan {
  keyParts: unknown;
  execute: (where: StepTarget) => Promise<void>;
  /**
   * Absolute image path the step only adds below (COPY/ADD destination). When nothing of it
   * exists in the layers yet, the step runs against a LayerTree (see executeInTree): no overlay
   * and no files written, whose per-file cost dominates copying a large context.
   */
  directDest?: string;
  release: () => Promise<void>;
  /** Runs on an empty root and does not depend on the layers below (COPY --link). */
  independent?: boolean;
  /** Reads the image's files below (users and groups for a named --chown). */
  readsImage?: boolean;
  /** Every file it copies stays where it is for the whole build (COPY from the context). */
  sourcesOutlive?: boolean;
  /** Runs a process that the build's runc session can run (a RUN without --security=insecure). */
  runsInSession?: boolean;
}

/** Where a step writes. */
interface StepTarget {
  rootfs: string;
  /** Where to read the image's files (users for --chown) when `rootfs` does not show them. */
  lookupRoot: string;
  /** Set when the step's files are recorded in a tree (rootfs is the tree's root), not written. */
  target?: LayerTree;
  /** A directory for the step's temporary files, removed after its layer is written. */
  scratchDir?: string;
  /** The build's long-lived runc containers, when `rootfs` was mounted where they see it. */
  session?: RuncSession;
}

/** What running a step made: its creation time and its layer (none when nothing changed). */
interface StepResult {
  created: string;
  layer: { diffId: Digest; size: number } | undefined;
}

/** One stage's state while it is built, and its result when done. */
interface StageState {
  config: ImageConfig;
  /** Manifest layer descriptors, aligned with config.rootfs.diff_ids. */
  layers: Descriptor[];
  /** Cache key of the filesystem so far. */
  key: string;
  /** Newest creation time of the steps' results (cache records); '' while there is none. */
  created: string;
}

interface StepIdentity {
  stageLabel: string;
  number: number;
  total: number;
}

function cloneConfig(config: ImageConfig): ImageConfig {
  return JSON.parse(JSON.stringify(config)) as ImageConfig;
}

function userError(file: string, instruction: Instruction, err: unknown): never {
  if (err instanceof DockerfileError) throw err;
  if (err instanceof StrataError && err.code === 'CANCELLED') throw err;
  if (err instanceof StrataError && err.userFacing)
    throw dockerfileError(file, instruction.range.start, err.message);
  throw err;
}

/** The build of one Dockerfile: shared state of the stages running concurrently. */
class Build {
  private readonly cache: BuildCache;
  private readonly stageRuns = new Map<number, Promise<StageState>>();
  private readonly imageRoots: ReadOnlyRoot[] = [];
  /**
   * Lower dirs of the snapshots this build prepared or made, by the chain ID of their top: a
   * step after a step needs no look-up of every snapshot below (all leased by this build).
   */
  private readonly lowerDirsByChain = new Map<Digest, readonly string[]>();
  /** Started by the first RUN step that can use it; closed when the build ends. */
  private session: Promise<RuncSession | undefined> | undefined;
  /** Layers this build recorded in trees, by diffID (see executeInTree). */
  private readonly layerTrees = new Map<Digest, LayerTree>();
  private ignore: PatternMatcher | undefined;
  private hasher!: ContextHasher;
  private vertexCount = 0;
  executed = 0;
  cached = 0;
  readonly warnings: BuildWarning[] = [];

  constructor(
    private readonly store: Store,
    private readonly options: BuildOptions,
    private readonly resolved: ResolvedBuild,
    private readonly platform: Platform,
    private readonly lease: Lease,
  ) {
    this.cache = store.buildCache;
  }

  private get file(): string {
    return this.resolved.model.file;
  }

  emit(event: ProgressEvent): void {
    this.options.progress?.emit(event);
  }

  private vertex(name: string): {
    id: string;
    done: (cached?: boolean) => void;
    fail: (message: string) => void;
    log: (stream: 1 | 2, data: Uint8Array | string) => void;
  } {
    const id = `v${++this.vertexCount}`;
    const started = Date.now();
    this.emit({ type: 'vertex', id, name, started });
    return {
      id,
      done: (cached = false) =>
        this.emit({ type: 'vertex', id, name, started, completed: Date.now(), cached }),
      fail: (message) =>
        this.emit({ type: 'vertex', id, name, started, completed: Date.now(), error: message }),
      log: (stream, data) => this.emit({ type: 'log', id, stream, data, timestamp: Date.now() }),
    };
  }

  async prepareContext(contextDir: string, dockerfilePath: string | undefined): Promise<void> {
    const vertex = this.vertex('[internal] load .dockerignore');
    const patterns = await readIgnoreFile(contextDir, dockerfilePath);
    this.ignore = patterns.length > 0 ? new PatternMatcher(patterns) : undefined;
    vertex.done();
    this.hasher = await ContextHasher.open(this.store, contextDir);
  }

  async saveContextCache(): Promise<void> {
    await this.hasher.save();
  }

  async releaseMounts(): Promise<void> {
    for (const root of this.imageRoots.splice(0)) await root.release().catch(() => undefined);
    const session = await this.session?.catch(() => undefined);
    await session?.close();
  }

  throwIfCancelled(): void {
    if (this.options.signal?.aborted) throw new StrataError('CANCELLED', 'build cancelled');
  }

  /**
   * The build's runc session (src/runtime/session.ts), or undefined where RUN steps start their
   * own runc: chroot isolation, or no strata-exec built on this machine.
   */
  private runSession(): Promise<RuncSession | undefined> {
    this.session ??= (async () => {
      if (this.options.isolation === 'chroot' || this.options.runSession === false) return undefined;
      const runc = await findRunc();
      if (runc === undefined) return undefined;
      // Where the host refuses the shared mount, steps still run, each with its own runc.
      return RuncSession.open(runc, await makeWorkDir(this.store.root)).catch(() => undefined);
    })();
    return this.session;
  }

  stage(index: number): Promise<StageState> {
    let running = this.stageRuns.get(index);
    if (!running) {
      running = this.runStage(index);
      // A stage nobody awaits yet must not be an unhandled rejection; the awaiting caller sees it.
      running.catch(() => undefined);
      this.stageRuns.set(index, running);
    }
    return running;
  }

  private stageLabel(resolved: ResolvedStage): string {
    const { stage } = resolved;
    if (stage.name) return stage.name;
    return this.resolved.model.stages.length === 1 ? '' : `stage-${stage.index}`;
  }

  private noCacheFor(resolved: ResolvedStage): boolean {
    if (this.options.noCache) return true;
    const filter = this.options.noCacheFilter ?? [];
    return filter.some(
      (entry) => entry.toLowerCase() === resolved.stage.name || entry === String(resolved.stage.index),
    );
  }

  private async baseState(
    resolved: ResolvedStage,
    identity: StepIdentity,
  ): Promise<{ state: StageState; onBuild: string[] }> {
    const base = resolved.base;
    const from = resolved.stage.from;
    const vertex = this.vertex(
      `[${identity.stageLabel ? `${identity.stageLabel} ` : ''}${identity.number}/${identity.total}] ${from.original.replace(/\s+AS\s+\S+\s*$/i, '').trim()}`,
    );
    try {
      if (base.kind === 'scratch') {
        const config: ImageConfig = {
          architecture: this.platform.architecture,
          os: this.platform.os,
          ...(this.platform.variant ? { variant: this.platform.variant } : {}),
          // BuildKit's empty image: WorkingDir / and the default PATH.
          config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: '/' },
          rootfs: { type: 'layers', diff_ids: [] },
          history: [],
        };
        vertex.done();
        return {
          state: {
            config,
            layers: [],
            key: cacheKey({ scratch: formatPlatform(this.platform) }),
            created: '',
          },
          onBuild: [],
        };
      }
      if (base.kind === 'stage') {
        const parent = await this.stage(base.stage);
        vertex.done(true);
        const config = cloneConfig(parent.config);
        // A stage used as a base runs its ONBUILD triggers too (BuildKit), then forgets them.
        const onBuild = config.config?.OnBuild ?? [];
        if (config.config) delete config.config.OnBuild;
        return { state: { ...parent, config, layers: [...parent.layers] }, onBuild };
      }
      const image = await this.findBaseImage(base.reference, resolved);
      const expected = resolved.platform ? parsePlatform(resolved.platform) : this.platform;
      const actual = {
        os: image.config.os,
        architecture: image.config.architecture,
        variant: image.config.variant,
      };
      if (!platformMatches(expected, actual)) {
        this.warnings.push({
          rule: 'InvalidBaseImagePlatform',
          detail: `Base image ${base.reference} was pulled with platform "${formatPlatform(actual)}", expected "${formatPlatform(expected)}" for current build`,
          startLine: from.range.start.line,
          endLine: from.range.end.line,
        });
      }
      const config = cloneConfig(image.config);
      config.config ??= {};
      if (getEnv(config.config, 'PATH') === undefined)
        config.config.Env = [...(config.config.Env ?? []), `PATH=${DEFAULT_PATH}`];
      const onBuild = config.config.OnBuild ?? [];
      delete config.config.OnBuild;
      config.history ??= [];
      vertex.done(true);
      return {
        state: {
          config,
          layers: [...image.manifest.layers],
          key: cacheKey({ image: image.id, platform: formatPlatform(this.platform) }),
          created: '',
        },
        onBuild,
      };
    } catch (err) {
      vertex.fail(err instanceof Error ? err.message : String(err));
      return userError(this.file, from, err);
    }
  }

  private async findBaseImage(reference: string, resolved: ResolvedStage): Promise<ResolvedImage> {
    const platform = resolved.platform ? parsePlatform(resolved.platform) : this.platform;
    const pull = this.options.pullImage;
    // `--pull`: always ask the registry (once per reference and build); otherwise only when
    // the store does not have the image.
    if (this.options.pull && pull) return this.pullOnce(reference, platform, pull);
    try {
      return await findImage(this.store, reference, platform);
    } catch (err) {
      if (!(err instanceof StrataError) || err.code !== 'NOT_FOUND') throw err;
      if (pull) return this.pullOnce(reference, platform, pull);
      let name = reference;
      try {
        name = formatReference(parseReference(reference));
      } catch {
        // keep the text as written in the message
      }
      throw new StrataError(
        'NOT_FOUND',
        `${name}: image not found in the store (load it with \`strata load\`, or pull it first)`,
      );
    }
  }

  private readonly pulls = new Map<string, Promise<ResolvedImage>>();

  private pullOnce(
    reference: string,
    platform: Platform,
    pull: NonNullable<BuildOptions['pullImage']>,
  ): Promise<ResolvedImage> {
    const key = `${reference} ${formatPlatform(platform)}`;
    let pulling = this.pulls.get(key);
    if (!pulling) {
      const vertex = this.vertex(`[internal] pull ${reference}`);
      pulling = pull(reference, platform).then(
        (image) => {
          vertex.done();
          return image;
        },
        (err: unknown) => {
          vertex.fail(err instanceof Error ? err.message : String(err));
          throw err;
        },
      );
      this.pulls.set(key, pulling);
    }
    return pulling;
  }

  private async runStage(index: number): Promise<StageState> {
    const resolved = this.resolved.stages[index] as ResolvedStage;
    const instructions = resolved.stage.instructions;
    const identity: StepIdentity = {
      stageLabel: this.stageLabel(resolved),
      number: 1,
      total: instructions.filter((i) => i.kind !== 'ARG').length + 1,
    };
    const { state, onBuild } = await this.baseState(resolved, identity);
    state.config.created = undefined;
    const scope = new StageScope(this.resolved, this.options.buildArgs ?? {}, state.config.config?.Env ?? []);
    const flags: StageFlags = { cmdSet: false };
    const noCache = this.noCacheFor(resolved);
    const triggers = onBuild.flatMap((expression) =>
      parseDockerfile(expression, { file: `${this.file} (ONBUILD)` }).instructions.map((node) =>
        parseInstruction(node, this.file),
      ),
    );
    let number = 1;
    for (const instruction of [...triggers, ...instructions]) {
      if (instruction.kind === 'ARG') {
        try {
          scope.declareArgs(instruction);
        } catch (err) {
          userError(this.file, instruction, err);
        }
        continue;
      }
      number++;
      this.throwIfCancelled();
      await this.runStep(state, scope, flags, instruction, { ...identity, number }, noCache);
    }
    return state;
  }

  private async runStep(
    state: StageState,
    scope: StageScope,
    flags: StageFlags,
    instruction: Instruction,
    identity: StepIdentity,
    noCache: boolean,
  ): Promise<void> {
    let expanded: Instruction;
    try {
      expanded = expandInstruction(instruction, scope);
    } catch (err) {
      return userError(this.file, instruction, err);
    }
    const shell = state.config.config?.Shell ?? undefined;
    let text: string;
    let metadata: boolean;
    try {
      text = historyText(expanded, shell && shell.length > 0 ? shell : undefined);
      metadata = applyMetadataStep(state, expanded, flags, scope);
    } catch (err) {
      return userError(this.file, instruction, err);
    }
    if (metadata) {
      // Dated when the image is written (finish): a cached rebuild then makes the same image.
      state.config.history = [...(state.config.history ?? []), historyEntry(text, '', true)];
      if (expanded.kind !== 'WORKDIR') return;
    }
    const name = `[${identity.stageLabel ? `${identity.stageLabel} ` : ''}${identity.number}/${identity.total}] ${instruction.original.trim()}`;
    const vertex = this.vertex(name);
    try {
      const outcome = await this.filesystemStep(state, scope, expanded, noCache, vertex.log);
      if (expanded.kind === 'WORKDIR') {
        // The history entry was added above; a created directory turns it into a layer step.
        const last = state.config.history?.at(-1);
        if (last && outcome.layer) delete last.empty_layer;
        if (last) last.created = outcome.created;
      } else {
        state.config.history = [
          ...(state.config.history ?? []),
          historyEntry(text, outcome.created, outcome.layer === undefined),
        ];
      }
      vertex.done(outcome.cached);
    } catch (err) {
      vertex.fail(err instanceof Error ? err.message : String(err));
      userError(this.file, instruction, err);
    }
  }

  /** Runs (or takes from the cache) one step that may change files. */
  private async filesystemStep(
    state: StageState,
    scope: StageScope,
    instruction: Instruction,
    noCache: boolean,
    log: (stream: 1 | 2, data: Uint8Array | string) => void,
  ): Promise<{ cached: boolean; created: string; layer?: Digest }> {
    const prepared = await this.prepareStep(state, scope, instruction, log);
    try {
      // A linked step (COPY --link) does not depend on the layers below it: its record can be
      // reused on top of any parent, and only the stage's running key chains it.
      const key = prepared.independent
        ? cacheKey({ linked: prepared.keyParts })
        : cacheKey({ parent: state.key, step: prepared.keyParts });
      const hit = noCache ? undefined : await this.cache.get(key);
      let record: CacheRecord;
      if (hit) {
        record = hit;
        this.cached++;
      } else {
        record = await this.execute(state, prepared, key);
        this.executed++;
      }
      state.key = prepared.independent ? cacheKey({ parent: state.key, linked: key }) : key;
      if (record.layer) {
        state.layers.push({
          mediaType: MediaType.ociLayer,
          digest: record.layer.diffId,
          size: record.layer.size,
        });
        state.config.rootfs.diff_ids = [...state.config.rootfs.diff_ids, record.layer.diffId];
      }
      if (record.created > state.created) state.created = record.created;
      return { cached: hit !== undefined, created: record.created, layer: record.layer?.diffId };
    } finally {
      await prepared.release();
    }
  }

  private async execute(state: StageState, plan: StepPlan, key: string): Promise<CacheRecord> {
    const epoch = process.env.SOURCE_DATE_EPOCH;
    const mtime = epoch !== undefined && /^\d+$/.test(epoch) ? new Date(Number(epoch) * 1000) : undefined;
    const commit = { lease: this.lease, ...(mtime ? { mtime } : {}) };
    const { created, layer } =
      (await this.executeInTree(state, plan, commit)) ?? (await this.executeOnOverlay(state, plan, commit));
    const record: CacheRecord = {
      key,
      created,
      ...(layer ? { layer: { diffId: layer.diffId, size: layer.size } } : {}),
    };
    await this.cache.put(record);
    return record;
  }

  /**
   * A step that only adds below a destination that does not exist yet (or any linked step)
   * records its files in a LayerTree and streams the layer from their sources: no overlay, no
   * files written but the blob. Undefined when the step must run on an overlay.
   *
   * The layers below are looked at only to find the existing directories on the way to the
   * destination. Layers this build made from trees are looked up in their trees, so a run of
   * COPY steps never unpacks the layers it has just written.
   */
  private async executeInTree(
    state: StageState,
    plan: StepPlan,
    commit: { lease: Lease; mtime?: Date },
  ): Promise<StepResult | undefined> {
    if (plan.directDest === undefined && !plan.independent) return undefined;
    let direct: { seed: SeedDirectory[]; view?: ReadOnlyRoot } = { seed: [] };
    if (!plan.independent && state.layers.length > 0) {
      const diffIds = state.config.rootfs.diff_ids;
      const upperTrees: LayerTree[] = [];
      if (!plan.readsImage) {
        for (let index = diffIds.length - 1; index >= 0; index--) {
          const tree = this.layerTrees.get(diffIds[index] as Digest);
          if (tree === undefined) break;
          upperTrees.push(tree);
        }
      }
      const below = state.layers.length - upperTrees.length;
      const { lowerDirs } = await unpackLayers(
        this.store,
        state.layers.slice(0, below),
        diffIds.slice(0, below),
      );
      const found = await directLayerSeed(this.store.root, upperTrees, lowerDirs, plan.directDest ?? '/');
      if (found === undefined) return undefined;
      direct = found;
    }
    const scratch = await makeWorkDir(this.store.root);
    try {
      const tree = new LayerTree(direct.seed);
      tree.sourcesOutlive = plan.sourcesOutlive === true;
      // With no layers below there is nothing to look users up in: an empty directory.
      const lookupRoot = direct.view?.path ?? join(scratch, 'empty');
      if (direct.view === undefined) await mkdir(lookupRoot);
      await plan.execute({ rootfs: tree.root, lookupRoot, target: tree, scratchDir: scratch });
      const created = creationTime();
      const layer = await commitTreeLayer(this.store, tree, commit);
      if (layer) this.layerTrees.set(layer.diffId, tree);
      return { created, layer };
    } finally {
      await direct.view?.release();
      await rm(scratch, { recursive: true, force: true });
    }
  }

  /** The stage's layers as overlay lower dirs (top first), unpacked when needed. */
  private async stepLowerDirs(state: StageState): Promise<readonly string[]> {
    const diffIds = state.config.rootfs.diff_ids;
    if (diffIds.length === 0) return [];
    const top = chainIds(diffIds).at(-1) as Digest;
    const known = this.lowerDirsByChain.get(top);
    if (known) return known;
    const { lowerDirs } = await unpackLayers(this.store, state.layers, diffIds);
    this.lowerDirsByChain.set(top, lowerDirs);
    return lowerDirs;
  }

  private async executeOnOverlay(
    state: StageState,
    plan: StepPlan,
    commit: { lease: Lease; mtime?: Date },
  ): Promise<StepResult> {
    const lowerDirs = plan.independent ? [] : await this.stepLowerDirs(state);
    const session = plan.runsInSession && lowerDirs.length > 0 ? await this.runSession() : undefined;
    const root = await mountStepRoot(this.store.root, lowerDirs, {
      ...(session ? { mountParent: session.mountRoot } : {}),
      volatile: !this.store.snapshots.durable,
    });
    try {
      try {
        await plan.execute({
          rootfs: root.merged,
          lookupRoot: root.lookup ?? root.merged,
          ...(session ? { session } : {}),
        });
      } finally {
        await root.unmount();
      }
      const created = creationTime();
      const layer = await commitLayer(this.store, root.upper, state.config.rootfs.diff_ids, {
        ...commit,
        lowerDirs,
      });
      if (layer && !plan.independent)
        this.lowerDirsByChain.set(layer.chainId, [layer.snapshotPath, ...lowerDirs]);
      return { created, layer };
    } finally {
      await rm(root.workDir, { recursive: true, force: true });
    }
  }

  /** Works out a step's cache key parts and how to run it (without running it). */
  private async prepareStep(
    state: StageState,
    scope: StageScope,
    instruction: Instruction,
    log: (stream: 1 | 2, data: Uint8Array | string) => void,
  ): Promise<StepPlan> {
    const config = state.config.config ?? {};
    const workdir = config.WorkingDir || '/';
    const user = config.User ?? '';
    const nothing = async () => undefined;
    switch (instruction.kind) {
      case 'WORKDIR': {
        const path = resolveWorkdir(undefined, config.WorkingDir ?? '/');
        return {
          keyParts: { op: 'mkdir', path, user },
          execute: async ({ rootfs }) => {
            const target = await resolveInRoot(rootfs, path);
            const owner: Owner | undefined =
              user === '' ? undefined : await resolveOwner(user, rootfs, { numericUserGroup: 'run' });
            await mkdirOwned(rootfs, target, owner);
          },
          release: nothing,
        };
      }
      case 'COPY':
      case 'ADD':
        return this.prepareCopy(state, instruction, workdir);
      case 'RUN':
        return this.prepareRun(state, scope, instruction, workdir, user, log);
      default:
        throw new StrataError('INTERNAL', `${instruction.kind} is not a filesystem step`);
    }
  }

  private async prepareRun(
    state: StageState,
    scope: StageScope,
    instruction: Extract<Instruction, { kind: 'RUN' }>,
    workdir: string,
    user: string,
    log: (stream: 1 | 2, data: Uint8Array | string) => void,
  ): Promise<StepPlan> {
    const config = state.config.config ?? {};
    const shell = config.Shell && config.Shell.length > 0 ? config.Shell : ['/bin/sh', '-c'];
    const { args, script } = runArguments(instruction.command, shell);
    const env = [...scope.runEnvironment()].map(([name, value]) => `${name}=${value}`);
    const network = instruction.network ?? 'default';
    if (!['default', 'host', 'none'].includes(network))
      throw new StrataError('INVALID_ARGUMENT', `unsupported network mode "${network}"`);
    const insecure = instruction.security === 'insecure';
    if (insecure && !this.options.allowInsecure) {
      throw new StrataError('INVALID_ARGUMENT', 'RUN --security=insecure needs --allow security.insecure');
    }
    let sshIndex = 0;
    const specs = instruction.mounts.map((text) =>
      parseMount(text, text.includes('type=ssh') ? sshIndex++ : 0),
    );
    // What the mounts contribute to the key: their definition, and what a bind shows of a stage
    // or of the context (never a secret's or a cache's content).
    const mountKeys: unknown[] = [];
    for (const spec of specs) {
      if (spec.type === 'bind' && spec.from !== undefined)
        mountKeys.push([spec, await this.viewKey(spec.from)]);
      else if (spec.type === 'bind') mountKeys.push([spec, await this.contextKey(spec.source)]);
      else mountKeys.push(spec);
    }
    return {
      keyParts: { op: 'run', args, script, env, user, workdir, network, mounts: mountKeys, insecure },
      runsInSession: !insecure,
      execute: async ({ rootfs, session }) => {
        const prepared = await prepareMounts(specs, {
          storeRoot: this.store.root,
          contextDir: resolve(this.options.context),
          secrets: new Map(Object.entries(this.options.secrets ?? {})),
          ...(this.options.sshAgent ? { sshAgent: this.options.sshAgent } : {}),
          viewOf: async (from) => {
            const view = await this.copySource(from);
            return { path: view.root.path, release: () => view.root.release() };
          },
        });
        try {
          await prepared.locked(() =>
            runStep({
              rootfs,
              args,
              ...(script ? { script } : {}),
              env: [...env, ...prepared.env],
              user,
              workdir,
              network: network === 'none' ? 'none' : 'host',
              insecure,
              isolation: this.options.isolation ?? 'auto',
              mounts: prepared.mounts,
              onOutput: log,
              ...(session ? { session } : {}),
              ...(this.options.signal ? { signal: this.options.signal } : {}),
            }),
          );
        } finally {
          await prepared.release();
        }
      },
      // Stage views for bind mounts are made and released by the run itself.
      release: async () => undefined,
    };
  }

  /** Cache key of a stage or image named by `from=`. */
  private async viewKey(from: string): Promise<string> {
    return (await this.fromSource(from)).key;
  }

  /** What `--from` / `from=` names: an earlier stage (by name or index) or an image. */
  private async fromSource(from: string): Promise<{ layers: Descriptor[]; diffIds: Digest[]; key: string }> {
    const index = stageByRef(this.resolved.model, from);
    if (index !== undefined && this.resolved.model.stages[index]) {
      const state = await this.stage(index);
      return { layers: state.layers, diffIds: state.config.rootfs.diff_ids, key: state.key };
    }
    const image = await this.findBaseImage(from, this.resolved.stages[this.resolved.target] as ResolvedStage);
    return {
      layers: image.manifest.layers,
      diffIds: image.config.rootfs.diff_ids,
      key: cacheKey({ image: image.id }),
    };
  }

  /** A read-only view of a filesystem made of these layers (unpacked when needed). */
  private async mountView(layers: readonly Descriptor[], diffIds: readonly Digest[]): Promise<ReadOnlyRoot> {
    const { lowerDirs } = await unpackLayers(this.store, layers, diffIds);
    return mountReadOnlyRoot(this.store.root, lowerDirs);
  }

  /** Content key of a context path (a RUN bind mount of the context). */
  private async contextKey(source: string): Promise<unknown> {
    const ignore = this.ignore;
    const operands = await selectCopySources({
      root: resolve(this.options.context),
      sourceIsContext: true,
      sources: [source],
      ...(ignore ? { ignore: (path: string) => ignore.matches(path) } : {}),
    });
    return this.sourceMaterial(operands, true);
  }

  private async prepareCopy(
    state: StageState,
    instruction: Extract<Instruction, { kind: 'COPY' | 'ADD' }>,
    workdir: string,
  ): Promise<StepPlan> {
    const from = instruction.kind === 'COPY' ? instruction.from : undefined;
    let sourceRoot = resolve(this.options.context);
    let sourceKey: string | undefined;
    let release = async (): Promise<void> => undefined;
    // `COPY --from` a stage whose top layer this build recorded in a tree: the sources may be
    // read from the tree (their bytes are still in the context), without unpacking the stage.
    let fromTree: SelectedOperand[] | undefined;
    if (from !== undefined) {
      const { diffIds, key } = await this.fromSource(from);
      const top = diffIds.at(-1);
      const tree = top === undefined ? undefined : this.layerTrees.get(top);
      if (instruction.kind === 'COPY' && !instruction.parents && (instruction.exclude ?? []).length === 0)
        fromTree = tree?.selectOwned(instruction.sources);
      if (fromTree !== undefined) {
        sourceKey = key;
      } else {
        const source = await this.copySource(from);
        sourceRoot = source.root.path;
        sourceKey = source.key;
        release = () => source.root.release();
      }
    }
    try {
      const ignore = this.ignore;
      const ignoreOptions =
        from === undefined && ignore
          ? {
              ignore: (path: string) => ignore.matches(path),
              canSkipIgnoredDirectory: (path: string) => ignore.canSkipDirectory(path),
            }
          : {};
      const isUrl = (source: string) => /^https?:\/\//i.test(source);
      const urls = instruction.kind === 'ADD' ? instruction.sources.filter(isUrl) : [];
      const locals = instruction.sources.filter((source) => !urls.includes(source));
      const selectOptions: SelectOptions = {
        root: sourceRoot,
        sourceIsContext: from === undefined,
        sources: locals,
        exclude: instruction.exclude,
        ...ignoreOptions,
        parents: instruction.kind === 'COPY' ? instruction.parents : false,
      };
      // Context sources whose digests are remembered need no entries for the key; they are
      // selected only if the step runs.
      const remembered =
        from === undefined && urls.length === 0 && locals.length > 0
          ? await this.hasher.remembered(selectOptions)
          : undefined;
      let operands: SelectedOperand[] | undefined =
        fromTree ??
        (remembered !== undefined
          ? undefined
          : locals.length === 0
            ? []
            : await selectCopySources(selectOptions));
      const remote: unknown[] = [];
      if (urls.length > 0) {
        // Downloaded now: the content digest is part of the key, like BuildKit's HTTP source.
        const downloads = await makeWorkDir(this.store.root);
        const previous = release;
        release = async () => {
          await previous();
          await rm(downloads, { recursive: true, force: true });
        };
        for (const [index, url] of urls.entries()) {
          const dir = join(downloads, String(index));
          await mkdir(dir);
          const fetched = await fetchRemote(
            url,
            instruction.kind === 'ADD' ? instruction.checksum : undefined,
            dir,
          );
          if (fetched.lastModified) await utimes(fetched.path, fetched.lastModified, fetched.lastModified);
          const [operand] = await selectCopySources({
            root: dir,
            sourceIsContext: false,
            sources: [fetched.filename],
          });
          if (operand) (operands ??= []).push({ ...operand, operand: url, preserveOwnership: false });
          remote.push([url, fetched.filename, await digestFile(fetched.path)]);
        }
      }
      const material =
        remembered?.map(({ operand, isDirectory, entries }) => ({ operand, dir: isDirectory, entries })) ??
        (await this.sourceMaterial(operands ?? [], from === undefined));
      const chown = instruction.chown;
      const keyParts = {
        op: instruction.kind,
        dest: instruction.dest,
        workdir,
        chown,
        chmod: instruction.chmod,
        link: instruction.link,
        parents: instruction.kind === 'COPY' ? instruction.parents : undefined,
        exclude: instruction.exclude,
        inline: instruction.inline.map((source) => [source.path, source.data]),
        sources: material,
        remote,
        from: sourceKey,
      };
      return {
        keyParts,
        independent: instruction.link,
        readsImage: chown !== undefined && /[^\d:]/.test(chown),
        sourcesOutlive: instruction.kind === 'COPY' && from === undefined,
        ...(instruction.link ? {} : { directDest: posix.resolve('/', workdir, instruction.dest) }),
        execute: async ({ rootfs, lookupRoot, target, scratchDir }) => {
          // A linked copy runs on an empty root, but names in --chown are the stage's users.
          const owner =
            chown === undefined
              ? undefined
              : instruction.link && /[^\d:]/.test(chown)
                ? await this.withStageRoot(state, (stageRoot) => resolveOwner(chown, stageRoot))
                : await resolveOwner(chown, lookupRoot);
          operands ??= await reselect(selectOptions, remembered ?? []);
          await applyCopy(operands, {
            targetRoot: rootfs,
            dest: instruction.dest,
            workdir,
            ...(owner ? { owner } : {}),
            ...(instruction.chmod ? { chmod: instruction.chmod } : {}),
            parents: instruction.kind === 'COPY' ? instruction.parents : false,
            add: instruction.kind === 'ADD',
            scratchDir: scratchDir ?? join(this.store.root, 'build', 'tmp'),
            ...(target ? { target } : {}),
            inline: instruction.inline.map((source) => ({ path: source.path, data: source.data })),
          });
        },
        release,
      };
    } catch (err) {
      await release();
      throw err;
    }
  }

  /** Runs `work` with a read-only view of the stage's filesystem as it is now. */
  private async withStageRoot<T>(state: StageState, work: (root: string) => Promise<T>): Promise<T> {
    const root = await this.mountView(state.layers, state.config.rootfs.diff_ids);
    try {
      return await work(root.path);
    } finally {
      await root.release();
    }
  }

  /** Key material of the selected sources: per operand, a digest over its entries. */
  private async sourceMaterial(operands: readonly SelectedOperand[], fromContext: boolean): Promise<unknown> {
    const contextRoot = resolve(this.options.context);
    return Promise.all(
      operands.map(async (operand) => ({
        operand: operand.operand,
        dir: operand.isDirectory,
        entries: fromContext
          ? await this.hasher.operandDigest(operand, contextRoot)
          : await operandEntriesDigest(operand),
      })),
    );
  }

  /** `COPY --from`: an earlier stage (by name or index) or an image; a read-only view of it. */
  private async copySource(from: string): Promise<{ root: ReadOnlyRoot; key: string }> {
    const { layers, diffIds, key } = await this.fromSource(from);
    return { root: await this.mountView(layers, diffIds), key };
  }

  /** The final image: config, manifest and names. */
  async finish(state: StageState): Promise<BuildResult> {
    const config = cloneConfig(state.config);
    const labels = this.options.labels ?? {};
    if (Object.keys(labels).length > 0)
      config.config = { ...config.config, Labels: { ...(config.config?.Labels ?? {}), ...labels } };
    // The newest step result's time: a fully cached rebuild gives the identical image.
    config.created =
      process.env.SOURCE_DATE_EPOCH !== undefined || state.created === '' ? creationTime() : state.created;
    for (const entry of config.history ?? []) if (entry.created === '') entry.created = config.created;
    const ordered: ImageConfig = {
      created: config.created,
      ...(config.author ? { author: config.author } : {}),
      architecture: config.architecture,
      os: config.os,
      ...(config.variant ? { variant: config.variant } : {}),
      config: config.config ?? {},
      rootfs: config.rootfs,
      history: config.history ?? [],
    };
    const { target, configDigest } = await writeImage(this.store, ordered, state.layers, {
      lease: this.lease,
    });
    const names = (this.options.tags ?? []).map((tag) => formatReference(parseReference(tag)));
    if (names.length > 0) await setImageNames(this.store, [{ target, names }]);
    return {
      id: configDigest,
      target,
      names,
      config: ordered,
      layers: state.layers,
      steps: { executed: this.executed, cached: this.cached },
      warnings: [...this.warnings],
    };
  }
}

/**
 * Selects the sources a key was made from by their fingerprints; each must still have the
 * fingerprint it had, or the step would store other bytes under that key.
 */
async function reselect(
  options: SelectOptions,
  remembered: readonly RememberedOperand[],
): Promise<SelectedOperand[]> {
  const operands = await selectCopySources(options);
  const changed =
    operands.length !== remembered.length
      ? options.sources.join(' ')
      : operands.find((operand, index) => statFingerprint(operand) !== remembered[index]?.fingerprint)
          ?.operand;
  if (changed !== undefined)
    throw new StrataError('CONFLICT', `the build context changed during the build (${changed}); build again`);
  return operands;
}

/** Metadata instructions change only the config (WORKDIR also makes its directory). */
function applyMetadataStep(
  state: StageState,
  instruction: Instruction,
  flags: StageFlags,
  scope: StageScope,
): boolean {
  const applied = applyMetadata(state.config, instruction, flags);
  if (applied && instruction.kind === 'ENV') scope.setEnv(instruction.pairs);
  return applied;
}

/** `mkdir -p` inside the rootfs; directories it creates belong to `owner` (WORKDIR under USER). */
async function mkdirOwned(rootfs: string, target: string, owner: Owner | undefined): Promise<void> {
  const missing: string[] = [];
  for (let dir = target; dir.startsWith(`${rootfs}/`); dir = dirname(dir)) {
    try {
      if ((await stat(dir)).isDirectory()) break;
      throw new StrataError(
        'INVALID_ARGUMENT',
        `cannot create directory ${posix.join('/', relative(rootfs, dir))}: a file is in the way`,
      );
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      missing.push(dir);
    }
  }
  await mkdir(target, { recursive: true, mode: 0o755 });
  if (owner) for (const dir of missing) await chown(dir, owner.uid, owner.gid);
}

function readDockerfileName(options: BuildOptions): { path: string | undefined; name: string } {
  if (options.dockerfileText !== undefined) return { path: undefined, name: 'Dockerfile' };
  const path =
    options.dockerfile === undefined
      ? join(options.context, 'Dockerfile')
      : isAbsolute(options.dockerfile)
        ? options.dockerfile
        : resolve(options.dockerfile);
  return { path, name: basename(path) === path ? path : relative(process.cwd(), path) || path };
}

/** Builds a Dockerfile into an image in `store` (the engine behind `strata build`). */
export async function build(store: Store, options: BuildOptions): Promise<BuildResult> {
  const { path: dockerfilePath, name } = readDockerfileName(options);
  let text: string | Uint8Array;
  const definition = options.progress
    ? {
        id: 'v0',
        name: `[internal] load build definition from ${dockerfilePath ? basename(dockerfilePath) : 'Dockerfile'}`,
      }
    : undefined;
  if (definition) options.progress?.emit({ type: 'vertex', ...definition, started: Date.now() });
  if (options.dockerfileText !== undefined) text = options.dockerfileText;
  else {
    try {
      text = await readFile(dockerfilePath as string);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT')
        throw new StrataError(
          'NOT_FOUND',
          `failed to read dockerfile: open ${dockerfilePath}: no such file or directory`,
        );
      throw err;
    }
  }
  try {
    const contextStats = await stat(options.context);
    if (!contextStats.isDirectory())
      throw new StrataError('INVALID_ARGUMENT', `build context ${options.context} is not a directory`);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT')
      throw new StrataError('NOT_FOUND', `unable to prepare context: path "${options.context}" not found`);
    throw err;
  }
  const model = loadDockerfile(text, { file: name });
  if (definition)
    options.progress?.emit({ type: 'vertex', ...definition, started: Date.now(), completed: Date.now() });
  const platform =
    options.platform === undefined ? hostPlatform() : normalizePlatform(parsePlatform(options.platform));
  const resolved = resolveBuild(model, {
    buildArgs: options.buildArgs ?? {},
    targetPlatform: platform,
    buildPlatform: hostPlatform(),
    ...(options.target === undefined ? {} : { target: options.target }),
  });
  const lease = store.lease();
  const build = new Build(store, options, resolved, platform, lease);
  try {
    await build.prepareContext(options.context, dockerfilePath);
    // Every needed stage starts now; each waits only for the stages it reads from.
    const runs = resolved.needed.map((index) => build.stage(index));
    await Promise.all(runs);
    const final = await build.stage(resolved.target);
    const result = await build.finish(final);
    await build.saveContextCache();
    return result;
  } finally {
    await build.releaseMounts();
    await lease.release();
  }
}
