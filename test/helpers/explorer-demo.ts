/**
 * The interactive explorer on a fixed fake image, for test/explorer-tmux.test.ts to drive in
 * tmux (and for a look by hand: `node --import tsx test/helpers/explorer-demo.ts`). The image
 * trees of the layers are computed asynchronously, as a real image's may be.
 */
import { runExplorer } from '../../src/analyze/explorer/index.js';
import { sampleModel } from '../../src/analyze/explorer/testing/demo-image.js';

try {
  await runExplorer(sampleModel({ asyncAggregated: true }), { input: process.stdin, output: process.stdout });
  process.stdout.write('explorer closed\n');
} catch (err) {
  process.stderr.write(`explorer failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
