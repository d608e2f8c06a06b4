/** Ingests a large blob on the digest thread and then simply returns: the process must exit. */
import { ContentStore } from '../content.js';
import { openThreadedDigest, prestartDigestThread } from '../digest-thread.js';

const root = process.argv[2];
if (root === undefined) throw new Error('usage: digest-thread-fixture.ts ROOT');
prestartDigestThread();
while (!(await ready())) await new Promise((resolve) => setTimeout(resolve, 10));
const content = new ContentStore(root);
await content.ingest(
  (async function* () {
    for (let i = 0; i < 8; i++) yield Buffer.alloc(1024 * 1024, i);
  })(),
  { offThread: true },
);

async function ready(): Promise<boolean> {
  const probe = openThreadedDigest('sha256');
  probe?.abandon();
  return probe !== undefined;
}
