import { Store } from '../store/index.js';
import { resolveStoreRoot } from '../store/paths.js';

/** What every command needs: the store, opened lazily so `--help` never touches the disk. */
export class CliContext {
  private store: Promise<Store> | undefined;
  constructor(
    private readonly rootFlag: () => string | undefined,
    readonly stdout: NodeJS.WritableStream = process.stdout,
    readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {}

  /** The global `--root` as given (undefined when absent). */
  rootOption(): string | undefined {
    return this.rootFlag();
  }

  openStore(): Promise<Store> {
    const store = this.store ?? Store.open(resolveStoreRoot(this.rootFlag()));
    this.store = store;
    return store;
  }

  print(text: string): void {
    this.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  warn(text: string): void {
    this.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}

/**
 * Ends a command with `exitCode` after it has said all there is to say (`build --check` with
 * findings: the report is the message, as with buildx, so no `Error:` line follows).
 */
export class SilentExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}
