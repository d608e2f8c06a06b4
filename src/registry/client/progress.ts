import type { Digest } from '../../oci/digest.js';

/**
 * What pull and push report while they work. Renderers (the CLI's live view or plain lines, a
 * library user's UI) turn these into output; the transfer code never prints.
 */
export type TransferEvent =
  | { type: 'resolved'; reference: string; digest: Digest; mediaType: string }
  | {
      type: 'blob';
      direction: 'pull' | 'push';
      digest: Digest;
      size: number;
      /** Config blobs are reported too, but renderers usually show only layers. */
      kind: 'layer' | 'config';
      status: BlobStatus;
      /** Bytes moved so far (for `progress`, `done`, and the offset a resumed transfer starts at). */
      transferred: number;
      /** For `retrying`: why, in one line. */
      message?: string;
    }
  | { type: 'manifest'; direction: 'push'; reference: string; digest: Digest; size: number }
  | { type: 'warning'; message: string };

export type BlobStatus =
  | 'waiting'
  /** Already in the store (pull) or the registry (push): nothing to move. */
  | 'exists'
  /** Pushed by mounting it from another repository of the same registry. */
  | 'mounted'
  /** Layer is being gzip-compressed before a push (it is stored uncompressed). */
  | 'compressing'
  | 'started'
  /** A resumed download: `transferred` is where it continues. */
  | 'resumed'
  | 'progress'
  | 'retrying'
  | 'done';

export type ProgressListener = (event: TransferEvent) => void;
