/**
 * Container output in docker's json-file format, one JSON object per line:
 * `{"log":"hello\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}`. A line longer
 * than 16 KiB is cut into several entries (docker's buffer size), the last without its newline
 * until one comes; output still pending when the stream ends is written as it is.
 */
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { StringDecoder } from 'node:string_decoder';

export type LogStream = 'stdout' | 'stderr';

export interface LogEntry {
  log: string;
  stream: LogStream;
  time: string;
}

const MAX_LINE = 16 * 1024;

/** Nanosecond-looking RFC 3339 like docker's (milliseconds from the clock, zero-padded). */
export function logTime(now: Date = new Date()): string {
  return now.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

export class LogWriter {
  private readonly pending: Record<LogStream, string> = { stdout: '', stderr: '' };
  private readonly decoders: Record<LogStream, StringDecoder> = {
    stdout: new StringDecoder('utf8'),
    stderr: new StringDecoder('utf8'),
  };
  private tail: Promise<void> = Promise.resolve();

  private constructor(private readonly file: FileHandle) {}

  static async open(path: string): Promise<LogWriter> {
    return new LogWriter(await open(path, 'a', 0o640));
  }

  write(stream: LogStream, chunk: Buffer): void {
    let text = this.pending[stream] + this.decoders[stream].write(chunk);
    const lines: string[] = [];
    for (;;) {
      const newline = text.indexOf('\n');
      if (newline < 0 || newline >= MAX_LINE) break;
      lines.push(text.slice(0, newline + 1));
      text = text.slice(newline + 1);
    }
    while (text.length >= MAX_LINE) {
      lines.push(text.slice(0, MAX_LINE));
      text = text.slice(MAX_LINE);
    }
    this.pending[stream] = text;
    this.append(stream, lines);
  }

  /** Writes what is left of unterminated lines; the writer stays usable (a restart appends). */
  flush(): Promise<void> {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.pending[stream] + this.decoders[stream].end();
      this.pending[stream] = '';
      if (rest !== '') this.append(stream, [rest]);
    }
    return this.tail;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.file.close();
  }

  private append(stream: LogStream, lines: readonly string[]): void {
    if (lines.length === 0) return;
    const time = logTime();
    const data = lines.map((log) => `${JSON.stringify({ log, stream, time } satisfies LogEntry)}\n`).join('');
    this.tail = this.tail.then(() => this.file.appendFile(data)).catch(() => undefined);
  }
}

/** Every entry of a log file from byte `start`; returns where it stopped (after the last full line). */
export async function readLogEntries(
  path: string,
  start: number,
  onEntry: (entry: LogEntry) => void,
): Promise<number> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return start;
  }
  if (size <= start) return start;
  const lines = createInterface({
    input: createReadStream(path, { start, end: size - 1 }),
    crlfDelay: Infinity,
  });
  let position = start;
  for await (const line of lines) {
    const bytes = Buffer.byteLength(line) + 1;
    if (position + bytes > size) {
      // The last line is still being written: read it next time.
      break;
    }
    position += bytes;
    try {
      onEntry(JSON.parse(line) as LogEntry);
    } catch {
      // A damaged line (a crash mid-write) is skipped, as docker's reader does.
    }
  }
  return position;
}
