/**
 * Every Dockerfile problem (syntax, instruction, structure, expansion) is reported the same way:
 * `file:line:column: what is wrong`, so editors and CI logs can jump to it.
 */
import { StrataError } from '../errors.js';

/** 1-based line and column in the Dockerfile as written (column counts UTF-16 code units). */
export interface Position {
  line: number;
  column: number;
}

export class DockerfileError extends StrataError {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The message without the location prefix. */
  readonly reason: string;

  constructor(file: string, position: Position, reason: string) {
    super('INVALID_DOCKERFILE', `${file}:${position.line}:${position.column}: ${reason}`);
    this.name = 'DockerfileError';
    this.file = file;
    this.line = position.line;
    this.column = position.column;
    this.reason = reason;
  }
}

export function dockerfileError(file: string, position: Position, reason: string): DockerfileError {
  return new DockerfileError(file, position, reason);
}
